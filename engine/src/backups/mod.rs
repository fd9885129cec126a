//! Backup and restore records as kept in a location, and the catalogue that reads them
//! back (`get`, `describe`, `logs`, `delete`) — from any cluster pointed at the location.

pub mod catalog;
pub mod delete;
pub mod find;
pub mod gc;
pub mod itemlog;
pub mod record;
pub mod volume_step;

pub use catalog::{BackupSummary, Catalog};
pub use delete::{DeletedBackup, delete_backup};
pub use find::{find_backup, stores};
pub use itemlog::{ItemLog, LogEntry};
pub use record::{
    BackupRecord, BackupStatus, ItemError, Phase, RestoreRecord, RestoreStatus, SkippedSummary,
    VolumeRecord,
};
pub use volume_step::{BackupVolumeContext, BackupVolumeOutcome, RestoreVolumeContext, VolumeStep};
