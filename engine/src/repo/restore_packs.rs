//! Contents of single-blob files (everything up to the 512 KiB–8 MiB first chunk: most files
//! of most volumes), restored pack by pack: every needed range of a pack file is read once,
//! in one request, and all the files whose blob lies in it are written from it.
//!
//! Reading blob by blob costs one request per file, which on an object store is the whole
//! restore time for a volume of small files; rustic's restore reads ranges too but on 20
//! threads with an unbounded queue of decrypted blobs. Here a pool of a few workers, shared
//! with the threads writing multi-blob files, each holding one range (at most [`MAX_RANGE`] plus
//! one decoded blob), and files are planned in batches of [`BATCH_FILES`], so memory stays
//! bounded whatever the volume.
//!
//! Files of several blobs are read with the same machinery ([`Worker::read`]): each run of a
//! file's blobs stored next to each other in a pack is one request.
//!
//! Blobs are decrypted as restic's format documents (IV ‖ AES-256-CTR ciphertext ‖
//! Poly1305-AES tag, with the repository's master key) and zstd-decompressed with one
//! reused context per worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::aead::generic_array::GenericArray;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key as AeadKey};
use rustic_core::repofile::MasterKey;
use rustic_core::{DataId, IndexedFull, Repository};

use super::backend::StoreBackend;
use super::progress::Activity;
use super::restore::{ContentStats, create_for_write, finish_file};
use crate::{Error, Result};

/// Files planned (index look-ups, grouping) at once; bounds the plan's memory.
pub(crate) const BATCH_FILES: usize = 20_000;
/// Most bytes one request reads (a pack is 8–32 MiB).
const MAX_RANGE: u32 = 16 << 20;
/// Unneeded bytes between two needed blobs that are read rather than split into two requests.
const MAX_GAP: u32 = 256 << 10;

/// A file whose contents are one blob.
pub(crate) struct SingleBlobFile {
    pub(crate) path: PathBuf,
    /// Nothing is at `path`: no need to look before creating the file.
    pub(crate) vacant: bool,
    pub(crate) size: u64,
    pub(crate) mtime: Option<rustic_core::jiff::Timestamp>,
    pub(crate) blob: DataId,
}

/// Where one blob of a multi-blob file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobPlace {
    pack: rustic_core::Id,
    offset: u32,
    length: u32,
    uncompressed: Option<std::num::NonZeroU32>,
}

impl BlobPlace {
    /// Looks the blob up in the repository's index.
    pub(crate) fn of<S: IndexedFull>(repo: &Repository<S>, blob: &DataId) -> Result<BlobPlace> {
        let entry = repo.get_index_entry(blob)?;
        Ok(BlobPlace {
            pack: *entry.pack,
            offset: entry.location.offset,
            length: entry.location.length,
            uncompressed: entry.location.uncompressed_length,
        })
    }

    /// The blob's length once decrypted and decompressed.
    pub(crate) fn data_length(&self) -> u64 {
        match self.uncompressed {
            Some(n) => n.get().into(),
            // Not compressed: the IV (16 bytes) and the MAC (16 bytes) are all the overhead.
            // Not rustic's `data_length`: it subtracts without a check, and a crafted index
            // from the bucket must not abort a restore.
            None => u64::from(self.length.saturating_sub(32)),
        }
    }
}

/// The decoders and buffers of one restore, shared by its segment and pack threads: each
/// job takes a worker and gives it back, so the ranges held at once (each up to
/// [`MAX_RANGE`] plus a decoded blob) never outnumber the pool, whichever phase runs.
pub(crate) struct WorkerPool {
    free: Mutex<Vec<Worker>>,
    returned: Condvar,
}

impl WorkerPool {
    /// A pool of `size` workers (at least one) decrypting with `key`.
    pub(crate) fn new(key: &AeadKey, size: usize) -> Result<WorkerPool> {
        let free = (0..size.max(1))
            .map(|_| Worker::new(key))
            .collect::<Result<_>>()?;
        Ok(WorkerPool {
            free: Mutex::new(free),
            returned: Condvar::new(),
        })
    }

