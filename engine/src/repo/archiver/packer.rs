//! Pack files in restic's documented format, written by a few uploader threads that also
//! write the index files naming them.
//!
//! A pack is its blobs (each `IV ‖ AES-256-CTR(zstd(blob)) ‖ Poly1305-AES tag`), then the
//! encrypted header listing them, then the header's length (u32, little endian); its name is
//! the SHA-256 of the whole file. Each backup thread fills a pack of its own, so a blob never
//! crosses threads between being read and being stored.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::aead::generic_array::GenericArray;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use rustic_core::repofile::{BlobType, ConfigFile};
use rustic_core::{FileType, Id, WriteBackend};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::super::backend::StoreBackend;
use super::super::restore_packs::open_in_place;
use super::Failure;
use crate::{Error, Result};

/// rustic_core's and restic's limits: blobs per pack, a pack's age, blobs per index file.
const MAX_BLOBS_PER_PACK: usize = 10_000;
const MAX_PACK_AGE: Duration = Duration::from_secs(300);
const MAX_BLOBS_PER_INDEX: usize = 50_000;

/// Packs written at once: the fsync of one pack on a directory location (up to 0.1 s for
/// 8 MiB here, 1.2 s of a 1 GiB backup's wall time when one after the other) or the round
/// trip of one S3 PUT overlaps the writing of the next.
pub(crate) const UPLOADERS: usize = 2;

/// How blobs and files are sealed: the repository's key and compression.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: Aes256CtrPoly1305Aes,
    /// zstd level; `None` for version 1 repositories (no compression).
    level: Option<i32>,
    verify: bool,
}

impl Sealer {
    /// From the repository's config and the master key.
    pub(crate) fn new(config: &ConfigFile, cipher: Aes256CtrPoly1305Aes) -> Result<Sealer> {
        let level = config
            .zstd()
            .map_err(|e| Error::Internal(format!("compression level: {e}")))?;
        Ok(Sealer {
            cipher,
            level,
            verify: config.extra_verify(),
        })
    }

    /// Appends `plain` sealed to `out`: a fresh random IV, the ciphertext, the tag.
    fn seal_into(&self, plain: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let at = out.len();
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(plain);
        self.seal_in_place(at, out)
    }

    /// Seals `out[at + 16..]` where it lies: the IV goes into the 16 bytes at `at`, the tag
    /// after the ciphertext.
    fn seal_in_place(&self, at: usize, out: &mut Vec<u8>) -> Result<()> {
        let nonce = &mut out[at..at + 16];
        getrandom::fill(nonce).map_err(|e| Error::Internal(format!("random IV: {e}")))?;
        let nonce = *GenericArray::from_slice(nonce);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &[], &mut out[at + 16..])
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Bytes `seal_blob` may append for a blob of `len` bytes.
    fn sealed_bound(&self, len: usize) -> usize {
        let body = match self.level {
            Some(_) => zstd::zstd_safe::compress_bound(len),
            None => len,
        };
        body + 32
    }

    /// Appends blob `data` sealed to `out`, compressed straight into place when the
    /// repository compresses; gives its uncompressed length for the index in that case.
    fn seal_blob(&self, data: &[u8], out: &mut Vec<u8>) -> Result<Option<NonZeroU32>> {
        let Some(level) = self.level else {
            self.seal_into(data, out)?;
            return Ok(None);
        };
        let at = out.len();
        out.resize(at + 16 + zstd::zstd_safe::compress_bound(data.len()), 0);
        let n = zstd::bulk::compress_to_buffer(data, &mut out[at + 16..], level)
            .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        out.truncate(at + 16 + n);
        self.seal_in_place(at, out)?;
        Ok(NonZeroU32::new(to_u32(data.len())?))
    }

    /// Seals a repository file (index, snapshot): JSON, zstd-compressed behind a version
    /// byte in version 2 repositories.
    pub(crate) fn seal_file(&self, json: &[u8]) -> Result<Vec<u8>> {
        let Some(level) = self.level else {
            let mut out = Vec::with_capacity(json.len() + 32);
            self.seal_into(json, &mut out)?;
            return Ok(out);
        };
        let frame =
            zstd::bulk::compress(json, level).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        let mut out = Vec::with_capacity(frame.len() + 33);
        out.extend_from_slice(&[0; 16]);
        out.push(2);
        out.extend_from_slice(&frame);
        self.seal_in_place(0, &mut out)?;
        Ok(out)
    }
}

/// A blob as a pack's header and the index list it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PackedBlob {
    id: Id,
    /// The id's bytes, for the pack header (rustic's `Id` does not expose them).
    #[serde(skip)]
    raw: [u8; 32],
    #[serde(rename = "type")]
    tpe: BlobType,
    offset: u32,
    length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncompressed_length: Option<NonZeroU32>,
}

/// A pack as an index file lists it.
#[derive(Debug, Serialize)]
pub(crate) struct PackedPack {
    id: Id,
    blobs: Vec<PackedBlob>,
    time: String,
    size: u32,
}

