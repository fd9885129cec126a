//! File contents of a restore, written with bounded memory.
//!
//! rustic_core's own restore reads whole pack ranges on 20 threads and queues decrypted blobs
//! without a bound: on a 1 GiB volume it peaks above 1.2 GiB RSS (STACK.md), which is the
//! mover-pod OOM all over again, and its thread count is not configurable. So vbackup writes
//! file contents itself — a few workers, each streaming one file blob by blob — and then lets
//! rustic's restore do everything else (directories, symlinks, special files, owners,
//! permissions, times, hard links): it finds every file already present with the right size
//! and mtime and leaves its contents alone.
//!
//! Files of a single blob (most files of most volumes) are not streamed one request each:
//! they are collected and written pack by pack ([`super::restore_packs`]), each needed pack
//! range read once for all the files in it; only multi-blob files are streamed.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::SystemTime;

use rustic_core::repofile::{BlobType, Node, NodeType};
use rustic_core::{BlobId, IndexedFull, ReadBackend, Repository, RusticResult};

use super::progress::Activity;
use super::restore_packs::{BATCH_FILES, SingleBlobFile, write_single_blob_files};
use crate::{Error, Result};

/// Files restored at once by default from a directory location. Each worker holds one blob
/// (chunks average 1 MiB, 8 MiB at most) compressed and decrypted; 4 keep 2 cores and the disk
/// busy (BENCHMARKS.md).
pub const DEFAULT_RESTORE_WORKERS: usize = 4;

/// Files restored at once by default from S3: every blob is one ranged GET, so more workers
/// hide the per-request latency (worst case 16 × 16 MiB in memory).
pub const DEFAULT_S3_RESTORE_WORKERS: usize = 16;

/// Most pack ranges read at once for single-blob files (each ≤ 16 MiB plus one blob).
const MAX_PACK_WORKERS: usize = 8;

/// What the contents phase did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ContentStats {
    pub(crate) files_written: u64,
    pub(crate) files_skipped: u64,
    pub(crate) bytes_written: u64,
}

impl ContentStats {
    pub(crate) fn add(&mut self, other: ContentStats) {
        self.files_written += other.files_written;
        self.files_skipped += other.files_skipped;
        self.bytes_written += other.bytes_written;
    }
}

/// How [`write_contents`] works.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContentOptions {
    /// `dest` is the file itself, not a directory.
    pub(crate) single_file: bool,
    /// Leave files of the same size but another mtime to rustic's content comparison.
    pub(crate) verify: bool,
    /// Files written at once.
    pub(crate) workers: usize,
}

/// Writes the contents of every regular file among `nodes` below `dest`, or into `dest`
/// itself when restoring a `single_file`. Files that exist with the snapshot's size and mtime are
/// skipped, unless `verify` asks for a content comparison, which rustic's restore then does.
pub(crate) fn write_contents<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    packs: &dyn ReadBackend,
    nodes: impl Iterator<Item = RusticResult<(PathBuf, Node)>>,
    dest: &Path,
    how: ContentOptions,
    activity: &Activity,
) -> Result<ContentStats> {
    let ContentOptions {
        single_file,
        verify,
        workers,
    } = how;
    let pack_workers = workers.clamp(1, MAX_PACK_WORKERS);
    let workers_count = workers.max(1);
    let (tx, rx) = mpsc::sync_channel::<(PathBuf, Node)>(workers_count * 4);
    let rx = Mutex::new(rx);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..workers_count)
            .map(|_| {
                s.spawn(|| -> Result<ContentStats> {
                    let mut stats = ContentStats::default();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok((path, node)) = job else { break };
                        if let Err(e) = write_file(repo, &path, &node, activity) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        stats.files_written += 1;
                        stats.bytes_written += node.meta.size;
                    }
                    Ok(stats)
                })
            })
            .collect();

        let mut total = ContentStats::default();
        let mut produced: Result<()> = Ok(());
        let mut linked = HashSet::new();
        let mut single_blob = Vec::new();
        for item in nodes {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let (rel, node) = match item {
                Ok(item) => item,
                Err(e) => {
                    produced = Err(e.into());
                    break;
                }
            };
            if node.node_type != NodeType::File {
                continue;
            }
            let meta = &node.meta;
            // Second names of a hard-linked file are linked by rustic, not written.
            if meta.links > 1 && meta.inode != 0 && !linked.insert((meta.device_id, meta.inode)) {
                continue;
            }
            let path = if single_file || rel.as_os_str().is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(&rel)
            };
            match existing_state(&path, &node) {
                Existing::Same => {
                    total.files_skipped += 1;
                    activity.add_file();
                    continue;
                }
                Existing::SameSize if verify => {
                    // rustic's restore compares the contents and rewrites what differs.
                    continue;
                }
                _ => {}
            }
            if let Some([blob]) = node.content.as_deref() {
                single_blob.push(SingleBlobFile {
                    path,
                    size: node.meta.size,
                    mtime: node.meta.mtime,
                    blob: *blob,
                });
                if single_blob.len() == BATCH_FILES {
                    match write_single_blob_files(repo, packs, &single_blob, pack_workers, activity)
                    {
                        Ok(stats) => total.add(stats),
                        Err(e) => {
                            produced = Err(e);
                            break;
                        }
                    }
                    single_blob.clear();
                }
                continue;
            }
            if tx.send((path, node)).is_err() {
                break;
            }
        }
        drop(tx);
        if produced.is_ok() && !single_blob.is_empty() && !failed.load(Ordering::Relaxed) {
            match write_single_blob_files(repo, packs, &single_blob, pack_workers, activity) {
                Ok(stats) => total.add(stats),
                Err(e) => produced = Err(e),
            }
        }

        let mut first_error = produced.err();
        for worker in workers {
            match worker.join() {
                Ok(Ok(stats)) => total.add(stats),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Internal(
                        "a restore worker panicked while writing file contents".into(),
                    ));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    })
}