    /// A free worker, waiting for one when all are busy; it goes back when dropped.
    pub(crate) fn take(&self) -> Result<PooledWorker<'_>> {
        let poisoned =
            || Error::Internal("a restore thread panicked holding the worker pool".into());
        let mut free = self.free.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(worker) = free.pop() {
                return Ok(PooledWorker {
                    pool: self,
                    worker: Some(worker),
                });
            }
            free = self.returned.wait(free).map_err(|_| poisoned())?;
        }
    }
}

/// A worker taken from a [`WorkerPool`].
pub(crate) struct PooledWorker<'a> {
    pool: &'a WorkerPool,
    worker: Option<Worker>,
}

impl std::ops::Deref for PooledWorker<'_> {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        // Only `drop` takes it out.
        self.worker
            .as_ref()
            .expect("a pooled worker is present until dropped")
    }
}

impl std::ops::DerefMut for PooledWorker<'_> {
    fn deref_mut(&mut self) -> &mut Worker {
        self.worker
            .as_mut()
            .expect("a pooled worker is present until dropped")
    }
}

impl Drop for PooledWorker<'_> {
    fn drop(&mut self) {
        if let (Some(worker), Ok(mut free)) = (self.worker.take(), self.pool.free.lock()) {
            free.push(worker);
            self.pool.returned.notify_one();
        }
    }
}

/// One read: a range of a pack and the blobs (with the files wanting them) inside it.
struct RangeRead {
    pack: rustic_core::Id,
    offset: u32,
    length: u32,
    /// (offset in the pack, length, uncompressed length, file index), by offset.
    blobs: Vec<(u32, u32, Option<std::num::NonZeroU32>, usize)>,
}

/// Writes `files` (all of one blob) reading each needed pack range once, on `workers`
/// threads. Stops at the first error.
pub(crate) fn write_single_blob_files<S: IndexedFull + Sync>(
    repo: &Repository<S>,
    packs: &StoreBackend,
    files: &[SingleBlobFile],
    threads: usize,
    pool: &WorkerPool,
    activity: &Activity,
) -> Result<ContentStats> {
    let reads = plan(repo, files)?;
    let queue = Mutex::new(reads.into_iter());
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<ContentStats> {
                    let mut stats = ContentStats::default();
                    while !failed.load(Ordering::Relaxed) {
                        let next = match queue.lock() {
                            Ok(mut q) => q.next(),
                            Err(_) => None,
                        };
                        let Some(read) = next else { break };
                        let restored = pool.take().and_then(|mut worker| {
                            worker.restore(packs, &read, files, activity, &mut stats)
                        });
                        if let Err(e) = restored {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(stats)
                })
            })
            .collect();
        let mut total = ContentStats::default();
        let mut first_error = None;
        for handle in handles {
            match handle.join() {
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

/// Groups the files' blobs by pack and merges close blobs into ranges.
fn plan<S: IndexedFull>(repo: &Repository<S>, files: &[SingleBlobFile]) -> Result<Vec<RangeRead>> {
    let mut by_pack: BTreeMap<rustic_core::Id, Vec<_>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let entry = repo.get_index_entry(&file.blob)?;
        let loc = entry.location;
        by_pack.entry(*entry.pack).or_default().push((
            loc.offset,
            loc.length,
            loc.uncompressed_length,
            i,
        ));
    }
    let mut reads = Vec::new();
    for (pack, mut blobs) in by_pack {
        blobs.sort_unstable_by_key(|b| b.0);
        let mut current: Option<RangeRead> = None;
        for blob in blobs {
            let (offset, length, ..) = blob;
            let end = offset.saturating_add(length);
            if let Some(read) = &mut current {
                let read_end = read.offset + read.length;
                if offset <= read_end.saturating_add(MAX_GAP) && end - read.offset <= MAX_RANGE {
                    read.length = read.length.max(end - read.offset);
                    read.blobs.push(blob);
                    continue;
                }
                reads.extend(current.take());
            }
            current = Some(RangeRead {
                pack,
                offset,
                length,
                blobs: vec![blob],
            });
        }
        reads.extend(current);
    }
    Ok(reads)
}

/// The 64-byte AEAD key: AES-256 key, then Poly1305-AES's k and r.
pub(super) fn aead_key(master: &MasterKey) -> AeadKey {
    let mut key = AeadKey::default();
    key[..32].copy_from_slice(&master.encrypt);
    key[32..48].copy_from_slice(&master.mac.k);
    key[48..].copy_from_slice(&master.mac.r);
    key
}

/// Why sealed bytes did not open.
pub(super) enum Unsealed {
    /// Shorter than an IV and a tag.
    TooShort,
    /// The Poly1305 tag does not match: damaged or altered.
    BadMac,
}

/// Decrypts `sealed` (IV ‖ ciphertext ‖ tag, restic's format) where it lies; gives the
/// plaintext, `sealed[16..len - 16]`.
pub(super) fn open_in_place<'a>(
    cipher: &Aes256CtrPoly1305Aes,
    sealed: &'a mut [u8],
) -> std::result::Result<&'a mut [u8], Unsealed> {
    if sealed.len() < 32 {
        return Err(Unsealed::TooShort);
    }
    let (nonce, rest) = sealed.split_at_mut(16);
    let tag_at = rest.len() - 16;
    let (ciphertext, tag) = rest.split_at_mut(tag_at);
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            &[],
            ciphertext,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Unsealed::BadMac)?;
    Ok(ciphertext)
}

