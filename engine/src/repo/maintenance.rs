//! Keeping a repository tidy and sound: forget a backup's snapshots, prune, check.

use rustic_core::{CheckOptions, PruneOptions, ReadSubsetOption};

use super::session::{State, with_repo};
use super::{CheckReport, PRUNE_KEEP_MARKED, PruneSummary, ReadData, VolumeRepo};
use crate::{Error, Result};

impl VolumeRepo {
    /// Forgets every snapshot of a vbackup backup (tag `backup=NAME`); returns their ids.
    /// The data stays until [`VolumeRepo::prune`] finds it unreferenced.
    pub async fn forget_backup(&self, backup: &str) -> Result<Vec<String>> {
        self.store.ensure_writable()?;
        let tag = format!("backup={backup}");
        self.run("forget", None, None, move |state, _| {
            let repo = state.into_open();
            let snaps = repo.get_all_snapshots()?;
            let ids: Vec<_> = snaps
                .iter()
                .filter(|s| s.tags.iter().any(|t| t == &tag))
                .map(|s| s.id)
                .collect();
            repo.delete_snapshots(&ids)?;
            let ids = ids.iter().map(|id| id.to_hex().to_string()).collect();
            Ok((ids, State::Open(repo)))
        })
        .await
    }

    /// Forgets one snapshot (a stream's whose source turned out to be incomplete).
    pub async fn forget_snapshot(&self, snapshot: &str) -> Result<()> {
        self.store.ensure_writable()?;
        let snapshot = snapshot.to_string();
        self.run("forget", None, None, move |state, _| {
            let repo = state.into_open();
            let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
            repo.delete_snapshots(&[snap.id])?;
            Ok(((), State::Open(repo)))
        })
        .await
    }

    /// Removes data no snapshot references any more, in rustic's two phases (see module
    /// docs): safe while backups run, from this cluster or any other.
    pub async fn prune(&self) -> Result<PruneSummary> {
        let keep = PRUNE_KEEP_MARKED
            .parse::<jiff::Span>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.prune_keeping_marked(keep).await
    }

    /// [`VolumeRepo::prune`], deleting packs once they have been marked for `keep_marked`
    /// (shorter than a backup can run only when no backup writes to the repository).
    pub async fn prune_keeping_marked(&self, keep_marked: jiff::Span) -> Result<PruneSummary> {
        self.store.ensure_writable()?;
        self.run("prune", None, None, move |state, _| {
            let repo = state.into_open();
            let opts = PruneOptions::default().keep_delete(keep_marked);
            let plan = repo.prune_plan(&opts)?;
            let stats = &plan.stats;
            let summary = PruneSummary {
                packs_deleted: stats.packs_to_delete.remove,
                packs_marked: stats.packs.unused,
                packs_repacked: stats.packs.repack,
                bytes_unused: stats.size_unref + stats.blobs_sum().unused,
            };
            repo.prune(&opts, plan)?;
            Ok((summary, State::Open(repo)))
        })
        .await
    }

    /// Checks the repository's structure and, with `read`, reads back and verifies pack data.
    pub async fn check(&self, read: ReadData) -> Result<CheckReport> {
        self.run("check", None, None, move |state, _| {
            let mut opts = CheckOptions::default();
            match read {
                ReadData::None => {}
                ReadData::All => opts.read_data = true,
                ReadData::Percent(p) => {
                    opts.read_data = true;
                    opts.read_data_subset = ReadSubsetOption::Percentage(p);
                }
            }
            let results = with_repo!(&state, repo => repo.check(opts))?;
            let mut report = CheckReport::default();
            for (level, finding) in &results.0 {
                // The level type is not exported by rustic_core; its Debug names it.
                if format!("{level:?}") == "Warn" {
                    report.warnings.push(finding.to_string());
                } else {
                    report.errors.push(finding.to_string());
                }
            }
            Ok((report, state))
        })
        .await
    }
}
