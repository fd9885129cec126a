//! The metadata files: `vbackup-backup.json` and `vbackup-restore.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::request::BackupRequest;
use crate::resources::types::ObjectRef;
use crate::restore::request::RestoreRequest;

/// At most this many per-item errors are kept in a record; the total is always counted.
pub const MAX_RECORDED_ERRORS: usize = 1000;
/// API version written into records.
pub const API_VERSION: &str = "vbackup.io/v1alpha1";

/// How a backup or restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Every item was processed without error.
    Completed,
    /// It finished, but some items failed; each is listed.
    PartiallyFailed,
    /// It stopped: nothing usable (see the failure reason).
    Failed,
    /// Started but has no metadata (still running, or the process died).
    Incomplete,
}

impl Phase {
    /// `Completed` or `PartiallyFailed` from the number of item errors.
    pub fn from_errors(errors: u64) -> Phase {
        if errors == 0 {
            Phase::Completed
        } else {
            Phase::PartiallyFailed
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// One object that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// What went wrong.
    pub message: String,
}

/// Objects left out by default, per type and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSummary {
    /// `resource.group`.
    pub resource: String,
    /// Why they are left out.
    pub reason: String,
    /// How many objects; 0 when the whole type is left out without being listed.
    pub count: u64,
}

/// One volume's result; filled in by the volume-data work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    /// Namespace of the claim or pod.
    pub namespace: String,
    /// PVC (or pod volume) name.
    pub name: String,
    /// `Completed`, `Failed`, `Skipped`…
    pub phase: String,
    /// Why, when skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Snapshot identifier in the namespace's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Bytes copied.
    #[serde(default)]
    pub bytes: u64,
    /// How it was copied (file copy, CSI snapshot, snapshot + data move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<crate::policy::Method>,
    /// The pods that mounted it, as `POD/VOLUME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// Files copied.
    #[serde(default)]
    pub files: u64,
    /// New data stored in the repository (compressed, encrypted).
    #[serde(default)]
    pub bytes_added: u64,
    /// How long the copy took, in seconds.
    #[serde(default)]
    pub duration_seconds: u64,
    /// What could not be copied inside the volume, or a choice worth knowing about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The identity of the application that used the claim, for restore movers in namespaces
    /// whose Pod Security level forbids root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<crate::volumes::AppSecurity>,
    /// The CSI VolumeSnapshot kept in the cluster (method `snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<String>,
}

impl VolumeRecord {
    /// A record of `namespace/name` in `phase`, everything else empty.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, phase: &str) -> Self {
        VolumeRecord {
            namespace: namespace.into(),
            name: name.into(),
            phase: phase.into(),
            message: None,
            snapshot: None,
            bytes: 0,
            method: None,
            pods: Vec::new(),
            files: 0,
            bytes_added: 0,
            duration_seconds: 0,
            warnings: Vec::new(),
            app: None,
            volume_snapshot: None,
        }
    }
}

