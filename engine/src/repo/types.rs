//! What repository operations take and give back.

use std::path::PathBuf;
use std::time::Duration;

use super::ProgressFn;

/// A volume (directory tree) to back up.
#[derive(Clone)]
pub struct VolumeBackup {
    /// The directory holding the volume's files (its mount point).
    pub source: PathBuf,
    /// Which volume this is: `pvc/NAME`, or `pod/POD/VOLUME` for pod-scoped volumes.
    pub volume: String,
    /// The vbackup backup this snapshot belongs to.
    pub backup: String,
    /// gitignore-style patterns, relative to the volume root, of paths not to copy.
    pub excludes: Vec<String>,
    /// Called about once a second with the counts so far.
    pub progress: Option<ProgressFn>,
    /// Fail when nothing moves for this long; `None` never gives up.
    pub stall_after: Option<Duration>,
}

/// A byte stream (e.g. a database dump) to back up as one file.
#[derive(Clone)]
pub struct StreamBackup {
    /// File name inside the snapshot (directly under the root, like a volume's files).
    pub file_name: String,
    /// What the stream belongs to, used as the snapshot label (e.g. `dump/postgres-0`).
    pub volume: String,
    /// The vbackup backup this snapshot belongs to.
    pub backup: String,
    /// Called about once a second with the counts so far.
    pub progress: Option<ProgressFn>,
    /// Fail when nothing moves for this long; `None` never gives up.
    pub stall_after: Option<Duration>,
}

/// What a volume or stream backup did: the snapshot it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Id of the new snapshot (64 hex digits).
    pub snapshot_id: String,
    /// The snapshot it was compared against, if any.
    pub parent_id: Option<String>,
    /// Files not seen in the parent.
    pub files_new: u64,
    /// Files whose contents changed since the parent.
    pub files_changed: u64,
    /// Files taken over from the parent without reading them.
    pub files_unmodified: u64,
    /// Files whose contents were read.
    pub files_read: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Bytes of all files in the snapshot.
    pub bytes_total: u64,
    /// New data added to the repository, before compression.
    pub data_added: u64,
    /// New data added to the repository, as stored (compressed, encrypted).
    pub data_added_stored: u64,
    /// Entries that could not be read (and are not in the snapshot), in all.
    pub warning_count: u64,
    /// The first of them, each naming the path and the reason.
    pub warnings: Vec<String>,
}

/// A snapshot in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Id (64 hex digits); any unique prefix works where a snapshot is asked for.
    pub id: String,
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// The volume (snapshot label).
    pub volume: String,
    /// The vbackup backup it belongs to (from its `backup=` tag).
    pub backup: Option<String>,
    /// All tags.
    pub tags: Vec<String>,
    /// Files in the snapshot.
    pub files: u64,
    /// Bytes of all files in the snapshot.
    pub bytes: u64,
}

/// Kind of an entry in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, fifo or socket.
    Special,
}

/// One entry of a snapshot listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LsEntry {
    /// Path relative to the volume root (`""` for the root itself).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (files only).
    pub size: u64,
    /// Unix permission bits.
    pub mode: Option<u32>,
    /// Modification time.
    pub mtime: Option<jiff::Timestamp>,
    /// Symlink target.
    pub link_target: Option<String>,
}

/// A restore of a snapshot, or of one path in it.
#[derive(Clone)]
pub struct VolumeRestore {
    /// Snapshot id (or unique prefix, or `latest`).
    pub snapshot: String,
    /// Path inside the volume to restore (`None` or `""`: everything).
    pub path: Option<String>,
    /// Directory to restore into; created if missing. A single file lands inside it.
    pub target: PathBuf,
    /// Compare the contents of existing files rather than trusting size and mtime.
    pub verify_existing: bool,
    /// Called about once a second with the counts so far.
    pub progress: Option<ProgressFn>,
    /// Fail when nothing moves for this long; `None` never gives up.
    pub stall_after: Option<Duration>,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Files written.
    pub files_restored: u64,
    /// Existing files left alone because they were already identical.
    pub files_unchanged: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Bytes written.
    pub bytes_restored: u64,
}

/// How much pack data `check` reads back and verifies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Structure only: index, snapshots, trees, pack listing.
    None,
    /// A random subset of packs, in percent of the repository size.
    Percent(f64),
    /// Every pack.
    All,
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Damage: missing or corrupt data. Empty when the repository is sound.
    pub errors: Vec<String>,
    /// Oddities that do not affect integrity (e.g. unused data).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What `prune` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Packs deleted now (they were marked by an earlier prune).
    pub packs_deleted: u64,
    /// Packs newly marked for deletion by a later prune.
    pub packs_marked: u64,
    /// Packs repacked.
    pub packs_repacked: u64,
    /// Bytes of unreferenced data found.
    pub bytes_unused: u64,
}
