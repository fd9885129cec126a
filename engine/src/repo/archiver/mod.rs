//! vbackup's archiver: backs a source up into a restic-format repository.
//!
//! rustic_core's archiver hands every chunk across threads through zero-capacity channels and
//! several parallel stages (a third of a many-small-files backup went to task switching), and
//! copies each chunk byte by byte into a new buffer. Here the walk, the parent comparison and
//! the trees stay on the calling thread; files to read go in batches to one worker per core,
//! and a worker reads, chunks, hashes, compresses, encrypts and packs a file's blobs itself,
//! into a pack of its own; two uploader threads write the packs, then the index files. The
//! repository format, the chunk boundaries, the tree JSON and the parent rule are rustic_core's,
//! so snapshots of either deduplicate against the other (`tests.rs`: the same trees as
//! rustic_core's archiver), and restic checks and reads them (`engine/tests/repo_restic.rs`).

mod chunker;
mod known;
mod packer;
mod parent;
#[cfg(test)]
mod tests;
mod trees;
mod walk;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use crossbeam_channel::{Receiver, Sender};
use jiff::Zoned;
use rustic_core::repofile::{BlobType, Node, NodeType, SnapshotFile};
use rustic_core::{
    DataId, FileType, Id, OpenStatus, ReadSource, ReadSourceEntry, ReadSourceOpen, Repository,
    SnapshotGroup, SnapshotGroupCriterion, TreeId,
};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::backend::StoreBackend;
use super::progress::Activity;
use super::restore_packs::aead_key;
use crate::{Error, Result};
use chunker::{ChunkBuffer, ChunkParams};
use known::KnownBlobs;
use packer::{FinishedPack, PackStats, Packer, Sealer, UPLOADERS, Uploader, pack_target};
use parent::{Matched, Parent};
use trees::TreeBuilder;
use walk::{DirWalk, Entry, Step, snapshot_dir};