/// Counts, errors and warnings common to backups and restores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Objects per `resource.group`.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Per-item errors (the first [`MAX_RECORDED_ERRORS`]).
    #[serde(default)]
    pub errors: Vec<ItemError>,
    /// Total number of item errors.
    #[serde(default)]
    pub error_count: u64,
    /// Warnings, one line each.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Tally {
    /// Counts one object of `resource`.
    pub fn count(&mut self, resource: &str) {
        *self.counts.entry(resource.to_string()).or_default() += 1;
    }

    /// Records a failed item.
    pub fn error(&mut self, object: &ObjectRef, message: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_RECORDED_ERRORS {
            self.errors.push(ItemError {
                object: object.clone(),
                message: message.into(),
            });
        }
    }

    /// Records a warning (the first [`MAX_RECORDED_ERRORS`]).
    pub fn warn(&mut self, message: impl Into<String>) {
        if self.warnings.len() < MAX_RECORDED_ERRORS {
            self.warnings.push(message.into());
        }
    }

    /// Objects counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Where a backup stands, written last into `vbackup-backup.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// How it ended.
    pub phase: Phase,
    /// Why it failed, when `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Start time (RFC 3339).
    pub started: String,
    /// Finish time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// When it may be deleted (RFC 3339).
    pub expires: String,
    /// The location it was written to.
    pub location: String,
    /// The API server's version (`gitVersion`).
    #[serde(default)]
    pub cluster_version: String,
    /// Objects backed up, per type, and item errors.
    #[serde(flatten)]
    pub tally: Tally,
    /// Objects left out by default, and why.
    #[serde(default)]
    pub skipped: Vec<SkippedSummary>,
    /// Compressed archive size in bytes.
    #[serde(default)]
    pub archive_bytes: u64,
    /// Volume results (filled by the volume-data work).
    #[serde(default)]
    pub volumes: Vec<VolumeRecord>,
    /// Hooks attempted and failed.
    #[serde(default)]
    pub hooks: crate::hooks::HookCounts,
    /// Streaming dumps taken (`vbackup.io/backup-command`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dumps: Vec<crate::hooks::dump::DumpRecord>,
}

/// `vbackup-backup.json`: the request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `Backup`.
    pub kind: String,
    /// What was asked.
    pub spec: BackupRequest,
    /// What happened.
    pub status: BackupStatus,
}

impl BackupRecord {
    /// The backup's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Where a restore stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// How it ended.
    pub phase: Phase,
    /// Why it failed, when `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Start time (RFC 3339).
    pub started: String,
    /// Finish time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// Objects restored per type (created or updated), item errors, warnings.
    #[serde(flatten)]
    pub tally: Tally,
    /// Objects that existed already and were left as they are.
    #[serde(default)]
    pub unchanged: u64,
    /// Objects that existed already and were patched (`update` policy).
    #[serde(default)]
    pub updated: u64,
    /// Objects left out by a per-kind rule, with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedSummary>,
    /// Volume results (filled by the volume-data work).
    #[serde(default)]
    pub volumes: Vec<VolumeRecord>,
    /// Post-restore exec hooks attempted and failed.
    #[serde(default)]
    pub hooks: crate::hooks::HookCounts,
    /// Streaming dumps fed back to their pods' restore commands, and those that failed.
    #[serde(default)]
    pub dumps: crate::hooks::DumpCounts,
}

/// `vbackup-restore.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `Restore`.
    pub kind: String,
    /// What was asked.
    pub spec: RestoreRequest,
    /// What happened.
    pub status: RestoreStatus,
}

/// Adds one to the per-reason skipped summary.
pub fn add_skipped(skipped: &mut Vec<SkippedSummary>, resource: &str, reason: &str) {
    match skipped
        .iter_mut()
        .find(|s| s.resource == resource && s.reason == reason)
    {
        Some(s) => s.count += 1,
        None => skipped.push(SkippedSummary {
            resource: resource.into(),
            reason: reason.into(),
            count: 1,
        }),
    }
}

/// Now, as RFC 3339 to the second.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_capped_but_always_counted() {
        let mut t = Tally::default();
        let o = ObjectRef::cluster("x", "y");
        for _ in 0..MAX_RECORDED_ERRORS + 5 {
            t.error(&o, "boom");
        }
        assert_eq!(t.errors.len(), MAX_RECORDED_ERRORS);
        assert_eq!(t.error_count, MAX_RECORDED_ERRORS as u64 + 5);
        assert_eq!(Phase::from_errors(t.error_count), Phase::PartiallyFailed);
        assert_eq!(Phase::from_errors(0), Phase::Completed);
    }

    #[test]
    fn skipped_objects_are_summarised_per_type_and_reason() {
        let mut s = Vec::new();
        add_skipped(&mut s, "events", "history");
        add_skipped(&mut s, "events", "history");
        add_skipped(&mut s, "pods", "owned");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].count, 2);
    }
}
