//! Volume-data repositories: one restic-format repository per namespace, via rustic_core.
//!
//! A namespace's repository lives under `repos/<ns>/` of the location and is opened with its
//! own random password, which is stored next to it sealed with the location key
//! (`repos/<ns>/vbackup-key.sealed`, see [`crate::keys`]). The repositories stay readable by
//! the stock `restic` and `rustic` tools given that password ([`VolumeRepo::password`]).
//!
//! Everything here is async for the caller; rustic_core itself is blocking, so each operation
//! runs on tokio's blocking pool and talks to the location through [`backend::StoreBackend`].
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

pub mod backend;
pub mod progress;
pub mod restore;
mod source;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustic_core::repofile::{MasterKey, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, Excludes, KeyOptions,
    LocalDestination, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, LsOptions,
    OpenStatus, ParentOptions, PruneOptions, ReadSubsetOption, Repository, RepositoryBackends,
    RepositoryOptions, RestoreOptions, RusticError, SnapshotOptions,
};
use tokio::io::AsyncRead;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::keys::{self, LocationKey, RepoPassword, RepoSecrets, UnsealError};
use crate::store::{Store, layout};
use crate::{Error, Result};
use backend::StoreBackend;
pub use progress::{Activity, ProgressFn, ProgressUpdate};
use progress::{ActivityBars, supervise};
use source::{CountedSource, StreamSource};

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
    /// Files a restore writes at once (0: [`restore::DEFAULT_RESTORE_WORKERS`], or
    /// [`restore::DEFAULT_S3_RESTORE_WORKERS`] on S3); lower it to save memory.
    pub restore_workers: usize,
}

/// One namespace's repository, opened with its unsealed password.
#[derive(Clone)]
pub struct VolumeRepo {
    store: Store,
    namespace: String,
    /// The location key, to seal the master key once known; movers open repositories from
    /// handed-over secrets and never see it.
    location_key: Option<LocationKey>,
    password: RepoPassword,
    options: RepoOptions,
    /// The repository's master key once a first open derived it from the password
    /// (scrypt, ~0.1 s and 32 MiB each time otherwise).
    master_key: Arc<OnceLock<MasterKey>>,
}

impl std::fmt::Debug for VolumeRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password and the master key never appear, not even in debug output.
        f.debug_struct("VolumeRepo")
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

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

/// What a backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
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
pub struct RestoreRequest {
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

impl VolumeRepo {
    /// Opens the namespace's repository, creating it (with a fresh random password sealed
    /// with `key`) when the namespace has none yet. Returns the repository and whether it was
    /// created.
    pub async fn open_or_init(
        store: &Store,
        namespace: &str,
        key: &LocationKey,
        options: RepoOptions,
    ) -> Result<(VolumeRepo, bool)> {
        validate_namespace(namespace)?;
        let sealed_key = layout::repo_sealed_key(namespace);
        let secrets = match store.head(&sealed_key).await? {
            Some(_) => unseal_stored(store, namespace, key).await?,
            None => {
                store.ensure_writable()?;
                if store.head(&layout::repo_config(namespace)).await?.is_some() {
                    return Err(Error::Repo {
                        op: "open",
                        namespace: namespace.into(),
                        detail: format!(
                            "{} has a repository but no {sealed_key}; it was not created by \
                             vbackup or its sealed password was deleted: restore that file",
                            layout::repo_dir(namespace)
                        ),
                    });
                }
                // Seal first: a crash after this leaves a password and no repository (the next
                // call creates it), never a repository nobody can open.
                let secrets = RepoSecrets {
                    password: RepoPassword::generate()?,
                    master_key: None,
                };
                store
                    .put(&sealed_key, keys::seal(key, namespace, &secrets)?)
                    .await?;
                secrets
            }
        };
        let repo = VolumeRepo::new(store, namespace, Some(key), &secrets, options)?;
        let created = repo.init_if_missing().await?;
        repo.keep_master_key(&secrets).await?;
        Ok((repo, created))
    }

