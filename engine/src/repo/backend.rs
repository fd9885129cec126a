//! rustic_core's storage traits over the location's [`Store`]: one S3 client, one path scheme.
//!
//! rustic_core is synchronous and calls these methods from its own worker threads, so each
//! call blocks on the store's async method through a captured tokio [`Handle`]. Callers must
//! run rustic operations off the runtime's worker threads (`spawn_blocking`).

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
        }
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
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
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
