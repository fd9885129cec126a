//! rustic_core's storage traits over the location's [`Store`]: one S3 client, one path scheme.
//!
//! rustic_core is synchronous and calls these methods from its own worker threads, so each
//! call blocks on the store's async method through a captured tokio [`Handle`]. Callers must
//! run rustic operations off the runtime's worker threads (`spawn_blocking`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::progress::Activity;
use crate::store::{Store, layout};

/// A namespace repository (`repos/<ns>/`) of a [`Store`], seen through rustic's traits.
#[derive(Clone, Debug)]
pub(crate) struct StoreBackend {
    store: Store,
    namespace: String,
    handle: Handle,
    /// Cancelled when the operation is abandoned (stall): a hanging call returns at once and
    /// every later call fails fast, so rustic winds down without writing a snapshot.
    cancel: CancellationToken,
    /// Bumped on every finished call, so a slow but moving upload is not taken for a stall.
    activity: Activity,
    /// Tree packs read whole, shared by the clones rustic's threads hold.
    tree_packs: Arc<Mutex<TreePacks>>,
}

/// The most recently read tree packs, whole, within a byte budget.
///
/// rustic reads a snapshot's trees one directory at a time, each a small range of a tree
/// pack, and without a cache every range is a request: an unchanged backup of 20,000 files
/// in 2,000 directories on S3 waited 160 s on 2,000 sequential GETs (BENCHMARKS.md). Trees
/// are written in the order they are read back (depth first), so a few packs held whole turn
/// those requests into one per pack, without rustic's disk cache that movers cannot keep.
#[derive(Debug, Default)]
struct TreePacks {
    packs: VecDeque<(Id, Bytes)>,
    bytes: usize,
}

impl TreePacks {
    /// Bound of the bytes held: several tree packs (4 MiB each up to large repositories).
    const BUDGET: usize = 32 << 20;

    fn get(&mut self, id: &Id) -> Option<Bytes> {
        let at = self.packs.iter().position(|(p, _)| p == id)?;
        let entry = self.packs.remove(at)?;
        let data = entry.1.clone();
        self.packs.push_front(entry);
        Some(data)
    }

    fn insert(&mut self, id: Id, data: Bytes) {
        if data.len() > Self::BUDGET || self.packs.iter().any(|(p, _)| *p == id) {
            return;
        }
        self.bytes += data.len();
        self.packs.push_front((id, data));
        while self.bytes > Self::BUDGET {
            match self.packs.pop_back() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

impl StoreBackend {
    /// The repository of `namespace` in `store`; async calls run on `handle`.
    pub(crate) fn new(
        store: Store,
        namespace: &str,
        handle: Handle,
        cancel: CancellationToken,
        activity: Activity,
    ) -> Self {
        StoreBackend {
            store,
            namespace: namespace.to_string(),
            handle,
            cancel,
            activity,
            tree_packs: Arc::default(),
        }
    }

    /// The pack, from the tree pack cache or read whole into it.
    fn tree_pack(&self, id: &Id) -> RusticResult<Bytes> {
        if let Some(data) = self.cached_tree_pack(id) {
            return Ok(data);
        }
        let data = self.read_full(FileType::Pack, id)?;
        if let Ok(mut packs) = self.tree_packs.lock() {
            packs.insert(*id, data.clone());
        }
        Ok(data)
    }

    fn cached_tree_pack(&self, id: &Id) -> Option<Bytes> {
        self.tree_packs.lock().ok()?.get(id)
    }

    /// Reads `length` bytes at `offset` of a data pack into `buf` (replacing its contents):
    /// restore workers reuse one buffer for every range instead of allocating each.
    pub(crate) fn read_pack_range_into(
        &self,
        id: &Id,
        offset: u32,
        length: u32,
        buf: &mut Vec<u8>,
    ) -> RusticResult<()> {
        let key = self.key(FileType::Pack, id);
        self.run(
            "read range of",
            &key,
            self.store
                .get_range_into(&key, offset.into(), length.into(), buf),
        )
    }

    fn key(&self, tpe: FileType, id: &Id) -> String {
        match tpe {
            FileType::Config => layout::repo_config(&self.namespace),
            _ => layout::repo_file(&self.namespace, tpe.dirname(), &id.to_hex()),
        }
    }

    fn run<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = crate::Result<T>>,
    ) -> RusticResult<T> {
        let cancelled = || {
            RusticError::new(
                ErrorKind::Backend,
                "the operation was cancelled (stalled); nothing more is written",
            )
        };
        if self.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let result = self.handle.block_on(async {
            tokio::select! {
                result = fut => Some(result),
                _ = self.cancel.cancelled() => None,
            }
        });
        let Some(result) = result else {
            return Err(cancelled());
        };
        self.activity.touch();
        result.map_err(|err| {
            RusticError::with_source(ErrorKind::Backend, "{op} `{key}` failed", err)
                .attach_context("op", op)
                .attach_context("key", key.to_string())
        })
    }
}

impl ReadBackend for StoreBackend {
    fn location(&self) -> String {
        format!("{}/{}", self.store.url(), layout::repo_dir(&self.namespace))
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let key = layout::repo_config(&self.namespace);
            let size = self.run("head", &key, self.store.head(&key))?;
            return Ok(size
                .map(|s| (Id::default(), u32::try_from(s).unwrap_or(u32::MAX)))
                .into_iter()
                .collect());
        }
        let dir = layout::repo_kind_dir(&self.namespace, tpe.dirname());
        let objects = self.run("list", &dir, self.store.list(&dir))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                // Skip anything that is not a restic file (e.g. stray uploads): ids are hex.
                let name = o.key.rsplit('/').next()?;
                let id = name.parse::<Id>().ok()?;
                Some((id, u32::try_from(o.size).unwrap_or(u32::MAX)))
            })
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let key = self.key(tpe, id);
        self.run("read", &key, self.store.get_bytes(&key))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        // rustic marks ranges of tree blobs cacheable; data blobs are read once, by range.
        if cacheable && tpe == FileType::Pack {
            let pack = self.tree_pack(id)?;
            let range = offset as usize..offset as usize + length as usize;
            return match pack.get(range.clone()) {
                Some(_) => Ok(pack.slice(range)),
                None => Err(RusticError::new(
                    ErrorKind::Backend,
                    "range {offset}+{length} is outside pack `{id}` ({size} bytes): the \
                     repository's index does not match its packs; run `location check`",
                )
                .attach_context("offset", offset.to_string())
                .attach_context("length", length.to_string())
                .attach_context("id", id.to_hex().as_str().to_string())
                .attach_context("size", pack.len().to_string())),
            };
        }
        let key = self.key(tpe, id);
        self.run(
            "read range of",
            &key,
            self.store.get_range(&key, offset.into(), length.into()),
        )
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.key(tpe, id)
    }
}

