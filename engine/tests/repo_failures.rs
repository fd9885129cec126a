//! What goes wrong with volume repositories, and how it is reported.

mod repo_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use repo_support::{assert_same_tree, fs_store, restore_all, volume, write_random};
use tokio::io::AsyncRead;
use vbackup_engine::Error;
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{self, ReadData, RepoOptions, VolumeRepo};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::{AccessMode, ObjectBackend, ObjectMeta, ObjectReader, Store};

/// A few MiB of incompressible files in a couple of directories.
fn small_tree(root: &std::path::Path, seed: u64) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    for i in 0..6u64 {
        write_random(&root.join(format!("a/file-{i}.bin")), 700_000, seed + i);
    }
    std::fs::write(root.join("a/b/notes.txt"), "keep me\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_location_key_is_a_clear_error_never_a_garbled_repository() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(work.path());
    let key = LocationKey::generate().unwrap();
    VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    // The sealed object also keeps the master key, so opening skips scrypt's 128 MiB.
    let sealed = std::fs::read(work.path().join("repos/prod/vbackup-key.sealed")).unwrap();
    let secrets = vbackup_engine::keys::unseal(&key, "prod", &sealed).unwrap();
    assert!(secrets.master_key.is_some());

    let wrong = LocationKey::generate().unwrap();
    let err = VolumeRepo::open(&store, "prod", &wrong, RepoOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLocationKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("namespace prod"), "{message}");
    assert!(message.contains("import-key"), "{message}");
    assert!(!message.contains(&wrong.to_text()), "{message}");

    let err = VolumeRepo::open_or_init(&store, "prod", &wrong, RepoOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLocationKey { .. }), "{err:?}");
    let err = repo::reveal_password(&store, "prod", &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLocationKey { .. }), "{err:?}");
    // The right key still opens it: nothing was overwritten by the failed attempts.
    VolumeRepo::open(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_without_repository_is_reported_missing() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(work.path());
    let key = LocationKey::generate().unwrap();
    let err = VolumeRepo::open(&store, "ghost", &key, RepoOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RepoMissing { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("namespace ghost has no volume-data repository")
    );
    let err = VolumeRepo::open(&store, "Not_A_Namespace", &key, RepoOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a Kubernetes namespace name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_location_key_reseals_every_repository_password() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(work.path());
    let old = LocationKey::generate().unwrap();
    let new = LocationKey::generate().unwrap();
    let mut passwords = Vec::new();
    for ns in ["prod", "staging"] {
        let (repo, _) = VolumeRepo::open_or_init(&store, ns, &old, RepoOptions::default())
            .await
            .unwrap();
        passwords.push(repo.password().clone());
    }

    let stranger = LocationKey::generate().unwrap();
    let err = repo::rotate_location_key(&store, &stranger, &new)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLocationKey { .. }), "{err:?}");
    // Nothing changed: the old key still opens everything.
    assert_eq!(
        repo::reveal_password(&store, "prod", &old).await.unwrap(),
        passwords[0]
    );

    let rotated = repo::rotate_location_key(&store, &old, &new).await.unwrap();
    assert_eq!(rotated, vec!["prod", "staging"]);
    for (ns, password) in ["prod", "staging"].iter().zip(&passwords) {
        assert_eq!(
            &repo::reveal_password(&store, ns, &new).await.unwrap(),
            password
        );
        let err = VolumeRepo::open(&store, ns, &old, RepoOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::WrongLocationKey { .. }), "{err:?}");
        VolumeRepo::open(&store, ns, &new, RepoOptions::default())
            .await
            .unwrap();
    }
    // A re-run after an interruption is harmless.
    repo::rotate_location_key(&store, &old, &new).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_flipped_byte_in_a_pack_and_restore_fails_clearly() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let source = work.path().join("source");
    small_tree(&source, 7);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let snap = repo.backup_dir(volume(&source, "b1")).await.unwrap();
    assert!(repo.check(ReadData::All).await.unwrap().is_ok());

    // Flip one byte in the middle of the largest data pack.
    let mut packs: Vec<_> = walk_files(&location.join("repos/prod/data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = packs.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();

    let report = repo.check(ReadData::All).await.unwrap();
    assert!(!report.is_ok(), "check missed the corruption: {report:?}");
    let pack_id = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        report.errors.iter().any(|e| e.contains(&pack_id[..8])),
        "the damaged pack is named: {report:?}"
    );

    let err = repo
        .restore(restore_all(
            &snap.snapshot_id,
            &work.path().join("restored"),
        ))
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("restore of a damaged repository: {message}");
    assert!(matches!(err, Error::Repo { op: "restore", .. }), "{err:?}");
    assert!(message.contains("namespace prod"), "{message}");
    assert!(message.contains("damaged"), "{message}");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A directory store that stops after some writes, the way a killed mover pod does: the
/// objects written so far stay, nothing after them arrives. With `hang`, writes then never
/// finish instead of failing (a dead network).
struct Interrupted {
    inner: FsBackend,
    writes_left: AtomicUsize,
    hang: bool,
}

#[async_trait]
impl ObjectBackend for Interrupted {
    async fn put(&self, key: &str, body: Bytes) -> vbackup_engine::Result<()> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            if self.hang {
                std::future::pending::<()>().await;
            }
            return Err(Error::Unreachable {
                endpoint: "test store".into(),
                detail: "connection reset (simulated crash)".into(),
            });
        }
        self.writes_left.store(left - 1, Ordering::SeqCst);
        self.inner.put(key, body).await
    }
    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> vbackup_engine::Result<u64> {
        self.inner.put_stream(key, body).await
    }
    async fn get(&self, key: &str) -> vbackup_engine::Result<ObjectReader> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> vbackup_engine::Result<Bytes> {
        self.inner.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> vbackup_engine::Result<Option<u64>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> vbackup_engine::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> vbackup_engine::Result<()> {
        self.inner.delete(key).await
    }
    async fn check_reachable(&self) -> vbackup_engine::Result<()> {
        self.inner.check_reachable().await
    }
    fn url(&self) -> String {
        self.inner.url()
    }
}

