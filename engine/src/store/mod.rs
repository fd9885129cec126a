//! Storage locations: where backups, restore records and volume repositories live.
//!
//! One abstraction ([`ObjectBackend`]) with two implementations — S3 ([`s3::S3Backend`]) and
//! a local directory ([`fs::FsBackend`]) — behind a [`Store`] that enforces the location's
//! access mode before any byte is written. Object paths come from [`layout`] only.

pub mod credentials;
pub mod fs;
pub mod key_secret;
pub mod layout;
pub mod location;
pub mod locations;
pub mod s3;
mod s3_retries;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::keys::LocationKey;
use crate::keys::stream::{self, ArchiveKey};
use crate::{Error, Result};
pub use location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, Format, SYSTEM_NAMESPACE,
};
pub use locations::{Created, KeyOrigin, Locations};

/// How long [`Store::create_once`] waits, on a store without conditional writes, before it
/// reads back what it created: a concurrent first writer's check-then-write (two small
/// requests) lands well within it.
pub const CREATE_SETTLE: Duration = Duration::from_secs(1);

/// How long [`Store::create_once`] waits for an object another writer is still storing.
const CONCURRENT_WRITE_WAIT: Duration = Duration::from_secs(20);

/// A readable stream of an object's bytes.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the location's root (its prefix or directory).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// An object store rooted at a location's bucket + prefix or directory.
///
/// Keys are relative to that root and use `/` as separator. Implementations stream: no
/// method buffers a whole large object in memory.
#[async_trait]
pub trait ObjectBackend: Send + Sync {
    /// Writes a small object from memory (metadata, keys, repository files).
    async fn put(&self, key: &str, body: Bytes) -> Result<()>;

    /// Writes a small object only if no object of that key exists; true when written.
    ///
    /// This default, for stores without conditional writes, checks then writes: two
    /// writers may both succeed, and callers read the object back to learn which one won.
    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        if self.head(key).await?.is_some() {
            return Ok(false);
        }
        self.put(key, body).await?;
        Ok(true)
    }

    /// True when [`ObjectBackend::put_if_absent`] is atomic (exactly one of two racing
    /// writers wins); false for the check-then-write default.
    fn writes_conditionally(&self) -> bool {
        false
    }

    /// Writes an object from a stream of unknown length; large ones go up in parts.
    /// Returns the number of bytes written.
    async fn put_stream(&self, key: &str, body: &mut (dyn AsyncRead + Send + Unpin))
    -> Result<u64>;

    /// Opens an object for streamed reading.
    async fn get(&self, key: &str) -> Result<ObjectReader>;

    /// Reads `len` bytes at `offset` of an object.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes>;

    /// Reads `len` bytes at `offset` of an object into `buf` (replacing its contents), so a
    /// restore worker reuses one buffer for all its reads instead of allocating each range.
    async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let data = self.get_range(key, offset, len).await?;
        buf.clear();
        buf.extend_from_slice(&data);
        Ok(())
    }

    /// Size of an object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Checks that the store is reachable and its bucket or directory exists.
    async fn check_reachable(&self) -> Result<()>;

    /// Where this store points, for messages (`s3://bucket/prefix`, `file:///dir`); no secrets.
    fn url(&self) -> String;
}

/// A location's object store with its access mode enforced.
///
/// This is what the rest of the engine uses: writes to a `ReadOnly` location fail with
/// [`Error::ReadOnly`] before anything reaches the backend.
#[derive(Clone)]
pub struct Store {
    name: String,
    backend: Arc<dyn ObjectBackend>,
    access: AccessMode,
    velero: Option<crate::keys::RepoPassword>,
    /// The location key, when known: it opens the archive key.
    key: Option<LocationKey>,
    /// The archive key, read (or made) once per store.
    archive_key: Arc<tokio::sync::OnceCell<Option<ArchiveKey>>>,
}

/// The location key does not open the location's archive key.
pub(crate) fn wrong_archive_key(location: &str) -> Error {
    Error::BadInput(format!(
        "the location key does not open {} in location {location} (another key, or the object \
         was altered): import the key this location was created with (`kubectl vbackup \
         location import-key`, or --key-file on create)",
        layout::ARCHIVE_KEY
    ))
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("url", &self.backend.url())
            .field("access", &self.access)
            .finish()
    }
}

