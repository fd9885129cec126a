//! Garbage collection: delete the backups that expired or that no `--keep-*` rule of their
//! schedule keeps (their volume snapshots, archive, log and metadata), then prune the
//! repositories so the space is really given back. Deletes come first and write nothing, so
//! gc works on a full bucket; prune only writes small index files.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::delete::delete_with;
use super::{BackupSummary, Catalog};
use crate::repo::PruneSummary;
use crate::schedules::retention::{self, Candidate};
use crate::schedules::{Retention, SCHEDULE_LABEL};
use crate::store::{Locations, Store};
use crate::{Error, Result};

/// What gc should do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// The time expiry is judged at.
    pub now: Timestamp,
    /// Each schedule's `--keep-*` rules and the zone its days are counted in.
    pub retention: BTreeMap<String, (Retention, TimeZone)>,
    /// Only list what would be deleted.
    pub dry_run: bool,
    /// How long prune keeps unused packs marked before deleting them; shorter than the
    /// longest backup is safe only when nothing writes to the location meanwhile.
    pub keep_marked: Duration,
}

/// One deleted backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The backup.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Volume snapshots forgotten.
    pub snapshots: usize,
}

/// One repository pruned (or not).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    /// Namespace of the repository.
    pub namespace: String,
    /// Packs deleted now (marked by an earlier gc).
    pub packs_deleted: u64,
    /// Packs newly marked; a gc after `keep_marked` deletes them.
    pub packs_marked: u64,
    /// Unreferenced bytes found.
    pub bytes_unused: u64,
    /// Why pruning failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What gc did in one location.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// The location.
    pub location: String,
    /// Nothing was deleted: this is what would have been.
    pub dry_run: bool,
    /// Backups deleted (or that would be).
    pub deleted: Vec<Deleted>,
    /// Backups that could not be deleted, and why.
    pub failed: Vec<(String, String)>,
    /// Backups without metadata (running, or their writer died), left alone.
    pub incomplete: Vec<String>,
    /// The repositories pruned.
    pub pruned: Vec<Pruned>,
    /// Bytes in the location before.
    pub bytes_before: u64,
    /// Bytes in the location after.
    pub bytes_after: u64,
}

impl GcReport {
    /// Bytes given back to the store by this run.
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }

    /// True when something could not be deleted or pruned.
    pub fn has_failures(&self) -> bool {
        !self.failed.is_empty() || self.pruned.iter().any(|p| p.error.is_some())
    }
}

/// Runs gc on the location behind `store`.
pub async fn run(locations: &Locations, store: &Store, opts: &GcOptions) -> Result<GcReport> {
    if !opts.dry_run {
        store.ensure_writable()?;
    }
    let bytes_before = size(store).await?;
    let catalog = Catalog::new(store.clone());
    let mut candidates = Vec::new();
    let mut incomplete = Vec::new();
    for summary in catalog.backups().await? {
        match summary {
            BackupSummary::Recorded(r) => {
                let Ok(started) = r.status.started.parse::<Timestamp>() else {
                    tracing::warn!(
                        backup = r.name(),
                        "unreadable start time; gc leaves it alone"
                    );
                    continue;
                };
                candidates.push(Candidate {
                    name: r.name().to_string(),
                    started,
                    expires: r.status.expires.parse().ok(),
                    phase: r.status.phase,
                    schedule: r.spec.labels.get(SCHEDULE_LABEL).cloned(),
                });
            }
            BackupSummary::Incomplete { name, .. } => incomplete.push(name),
        }
    }
    let selected = retention::select(&candidates, opts.now, &opts.retention);
    let mut report = GcReport {
        location: store.name().to_string(),
        dry_run: opts.dry_run,
        deleted: Vec::new(),
        failed: Vec::new(),
        incomplete,
        pruned: Vec::new(),
        bytes_before,
        bytes_after: bytes_before,
    };
    // Each repository is opened once for every delete and the prune that follows.
    let mut repos = match opts.dry_run {
        true => None,
        false => Some(locations.repositories(store).await?),
    };
    for (name, reason) in selected {
        let Some(repos) = repos.as_mut() else {
            report.deleted.push(Deleted {
                name,
                reason: reason.to_string(),
                snapshots: 0,
            });
            continue;
        };
        match delete_with(repos, &catalog, &name).await {
            Ok(deleted) => report.deleted.push(Deleted {
                name,
                reason: reason.to_string(),
                snapshots: deleted.snapshots,
            }),
            Err(e) => report.failed.push((name, e.to_string())),
        }
    }
    if let Some(repos) = repos.as_mut() {
        let keep = jiff::SignedDuration::try_from(opts.keep_marked)
            .ok()
            .and_then(|d| jiff::Span::try_from(d).ok())
            .ok_or_else(|| Error::BadInput("the prune delay is too long".into()))?;
        for (namespace, result) in repos.prune(keep).await {
            report.pruned.push(match result {
                Ok(PruneSummary {
                    packs_deleted,
                    packs_marked,
                    bytes_unused,
                    ..
                }) => Pruned {
                    namespace,
                    packs_deleted,
                    packs_marked,
                    bytes_unused,
                    error: None,
                },
                Err(e) => Pruned {
                    namespace,
                    packs_deleted: 0,
                    packs_marked: 0,
                    bytes_unused: 0,
                    error: Some(e.to_string()),
                },
            });
        }
        report.bytes_after = size(store).await?;
    }
    Ok(report)
}

/// Bytes stored in the location (every object under its root).
pub async fn size(store: &Store) -> Result<u64> {
    Ok(store.list("").await?.iter().map(|o| o.size).sum())
}