fn interrupted_store(dir: &std::path::Path, writes: usize, hang: bool) -> Store {
    Store::new(
        "flaky",
        Arc::new(Interrupted {
            inner: FsBackend::new(dir),
            writes_left: AtomicUsize::new(writes),
            hang,
        }),
        AccessMode::ReadWrite,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_loses_nothing_and_the_next_backup_completes() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let source = work.path().join("source");
    small_tree(&source, 1);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let first = repo.backup_dir(volume(&source, "b1")).await.unwrap();
    let before = work.path().join("before");
    repo.restore(restore_all(&first.snapshot_id, &before))
        .await
        .unwrap();

    // New data, and the writer dies after one pack.
    write_random(&source.join("a/new-1.bin"), 3_000_000, 99);
    write_random(&source.join("a/new-2.bin"), 3_000_000, 98);
    let flaky = interrupted_store(&location, 1, false);
    let flaky_repo = VolumeRepo::open(&flaky, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let err = flaky_repo
        .backup_dir(volume(&source, "b2"))
        .await
        .unwrap_err();
    eprintln!("interrupted backup: {err}");
    assert!(matches!(err, Error::Repo { op: "backup", .. }), "{err:?}");

    // The earlier snapshot is intact and still restores; the repository checks out.
    let snapshots = repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 1, "no half snapshot was written");
    assert!(repo.check(ReadData::All).await.unwrap().is_ok());

    let second = repo.backup_dir(volume(&source, "b2")).await.unwrap();
    assert_eq!(
        second.parent_id.as_deref(),
        Some(first.snapshot_id.as_str())
    );
    let after = work.path().join("after");
    repo.restore(restore_all(&second.snapshot_id, &after))
        .await
        .unwrap();
    assert_same_tree(&source, &after);
    let again = work.path().join("again");
    repo.restore(restore_all(&first.snapshot_id, &again))
        .await
        .unwrap();
    assert_same_tree(&before, &again);
    assert!(repo.check(ReadData::All).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_stops_moving_fails_after_the_stall_period() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let source = work.path().join("source");
    small_tree(&source, 3);
    let key = LocationKey::generate().unwrap();
    VolumeRepo::open_or_init(&fs_store(&location), "prod", &key, RepoOptions::default())
        .await
        .unwrap();

    let hanging = interrupted_store(&location, 0, true);
    let repo = VolumeRepo::open(&hanging, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let mut req = volume(&source, "b1");
    req.stall_after = Some(Duration::from_secs(2));
    let err = repo.backup_dir(req).await.unwrap_err();
    eprintln!("stalled backup: {err}");
    assert!(matches!(err, Error::Stalled { .. }), "{err:?}");
    assert!(err.to_string().contains("made no progress"), "{err}");

    // The location is fine for the next attempt.
    let (repo, _) =
        VolumeRepo::open_or_init(&fs_store(&location), "prod", &key, RepoOptions::default())
            .await
            .unwrap();
    repo.backup_dir(volume(&source, "b1")).await.unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_location_is_browsed_but_never_written() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let source = work.path().join("source");
    small_tree(&source, 5);
    let key = LocationKey::generate().unwrap();
    let (repo, _) =
        VolumeRepo::open_or_init(&fs_store(&location), "prod", &key, RepoOptions::default())
            .await
            .unwrap();
    repo.backup_dir(volume(&source, "b1")).await.unwrap();

    let read_only = Store::new(
        "dr-site",
        Arc::new(FsBackend::new(&location)),
        AccessMode::ReadOnly,
    );
    let repo = VolumeRepo::open(&read_only, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    let err = repo.backup_dir(volume(&source, "b2")).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = VolumeRepo::open_or_init(&read_only, "new-ns", &key, RepoOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_and_prune_remove_a_backup_and_keep_the_others_restorable() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(&work.path().join("location"));
    let source = work.path().join("source");
    small_tree(&source, 11);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    repo.backup_dir(volume(&source, "old")).await.unwrap();
    std::fs::remove_dir_all(source.join("a")).unwrap();
    write_random(&source.join("fresh.bin"), 2_000_000, 5);
    let kept = repo.backup_dir(volume(&source, "new")).await.unwrap();

    let forgotten = repo.forget_backup("old").await.unwrap();
    assert_eq!(forgotten.len(), 1);
    let pruned = repo.prune().await.unwrap();
    assert!(pruned.bytes_unused > 0, "{pruned:?}");
    // Two-phase: unused packs are only marked now, never deleted under a running backup.
    assert_eq!(pruned.packs_deleted, 0, "{pruned:?}");

    let snapshots = repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].backup.as_deref(), Some("new"));
    assert!(repo.check(ReadData::All).await.unwrap().is_ok());
    let target = work.path().join("restored");
    repo.restore(restore_all(&kept.snapshot_id, &target))
        .await
        .unwrap();
    assert_same_tree(&source, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_volume_does_not_undo_the_volumes_finished_before_it() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(&work.path().join("location"));
    let source = work.path().join("source");
    small_tree(&source, 21);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let mut missing = volume(&work.path().join("gone"), "b1");
    missing.volume = "pvc/gone".into();
    let results = repo
        .backup_volumes(vec![volume(&source, "b1"), missing])
        .await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, "pvc/data");
    let done = results[0].1.as_ref().unwrap();
    let err = results[1].1.as_ref().unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
    let snapshots = repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].id, done.snapshot_id);
}

/// Set in the child process of `a_backup_killed_mid_way_...`: the location, key and source.
const KILL_CHILD_ENV: &str = "VBACKUP_TEST_KILLED_BACKUP";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_mid_way_leaves_the_repository_usable_and_loses_nothing() {
    // The child half: this same test binary, started by the parent below, runs the backup.
    if let Ok(spec) = std::env::var(KILL_CHILD_ENV) {
        let parts: Vec<&str> = spec.split('\n').collect();
        let key = LocationKey::parse(parts[1]).unwrap();
        let store = fs_store(std::path::Path::new(parts[0]));
        let repo = VolumeRepo::open(&store, "prod", &key, RepoOptions::default())
            .await
            .unwrap();
        repo.backup_dir(volume(std::path::Path::new(parts[2]), "killed"))
            .await
            .unwrap();
        return;
    }

    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let source = work.path().join("source");
    small_tree(&source, 31);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let first = repo.backup_dir(volume(&source, "before")).await.unwrap();
    for i in 0..12u64 {
        write_random(&source.join(format!("a/big-{i}.bin")), 8 << 20, 1000 + i);
    }
    let packs_before = walk_files(&location.join("repos/prod/data")).len();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_backup_killed_mid_way_leaves_the_repository_usable_and_loses_nothing",
            "--nocapture",
        ])
        .env(
            KILL_CHILD_ENV,
            format!(
                "{}\n{}\n{}",
                location.display(),
                key.to_text(),
                source.display()
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL, no clean-up) as soon as it has uploaded some new packs.
    let mut killed_mid_way = false;
    for _ in 0..3000 {
        if walk_files(&location.join("repos/prod/data")).len() >= packs_before + 2 {
            child.kill().unwrap();
            killed_mid_way = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait().unwrap();
    assert!(
        killed_mid_way,
        "the child finished before it could be killed"
    );

    // No snapshot of the killed backup, the earlier one intact, the repository sound.
    let snapshots = repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].id, first.snapshot_id);
    let report = repo.check(ReadData::All).await.unwrap();
    assert!(report.is_ok(), "{report:?}");

    // The next backup completes, and both snapshots restore exactly.
    let second = repo.backup_dir(volume(&source, "after")).await.unwrap();
    let target = work.path().join("restored");
    repo.restore(restore_all(&second.snapshot_id, &target))
        .await
        .unwrap();
    assert_same_tree(&source, &target);
    assert!(repo.check(ReadData::All).await.unwrap().is_ok());
}