impl WriteBackend for StoreBackend {
    fn create(&self) -> RusticResult<()> {
        // Object stores and the directory backend create folders on write.
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let key = self.key(tpe, id);
        let mut parts = content.into_vec();
        // rustic hands packs over as a header and a body; one copy of a pack (bounded by the
        // pack size) is cheaper than a multipart upload for a few MiB.
        let body = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut joined = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
            for part in &parts {
                joined.extend_from_slice(part);
            }
            Bytes::from(joined)
        };
        if tpe == FileType::Config {
            // Two first backups of a namespace may both create its repository: only one
            // config may win, and the other opens it (see `VolumeRepo::open_or_init`).
            let created = self.run("write", &key, self.store.put_if_absent(&key, body))?;
            return if created {
                Ok(())
            } else {
                Err(RusticError::new(
                    ErrorKind::Backend,
                    "`{key}` exists already: another writer created the repository",
                )
                .attach_context("key", key))
            };
        }
        self.run("write", &key, self.store.put(&key, body))
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let key = self.key(tpe, id);
        self.run("delete", &key, self.store.delete(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8, len: usize) -> (Id, Bytes) {
        let mut id = [0u8; 32];
        id[0] = n;
        (Id::new(id), Bytes::from(vec![n; len]))
    }

    #[test]
    fn tree_packs_keep_the_most_recent_within_the_budget() {
        let mut cache = TreePacks::default();
        let third = TreePacks::BUDGET / 3;
        let (a, b, c, d) = (
            pack(1, third),
            pack(2, third),
            pack(3, third),
            pack(4, third),
        );
        for (id, data) in [&a, &b, &c] {
            cache.insert(*id, data.clone());
        }
        // A hit makes `a` the most recent, so `b` is the one that leaves for `d`.
        assert_eq!(cache.get(&a.0).as_deref(), Some(&a.1[..]));
        cache.insert(d.0, d.1.clone());
        assert!(cache.get(&b.0).is_none());
        assert!(cache.get(&a.0).is_some() && cache.get(&c.0).is_some());
        assert!(cache.get(&d.0).is_some());
        assert!(cache.bytes <= TreePacks::BUDGET);
    }

    #[test]
    fn tree_packs_skip_a_pack_larger_than_the_budget() {
        let mut cache = TreePacks::default();
        let (id, data) = pack(9, TreePacks::BUDGET + 1);
        cache.insert(id, data);
        assert!(cache.get(&id).is_none());
        assert_eq!(cache.bytes, 0);
    }
}
