//! Shared set-up for the repository tests: stores (on disk and on the shared test S3 server), generated trees and a
//! tree comparison that checks bytes and metadata.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vbackup_engine::repo::{VolumeBackup, VolumeRestore};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::location::S3Spec;
use vbackup_engine::store::s3::{S3Backend, S3Credentials};
use vbackup_engine::store::{AccessMode, Store};

/// A backup of `source` as volume `pvc/data` of `backup`.
pub fn volume(source: &std::path::Path, backup: &str) -> VolumeBackup {
    VolumeBackup {
        source: source.to_path_buf(),
        volume: "pvc/data".into(),
        backup: backup.into(),
        excludes: Vec::new(),
        progress: None,
        stall_after: Some(Duration::from_secs(120)),
    }
}

/// A restore of the whole of `snapshot` into `target`.
pub fn restore_all(snapshot: &str, target: &std::path::Path) -> VolumeRestore {
    VolumeRestore {
        snapshot: snapshot.into(),
        path: None,
        target: target.to_path_buf(),
        verify_existing: false,
        progress: None,
        stall_after: Some(Duration::from_secs(120)),
    }
}

/// A read-write store in a local directory.
pub fn fs_store(dir: &Path) -> Store {
    Store::new(
        "test-fs",
        Arc::new(FsBackend::new(dir)),
        AccessMode::ReadWrite,
    )
}

/// A read-write store in a fresh bucket of the shared test S3 server, under `prefix`.
pub async fn s3_store(label: &str, prefix: &str) -> Store {
    s3_stores(label, prefix, 1).await.remove(0)
}