/// The first fatal error of a backup's threads (a pack that could not be written…); the
/// others stop at their next step.
#[derive(Default)]
pub(crate) struct Failure {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Failure {
    fn set(&self, error: Error) {
        if let Ok(mut first) = self.error.lock()
            && first.is_none()
        {
            *first = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

/// What to back up and where it goes in the snapshot.
pub(crate) struct ArchiveRequest<'a> {
    /// The source's root, as its entries name it.
    pub(crate) backup_path: &'a Path,
    /// The snapshot path standing for `backup_path` (`/data` for volumes).
    pub(crate) as_path: Option<&'a Path>,
    /// Compare with the latest snapshot of the same host, label and paths.
    pub(crate) use_parent: bool,
}

/// A file to read, and where its result goes in the walk.
struct Job<O> {
    seq: u64,
    node: Node,
    open: O,
    source: PathBuf,
}

/// Files are handed to workers in batches of this many, or fewer when they add up to
/// [`BATCH_BYTES`]: one hand-off per batch instead of per file.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 4 << 20;
/// Entries waiting for a file ahead of them to be read before the walk pauses.
const MAX_WAITING: usize = 4_096;

/// A step of the walk waiting for its turn to go into the trees (in walk order).
enum Waiting {
    Enter(PathBuf, Node, Matched<TreeId>),
    Leave,
    File(Node, Matched<()>, u64),
    /// A file a worker reads: `seq` of its job.
    Read(u64, Matched<()>),
}

/// A worker's answer for one job: the node with its content and size, or `None` when the
/// file could not be read (a warning says why; the snapshot goes on without it).
type Done = (u64, Option<(Node, u64)>);

/// Backs `src` up as a new snapshot made from `snap`, which is saved and returned.
pub(crate) fn archive<R>(
    repo: &Repository<OpenStatus>,
    backend: &Arc<StoreBackend>,
    src: &R,
    mut snap: SnapshotFile,
    req: &ArchiveRequest<'_>,
    activity: &Activity,
) -> Result<SnapshotFile>
where
    R: ReadSource + Sync,
    R::Open: Send,
{
    let config = repo.config();
    let cipher = Aes256CtrPoly1305Aes::new(&aead_key(&repo.key()));
    let sealer = Sealer::new(config, cipher.clone())?;
    let params = ChunkParams::from_config(config)?;
    let known = KnownBlobs::read(repo)?;

    let path = req.as_path.unwrap_or(req.backup_path);
    snap.paths.add(path.to_string_lossy().into_owned());
    let mut summary = snap.summary.take().unwrap_or_default();
    summary.backup_start = Zoned::now();
    let parent_snap = if req.use_parent {
        latest_in_group(repo, &snap)
    } else {
        None
    };
    if let Some(p) = &parent_snap {
        snap.parent = Some(p.id);
        snap.parents = vec![p.id];
    }
    let mut parent = Parent::new(&known, backend, &cipher, parent_snap.map(|p| p.tree));

    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let failure = Arc::new(Failure::default());
    let data_target = pack_target(config, BlobType::Data, known.data_bytes);
    let tree_target = pack_target(config, BlobType::Tree, known.tree_bytes);

    // As many buffers as can be in use at once: one per packer, the queue, the uploads.
    let (spare, spares) = crossbeam_channel::bounded::<Vec<u8>>(workers + 2 + UPLOADERS);
    let uploader = Uploader::new(backend.clone(), sealer.clone(), failure.clone(), spare);
    let outcome = std::thread::scope(|s| -> Result<_> {
        s.spawn(|| match src.size() {
            Ok(Some(size)) => activity.set_total(size),
            Ok(None) => {}
            Err(e) => warn!(error = %e.display_log(), "could not size the backup source"),
        });
        let (uploads, upload_queue) = crossbeam_channel::bounded::<FinishedPack>(1);
        let uploading: Vec<_> = (0..UPLOADERS)
            .map(|_| {
                let queue = upload_queue.clone();
                s.spawn(|| uploader.run(queue))
            })
            .collect();
        drop(upload_queue);
        let (jobs, job_queue) = crossbeam_channel::bounded::<Vec<Job<R::Open>>>(workers * 2);
        let (results, done) = crossbeam_channel::unbounded::<Vec<Done>>();
        let pool: Vec<_> = (0..workers)
            .map(|_| {
                let worker = Worker {
                    known: &known,
                    chunks: ChunkBuffer::new(params.clone()),
                    packer: Packer::new(
                        BlobType::Data,
                        sealer.clone(),
                        data_target,
                        uploads.clone(),
                        spares.clone(),
                    ),
                    activity,
                    failure: &failure,
                };
                let (queue, results) = (job_queue.clone(), results.clone());
                s.spawn(move || worker.run(queue, results))
            })
            .collect();
        drop((job_queue, results));
        let tree_packer = Packer::new(BlobType::Tree, sealer.clone(), tree_target, uploads, spares);
        let trees = TreeBuilder::new(&known, tree_packer, summary);
        let walked = walk_source(
            src,
            req,
            &mut parent,
            trees,
            jobs,
            &done,
            activity,
            &failure,
        );
        let mut data_stats = PackStats::default();
        for worker in pool {
            data_stats.add(
                worker
                    .join()
                    .map_err(|_| Error::Internal("a backup worker panicked".into()))?,
            );
        }
        // The tree packer's sender is gone with `walked`'s builder: the uploaders finish.
        let walked = walked.and_then(|trees| trees.finish(parent.root()));
        for upload in uploading {
            upload
                .join()
                .map_err(|_| Error::Internal("a pack uploader panicked".into()))?;
        }
        uploader.finish();
        if let Some(error) = failure.take() {
            return Err(error);
        }
        let (tree, summary, tree_stats) = walked?;
        Ok((tree, summary, data_stats, tree_stats))
    });
    let (tree, mut summary, data, trees) = outcome?;
    summary.data_blobs = data.blobs;
    summary.tree_blobs = trees.blobs;
    summary.data_added_files = data.bytes;
    summary.data_added_files_packed = data.bytes_packed;
    summary.data_added_trees = trees.bytes;
    summary.data_added_trees_packed = trees.bytes_packed;
    summary.data_added = data.bytes + trees.bytes;
    summary.data_added_packed = data.bytes_packed + trees.bytes_packed;
    let end = Zoned::now();
    let seconds = |from: &Zoned| {
        end.since(from)
            .and_then(|span| span.total(jiff::Unit::Second))
            .unwrap_or_default()
    };
    summary.backup_duration = seconds(&summary.backup_start);
    summary.total_duration = seconds(&snap.time);
    summary.backup_end = end;
    snap.tree = tree;
    snap.summary = Some(summary);
    let json =
        serde_json::to_vec(&snap).map_err(|e| Error::Internal(format!("snapshot JSON: {e}")))?;
    snap.id = packer::write_file(backend, &sealer, FileType::Snapshot, &json)?.into();
    Ok(snap)
}

/// The latest snapshot of `snap`'s host, label and paths (rustic's default parent), if any
/// can be read.
fn latest_in_group(repo: &Repository<OpenStatus>, snap: &SnapshotFile) -> Option<SnapshotFile> {
    let group = SnapshotGroup::from_snapshot(snap, SnapshotGroupCriterion::default());
    match repo.get_matching_snapshots(|s| group.matches(s)) {
        Ok(snaps) => snaps.into_iter().max_by(|a, b| a.time.cmp(&b.time)),
        Err(e) => {
            warn!(error = %e.display_log(), "snapshots unreadable; backing up without a parent");
            None
        }
    }
}

/// Walks the source on this thread: compares with the parent, sends files to read to the
/// workers in batches, and builds the trees in walk order as their files come back.
#[allow(clippy::too_many_arguments)]
fn walk_source<'a, R: ReadSource>(
    src: &R,
    req: &ArchiveRequest<'_>,
    parent: &mut Parent<'_>,
    mut trees: TreeBuilder<'a>,
    jobs: Sender<Vec<Job<R::Open>>>,
    done: &Receiver<Vec<Done>>,
    activity: &Activity,
    failure: &Failure,
) -> Result<TreeBuilder<'a>> {
    let entries = src.entries().filter_map(|entry| match entry {
        Ok(ReadSourceEntry { path, node, open }) => Some(Entry {
            at: snapshot_dir(&path, node.is_dir(), req.backup_path, req.as_path),
            node,
            open,
            source: path,
        }),
        Err(e) => {
            warn!(error = %e.display_log(), "skipping an unreadable entry");
            None
        }
    });
    let mut waiting = VecDeque::new();
    let mut finished: HashMap<u64, Option<(Node, u64)>> = HashMap::new();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut seq = 0;
    let send = |batch: &mut Vec<Job<R::Open>>, batch_bytes: &mut u64| -> Result<()> {
        *batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        jobs.send(std::mem::take(batch))
            .map_err(|_| Error::Internal("the backup workers stopped".into()))
    };
    for step in DirWalk::new(entries) {
        if failure.failed() {
            break;
        }
        match step {
            Step::Enter(path, node, name) => {
                let matched = parent.enter(&node, &name);
                waiting.push_back(Waiting::Enter(path, node, matched));
            }
            Step::Leave => {
                parent.leave();
                waiting.push_back(Waiting::Leave);
            }
            Step::Entry(mut entry) => {
                let matched = parent.file(&mut entry.node);
                let size = entry.node.meta.size;
                match (matched, entry.node.node_type == NodeType::File, entry.open) {
                    (Matched::Yes(()), _, _) => {
                        activity.add_bytes(size);
                        waiting.push_back(Waiting::File(entry.node, matched, size));
                    }
                    (_, true, Some(open)) => {
                        batch.push(Job {
                            seq,
                            node: entry.node,
                            open,
                            source: entry.source,
                        });
                        batch_bytes += size;
                        waiting.push_back(Waiting::Read(seq, matched));
                        seq += 1;
                        if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                            send(&mut batch, &mut batch_bytes)?;
                        }
                    }
                    _ => waiting.push_back(Waiting::File(entry.node, matched, 0)),
                }
            }
        }
        while let Ok(answers) = done.try_recv() {
            finished.extend(answers);
        }
        build(&mut waiting, &mut finished, &mut trees)?;
        if waiting.len() > MAX_WAITING {
            send(&mut batch, &mut batch_bytes)?;
            while waiting.len() > MAX_WAITING / 2 && !failure.failed() {
                let Ok(answers) = done.recv() else { break };
                finished.extend(answers);
                build(&mut waiting, &mut finished, &mut trees)?;
            }
        }
    }
    send(&mut batch, &mut batch_bytes)?;
    drop(jobs);
    while !waiting.is_empty() && !failure.failed() {
        let Ok(answers) = done.recv() else { break };
        finished.extend(answers);
        build(&mut waiting, &mut finished, &mut trees)?;
    }
    if !waiting.is_empty() && !failure.failed() {
        return Err(Error::Internal(
            "backup workers stopped before every file was read".into(),
        ));
    }
    Ok(trees)
}

