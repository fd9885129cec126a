//! Volume-data repositories: one restic-format repository per namespace, via rustic_core.
//!
//! A namespace's repository lives under `repos/<ns>/` of the location and is opened with its
//! own random password, which is stored next to it sealed with the location key
//! (`repos/<ns>/vbackup-key.sealed`, see [`crate::keys`]). The repositories stay readable by
//! the stock `restic` and `rustic` tools given that password ([`VolumeRepo::password`]).
//!
//! Everything here is async for the caller; rustic_core itself is blocking, so each operation
//! runs on tokio's blocking pool and talks to the location through the crate's storage backend.
//!
//! # Snapshot layout
//! A volume's files appear under [`SNAPSHOT_ROOT`] (`/data`) in its snapshots, whatever path
//! the volume was mounted at during the backup; paths given to [`VolumeRepo::ls`],
//! [`VolumeRepo::dump`] and [`VolumeRepo::restore`] are relative to the volume's root.
//! Snapshots carry `host` = namespace, `label` = volume (e.g. `pvc/data` or `pod/web-0/cache`)
//! and the tags `vbackup`, `namespace=NS`, `volume=VOL`, `backup=NAME`; the previous snapshot of
//! the same volume is the parent of the next backup, so unchanged files are not read again.
//!
//! # Concurrency: no locks, no "repository is locked"
//! Backups only ever add files (packs, then index, then the snapshot last) and never rewrite
//! or delete one, so any number of them can run at once, from any number of clusters. Prune
//! is two-phase (rustic's design): packs that became unused are first only *marked* in a new
//! index, and deleted by a later prune run once they have been marked for longer than
//! [`PRUNE_KEEP_MARKED`]; a pack a concurrent backup started to reference again is recovered
//! instead of deleted, and packs younger than that are never touched. No operation therefore
//! needs an exclusive lock, and vbackup never writes lock files: a crashed pod cannot leave a
//! stale lock that blocks every later backup.

//! # Sessions
//! A [`VolumeRepo`] is one session: the repository is opened (config and key read) once, and
//! the index is read once for the reads that need it (restore, ls, dump) and kept until a
//! write of this session or a new index file of another writer makes it stale. Operations of
//! one session run one after the other; open another [`VolumeRepo`] to work in parallel.

mod archiver;
mod backend;
mod backup;
mod browse;
mod copy;
mod location;
mod maintenance;
pub mod progress;
pub mod restore;
mod restore_packs;
mod restore_snapshot;
mod secrets;
mod session;
mod source;
mod types;

use std::path::PathBuf;
use std::time::Duration;

pub use copy::CopiedSnapshot;
pub use location::LocationRepos;
pub use progress::{Activity, ProgressFn, ProgressUpdate};
pub use secrets::{list_repositories, reveal_password, rotate_location_key};
pub use session::VolumeRepo;
pub use types::{
    CheckReport, EntryKind, LsEntry, PruneSummary, ReadData, RestoreSummary, SnapshotInfo,
    SnapshotSummary, StreamBackup, VolumeBackup, VolumeRestore,
};

use crate::{Error, Result};

/// Where a volume's files appear inside its snapshots.
pub const SNAPSHOT_ROOT: &str = "/data";

/// How long prune keeps packs marked for deletion before deleting them (see module docs).
pub const PRUNE_KEEP_MARKED: &str = "23h";

/// The default stall period: a copy that moves no byte for this long fails.
pub const DEFAULT_STALL_PERIOD: Duration = Duration::from_secs(300);

/// Settings of a new repository; stored in its `config` and used by every later backup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// zstd level for new data (restic's default is 3; negative levels are faster).
    pub compression: i32,
    /// Target size of data pack files, in bytes (also the upload unit: memory per uploader).
    pub datapack_size: u32,
    /// Maximum size data packs grow to as the repository grows, in bytes.
    pub datapack_size_limit: u32,
    /// Decompress and decrypt every blob again right after packing it. Catches memory or
    /// compressor faults at the cost of CPU; off by default, like restic.
    pub extra_verify: bool,
}

impl Default for Tuning {
    /// Measured on the benchmark dataset (BENCHMARKS.md): zstd level 3 (restic's), 8 MiB
    /// packs growing to at most 32 MiB (a backup holds about three packs in memory, so this
    /// caps that part at ~100 MiB whatever the repository size), no extra verification.
    fn default() -> Self {
        Tuning {
            compression: 3,
            datapack_size: 8 * 1024 * 1024,
            datapack_size_limit: 32 * 1024 * 1024,
            extra_verify: false,
        }
    }
}

/// How repositories are opened.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    /// rustic's local cache of index and snapshot files; `None` uses no cache, which is right
    /// for short-lived mover pods with read-only or ephemeral homes.
    pub cache_dir: Option<PathBuf>,
    /// Settings for repositories this call creates (ignored when opening an existing one).
    pub tuning: Tuning,
    /// Files a restore writes at once (0: [`restore::default_restore_workers`], or
    /// [`restore::DEFAULT_S3_RESTORE_WORKERS`] on S3); lower it to save memory.
    pub restore_workers: usize,
}

/// Maps a path relative to the volume root onto the snapshot's tree, whose volume root is
/// `root` ([`SNAPSHOT_ROOT`] for vbackup's snapshots, `/` for Velero's: its node agent ran
/// `restic backup .` from the volume's directory).
pub(crate) fn snapshot_path(root: &str, path: &str) -> Result<String> {
    let rel = path.trim_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(Error::BadInput(format!(
            "path {path:?} must stay inside the volume (no `..`)"
        )));
    }
    let root = root.trim_end_matches('/');
    Ok(match (root.is_empty(), rel.is_empty()) {
        (true, true) => "/".to_string(),
        (_, true) => root.to_string(),
        (_, false) => format!("{root}/{rel}"),
    })
}

/// Namespaces are DNS labels; anything else must not become an object path.
pub(crate) fn validate_namespace(namespace: &str) -> Result<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-')
        && !namespace.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{namespace:?} is not a Kubernetes namespace name (lowercase letters, digits, `-`)"
        )))
    }
}

/// Tags are comma-separated in the restic format.
pub(crate) fn validate_tag_value(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains(',') || value.chars().any(char::is_whitespace) {
        return Err(Error::BadInput(format!(
            "{what} {value:?} must be non-empty, without commas or spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SNAPSHOT_ROOT, snapshot_path};

    #[test]
    fn volume_paths_map_onto_either_snapshot_layout() {
        assert_eq!(snapshot_path(SNAPSHOT_ROOT, "").unwrap(), "/data");
        assert_eq!(snapshot_path(SNAPSHOT_ROOT, "/a/b/").unwrap(), "/data/a/b");
        assert_eq!(snapshot_path("/", "").unwrap(), "/");
        assert_eq!(
            snapshot_path("/", "orders/1.json").unwrap(),
            "/orders/1.json"
        );
        assert!(snapshot_path("/", "../etc").is_err());
    }
}