    /// Opens the namespace's existing repository; [`Error::RepoMissing`] when it has none,
    /// [`Error::WrongLocationKey`] when `key` is not the location's key.
    pub async fn open(
        store: &Store,
        namespace: &str,
        key: &LocationKey,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        validate_namespace(namespace)?;
        let secrets = unseal_stored(store, namespace, key).await?;
        if store.head(&layout::repo_config(namespace)).await?.is_none() {
            return Err(Error::RepoMissing {
                namespace: namespace.into(),
                location: store.name().into(),
                key_object: layout::repo_config(namespace),
            });
        }
        let repo = VolumeRepo::new(store, namespace, Some(key), &secrets, options)?;
        // Fail here, not in the first operation, if the password does not open it.
        repo.run("open", None, None, |_, _| Ok(())).await?;
        repo.keep_master_key(&secrets).await?;
        Ok(repo)
    }

    fn new(
        store: &Store,
        namespace: &str,
        key: Option<&LocationKey>,
        secrets: &RepoSecrets,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        let master_key = Arc::new(OnceLock::new());
        if let Some(text) = &secrets.master_key {
            // An unreadable master key only costs a password open; never fail on it.
            if let Ok(parsed) = serde_json::from_str::<MasterKey>(text) {
                let _ = master_key.set(parsed);
            }
        }
        Ok(VolumeRepo {
            store: store.clone(),
            namespace: namespace.into(),
            location_key: key.cloned(),
            password: secrets.password.clone(),
            options,
            master_key,
        })
    }

    /// Seals the master key next to the password once it is known, so later opens skip
    /// scrypt. Skipped on read-only locations.
    async fn keep_master_key(&self, sealed: &RepoSecrets) -> Result<()> {
        let Some(location_key) = &self.location_key else {
            return Ok(());
        };
        if sealed.master_key.is_some() || self.store.ensure_writable().is_err() {
            return Ok(());
        }
        let Some(master_key) = self.master_key.get() else {
            return Ok(());
        };
        let text = serde_json::to_string(master_key).map_err(|e| Error::Repo {
            op: "open",
            namespace: self.namespace.clone(),
            detail: format!("encoding the master key failed: {e}"),
        })?;
        let secrets = RepoSecrets {
            password: self.password.clone(),
            master_key: Some(text),
        };
        self.store
            .put(
                &layout::repo_sealed_key(&self.namespace),
                keys::seal(location_key, &self.namespace, &secrets)?,
            )
            .await
    }

    /// Opens a namespace's existing repository with secrets unsealed elsewhere (a mover's
    /// job): no location key is needed or kept.
    pub async fn from_secrets(
        store: &Store,
        namespace: &str,
        secrets: &RepoSecrets,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        validate_namespace(namespace)?;
        let repo = VolumeRepo::new(store, namespace, None, secrets, options)?;
        repo.run("open", None, None, |_, _| Ok(())).await?;
        Ok(repo)
    }

    /// The repository's password and master key, to hand to a mover.
    pub fn secrets(&self) -> RepoSecrets {
        RepoSecrets {
            password: self.password.clone(),
            master_key: self
                .master_key
                .get()
                .and_then(|k| serde_json::to_string(k).ok()),
        }
    }

    /// The namespace this repository belongs to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The repository's own password, for `restic`/`rustic` (`kubectl vbackup repo password`).
    /// Show it only on explicit request; never log it.
    pub fn password(&self) -> &RepoPassword {
        &self.password
    }