impl Store {
    /// Wraps a backend under the location's name and access mode.
    pub fn new(
        name: impl Into<String>,
        backend: Arc<dyn ObjectBackend>,
        access: AccessMode,
    ) -> Self {
        Store {
            name: name.into(),
            backend,
            access,
            key: None,
            archive_key: Arc::default(),
            velero: None,
        }
    }

    /// The same store read as a Velero bucket: always read only, its restic repositories
    /// (`restic/<namespace>/`) seen where vbackup's are (`repos/<namespace>/`) and opened with
    /// `repo_password` instead of a sealed key.
    pub fn into_velero(self, repo_password: crate::keys::RepoPassword) -> Self {
        Store {
            access: AccessMode::ReadOnly,
            velero: Some(repo_password),
            ..self
        }
    }

    /// The layout of the location's backups.
    pub fn format(&self) -> Format {
        match self.velero {
            Some(_) => Format::Velero,
            None => Format::Vbackup,
        }
    }

    /// The password of a Velero bucket's restic repositories (`None` for vbackup's layout).
    pub fn velero_repo_password(&self) -> Option<&crate::keys::RepoPassword> {
        self.velero.as_ref()
    }

    /// The backend key of `key`: in a Velero bucket the repositories live under `restic/`.
    fn backend_key<'a>(&self, key: &'a str) -> std::borrow::Cow<'a, str> {
        match (&self.velero, key.strip_prefix(layout::REPOS)) {
            (Some(_), Some(rest)) => format!("{}{rest}", layout::VELERO_REPOS).into(),
            _ => key.into(),
        }
    }

    /// The same store, with the location key that opens its archive key.
    pub fn with_key(mut self, key: LocationKey) -> Self {
        self.key = Some(key);
        self.archive_key = Arc::default();
        self
    }

    /// The key that encrypts this location's object archives and item logs: read from the
    /// location, or made and stored (first writer wins) on a writable location that has none
    /// yet. `None` without a location key, or on a read-only location that never had one
    /// (its backups predate encryption).
    pub async fn archive_key(&self) -> Result<Option<ArchiveKey>> {
        let Some(location_key) = &self.key else {
            return Ok(None);
        };
        let found = self.archive_key.get_or_try_init(|| async {
            let sealed = match self.get_bytes(layout::ARCHIVE_KEY).await {
                Ok(sealed) => sealed,
                Err(e) if e.is_not_found() && self.ensure_writable().is_ok() => {
                    let fresh = stream::seal_archive_key(location_key, &ArchiveKey::generate()?)?;
                    // Two first backups at once: one wins, both use what is stored.
                    self.create_once(layout::ARCHIVE_KEY, fresh).await?.1
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            stream::unseal_archive_key(location_key, &sealed)
                .map(Some)
                .ok_or_else(|| wrong_archive_key(&self.name))
        });
        found.await.cloned()
    }

    /// The location's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The location's access mode.
    pub fn access_mode(&self) -> AccessMode {
        self.access
    }

    /// Where the store points (no secrets).
    pub fn url(&self) -> String {
        self.backend.url()
    }

    /// Fails with [`Error::ReadOnly`] unless the location accepts writes.
    pub fn ensure_writable(&self) -> Result<()> {
        match self.access {
            AccessMode::ReadWrite => Ok(()),
            AccessMode::ReadOnly => Err(Error::ReadOnly {
                location: self.name.clone(),
            }),
        }
    }

    /// Writes a small object from memory.
    pub async fn put(&self, key: &str, body: impl Into<Bytes>) -> Result<()> {
        self.ensure_writable()?;
        self.backend.put(key, body.into()).await
    }

    /// Writes a small object unless one of that key exists; true when this call wrote it.
    /// Where two writers race, exactly one wins on S3 (`If-None-Match: *`) and on disk.
    pub async fn put_if_absent(&self, key: &str, body: impl Into<Bytes>) -> Result<bool> {
        self.ensure_writable()?;
        self.backend.put_if_absent(key, body.into()).await
    }

    /// Stores `body` under `key` unless an object is there, and returns whether this call
    /// wrote it with the object as it stays stored: the one every writer of the key must use
    /// (a location's archive key, a repository's sealed password).
    ///
    /// On disk and on S3 (`If-None-Match: *`) exactly one writer wins, and a loser whose
    /// winner's write is still in flight (S3 answers 409 meanwhile) waits for it. A store
    /// without conditional writes checks then writes, so two first writers may both write:
    /// the object is read back only after [`CREATE_SETTLE`], once such a later write has
    /// landed, so both end up with the same object.
    pub async fn create_once(&self, key: &str, body: impl Into<Bytes>) -> Result<(bool, Bytes)> {
        let written = self.put_if_absent(key, body).await?;
        if !self.backend.writes_conditionally() {
            tracing::debug!(location = %self.name, key, "no conditional writes: waiting before reading back");
            tokio::time::sleep(CREATE_SETTLE).await;
        }
        let deadline = tokio::time::Instant::now() + CONCURRENT_WRITE_WAIT;
        loop {
            match self.get_bytes(key).await {
                Err(e) if e.is_not_found() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other.map(|stored| (written, stored)),
            }
        }
    }

    /// Writes an object from a stream, in parts when large; returns the bytes written.
    pub async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64> {
        self.ensure_writable()?;
        self.backend.put_stream(key, body).await
    }

    /// Opens an object for streamed reading.
    pub async fn get(&self, key: &str) -> Result<ObjectReader> {
        self.backend.get(&self.backend_key(key)).await
    }

    /// Reads a whole object into memory: only for small objects such as metadata and keys.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let mut reader = self.backend.get(&self.backend_key(key)).await?;
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::Store {
                op: "read",
                location: self.name.clone(),
                key: key.to_string(),
                detail: e.to_string(),
            })?;
        Ok(buf.into())
    }

    /// Reads `len` bytes at `offset` of an object.
    pub async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.backend
            .get_range(&self.backend_key(key), offset, len)
            .await
    }

    /// Reads `len` bytes at `offset` of an object into `buf`, replacing its contents.
    pub async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.backend
            .get_range_into(&self.backend_key(key), offset, len, buf)
            .await
    }

    /// Size of an object, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>> {
        self.backend.head(&self.backend_key(key)).await
    }

    /// Every object under `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let backend_prefix = self.backend_key(prefix);
        let mut objects = self.backend.list(&backend_prefix).await?;
        if backend_prefix != prefix {
            // Keys are given back as the caller named them.
            for object in &mut objects {
                if let Some(rest) = object.key.strip_prefix(layout::VELERO_REPOS) {
                    object.key = format!("{}{rest}", layout::REPOS);
                }
            }
        }
        Ok(objects)
    }

    /// Deletes one object.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.ensure_writable()?;
        self.backend.delete(key).await
    }

    /// Deletes every object under `prefix`; returns how many were deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize> {
        self.ensure_writable()?;
        let objects = self.backend.list(prefix).await?;
        for object in &objects {
            self.backend.delete(&object.key).await?;
        }
        Ok(objects.len())
    }

    /// Reachability, bucket or directory existence, and for a `ReadWrite` location a
    /// write/read/delete round trip of a probe object.
    pub async fn check(&self) -> Result<LocationCheck> {
        self.backend.check_reachable().await?;
        if self.access == AccessMode::ReadOnly {
            return Ok(LocationCheck {
                probe_round_trip: false,
            });
        }
        let probe = Bytes::from_static(b"vbackup probe: safe to delete\n");
        self.backend.put(layout::PROBE, probe.clone()).await?;
        let read = self.get_bytes(layout::PROBE).await;
        let deleted = self.backend.delete(layout::PROBE).await;
        if read? != probe {
            return Err(Error::Store {
                op: "verify",
                location: self.name.clone(),
                key: layout::PROBE.into(),
                detail: "the probe object read back differs from what was written".into(),
            });
        }
        deleted?;
        Ok(LocationCheck {
            probe_round_trip: true,
        })
    }
}

/// What `Store::check` verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocationCheck {
    /// A probe object was written, read back identical and deleted.
    pub probe_round_trip: bool,
}