/// A finished pack on its way to the uploader.
pub(crate) struct FinishedPack {
    bytes: Bytes,
    pack: PackedPack,
}

/// Blobs and bytes a packer stored: the snapshot summary's `data_added*`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PackStats {
    pub(crate) blobs: u64,
    pub(crate) bytes: u64,
    pub(crate) bytes_packed: u64,
}

impl PackStats {
    /// Adds another packer's counts.
    pub(crate) fn add(&mut self, other: PackStats) {
        self.blobs += other.blobs;
        self.bytes += other.bytes;
        self.bytes_packed += other.bytes_packed;
    }
}

/// One thread's open pack of one blob type.
pub(crate) struct Packer {
    tpe: BlobType,
    sealer: Sealer,
    target: u32,
    body: Vec<u8>,
    blobs: Vec<PackedBlob>,
    started: Instant,
    uploads: Sender<FinishedPack>,
    spares: Receiver<Vec<u8>>,
    pub(crate) stats: PackStats,
}

impl Packer {
    /// A packer of `tpe` blobs whose packs aim at `target` bytes, taking its buffers from
    /// `spares` (those the uploader is done with) when there are any.
    pub(crate) fn new(
        tpe: BlobType,
        sealer: Sealer,
        target: u32,
        uploads: Sender<FinishedPack>,
        spares: Receiver<Vec<u8>>,
    ) -> Packer {
        Packer {
            tpe,
            sealer,
            target,
            body: Vec::new(),
            blobs: Vec::new(),
            started: Instant::now(),
            uploads,
            spares,
            stats: PackStats::default(),
        }
    }

    /// Seals `data` (blob `id`, its SHA-256) into the open pack, and sends the pack off
    /// when it is full.
    pub(crate) fn add(&mut self, id: [u8; 32], data: &[u8]) -> Result<()> {
        let room = self.sealer.sealed_bound(data.len());
        // A pack's buffer never grows: a blob that may not fit goes into the next pack.
        if !self.body.is_empty() && self.body.len() + room > self.body.capacity() {
            self.finish()?;
        }
        if self.body.is_empty() {
            if self.body.capacity() == 0 {
                self.body = self.spares.try_recv().unwrap_or_default();
            }
            self.body
                .reserve((self.target as usize + (1 << 20)).max(room));
            self.started = Instant::now();
        }
        let offset = self.body.len();
        let uncompressed = self.sealer.seal_blob(data, &mut self.body)?;
        let length = to_u32(self.body.len() - offset)?;
        if self.sealer.verify {
            self.verify(&self.body[offset..], data, uncompressed.is_some())?;
        }
        self.blobs.push(PackedBlob {
            id: Id::new(id),
            raw: id,
            tpe: self.tpe,
            offset: to_u32(offset)?,
            length,
            uncompressed_length: uncompressed,
        });
        self.stats.blobs += 1;
        self.stats.bytes += data.len() as u64;
        self.stats.bytes_packed += u64::from(length);
        if self.body.len() >= self.target as usize
            || self.blobs.len() >= MAX_BLOBS_PER_PACK
            || self.started.elapsed() >= MAX_PACK_AGE
        {
            self.finish()?;
        }
        Ok(())
    }