    /// Backs up a directory tree as a new snapshot of `req.volume`, with the volume's latest
    /// snapshot as parent. Files, directories, symlinks, special files, permissions, owners
    /// (numeric and by name), timestamps and hard-link counts are recorded; unreadable entries
    /// are skipped with a warning in the log, as restic does.
    pub async fn backup_dir(&self, req: VolumeBackup) -> Result<BackupSummary> {
        let source = std::fs::canonicalize(&req.source)
            .map_err(Error::io("open backup source", &req.source))?;
        if !source.is_dir() {
            return Err(Error::BadInput(format!(
                "backup source {} is not a directory",
                source.display()
            )));
        }
        validate_tag_value("volume", &req.volume)?;
        validate_tag_value("backup", &req.backup)?;
        self.store.ensure_writable()?;
        let ns = self.namespace.clone();
        let (volume, backup) = (req.volume.clone(), req.backup.clone());
        let mut excludes = Excludes::default();
        excludes.globs = exclude_globs(&source, &req.excludes);
        self.run(
            "backup",
            req.stall_after,
            req.progress.clone(),
            move |repo, activity| {
                let repo = repo.to_indexed_ids()?;
                let snap = snapshot_template(&ns, &volume, &backup)?;
                let opts = BackupOptions::default()
                    .as_path(PathBuf::from(SNAPSHOT_ROOT))
                    .parent_opts(ParentOptions::default());
                let src = CountedSource {
                    inner: LocalSource::new(
                        LocalSourceSaveOptions::default(),
                        &excludes,
                        &LocalSourceFilterOptions::default(),
                        &[&source],
                    )?,
                    activity: activity.clone(),
                };
                let snap = repo.archive(&opts, &src, snap, std::slice::from_ref(&source))?;
                Ok(summarize_backup(&snap, activity))
            },
        )
        .await
    }

    /// Backs up several volumes one after the other. Each finished volume's snapshot is saved
    /// even when a later one fails; the result lists every volume with its outcome.
    pub async fn backup_volumes(
        &self,
        volumes: Vec<VolumeBackup>,
    ) -> Vec<(String, Result<BackupSummary>)> {
        let mut results = Vec::with_capacity(volumes.len());
        for volume in volumes {
            let name = volume.volume.clone();
            results.push((name, self.backup_dir(volume).await));
        }
        results
    }

    /// Backs up a byte stream as the one file `<file_name>` of a new snapshot (no parent).
    /// Memory stays bounded: the stream is chunked as it arrives.
    pub async fn backup_stream<R>(&self, req: StreamBackup, reader: R) -> Result<BackupSummary>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        if req.file_name.is_empty() || req.file_name.contains('/') {
            return Err(Error::BadInput(format!(
                "stream file name {:?} must be a plain file name",
                req.file_name
            )));
        }
        validate_tag_value("volume", &req.volume)?;
        validate_tag_value("backup", &req.backup)?;
        self.store.ensure_writable()?;
        let ns = self.namespace.clone();
        let handle = Handle::current();
        let path = Path::new(SNAPSHOT_ROOT).join(&req.file_name);
        let (volume, backup) = (req.volume.clone(), req.backup.clone());
        self.run(
            "stream backup",
            req.stall_after,
            req.progress.clone(),
            move |repo, activity| {
                let repo = repo.to_indexed_ids()?;
                let snap = snapshot_template(&ns, &volume, &backup)?;
                let mut parent = ParentOptions::default();
                parent.force = true;
                let opts = BackupOptions::default().parent_opts(parent);
                let reader = tokio_util::io::SyncIoBridge::new_with_handle(reader, handle);
                let src = StreamSource::new(path.clone(), reader);
                activity.add_file_read();
                let snap = repo.archive(&opts, &src, snap, std::slice::from_ref(&path))?;
                Ok(summarize_backup(&snap, activity))
            },
        )
        .await
    }