/// One restore job's reusable state: cipher, zstd context, buffers.
pub(crate) struct Worker {
    decoder: Decoder,
    /// The pack range read last; one buffer per worker for all its reads, so the allocator
    /// neither zeroes nor keeps a freed range per thread.
    range: Vec<u8>,
    /// The blob the worker's buffers hold: runs of one blob (zeros of a sparse or
    /// preallocated file) are read once.
    last: Option<BlobPlace>,
}

/// A worker's cipher and zstd context, and the buffers a blob is decoded into.
struct Decoder {
    cipher: Aes256CtrPoly1305Aes,
    zstd: zstd::bulk::Decompressor<'static>,
    plain: Vec<u8>,
    /// Where the last decoded blob is when it was not compressed: decrypted in the range.
    held: Option<std::ops::Range<usize>>,
}

impl Worker {
    fn new(key: &AeadKey) -> Result<Worker> {
        Ok(Worker {
            decoder: Decoder {
                cipher: Aes256CtrPoly1305Aes::new(key),
                zstd: zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::Internal(format!("zstd decompressor: {e}")))?,
                plain: Vec::new(),
                held: None,
            },
            range: Vec::new(),
            last: None,
        })
    }

    /// Hands each of `blobs`, decoded, to `each` in order; a run of blobs stored one after
    /// the other in a pack (as a file's chunks are) is one read of at most [`MAX_RANGE`].
    pub(crate) fn read(
        &mut self,
        packs: &StoreBackend,
        blobs: &[BlobPlace],
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut rest = blobs;
        while let Some(first) = rest.first() {
            if self.last == Some(*first) {
                each(self.decoder.decoded(&self.range))?;
                rest = &rest[1..];
                continue;
            }
            // Offsets and lengths come from the index, read from the bucket: never overflow.
            let mut end = first.offset.saturating_add(first.length);
            let run = 1 + rest[1..]
                .iter()
                .take_while(|b| {
                    let next = b.pack == first.pack
                        && b.offset == end
                        && (end - first.offset).saturating_add(b.length) <= MAX_RANGE;
                    if next {
                        end = end.saturating_add(b.length);
                    }
                    next
                })
                .count();
            // The read replaces the range the last blob may have been decoded in.
            self.last = None;
            packs.read_pack_range_into(
                &first.pack,
                first.offset,
                end - first.offset,
                &mut self.range,
            )?;
            for blob in &rest[..run] {
                let start = (blob.offset - first.offset) as usize;
                self.last = None;
                self.decoder.decode(
                    &mut self.range,
                    start..start + blob.length as usize,
                    blob.uncompressed,
                    &blob.pack,
                )?;
                let decoded = self.decoder.decoded(&self.range);
                if decoded.len() as u64 != blob.data_length() {
                    return Err(damaged(
                        &blob.pack,
                        "holds a blob of another length than its index says",
                    ));
                }
                each(decoded)?;
                self.last = Some(*blob);
            }
            rest = &rest[run..];
        }
        Ok(())
    }

    fn restore(
        &mut self,
        packs: &StoreBackend,
        read: &RangeRead,
        files: &[SingleBlobFile],
        activity: &Activity,
        stats: &mut ContentStats,
    ) -> Result<()> {
        self.last = None;
        packs.read_pack_range_into(&read.pack, read.offset, read.length, &mut self.range)?;
        let mut decoded_at = None;
        for &(offset, length, uncompressed, index) in &read.blobs {
            let file = &files[index];
            // Files with the same contents share one blob: decode it once (it is decrypted
            // in place, so a second decryption would fail its MAC check).
            if decoded_at != Some(offset) {
                let start = (offset - read.offset) as usize;
                let at = start..start + length as usize;
                self.decoder
                    .decode(&mut self.range, at, uncompressed, &read.pack)?;
                decoded_at = Some(offset);
            }
            let blob = self.decoder.decoded(&self.range);
            if blob.len() as u64 != file.size {
                return Err(damaged(
                    &read.pack,
                    "holds a blob of another size than its file",
                ));
            }
            write_file(file, blob, activity)?;
            stats.files_written += 1;
            stats.bytes_written += file.size;
        }
        Ok(())
    }
}