enum Existing {
    Missing,
    Same,
    SameSize,
    Different,
}

fn existing_state(path: &Path, node: &Node) -> Existing {
    let Ok(meta) = path.symlink_metadata() else {
        return Existing::Missing;
    };
    if !meta.is_file() || meta.len() != node.meta.size {
        return Existing::Different;
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| rustic_core::jiff::Timestamp::try_from(t).ok());
    if mtime == node.meta.mtime {
        Existing::Same
    } else {
        Existing::SameSize
    }
}

fn write_file<S: IndexedFull>(
    repo: &Repository<S>,
    path: &Path,
    node: &Node,
    activity: &Activity,
) -> Result<()> {
    let mut writer = SparseWriter {
        file: create_for_write(path)?,
        activity,
        path,
    };
    // One blob at a time: rustic's `dump` reads ahead on every core, which holds up to ten
    // 8 MiB blobs per big file while the disk catches up.
    for id in node.content.iter().flatten() {
        let blob = repo.get_blob_cached(&BlobId::from(**id), BlobType::Data)?;
        writer.write_all(&blob).map_err(Error::io("write", path))?;
    }
    finish_file(writer.file, path, node.meta.size, node.meta.mtime, activity)
}

/// Creates (or truncates) the file at `path` and its directories, replacing a symlink,
/// directory or read-only file left there.
pub(crate) fn create_for_write(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    }
    // Never write through a symlink (or over a directory) left in the target.
    if let Ok(meta) = path.symlink_metadata()
        && !meta.is_file()
    {
        if meta.is_dir() {
            std::fs::remove_dir_all(path).map_err(Error::io("replace directory", path))?;
        } else {
            std::fs::remove_file(path).map_err(Error::io("replace", path))?;
        }
    }
    match open_for_write(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // A read-only file from an earlier restore: replace it.
            std::fs::remove_file(path).map_err(Error::io("replace", path))?;
            open_for_write(path)
        }
        other => other,
    }
    .map_err(Error::io("create", path))
}

/// Gives a written file its full length (trailing holes are not written) and its mtime.
pub(crate) fn finish_file(
    file: File,
    path: &Path,
    size: u64,
    mtime: Option<rustic_core::jiff::Timestamp>,
    activity: &Activity,
) -> Result<()> {
    file.set_len(size)
        .map_err(Error::io("set length of", path))?;
    if let Some(mtime) = mtime {
        file.set_modified(SystemTime::from(mtime))
            .map_err(Error::io("set mtime of", path))?;
    }
    activity.add_file();
    Ok(())
}

fn open_for_write(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Writes blobs, turning all-zero blobs into holes so sparse files stay sparse.
struct SparseWriter<'a> {
    file: File,
    activity: &'a Activity,
    path: &'a Path,
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.iter().all(|b| *b == 0) {
            let len = i64::try_from(buf.len()).map_err(std::io::Error::other)?;
            self.file.seek(SeekFrom::Current(len))?;
        } else {
            self.file.write_all(buf)?;
        }
        self.activity.add_bytes(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .flush()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}