    /// Every snapshot in the repository, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        self.run("list snapshots", None, None, |repo, _| {
            let mut snaps = repo.get_all_snapshots()?;
            snaps.sort_by(|a, b| a.time.cmp(&b.time));
            Ok(snaps.iter().map(snapshot_info).collect())
        })
        .await
    }

    /// Lists `path` (relative to the volume root; `""` for the root) in a snapshot, with
    /// everything below it when `recursive`.
    pub async fn ls(&self, snapshot: &str, path: &str, recursive: bool) -> Result<Vec<LsEntry>> {
        let (snapshot, inner) = (snapshot.to_string(), snapshot_path(path)?);
        let prefix = path.trim_matches('/').to_string();
        self.run("ls", None, None, move |repo, _| {
            let repo = repo.to_indexed_ids()?;
            let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
            let node = repo.node_from_snapshot_and_path(&snap, &inner)?;
            let mut entries = vec![ls_entry(&prefix, &node)];
            if node.is_dir() {
                let opts = LsOptions::default().recursive(recursive);
                for item in repo.ls(&node, &opts)? {
                    let (rel, node) = item?;
                    let full = Path::new(&prefix).join(rel);
                    entries.push(ls_entry(&full.to_string_lossy(), &node));
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Writes the contents of one file of a snapshot to `out`; returns the bytes written.
    pub async fn dump<W>(&self, snapshot: &str, path: &str, mut out: W) -> Result<u64>
    where
        W: Write + Send + 'static,
    {
        let (snapshot, inner) = (snapshot.to_string(), snapshot_path(path)?);
        let shown = path.to_string();
        let ns = self.namespace.clone();
        self.run("dump", None, None, move |repo, _| {
            let repo = repo.to_indexed()?;
            let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
            let node = repo.node_from_snapshot_and_path(&snap, &inner)?;
            if node.node_type != NodeType::File {
                return Err(Error::BadInput(format!(
                    "{shown} in snapshot {snapshot} of namespace {ns} is not a regular file"
                )));
            }
            let mut counted = CountingWriter {
                inner: &mut out,
                n: 0,
            };
            repo.dump(&node, &mut counted)?;
            counted
                .flush()
                .map_err(Error::io("write dump of", &shown))?;
            Ok(counted.n)
        })
        .await
    }

    /// Restores a snapshot, or one path in it, into `req.target`. Existing files that already
    /// match (size and mtime, or contents with `verify_existing`) are left alone, so re-running
    /// an interrupted restore only writes what is missing. Owners are restored by numeric id.
    pub async fn restore(&self, req: RestoreRequest) -> Result<RestoreSummary> {
        let path = req.path.clone().unwrap_or_default();
        let inner = snapshot_path(&path)?;
        let (snapshot, target, verify) = (
            req.snapshot.clone(),
            req.target.clone(),
            req.verify_existing,
        );
        let on_s3 = self.store.url().starts_with("s3://");
        let workers = match self.options.restore_workers {
            0 if on_s3 => restore::DEFAULT_S3_RESTORE_WORKERS,
            0 => restore::DEFAULT_RESTORE_WORKERS,
            n => n,
        };
        self.run(
            "restore",
            req.stall_after,
            req.progress.clone(),
            move |repo, activity| {
                let repo = repo.to_indexed()?;
                let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
                let node = repo.node_from_snapshot_and_path(&snap, &inner)?;
                let dest_path = if node.is_dir() {
                    target.clone()
                } else {
                    std::fs::create_dir_all(&target)
                        .map_err(Error::io("create restore target", &target))?;
                    target.join(&node.name)
                };
                let dest =
                    LocalDestination::new(&dest_path.to_string_lossy(), true, !node.is_dir())?;
                let opts = RestoreOptions::default()
                    .numeric_id(true)
                    .verify_existing(verify);
                let ls = repo.ls(&node, &LsOptions::default().recursive(true))?;
                if node.is_dir() {
                    unlink_second_hardlink_names(ls.clone(), &dest_path)?;
                }
                let written = restore::write_contents(
                    &repo,
                    ls.clone(),
                    &dest_path,
                    restore::ContentOptions {
                        single_file: !node.is_dir(),
                        verify,
                        workers,
                        leave_small_files: on_s3,
                    },
                    activity,
                )?;
                // What is left for rustic: metadata, and contents only where `verify` found
                // a difference.
                let plan = repo.prepare_restore(&opts, ls.clone(), &dest, false)?;
                let rewritten = plan.stats.files.restore + plan.stats.files.modify;
                let summary = RestoreSummary {
                    files_restored: written.files_written + rewritten,
                    // rustic also counts the files written just now as unchanged.
                    files_unchanged: (plan.stats.files.unchanged + plan.stats.files.verified)
                        .saturating_sub(written.files_written),
                    dirs: plan.stats.dirs.restore + plan.stats.dirs.modify,
                    bytes_restored: written.bytes_written + plan.restore_size,
                };
                repo.restore(plan, &opts, ls, &dest)?;
                Ok(summary)
            },
        )
        .await
    }

    /// Forgets every snapshot of a vbackup backup (tag `backup=NAME`); returns their ids.
    /// The data stays until [`VolumeRepo::prune`] finds it unreferenced.
    pub async fn forget_backup(&self, backup: &str) -> Result<Vec<String>> {
        self.store.ensure_writable()?;
        let tag = format!("backup={backup}");
        self.run("forget", None, None, move |repo, _| {
            let snaps = repo.get_all_snapshots()?;
            let ids: Vec<_> = snaps
                .iter()
                .filter(|s| s.tags.iter().any(|t| t == &tag))
                .map(|s| s.id)
                .collect();
            repo.delete_snapshots(&ids)?;
            Ok(ids.iter().map(|id| id.to_hex().to_string()).collect())
        })
        .await
    }

    /// Removes data no snapshot references any more, in rustic's two phases (see module
    /// docs): safe while backups run, from this cluster or any other.
    pub async fn prune(&self) -> Result<PruneSummary> {
        self.store.ensure_writable()?;
        self.run("prune", None, None, |repo, _| {
            let opts = PruneOptions::default().keep_delete(
                PRUNE_KEEP_MARKED
                    .parse::<jiff::Span>()
                    .map_err(|e| Error::Internal(e.to_string()))?,
            );
            let plan = repo.prune_plan(&opts)?;
            let stats = &plan.stats;
            let summary = PruneSummary {
                packs_deleted: stats.packs_to_delete.remove,
                packs_marked: stats.packs.unused,
                packs_repacked: stats.packs.repack,
                bytes_unused: stats.size_unref + stats.blobs_sum().unused,
            };
            repo.prune(&opts, plan)?;
            Ok(summary)
        })
        .await
    }

    /// Checks the repository's structure and, with `read`, reads back and verifies pack data.
    pub async fn check(&self, read: ReadData) -> Result<CheckReport> {
        self.run("check", None, None, move |repo, _| {
            let mut opts = CheckOptions::default();
            match read {
                ReadData::None => {}
                ReadData::All => opts.read_data = true,
                ReadData::Percent(p) => {
                    opts.read_data = true;
                    opts.read_data_subset = ReadSubsetOption::Percentage(p);
                }
            }
            let results = repo.check(opts)?;
            let mut report = CheckReport::default();
            for (level, finding) in &results.0 {
                // The level type is not exported by rustic_core; its Debug names it.
                if format!("{level:?}") == "Warn" {
                    report.warnings.push(finding.to_string());
                } else {
                    report.errors.push(finding.to_string());
                }
            }
            Ok(report)
        })
        .await
    }

    /// Creates the rustic repository when only its sealed password exists; true if created.
    async fn init_if_missing(&self) -> Result<bool> {
        if self
            .store
            .head(&layout::repo_config(&self.namespace))
            .await?
            .is_some()
        {
            if self.master_key.get().is_none() {
                self.run("open", None, None, |_, _| Ok(())).await?;
            }
            return Ok(false);
        }
        let this = self.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let (backends, _) = this.backends(handle, Activity::new());
            let t = this.options.tuning;
            let config = ConfigOptions::default()
                .set_compression(t.compression)
                .set_datapack_size(bytesize(t.datapack_size))
                .set_datapack_size_limit(bytesize(t.datapack_size_limit))
                .set_extra_verify(t.extra_verify);
            Repository::new(&this.repo_options(), &backends)
                .and_then(|r| {
                    r.init(
                        &Credentials::password(this.password.reveal()),
                        &KeyOptions::default(),
                        &config,
                    )
                })
                .map(|repo| {
                    let _ = this.master_key.set(repo.key());
                    true
                })
                .map_err(|e| this.rustic_error("create", &e))
        })
        .await
        .map_err(|e| Error::Repo {
            op: "create",
            namespace: self.namespace.clone(),
            detail: e.to_string(),
        })?
    }

    fn repo_options(&self) -> RepositoryOptions {
        match &self.options.cache_dir {
            Some(dir) => RepositoryOptions::default().cache_dir(dir.clone()),
            None => RepositoryOptions::default().no_cache(true),
        }
    }

    fn backends(
        &self,
        handle: Handle,
        activity: Activity,
    ) -> (RepositoryBackends, CancellationToken) {
        let cancelled = CancellationToken::new();
        let backend = StoreBackend::new(
            self.store.clone(),
            &self.namespace,
            handle,
            cancelled.clone(),
            activity,
        );
        (RepositoryBackends::new(Arc::new(backend), None), cancelled)
    }

    fn rustic_error(&self, op: &'static str, err: &RusticError) -> Error {
        Error::Repo {
            op,
            namespace: self.namespace.clone(),
            detail: rustic_detail(err),
        }
    }

    /// Opens the rustic repository on the blocking pool and runs `job` there, reporting
    /// progress and watching for stalls.
    async fn run<T, F>(
        &self,
        op: &'static str,
        stall_after: Option<Duration>,
        progress: Option<ProgressFn>,
        job: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Repository<OpenStatus>, &Activity) -> Result<T> + Send + 'static,
    {
        let activity = Activity::new();
        let (backends, cancelled) = self.backends(Handle::current(), activity.clone());
        let this = self.clone();
        let job_activity = activity.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let repo = Repository::new_with_progress(
                &this.repo_options(),
                &backends,
                ActivityBars(job_activity.clone()),
            )
            .and_then(|r| match this.master_key.get() {
                // A stale master key (a repository re-created by hand) falls back to the password.
                Some(key) => r
                    .clone()
                    .open(&Credentials::Masterkey(key.clone()))
                    .or_else(|_| r.open(&Credentials::password(this.password.reveal()))),
                None => r.open(&Credentials::password(this.password.reveal())),
            })
            .map_err(|e| this.rustic_error("open", &e))?;
            let _ = this.master_key.get_or_init(|| repo.key());
            let namespace = this.namespace.clone();
            job(repo, &job_activity).map_err(|e| match e {
                Error::Repo { detail, .. } => Error::Repo {
                    op,
                    namespace,
                    detail,
                },
                other => other,
            })
        });
        supervise(
            op,
            &self.namespace,
            handle,
            &activity,
            &cancelled,
            stall_after,
            progress.as_ref(),
        )
        .await
    }
}