/// Moves the steps at the front of `waiting` whose files are read into the trees.
fn build(
    waiting: &mut VecDeque<Waiting>,
    finished: &mut HashMap<u64, Option<(Node, u64)>>,
    trees: &mut TreeBuilder<'_>,
) -> Result<()> {
    while let Some(step) = waiting.front() {
        if let Waiting::Read(seq, _) = step
            && !finished.contains_key(seq)
        {
            break;
        }
        match waiting.pop_front() {
            Some(Waiting::Enter(path, node, matched)) => trees.enter(path, node, matched),
            Some(Waiting::Leave) => trees.leave()?,
            Some(Waiting::File(node, matched, size)) => trees.file(node, matched, size),
            Some(Waiting::Read(seq, matched)) => {
                if let Some(Some((node, size))) = finished.remove(&seq) {
                    trees.file(node, matched, size);
                }
            }
            None => break,
        }
    }
    Ok(())
}

/// A backup thread: reads the files of the batches it takes, packing their new blobs.
struct Worker<'a> {
    known: &'a KnownBlobs,
    chunks: ChunkBuffer,
    packer: Packer,
    activity: &'a Activity,
    failure: &'a Failure,
}

impl Worker<'_> {
    /// Works until the queue closes, then sends its last pack off; gives its counts.
    fn run<O: ReadSourceOpen>(
        mut self,
        queue: Receiver<Vec<Job<O>>>,
        results: Sender<Vec<Done>>,
    ) -> PackStats {
        for batch in queue {
            let answers = batch
                .into_iter()
                .map(|job| {
                    let seq = job.seq;
                    if self.failure.failed() {
                        return (seq, None);
                    }
                    (seq, self.read_file(job))
                })
                .collect();
            if results.send(answers).is_err() {
                break;
            }
        }
        if let Err(e) = self.packer.finish() {
            self.failure.set(e);
        }
        self.packer.stats
    }

    /// Reads one file: its chunks' ids become its content, new blobs go into the pack.
    fn read_file<O: ReadSourceOpen>(&mut self, job: Job<O>) -> Option<(Node, u64)> {
        // An open error was recorded as a warning by the source.
        let reader = job.open.open().ok()?;
        let mut node = job.node;
        let mut content = Vec::new();
        let mut size = 0u64;
        let mut chunks = self.chunks.split(reader);
        loop {
            let chunk = match chunks.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    self.activity.warn(format!("{}: {e}", job.source.display()));
                    return None;
                }
            };
            let raw: [u8; 32] = Sha256::digest(chunk).into();
            let id = Id::new(raw);
            if self.known.claim_data(&id)
                && let Err(e) = self.packer.add(raw, chunk)
            {
                self.failure.set(e);
                return None;
            }
            let len = chunk.len() as u64;
            size += len;
            self.activity.add_bytes(len);
            content.push(DataId::from(id));
        }
        node.content = Some(content);
        Some((node, size))
    }
}
