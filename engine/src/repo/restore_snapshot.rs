//! Restoring a snapshot, or one path in it, into a directory.

use std::path::{Path, PathBuf};

use rustic_core::repofile::NodeType;
use rustic_core::{LocalDestination, LsOptions, RestoreOptions};

use super::session::State;
use super::{RestoreSummary, VolumeRepo, VolumeRestore, restore};
use crate::{Error, Result};

impl VolumeRepo {
    /// Restores a snapshot, or one path in it, into `req.target`. Existing files that already
    /// match (size and mtime, or contents with `verify_existing`) are left alone, so re-running
    /// an interrupted restore only writes what is missing. Owners are restored by numeric id.
    pub async fn restore(&self, req: VolumeRestore) -> Result<RestoreSummary> {
        let path = req.path.clone().unwrap_or_default();
        let inner = self.snapshot_path(&path)?;
        let (snapshot, target, verify) = (
            req.snapshot.clone(),
            req.target.clone(),
            req.verify_existing,
        );
        let on_s3 = self.store.url().starts_with("s3://");
        let workers = match self.options.restore_workers {
            0 if on_s3 => restore::DEFAULT_S3_RESTORE_WORKERS,
            0 => restore::default_restore_workers(),
            n => n,
        };
        let listing = self.index_listing().await?;
        let packs = self.pack_reader();
        self.run(
            "restore",
            req.stall_after,
            req.progress.clone(),
            move |state, activity| {
                let (repo, listing) = state.full(listing)?;
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
                    packs.as_ref(),
                    ls.clone(),
                    &dest_path,
                    restore::ContentOptions {
                        single_file: !node.is_dir(),
                        verify,
                        workers,
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
                Ok((summary, State::Full(repo, listing)))
            },
        )
        .await
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