impl From<Box<RusticError>> for Error {
    fn from(err: Box<RusticError>) -> Self {
        // Namespace and operation are filled in by `VolumeRepo::run`.
        Error::Repo {
            op: "repository operation",
            namespace: String::new(),
            detail: rustic_detail(&err),
        }
    }
}

/// rustic's error on one line, with advice when it means damaged data.
fn rustic_detail(err: &RusticError) -> String {
    let log = err.display_log();
    let mut detail = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(1)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(rest) = detail.strip_prefix("Error: ") {
        detail = rest.to_string();
    }
    if log.contains("cryptographic operations") || log.contains("MAC check failed") {
        detail.push_str(
            "; the repository data is damaged or was altered: run a check that reads all \
             data to find the damaged packs",
        );
    }
    detail
}

/// The repository password of a namespace, unsealed with `key` (for `repo password NS`).
pub async fn reveal_password(
    store: &Store,
    namespace: &str,
    key: &LocationKey,
) -> Result<RepoPassword> {
    validate_namespace(namespace)?;
    Ok(unseal_stored(store, namespace, key).await?.password)
}

/// Namespaces that have a repository (a sealed password) in the location.
pub async fn list_repositories(store: &Store) -> Result<Vec<String>> {
    let objects = store.list(layout::REPOS).await?;
    let namespaces = layout::child_names(layout::REPOS, objects.iter().map(|o| o.key.as_str()));
    Ok(namespaces
        .into_iter()
        .filter(|ns| {
            let sealed = layout::repo_sealed_key(ns);
            objects.iter().any(|o| o.key == sealed)
        })
        .collect())
}

