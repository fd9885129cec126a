//! Which volumes are copied, how, and why: one pure function ([`decide_pod`]) shared by the
//! admission webhook, `kubectl vbackup explain` and backups, so all three always agree.
//!
//! Inputs are plain values (the pod, its namespace's labels, its claims, optional Velero-style
//! volume policies, backup-wide switches); nothing here talks to the cluster.

pub mod admission;
pub mod annotations;
pub mod backup_policy;
mod decide;
pub mod exclude_paths;
pub mod quantity;
pub mod resource_policies;
#[cfg(test)]
mod tests;

pub use admission::{POLICY_ANNOTATION, admission_annotations, with_admission_annotations};
pub use backup_policy::{AppliedPolicy, BackupPolicy, BackupPolicySpec, VolumeMode, select_policy};
pub use decide::{
    Action, ClaimFacts, Method, PolicyInput, PolicyOptions, Reason, VolumeDecision, decide_pod,
    decide_unused_claim,
};
pub use exclude_paths::ExcludePaths;
pub use resource_policies::{PolicyAction, ResourcePolicies, VolumeFacts};
