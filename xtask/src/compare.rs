//! The benchmark's oracle: a restored tree must equal its source in every file's bytes, and
//! every entry's type, mode, owner and modification time (nanoseconds). Independent of both
//! tools' code: plain `std::fs` on both trees.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    link: Option<PathBuf>,
}

/// Fails naming the first difference between `source` and `restored` (their roots' own
/// metadata excepted: a restore target is the caller's directory).
pub fn assert_same_tree(source: &Path, restored: &Path) -> Result<()> {
    let want = describe(source)?;
    let got = describe(restored)?;
    if let Some(extra) = got.keys().find(|p| !want.contains_key(*p)) {
        bail!("restore has {} which the source does not", extra.display());
    }
    for (rel, entry) in &want {
        let Some(other) = got.get(rel) else {
            bail!("restore lacks {}", rel.display());
        };
        if entry != other {
            bail!(
                "{} differs: source {entry:?}, restored {other:?}",
                rel.display()
            );
        }
        if entry.kind == "file" && !same_bytes(&source.join(rel), &restored.join(rel))? {
            bail!("{} has other bytes in the restore", rel.display());
        }
    }
    Ok(())
}

fn describe(root: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for item in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = item?.path();
            let meta = fs::symlink_metadata(&path)?;
            let ft = meta.file_type();
            let kind = match () {
                _ if ft.is_dir() => "dir",
                _ if ft.is_symlink() => "symlink",
                _ if ft.is_file() => "file",
                _ => "special",
            };
            if ft.is_dir() {
                dirs.push(path.clone());
            }
            let entry = Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: if ft.is_file() { meta.len() } else { 0 },
                // Neither tool restores symlink times.
                mtime: if ft.is_symlink() {
                    (0, 0)
                } else {
                    (meta.mtime(), meta.mtime_nsec())
                },
                link: if ft.is_symlink() {
                    Some(fs::read_link(&path)?)
                } else {
                    None
                },
            };
            out.insert(path.strip_prefix(root)?.to_path_buf(), entry);
        }
    }
    Ok(out)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).with_context(|| format!("opening {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
