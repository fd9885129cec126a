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
//! range read once for all the files in it. Files of several blobs are cut into segments of a
//! few blobs that several workers write at once, each run of a segment's blobs stored next to
//! each other in a pack read in one request: as one worker's job, blob after blob, a 200 MiB
//! database file was a serial chain of 200 reads (on S3, one GET after the other) that the
//! whole restore waited for.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::SystemTime;

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{IndexedFull, Repository, RusticResult};

use super::backend::StoreBackend;
use super::progress::Activity;
use super::restore_packs::{
    BATCH_FILES, BlobPlace, SingleBlobFile, Worker, WorkerPool, aead_key, write_single_blob_files,
};
use crate::{Error, Result};

/// Segments of multi-blob files written at once by default from a directory location: one
/// per core the process may use (its cgroup's CPU limit counts), at least 2 so reads overlap
/// decoding, at most 4. Each worker holds one read (at most 16 MiB) and one decoded blob
/// (chunks average 1 MiB, 8 MiB at most): about 35 MiB of peak memory per worker on the
/// benchmark volume, where 2 workers on 2 cores restored as fast as 4 (BENCHMARKS.md).
pub fn default_restore_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// Segments written at once by default from S3: every read is one ranged GET, so more workers
/// hide the per-request latency (worst case 8 × 24 MiB in memory). Against s3s-fs, 8 restored
/// the benchmark volume as fast as 16 (median 6.6 s against 6.4 s) in 277 MiB instead of
/// 426 MiB; 4 took 8.4 s.
pub const DEFAULT_S3_RESTORE_WORKERS: usize = 8;

/// Most threads reading pack ranges for single-blob files; they take their buffers from the
/// restore's worker pool, beside the segment threads.
const MAX_PACK_WORKERS: usize = 8;

/// Blobs per segment of a big file (chunks average 1 MiB): files of more blobs are written
/// by several workers at once.
const SEGMENT_BLOBS: usize = 8;

/// Consecutive blobs of a multi-blob file (created at its full length beforehand), the first
/// at `offset`: one worker's job.
struct Segment {
    file: Arc<PendingFile>,
    blobs: Vec<BlobPlace>,
    offset: u64,
}