/// Re-seals every repository password of the location with `new`; returns the namespaces.
///
/// Every password is unsealed before anything is written, so a wrong `old` key changes
/// nothing. A repository already sealed with `new` (a re-run after an interruption) is
/// accepted as is.
pub async fn rotate_location_key(
    store: &Store,
    old: &LocationKey,
    new: &LocationKey,
) -> Result<Vec<String>> {
    store.ensure_writable()?;
    let namespaces = list_repositories(store).await?;
    let mut resealed = Vec::with_capacity(namespaces.len());
    for ns in &namespaces {
        let sealed = store.get_bytes(&layout::repo_sealed_key(ns)).await?;
        let secrets = match keys::unseal(old, ns, &sealed) {
            Ok(secrets) => Some(secrets),
            Err(_) if keys::unseal(new, ns, &sealed).is_ok() => None,
            Err(e) => return Err(unseal_error(store, ns, e)),
        };
        resealed.push((ns.clone(), secrets));
    }
    for (ns, secrets) in &resealed {
        if let Some(secrets) = secrets {
            store
                .put(&layout::repo_sealed_key(ns), keys::seal(new, ns, secrets)?)
                .await?;
        }
    }
    Ok(namespaces)
}

async fn unseal_stored(store: &Store, namespace: &str, key: &LocationKey) -> Result<RepoSecrets> {
    let sealed_key = layout::repo_sealed_key(namespace);
    let sealed = match store.get_bytes(&sealed_key).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => {
            return Err(Error::RepoMissing {
                namespace: namespace.into(),
                location: store.name().into(),
                key_object: sealed_key,
            });
        }
        Err(e) => return Err(e),
    };
    keys::unseal(key, namespace, &sealed).map_err(|e| unseal_error(store, namespace, e))
}