/// `n` stores with clients of their own (as separate processes have) on one fresh bucket of
/// the shared test S3 server, under `prefix`.
pub async fn s3_stores(label: &str, prefix: &str, n: usize) -> Vec<Store> {
    let server = vbackup_test_support::S3Server::shared().unwrap();
    let spec = S3Spec {
        bucket: server.bucket(label).await.unwrap(),
        prefix: Some(prefix.into()),
        region: None,
        endpoint: Some(server.endpoint.clone()),
        force_path_style: true,
        credentials_secret: None,
    };
    let credentials = S3Credentials {
        access_key_id: server.access_key_id.clone(),
        secret_access_key: server.secret_access_key.clone(),
        session_token: None,
    };
    (0..n)
        .map(|_| {
            Store::new(
                "test-s3",
                Arc::new(S3Backend::new(&spec, credentials.clone()).unwrap()),
                AccessMode::ReadWrite,
            )
        })
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible like real media files.
pub fn write_random(path: &Path, len: u64, seed: u64) {
    let mut file = File::create(path).unwrap();
    let mut state = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// What `make_tree` put where, for assertions.
pub struct TreeInfo {
    pub big_file: PathBuf,
    /// Regular files.
    pub file_count: usize,
    /// Everything that is not a directory (rustic counts symlinks as files).
    pub non_dir_count: usize,
}

/// A tree with deep directories, unicode names, empty, sparse, big and hard-linked files,
/// symlinks (relative, absolute, dangling, to a directory), unusual modes and owners.
pub fn make_tree(root: &Path, big_len: u64) -> TreeInfo {
    fs::create_dir_all(root).unwrap();
    let mut deep = root.to_path_buf();
    for level in 0..24 {
        deep = deep.join(format!("level-{level}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), "the bottom of a deep tree\n").unwrap();

    let unicode = root.join("données/日本語/Ελληνικά");
    fs::create_dir_all(&unicode).unwrap();
    fs::write(unicode.join("emoji 🎉 with spaces.txt"), "héllo wörld\n").unwrap();
    fs::write(root.join("données/naïve façade.md"), "# ünïcödé\n").unwrap();

    File::create(root.join("empty")).unwrap();
    let sparse = root.join("sparse.img");
    let mut f = File::create(&sparse).unwrap();
    f.set_len(16 << 20).unwrap();
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(5 << 20)).unwrap();
    f.write_all(b"data in the middle of a hole").unwrap();
    drop(f);

    let big_file = root.join("big.bin");
    write_random(&big_file, big_len, 42);

    let small = root.join("small");
    fs::create_dir(&small).unwrap();
    for i in 0..50u64 {
        let p = small.join(format!("file-{i:03}.txt"));
        fs::write(
            &p,
            format!("small file number {i}\n").repeat(i as usize + 1),
        )
        .unwrap();
        set_mtime(&p, 1_600_000_000 + i * 3600);
    }
    fs::hard_link(small.join("file-001.txt"), root.join("hardlink-to-001")).unwrap();
    // Separate files with the same contents share one blob, which a restore decodes once
    // (in place: decoding it twice would fail its MAC check).
    let copies = root.join("copies");
    fs::create_dir(&copies).unwrap();
    for name in ["LICENSE", "LICENSE.vendored", "third_party-LICENSE"] {
        fs::write(
            copies.join(name),
            "Licensed under the Apache License, Version 2.0\n".repeat(40),
        )
        .unwrap();
    }

    symlink("small/file-002.txt", root.join("link-relative")).unwrap();
    symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("données", root.join("link-to-dir")).unwrap();

    let secret = root.join("secret.key");
    fs::write(&secret, "0600 only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let script = root.join("run.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let setgid_dir = root.join("shared");
    fs::create_dir(&setgid_dir).unwrap();
    fs::write(setgid_dir.join("owned-by-1234"), "chowned\n").unwrap();
    std::os::unix::fs::chown(setgid_dir.join("owned-by-1234"), Some(1234), Some(5678)).unwrap();
    fs::set_permissions(&setgid_dir, fs::Permissions::from_mode(0o2770)).unwrap();
    fs::set_permissions(&unicode, fs::Permissions::from_mode(0o700)).unwrap();

    set_mtime(&big_file, 1_500_000_000);
    set_mtime(&secret, 1_400_000_000);
    set_mtime(&small, 1_300_000_000);
    set_mtime(&setgid_dir, 1_300_000_001);
    TreeInfo {
        big_file,
        file_count: describe(root).values().filter(|e| e.kind == "file").count(),
        non_dir_count: describe(root).values().filter(|e| e.kind != "dir").count(),
    }
}

/// Everything compared about one entry of a tree.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Hard links: a restored hard-linked file must be linked again, not copied.
    pub nlink: u64,
    pub mtime: i64,
    pub link: Option<PathBuf>,
    pub digest: Option<[u8; 32]>,
}

/// Every entry below `root` by relative path, with metadata and a content digest.
pub fn describe(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "special"
        };
        let entry = Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if ft.is_file() { meta.len() } else { 0 },
            nlink: if ft.is_file() { meta.nlink() } else { 0 },
            // Symlink times are not restored by restic-format tools either.
            mtime: if ft.is_symlink() { 0 } else { meta.mtime() },
            link: ft.is_symlink().then(|| fs::read_link(&path).unwrap()),
            digest: ft.is_file().then(|| digest(&path)),
        };
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if ft.is_dir() {
            walk(root, &path, out);
        }
        out.insert(rel, entry);
    }
}

fn digest(path: &Path) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().into()
}

/// Asserts that two trees are equal in contents and metadata, naming the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let want = describe(expected);
    let got = describe(actual);
    let want_paths: Vec<_> = want.keys().collect();
    let got_paths: Vec<_> = got.keys().collect();
    assert_eq!(want_paths, got_paths, "restored tree has other entries");
    for (path, entry) in &want {
        assert_eq!(
            Some(entry),
            got.get(path),
            "entry {} differs",
            path.display()
        );
    }
}

/// Runs the stock `restic` on `repo` from `cwd`; panics on failure, returns stdout.
pub fn restic_in(repo: &Path, password: &str, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(args)
        .arg("--repo")
        .arg(repo)
        .arg("--no-cache")
        .env("RESTIC_PASSWORD", password)
        .current_dir(cwd)
        .output()
        .expect("restic is installed (apt-get install -y restic)");
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its size.
pub fn files_under(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                out.insert(rel, entry.metadata().unwrap().len());
            }
        }
    }
    out
}