impl Decoder {
    /// Decrypts the sealed blob at `at` of `range` in place (saving a copy of every blob and
    /// a blob-sized buffer per worker) and, when compressed, decompresses it into
    /// `self.plain`; [`Decoder::decoded`] then gives the blob.
    fn decode(
        &mut self,
        range: &mut [u8],
        at: std::ops::Range<usize>,
        uncompressed: Option<std::num::NonZeroU32>,
        pack: &rustic_core::Id,
    ) -> Result<()> {
        let sealed = range
            .get_mut(at.clone())
            .ok_or_else(|| damaged(pack, "is shorter than its index says"))?;
        open_in_place(&self.cipher, sealed).map_err(|e| match e {
            Unsealed::TooShort => damaged(pack, "has a blob too short to be encrypted"),
            Unsealed::BadMac => damaged(
                pack,
                "has a blob whose MAC check failed (data damaged or altered)",
            ),
        })?;
        let plain_at = at.start + 16..at.end - 16;
        self.held = match uncompressed {
            Some(len) => {
                self.plain.clear();
                self.plain.reserve(len.get() as usize);
                self.zstd
                    .decompress_to_buffer(&range[plain_at], &mut self.plain)
                    .map_err(|e| {
                        damaged(pack, &format!("has a blob that does not decompress: {e}"))
                    })?;
                None
            }
            None => Some(plain_at),
        };
        Ok(())
    }

    /// The blob [`Decoder::decode`] left, in `range` (the one it decoded in) or decompressed.
    fn decoded<'a>(&'a self, range: &'a [u8]) -> &'a [u8] {
        match &self.held {
            Some(at) => range.get(at.clone()).unwrap_or_default(),
            None => &self.plain,
        }
    }
}

fn damaged(pack: &rustic_core::Id, what: &str) -> Error {
    Error::Repo {
        op: "restore",
        namespace: String::new(),
        detail: format!(
            "pack {} {what}; run a check that reads all data to find the damaged packs",
            &*pack.to_hex()
        ),
    }
}

fn write_file(file: &SingleBlobFile, blob: &[u8], activity: &Activity) -> Result<()> {
    use std::io::Write;
    let mut out = create_for_write(&file.path, file.vacant)?;
    // An all-zero blob stays a hole (sparse files); `finish_file` sets the length.
    let mut length = 0;
    if blob.iter().any(|b| *b != 0) {
        out.write_all(blob)
            .map_err(Error::io("write", &file.path))?;
        length = blob.len() as u64;
    }
    activity.add_bytes(blob.len() as u64);
    finish_file(out, &file.path, length, file.size, file.mtime, activity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_lends_each_worker_to_one_job_at_a_time() {
        let pool = WorkerPool::new(&AeadKey::default(), 2).unwrap();
        let first = pool.take().unwrap();
        let second = pool.take().unwrap();
        let (lent, waited) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let third = pool.take().unwrap();
                lent.send(()).unwrap();
                drop(third);
            });
            // Both workers are out: the third job waits until one comes back.
            let early = waited.recv_timeout(std::time::Duration::from_millis(200));
            assert!(early.is_err(), "a third worker was lent from a pool of two");
            drop(first);
            waited
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("a returned worker is lent to the waiting job");
        });
        drop(second);
        assert_eq!(pool.free.lock().unwrap().len(), 2, "every worker came back");
    }
}