fn unseal_error(store: &Store, namespace: &str, err: UnsealError) -> Error {
    match err {
        UnsealError::WrongKey => Error::WrongLocationKey {
            namespace: namespace.into(),
            location: store.name().into(),
            key_object: layout::repo_sealed_key(namespace),
        },
        UnsealError::Format => Error::Repo {
            op: "open",
            namespace: namespace.into(),
            detail: format!(
                "{} is not a vbackup sealed password (unknown format or truncated)",
                layout::repo_sealed_key(namespace)
            ),
        },
    }
}

fn snapshot_template(ns: &str, volume: &str, backup: &str) -> Result<SnapshotFile> {
    let tags = format!("vbackup,namespace={ns},volume={volume},backup={backup}");
    Ok(SnapshotOptions::default()
        .host(ns.to_string())
        .label(volume.to_string())
        .add_tags(&tags)?
        .to_snapshot()?)
}

fn summarize_backup(snap: &SnapshotFile, activity: &Activity) -> BackupSummary {
    let s = snap.summary.clone().unwrap_or_default();
    BackupSummary {
        snapshot_id: snap.id.to_hex().to_string(),
        parent_id: snap.parent.map(|p| p.to_hex().to_string()),
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        files_read: activity.update().files_read,
        dirs: s.total_dirs_processed,
        bytes_total: s.total_bytes_processed,
        data_added: s.data_added,
        data_added_stored: s.data_added_packed,
        warning_count: activity.warnings().0,
        warnings: activity.warnings().1,
    }
}

