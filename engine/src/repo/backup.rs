//! Backing up into a repository: a directory tree, or one byte stream.

use std::path::Path;
use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource,
    SnapshotOptions,
};
use tokio::io::AsyncRead;
use tokio::runtime::Handle;

use super::archiver::{self, ArchiveRequest};
use super::backend::StoreBackend;
use super::progress::Activity;
use super::session::State;
use super::source::{CountedSource, StreamSource};
use super::{
    SNAPSHOT_ROOT, SnapshotSummary, StreamBackup, VolumeBackup, VolumeRepo, validate_tag_value,
};
use crate::{Error, Result};

impl VolumeRepo {
    /// Backs up a directory tree as a new snapshot of `req.volume`, with the volume's latest
    /// snapshot as parent. Files, directories, symlinks, special files, permissions, owners
    /// (numeric and by name), timestamps and hard-link counts are recorded; unreadable entries
    /// are skipped with a warning in the log, as restic does.
    pub async fn backup_dir(&self, req: VolumeBackup) -> Result<SnapshotSummary> {
        let source = tokio::fs::canonicalize(&req.source)
            .await
            .map_err(Error::io("open backup source", &req.source))?;
        let is_dir = tokio::fs::metadata(&source)
            .await
            .map_err(Error::io("open backup source", &source))?
            .is_dir();
        if !is_dir {
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
        let backend = self.pack_reader();
        self.run(
            "backup",
            req.stall_after,
            req.progress.clone(),
            move |state, activity| {
                let snap = snapshot_template(&ns, &volume, &backup)?;
                let src = CountedSource {
                    inner: LocalSource::new(
                        LocalSourceSaveOptions::default(),
                        &excludes,
                        &LocalSourceFilterOptions::default(),
                        &[&source],
                    )?,
                    activity: activity.clone(),
                };
                let req = ArchiveRequest {
                    backup_path: &source,
                    as_path: Some(Path::new(SNAPSHOT_ROOT)),
                    use_parent: true,
                };
                archive(state, &backend, &src, snap, &req, activity)
            },
        )
        .await
    }

    /// Backs up several volumes one after the other. Each finished volume's snapshot is saved
    /// even when a later one fails; the result lists every volume with its outcome.
    pub async fn backup_volumes(
        &self,
        volumes: Vec<VolumeBackup>,
    ) -> Vec<(String, Result<SnapshotSummary>)> {
        let mut results = Vec::with_capacity(volumes.len());
        for volume in volumes {
            let name = volume.volume.clone();
            results.push((name, self.backup_dir(volume).await));
        }
        results
    }

    /// Backs up a byte stream as the one file `<file_name>` of a new snapshot (no parent).
    /// Memory stays bounded: the stream is chunked as it arrives.
    pub async fn backup_stream<R>(&self, req: StreamBackup, reader: R) -> Result<SnapshotSummary>
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
        let backend = self.pack_reader();
        self.run(
            "stream backup",
            req.stall_after,
            req.progress.clone(),
            move |state, activity| {
                let snap = snapshot_template(&ns, &volume, &backup)?;
                let reader = tokio_util::io::SyncIoBridge::new_with_handle(reader, handle);
                let src = StreamSource::new(path.clone(), reader);
                activity.add_file_read();
                let req = ArchiveRequest {
                    backup_path: &path,
                    as_path: None,
                    use_parent: false,
                };
                archive(state, &backend, &src, snap, &req, activity)
            },
        )
        .await
    }
}

/// Archives `src` with vbackup's archiver; a kept index is stale afterwards, so the
/// repository goes back without it.
fn archive<R>(
    state: State,
    backend: &Arc<StoreBackend>,
    src: &R,
    snap: SnapshotFile,
    req: &ArchiveRequest<'_>,
    activity: &Activity,
) -> Result<(SnapshotSummary, State)>
where
    R: ReadSource + Sync,
    <R as ReadSource>::Open: Send,
{
    let repo = state.into_open();
    let snap = archiver::archive(&repo, backend, src, snap, req, activity)?;
    Ok((summarize_backup(&snap, activity), State::Open(repo)))
}

pub(super) fn snapshot_template(ns: &str, volume: &str, backup: &str) -> Result<SnapshotFile> {
    let tags = format!("vbackup,namespace={ns},volume={volume},backup={backup}");
    Ok(SnapshotOptions::default()
        .host(ns.to_string())
        .label(volume.to_string())
        .add_tags(&tags)?
        .to_snapshot()?)
}

fn summarize_backup(snap: &SnapshotFile, activity: &Activity) -> SnapshotSummary {
    let s = snap.summary.clone().unwrap_or_default();
    SnapshotSummary {
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