/// A file whose segments are being written; whoever writes the last one gives the file its
/// mtime.
struct PendingFile {
    path: PathBuf,
    size: u64,
    mtime: Option<rustic_core::jiff::Timestamp>,
    segments_left: AtomicUsize,
}

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
    packs: &StoreBackend,
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
    let (tx, rx) = mpsc::sync_channel::<Segment>(workers_count * 4);
    let rx = Mutex::new(rx);
    let failed = AtomicBool::new(false);
    // One pool for both phases: segments and single-blob files restored side by side hold
    // at most `workers` ranges in memory, not one per thread of each.
    let pool = WorkerPool::new(&aead_key(&repo.key()), workers_count)?;
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
                        let Ok(segment) = job else { break };
                        let written = pool.take().and_then(|mut worker| {
                            write_segment(&mut worker, packs, segment, activity)
                        });
                        match written {
                            Ok(Some(size)) => {
                                stats.files_written += 1;
                                stats.bytes_written += size;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(stats)
                })
            })
            .collect();

        let mut total = ContentStats::default();
        let mut produced: Result<()> = Ok(());
        let mut linked = HashSet::new();
        let mut single_blob = Vec::new();
        let mut dirs = TargetDirs::new(dest, single_file);
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
            if node.node_type == NodeType::Dir && !single_file {
                if let Err(e) = dirs.make(&dest.join(&rel)) {
                    produced = Err(e);
                    break;
                }
                continue;
            }
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
            let vacant = dirs.is_fresh_parent_of(&path)
                || match existing_state(&path, &node) {
                    Existing::Same => {
                        total.files_skipped += 1;
                        activity.add_file();
                        continue;
                    }
                    Existing::SameSize if verify => {
                        // rustic's restore compares the contents and rewrites what differs.
                        continue;
                    }
                    Existing::Missing => true,
                    Existing::SameSize | Existing::Different => false,
                };
            if let Some([blob]) = node.content.as_deref() {
                single_blob.push(SingleBlobFile {
                    path,
                    vacant,
                    size: node.meta.size,
                    mtime: node.meta.mtime,
                    blob: *blob,
                });
                if single_blob.len() == BATCH_FILES {
                    match write_single_blob_files(
                        repo,
                        packs,
                        &single_blob,
                        pack_workers,
                        &pool,
                        activity,
                    ) {
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
            let segments = match segments_of(repo, path, vacant, &node, activity) {
                Ok(segments) => segments,
                Err(e) => {
                    produced = Err(e);
                    break;
                }
            };
            if segments.is_empty() {
                // Empty: created and finished already.
                total.files_written += 1;
            }
            if segments
                .into_iter()
                .any(|segment| tx.send(segment).is_err())
            {
                break;
            }
        }
        drop(tx);
        if produced.is_ok() && !single_blob.is_empty() && !failed.load(Ordering::Relaxed) {
            match write_single_blob_files(repo, packs, &single_blob, pack_workers, &pool, activity)
            {
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

/// The directories of the target on the path the restore walks (depth first, as a snapshot's
/// trees are listed), each with whether this restore created it: nothing was in a directory
/// it created, so its files need no look at what is there before they are written — on a
/// fresh restore that is 5 of the 9 system calls a small file cost.
struct TargetDirs {
    stack: Vec<(PathBuf, bool)>,
}

impl TargetDirs {
    /// Starts at `dest`, fresh when it is an empty directory (a file restore starts nowhere).
    fn new(dest: &Path, single_file: bool) -> TargetDirs {
        let empty = !single_file
            && std::fs::read_dir(dest).is_ok_and(|mut entries| entries.next().is_none());
        TargetDirs {
            stack: if single_file {
                Vec::new()
            } else {
                vec![(dest.to_path_buf(), empty)]
            },
        }
    }

    /// Makes the directory `path` (its parent was made before, trees being listed depth
    /// first); anything else found there — a file, a symlink — is replaced, never followed.
    fn make(&mut self, path: &Path) -> Result<()> {
        self.leave_until_parent_of(path);
        let fresh = match std::fs::create_dir(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let in_the_way = !path
                    .symlink_metadata()
                    .map_err(Error::io("look at", path))?
                    .is_dir();
                if in_the_way {
                    std::fs::remove_file(path).map_err(Error::io("replace", path))?;
                    std::fs::create_dir(path).map_err(Error::io("create directory", path))?;
                }
                // A directory made in place of a file or symlink is as empty as a new one.
                in_the_way
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path).map_err(Error::io("create directory", path))?;
                false
            }
            Err(e) => return Err(Error::io("create directory", path)(e)),
        };
        self.stack.push((path.to_path_buf(), fresh));
        Ok(())
    }

    /// Whether `file` lies directly in a directory this restore created.
    fn is_fresh_parent_of(&mut self, file: &Path) -> bool {
        self.leave_until_parent_of(file);
        matches!(self.stack.last(), Some((dir, true)) if file.parent() == Some(dir.as_path()))
    }

    fn leave_until_parent_of(&mut self, path: &Path) {
        while let Some((dir, _)) = self.stack.last() {
            if path.starts_with(dir) {
                break;
            }
            self.stack.pop();
        }
    }
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

/// Creates the file at its full length (holes where nothing is written) and cuts its blobs
/// into segments; a file without contents is finished at once.
fn segments_of<S: IndexedFull>(
    repo: &Repository<S>,
    path: PathBuf,
    vacant: bool,
    node: &Node,
    activity: &Activity,
) -> Result<Vec<Segment>> {
    let file = create_for_write(&path, vacant)?;
    let blobs = node.content.as_deref().unwrap_or_default();
    if blobs.is_empty() {
        finish_file(file, &path, 0, node.meta.size, node.meta.mtime, activity)?;
        return Ok(Vec::new());
    }
    file.set_len(node.meta.size)
        .map_err(Error::io("set length of", &path))?;
    let mut segments = Vec::new();
    let mut offset = 0;
    for chunk in blobs.chunks(SEGMENT_BLOBS) {
        let places = chunk
            .iter()
            .map(|id| BlobPlace::of(repo, id))
            .collect::<Result<Vec<_>>>()?;
        let length: u64 = places.iter().map(BlobPlace::data_length).sum();
        segments.push((places, offset));
        offset += length;
    }
    let file = Arc::new(PendingFile {
        path,
        size: node.meta.size,
        mtime: node.meta.mtime,
        segments_left: AtomicUsize::new(segments.len()),
    });
    Ok(segments
        .into_iter()
        .map(|(blobs, offset)| Segment {
            file: file.clone(),
            blobs,
            offset,
        })
        .collect())
}

/// Writes one segment; returns the file's size when this segment completed the file.
fn write_segment(
    worker: &mut Worker,
    packs: &StoreBackend,
    segment: Segment,
    activity: &Activity,
) -> Result<Option<u64>> {
    let file = segment.file.as_ref();
    let out = OpenOptions::new()
        .write(true)
        .open(&file.path)
        .map_err(Error::io("open", &file.path))?;
    let mut at = segment.offset;
    worker.read(packs, &segment.blobs, |blob| {
        // All-zero blobs stay holes of the file created at full length (sparse files).
        if blob.iter().any(|b| *b != 0) {
            out.write_all_at(blob, at)
                .map_err(Error::io("write", &file.path))?;
        }
        activity.add_bytes(blob.len() as u64);
        at += blob.len() as u64;
        Ok(())
    })?;
    if file.segments_left.fetch_sub(1, Ordering::AcqRel) > 1 {
        return Ok(None);
    }
    finish_file(out, &file.path, file.size, file.size, file.mtime, activity)?;
    Ok(Some(file.size))
}

/// Creates (or truncates) the file at `path` and its directories, replacing a symlink,
/// directory or read-only file left there; when `vacant` (nothing is at `path`), only
/// creates it.
pub(crate) fn create_for_write(path: &Path, vacant: bool) -> Result<File> {
    if vacant {
        match open_for_write(path) {
            Ok(file) => return Ok(file),
            // Its directory is missing after all: the careful way below makes it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("create", path)(e)),
        }
    }
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

/// Gives a written file (now `length` bytes long) its full `size` (trailing holes are not
/// written) and its mtime.
pub(crate) fn finish_file(
    file: File,
    path: &Path,
    length: u64,
    size: u64,
    mtime: Option<rustic_core::jiff::Timestamp>,
    activity: &Activity,
) -> Result<()> {
    if length != size {
        file.set_len(size)
            .map_err(Error::io("set length of", path))?;
    }
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