fn snapshot_info(s: &SnapshotFile) -> SnapshotInfo {
    let tags: Vec<String> = s.tags.iter().cloned().collect();
    let summary = s.summary.clone().unwrap_or_default();
    SnapshotInfo {
        id: s.id.to_hex().to_string(),
        time: s.time.timestamp(),
        volume: s.label.clone(),
        backup: tags
            .iter()
            .find_map(|t| t.strip_prefix("backup=").map(str::to_string)),
        tags,
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
    }
}

fn ls_entry(path: &str, node: &rustic_core::repofile::Node) -> LsEntry {
    let (kind, link_target) = match &node.node_type {
        NodeType::File => (EntryKind::File, None),
        NodeType::Dir => (EntryKind::Dir, None),
        NodeType::Symlink { .. } => (
            EntryKind::Symlink,
            node.node_type.to_link().to_str().map(str::to_string),
        ),
        _ => (EntryKind::Special, None),
    };
    LsEntry {
        path: path.trim_matches('/').to_string(),
        kind,
        size: if kind == EntryKind::File {
            node.meta.size
        } else {
            0
        },
        mode: node.meta.mode.map(|m| m & 0o7777),
        mtime: node.meta.mtime,
        link_target,
    }
}

/// rustic re-creates hard links after writing files and fails when the second name already
/// exists (a re-run of a restore); removing those names first lets it link them again.
fn unlink_second_hardlink_names(
    nodes: impl Iterator<Item = rustic_core::RusticResult<(PathBuf, rustic_core::repofile::Node)>>,
    dest: &Path,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for item in nodes {
        let (path, node) = item?;
        let meta = &node.meta;
        if node.node_type != NodeType::File || meta.links < 2 || meta.inode == 0 {
            continue;
        }
        if !seen.insert((meta.device_id, meta.inode)) {
            let existing = dest.join(&path);
            if existing.symlink_metadata().is_ok() {
                std::fs::remove_file(&existing)
                    .map_err(Error::io("replace hard link", &existing))?;
            }
        }
    }
    Ok(())
}

/// Turns gitignore-style excludes relative to the volume root into rustic's override globs,
/// which match absolute paths: anchored patterns (a `/` before the end) are rooted at the
/// source, the others match at any depth below it (never in the source's own path), and `!`
/// makes each an exclusion.
fn exclude_globs(source: &Path, patterns: &[String]) -> Vec<String> {
    let root = source.to_string_lossy();
    let root = root.trim_end_matches('/');
    patterns
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty() && !p.starts_with('!'))
        .map(|p| {
            let dir_only = p.ends_with('/');
            let body = p.trim_end_matches('/');
            let glob = if body.contains('/') {
                format!("{root}/{}", body.trim_start_matches('/'))
            } else {
                format!("{root}/**/{body}")
            };
            format!("!{glob}{}", if dir_only { "/" } else { "" })
        })
        .collect()
}

/// Maps a path relative to the volume root onto the snapshot's tree.
fn snapshot_path(path: &str) -> Result<String> {
    let rel = path.trim_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(Error::BadInput(format!(
            "path {path:?} must stay inside the volume (no `..`)"
        )));
    }
    Ok(if rel.is_empty() {
        SNAPSHOT_ROOT.to_string()
    } else {
        format!("{SNAPSHOT_ROOT}/{rel}")
    })
}

/// Namespaces are DNS labels; anything else must not become an object path.
fn validate_namespace(namespace: &str) -> Result<()> {
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
fn validate_tag_value(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains(',') || value.chars().any(char::is_whitespace) {
        return Err(Error::BadInput(format!(
            "{what} {value:?} must be non-empty, without commas or spaces"
        )));
    }
    Ok(())
}

fn bytesize(n: u32) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n.into())
}

struct CountingWriter<'a, W> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