    /// Decrypts and decompresses a blob just sealed and compares it with the original
    /// (the repository's `extra_verify` setting).
    fn verify(&self, sealed: &[u8], data: &[u8], compressed: bool) -> Result<()> {
        let mut sealed = sealed.to_vec();
        let plain = open_in_place(&self.sealer.cipher, &mut sealed)
            .map_err(|_| Error::Internal("a blob just sealed fails its MAC check".into()))?;
        let same = if compressed {
            zstd::decode_all(&*plain).map_err(|e| Error::Internal(format!("zstd: {e}")))? == data
        } else {
            plain == data
        };
        if !same {
            return Err(Error::Internal(
                "a blob read back after sealing differs from the data (memory or CPU fault?)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Writes the header and hands the pack to the uploader (nothing when empty).
    pub(crate) fn finish(&mut self) -> Result<()> {
        if self.blobs.is_empty() {
            return Ok(());
        }
        let mut header = Vec::with_capacity(self.blobs.len() * 41);
        for blob in &self.blobs {
            let compressed = blob.uncompressed_length.is_some();
            header.push(match (blob.tpe, compressed) {
                (BlobType::Data, false) => 0,
                (BlobType::Tree, false) => 1,
                (BlobType::Data, true) => 2,
                (BlobType::Tree, true) => 3,
            });
            header.extend_from_slice(&blob.length.to_le_bytes());
            if let Some(len) = blob.uncompressed_length {
                header.extend_from_slice(&len.get().to_le_bytes());
            }
            header.extend_from_slice(&blob.raw);
        }
        let header_at = self.body.len();
        self.sealer.seal_into(&header, &mut self.body)?;
        let header_len = to_u32(self.body.len() - header_at)?;
        self.body.extend_from_slice(&header_len.to_le_bytes());
        let id = Id::new(Sha256::digest(&self.body).into());
        let pack = PackedPack {
            id,
            blobs: std::mem::take(&mut self.blobs),
            time: jiff::Timestamp::now().to_string(),
            size: to_u32(self.body.len())?,
        };
        let bytes = Bytes::from(std::mem::take(&mut self.body));
        self.uploads
            .send(FinishedPack { bytes, pack })
            .map_err(|_| Error::Internal("the pack uploader stopped".into()))
    }
}

fn to_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Internal(format!("{n} bytes do not fit a pack")))
}

/// The pack size rustic_core aims at for a repository holding `current` bytes of the type.
pub(crate) fn pack_target(config: &ConfigFile, tpe: BlobType, current: u64) -> u32 {
    let (default, grow, limit) = config.packsize(tpe);
    let size = if grow == 0 {
        u64::from(default)
    } else {
        current.isqrt() * u64::from(grow) + u64::from(default)
    };
    // rustic's absolute limit: a pack with its header stays below 4 GiB.
    u32::try_from(size.min(u64::from(limit)).min(4076 << 20)).unwrap_or(4076 << 20)
}

/// Writes packs as they come and, every 50,000 blobs and at the end, an index file naming
/// them: the index only ever names packs that are stored.
pub(crate) struct Uploader {
    backend: Arc<StoreBackend>,
    sealer: Sealer,
    failure: Arc<Failure>,
    /// Written packs' buffers go back to the packers: a backup allocates a few pack buffers
    /// once, instead of one per pack that the allocator's arenas would keep.
    spares: Sender<Vec<u8>>,
    /// Packs written and not yet named by an index file.
    pending: Mutex<PendingIndex>,
}

#[derive(Default)]
struct PendingIndex {
    written: Vec<PackedPack>,
    blobs: usize,
}

#[derive(Serialize)]
struct IndexJson<'a> {
    packs: &'a [PackedPack],
}

impl Uploader {
    /// An uploader to `backend`, giving written packs' buffers back through `spares`.
    pub(crate) fn new(
        backend: Arc<StoreBackend>,
        sealer: Sealer,
        failure: Arc<Failure>,
        spares: Sender<Vec<u8>>,
    ) -> Self {
        Uploader {
            backend,
            sealer,
            failure,
            spares,
            pending: Mutex::default(),
        }
    }

    /// Uploads packs from `packs` until all senders are gone; [`UPLOADERS`] threads run it
    /// at once. After a failure it keeps draining (so no packer blocks) but writes nothing.
    pub(crate) fn run(&self, packs: Receiver<FinishedPack>) {
        for finished in packs {
            if self.failure.failed() {
                continue;
            }
            if let Err(e) = self.upload(finished) {
                self.failure.set(e);
            }
        }
    }

    /// Writes the last index file, once every [`Uploader::run`] has returned.
    pub(crate) fn finish(&self) {
        if self.failure.failed() {
            return;
        }
        if let Err(e) = self.pending().and_then(|mut p| self.write_index(&mut p)) {
            self.failure.set(e);
        }
    }

    fn upload(&self, finished: FinishedPack) -> Result<()> {
        let FinishedPack { bytes, pack } = finished;
        let cacheable = pack.blobs.first().is_some_and(|b| b.tpe == BlobType::Tree);
        self.backend
            .write_bytes(FileType::Pack, &pack.id, cacheable, bytes.clone().into())?;
        // The backend is done with its copy: the buffer is ours again, unless a full pool
        // makes it one too many.
        let mut buffer = Vec::from(bytes);
        buffer.clear();
        let _ = self.spares.try_send(buffer);
        // Only stored packs are listed: an index never names a pack that is not there.
        let mut pending = self.pending()?;
        pending.blobs += pack.blobs.len();
        pending.written.push(pack);
        if pending.blobs >= MAX_BLOBS_PER_INDEX {
            self.write_index(&mut pending)?;
        }
        Ok(())
    }

    fn pending(&self) -> Result<std::sync::MutexGuard<'_, PendingIndex>> {
        self.pending
            .lock()
            .map_err(|_| Error::Internal("a pack uploader panicked".into()))
    }

    fn write_index(&self, pending: &mut PendingIndex) -> Result<()> {
        if pending.written.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(&IndexJson {
            packs: &pending.written,
        })
        .map_err(|e| Error::Internal(format!("index JSON: {e}")))?;
        write_file(&self.backend, &self.sealer, FileType::Index, &json)?;
        *pending = PendingIndex::default();
        Ok(())
    }
}

/// Seals and writes a repository file; its id is the hash of what is stored.
pub(crate) fn write_file(
    backend: &StoreBackend,
    sealer: &Sealer,
    tpe: FileType,
    json: &[u8],
) -> Result<Id> {
    let sealed = sealer.seal_file(json)?;
    let id = Id::new(Sha256::digest(&sealed).into());
    backend.write_bytes(tpe, &id, false, sealed.into())?;
    Ok(id)
}
