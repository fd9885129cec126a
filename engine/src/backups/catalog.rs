//! Backups and restore records kept in one location.

use serde::{Deserialize, Serialize};

use super::record::{BackupRecord, Phase, RestoreRecord};
use crate::resources::archive::{self, UnpackedArchive};
use crate::store::{Format, Store, layout};
use crate::velero;
use crate::{Error, Result};

/// One line of `backup get`: the record, or a folder without metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BackupSummary {
    /// A backup with its metadata.
    Recorded(Box<BackupRecord>),
    /// A folder without metadata: still running, or its writer died.
    Incomplete {
        /// The backup name.
        name: String,
        /// Always `Incomplete`.
        phase: Phase,
    },
}

/// The records of one location.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    /// The catalogue of `store`.
    pub fn new(store: Store) -> Self {
        Catalog { store }
    }

    /// The location's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every backup in the location, by name.
    pub async fn backups(&self) -> Result<Vec<BackupSummary>> {
        if self.store.format() == Format::Velero {
            return velero::catalog::backups(&self.store).await;
        }
        let keys = self.store.list(layout::BACKUPS).await?;
        let names = layout::child_names(layout::BACKUPS, keys.iter().map(|k| k.key.as_str()));
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(match self.backup_opt(&name).await? {
                Some(record) => BackupSummary::Recorded(Box::new(record)),
                None => BackupSummary::Incomplete {
                    name,
                    phase: Phase::Incomplete,
                },
            });
        }
        Ok(out)
    }

    /// One backup's metadata; a clear error when it does not exist.
    pub async fn backup(&self, name: &str) -> Result<BackupRecord> {
        self.backup_opt(name)
            .await?
            .ok_or_else(|| self.backup_not_found(name))
    }

    fn backup_not_found(&self, name: &str) -> Error {
        Error::BackupNotFound {
            name: name.into(),
            location: Some(self.store.name().into()),
        }
    }

    async fn backup_opt(&self, name: &str) -> Result<Option<BackupRecord>> {
        if self.store.format() == Format::Velero {
            return velero::catalog::backup_opt(&self.store, name).await;
        }
        let key = layout::backup_metadata(name);
        match self.store.get_bytes(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Corrupt(format!(
                    "the metadata of backup {name} ({key}) is unreadable: {e}"
                ))
            }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The backup's objects, unpacked into a private temporary directory.
    pub async fn archive(&self, name: &str) -> Result<UnpackedArchive> {
        if self.store.format() == Format::Velero {
            return velero::catalog::archive(&self.store, name).await;
        }
        let reader = self.store.get(&layout::backup_resources(name)).await?;
        archive::unpack(reader).await
    }

    /// `record` with each volume named by its claim: Velero records pod volumes, so their
    /// claims are read from the backed-up pods (vbackup's own records name claims already).
    pub async fn with_claims(&self, mut record: BackupRecord, name: &str) -> Result<BackupRecord> {
        if self.store.format() == Format::Velero && !record.status.volumes.is_empty() {
            let unpacked = self.archive(name).await?;
            velero::catalog::resolve_claims(&mut record.status.volumes, &unpacked);
        }
        Ok(record)
    }

    /// Where the backup's log is (gzip-compressed: vbackup's item log, or Velero's log).
    pub fn log_key(&self, name: &str) -> String {
        match self.store.format() {
            Format::Vbackup => layout::backup_log(name),
            Format::Velero => layout::velero_backup_file(name, "-logs.gz"),
        }
    }

    /// True when the backup's folder has anything in it.
    pub async fn backup_exists(&self, name: &str) -> Result<bool> {
        Ok(!self.store.list(&layout::backup_dir(name)).await?.is_empty())
    }

    /// Deletes a backup: the metadata first (so a half-deleted backup is never listed as
    /// good), then the rest of its folder. Refused on a ReadOnly location.
    pub async fn delete_backup(&self, name: &str) -> Result<usize> {
        self.store.ensure_writable()?;
        if !self.backup_exists(name).await? {
            return Err(self.backup_not_found(name));
        }
        self.store.delete(&layout::backup_metadata(name)).await?;
        Ok(1 + self.store.delete_prefix(&layout::backup_dir(name)).await?)
    }

    /// Every restore record in the location.
    pub async fn restores(&self) -> Result<Vec<RestoreRecord>> {
        let keys = self.store.list(layout::RESTORES).await?;
        let names = layout::child_names(layout::RESTORES, keys.iter().map(|k| k.key.as_str()));
        let mut out = Vec::new();
        for name in names {
            if let Some(r) = self.restore_opt(&name).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One restore record, if the location has it.
    pub async fn restore_opt(&self, name: &str) -> Result<Option<RestoreRecord>> {
        let key = layout::restore_metadata(name);
        match self.store.get_bytes(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Corrupt(format!(
                    "the record of restore {name} ({key}) is unreadable: {e}"
                ))
            }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a restore record (never the restored objects).
    pub async fn delete_restore(&self, name: &str) -> Result<usize> {
        self.store.ensure_writable()?;
        self.store.delete_prefix(&layout::restore_dir(name)).await
    }
}
