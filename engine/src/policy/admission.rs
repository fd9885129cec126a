//! What the admission webhook adds to a pod: the volume annotations [`decide_pod`] implies
//! under the pod's [`AppliedPolicy`], the streaming dump and restore of a database container
//! (from [`detect`]), and a marker naming the policy.
//!
//! At admission the pod's claims may not be bound yet (a StatefulSet's claims bind when the
//! pod is scheduled), so every claim is taken as bound here: the annotations say which volumes
//! hold data worth copying; a backup still checks the claims' real state.
//!
//! Backups and `explain` apply [`with_admission_annotations`] to pods that were created
//! before the webhook ran, so protection never depends on when a pod was created.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod};

use super::annotations::{
    BACKUP_VOLUMES, BACKUP_VOLUMES_EXCLUDES, EXCLUDE_LABEL, MOVER_LABEL, labelled_true,
};
use crate::hooks::annotations::{
    BACKUP_COMMAND, BACKUP_COMMAND_CONTAINER, FILE_EXTENSION, RESTORE_COMMAND,
};
use crate::hooks::databases::detect;
use crate::hooks::dump::dump_request;

use super::backup_policy::{AppliedPolicy, VolumeMode};
use super::decide::{Action, ClaimFacts, PolicyInput, PolicyOptions, Reason, decide_pod};

/// Marker the webhook leaves on every pod it annotated: the policy that applied. A pod that
/// carries it (re-invoked, restored) is never annotated again.
pub const POLICY_ANNOTATION: &str = "vbackup.io/policy";

/// Why the webhook leaves a pod as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untouched {
    /// The pod already carries [`POLICY_ANNOTATION`].
    AlreadyAnnotated,
    /// The pod or its namespace is labelled `vbackup.io/exclude=true`, or it is a mover pod.
    Excluded(String),
}

/// The annotations the webhook would add to `pod` under `policy`, user's keys left out (a
/// key the pod already has is never changed).
pub fn admission_annotations(
    pod: &Pod,
    namespace_labels: &BTreeMap<String, String>,
    policy: &AppliedPolicy,
) -> Result<BTreeMap<String, String>, Untouched> {
    let empty = BTreeMap::new();
    let existing = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    if existing.contains_key(POLICY_ANNOTATION) {
        return Err(Untouched::AlreadyAnnotated);
    }
    let pod_labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    if pod_labels.contains_key(MOVER_LABEL) {
        return Err(Untouched::Excluded(format!(
            "vbackup's own mover pod ({MOVER_LABEL})"
        )));
    }
    if let Some(label) = labelled_true(namespace_labels, &[EXCLUDE_LABEL]) {
        return Err(Untouched::Excluded(format!(
            "namespace labelled {label}=true"
        )));
    }
    if let Some(label) = labelled_true(pod_labels, &[EXCLUDE_LABEL]) {
        return Err(Untouched::Excluded(format!("pod labelled {label}=true")));
    }
    let mut wanted = volume_annotations(pod, namespace_labels, policy);
    if policy.databases {
        wanted.extend(database_annotations(pod, existing));
    }
    wanted.insert(POLICY_ANNOTATION.into(), policy.name.clone());
    wanted.retain(|k, _| !existing.contains_key(k));
    Ok(wanted)
}

/// `pod` as it would be after admission: the webhook's annotations merged in (the pod's own
/// keys kept). Pods already annotated, or excluded, come back unchanged.
pub fn with_admission_annotations(
    pod: &Pod,
    namespace_labels: &BTreeMap<String, String>,
    policy: &AppliedPolicy,
) -> Pod {
    let mut pod = pod.clone();
    if let Ok(added) = admission_annotations(&pod, namespace_labels, policy) {
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(added);
    }
    pod
}

/// The excludes (opt-out) or includes (opt-in) list, from the one policy function.
fn volume_annotations(
    pod: &Pod,
    namespace_labels: &BTreeMap<String, String>,
    policy: &AppliedPolicy,
) -> BTreeMap<String, String> {
    let claims = assumed_bound_claims(pod);
    let input = PolicyInput {
        namespace_labels,
        claims: &claims,
        policies: None,
        options: PolicyOptions::default(),
    };
    let decisions = decide_pod(pod, &input);
    let (key, names): (&str, Vec<&str>) = match policy.volumes {
        VolumeMode::OptOut => (
            BACKUP_VOLUMES_EXCLUDES,
            decisions
                .iter()
                // configMap, secret, projected and downwardAPI volumes are never copied by
                // anyone (Velero skips them too): listing them would only add noise.
                .filter(|d| {
                    d.action == Action::Skip && !matches!(d.reason, Reason::FromObjects { .. })
                })
                .map(|d| d.volume.as_str())
                .collect(),
        ),
        VolumeMode::OptIn => (
            BACKUP_VOLUMES,
            decisions
                .iter()
                .filter(|d| matches!(d.action, Action::Copy(_)))
                .map(|d| d.volume.as_str())
                .collect(),
        ),
    };
    if names.is_empty() {
        return BTreeMap::new();
    }
    BTreeMap::from([(key.to_string(), names.join(","))])
}

/// The streaming dump and restore of the first database the pod runs, unless the pod asks
/// for a dump of its own (vbackup's or K8up's keys): one dump per pod, the user's first.
fn database_annotations(
    pod: &Pod,
    existing: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if dump_request(existing).is_some() {
        return BTreeMap::new();
    }
    let Some(db) = pod.spec.as_ref().and_then(|s| detect(s).into_iter().next()) else {
        return BTreeMap::new();
    };
    // JSON arrays: the dump annotations read a value starting with `[` as the argv itself.
    let argv = |words: Vec<String>| serde_json::Value::from(words).to_string();
    BTreeMap::from([
        (BACKUP_COMMAND.to_string(), argv(db.backup_command())),
        (BACKUP_COMMAND_CONTAINER.to_string(), db.container.clone()),
        (FILE_EXTENSION.to_string(), db.file_extension().to_string()),
        (RESTORE_COMMAND.to_string(), argv(db.restore_command())),
    ])
}

/// Every claim the pod names, as a bound claim with no labels.
fn assumed_bound_claims(pod: &Pod) -> BTreeMap<String, ClaimFacts> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| {
            let mut pvc = PersistentVolumeClaim::default();
            pvc.metadata.name = Some(c.claim_name.clone());
            pvc.status = Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            });
            let facts = ClaimFacts {
                pvc,
                pv: None,
                snapshot_class: None,
            };
            (c.claim_name.clone(), facts)
        })
        .collect()
}
