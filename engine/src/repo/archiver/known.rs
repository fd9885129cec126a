//! What the repository holds already: data blob ids (to store each blob once) and where tree
//! blobs are (to read the parent snapshot's trees), read from its index files.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Mutex;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::repofile::{BlobType, IndexFile, Tree};
use rustic_core::{FileType, Id, OpenStatus, ReadBackend, Repository};

use super::super::backend::StoreBackend;
use super::super::restore_packs::{Unsealed, open_in_place};
use crate::{Error, Result};

/// Where a tree blob is stored.
#[derive(Debug, Clone, Copy)]
struct TreePlace {
    pack: Id,
    offset: u32,
    length: u32,
    uncompressed: Option<NonZeroU32>,
}

/// The blobs of the repository's index, and those this backup stored.
pub(crate) struct KnownBlobs {
    /// Sorted: 32 bytes a blob, as rustic_core's ids-only index.
    data: Vec<Id>,
    trees: HashMap<Id, TreePlace>,
    /// Bytes in data and tree packs: pack sizes grow with the repository (rustic's rule).
    pub(crate) data_bytes: u64,
    pub(crate) tree_bytes: u64,
    added: Mutex<HashSet<Id>>,
}

impl KnownBlobs {
    /// Reads the index files. Blobs of packs that prune marked for deletion count as
    /// absent: a backup stores them again rather than reference a pack about to go.
    pub(crate) fn read(repo: &Repository<OpenStatus>) -> Result<KnownBlobs> {
        let mut known = KnownBlobs {
            data: Vec::new(),
            trees: HashMap::new(),
            data_bytes: 0,
            tree_bytes: 0,
            added: Mutex::default(),
        };
        for file in repo.stream_files::<IndexFile>()? {
            let (_, index) = file?;
            for pack in index.packs {
                let size = u64::from(pack.pack_size());
                match pack.blob_type() {
                    BlobType::Data => known.data_bytes += size,
                    BlobType::Tree => known.tree_bytes += size,
                }
                for blob in pack.blobs {
                    match blob.tpe {
                        BlobType::Data => known.data.push(*blob.id),
                        BlobType::Tree => {
                            known.trees.insert(
                                *blob.id,
                                TreePlace {
                                    pack: *pack.id,
                                    offset: blob.location.offset,
                                    length: blob.location.length,
                                    uncompressed: blob.location.uncompressed_length,
                                },
                            );
                        }
                    }
                }
            }
        }
        known.data.sort_unstable();
        known.data.dedup();
        known.data.shrink_to_fit();
        Ok(known)
    }

    /// Whether the repository's index holds data blob `id`.
    pub(crate) fn has_data(&self, id: &Id) -> bool {
        self.data.binary_search(id).is_ok()
    }

    /// Whether the repository's index holds tree blob `id`.
    pub(crate) fn has_tree(&self, id: &Id) -> bool {
        self.trees.contains_key(id)
    }

    /// True for the one caller that must store blob `id`: it is neither in the index nor
    /// claimed by an earlier caller of this backup.
    pub(crate) fn claim_data(&self, id: &Id) -> bool {
        !self.has_data(id)
            && self
                .added
                .lock()
                .map(|mut added| added.insert(*id))
                .unwrap_or(true)
    }

    /// Reads tree blob `id` (a parent snapshot's), through the backend's tree pack cache.
    pub(crate) fn read_tree(
        &self,
        backend: &StoreBackend,
        cipher: &Aes256CtrPoly1305Aes,
        id: &Id,
    ) -> Result<Tree> {
        let place = self.trees.get(id).ok_or_else(|| {
            Error::Internal(format!("tree {} is not in the index", id.to_hex().as_str()))
        })?;
        let damaged = |what: &str| {
            Error::Internal(format!(
                "tree {} in pack {} {what}; run `location check`",
                id.to_hex().as_str(),
                place.pack.to_hex().as_str()
            ))
        };
        let mut sealed = backend
            .read_partial(
                FileType::Pack,
                &place.pack,
                true,
                place.offset,
                place.length,
            )
            .map_err(|e| damaged(&format!("could not be read ({})", e.display_log())))?
            .to_vec();
        let plain = open_in_place(cipher, &mut sealed).map_err(|e| match e {
            Unsealed::TooShort => damaged("is too short to be encrypted"),
            Unsealed::BadMac => damaged("fails its MAC check"),
        })?;
        let tree = if place.uncompressed.is_some() {
            let json = zstd::decode_all(&*plain)
                .map_err(|e| damaged(&format!("does not decompress ({e})")))?;
            serde_json::from_slice(&json)
        } else {
            serde_json::from_slice(plain)
        };
        tree.map_err(|e| damaged(&format!("is not a tree ({e})")))
    }
}
