//! The annotations that choose volumes, in Velero's spelling and vbackup's own.
//!
//! Velero's keys are honoured exactly as Velero reads them, so charts written for Velero work
//! unchanged; vbackup's twins (`vbackup.io/…`) mean the same. When both are present their
//! lists are merged.

use std::collections::BTreeMap;

/// Velero's opt-in list: the pod volumes to copy when volumes are not copied by default.
pub const VELERO_BACKUP_VOLUMES: &str = "backup.velero.io/backup-volumes";
/// Velero's opt-out list: the pod volumes never to copy.
pub const VELERO_BACKUP_VOLUMES_EXCLUDES: &str = "backup.velero.io/backup-volumes-excludes";
/// vbackup's opt-in list.
pub const BACKUP_VOLUMES: &str = "vbackup.io/backup-volumes";
/// vbackup's opt-out list.
pub const BACKUP_VOLUMES_EXCLUDES: &str = "vbackup.io/backup-volumes-excludes";
/// Label on a pod or namespace that leaves all its volumes alone.
pub const EXCLUDE_LABEL: &str = "vbackup.io/exclude";
/// Label of vbackup's own mover pods: never backed up, never annotated.
pub const MOVER_LABEL: &str = "vbackup.io/mover";
/// Labels that exclude an object (and so its volumes) from backups.
pub const EXCLUDE_FROM_BACKUP_LABELS: [&str; 2] = [
    "vbackup.io/exclude-from-backup",
    "velero.io/exclude-from-backup",
];
/// PVC annotation: gitignore-style globs, comma separated, of paths not to copy.
pub const EXCLUDE_PATHS: &str = "vbackup.io/exclude-paths";
/// K8up's PVC annotation: a JSON array of restic arguments (its `--exclude` values are used).
pub const K8UP_RESTIC_ARGS: &str = "k8up.io/backup-restic-args";

/// Which annotation named a volume in a list.
pub fn listing_annotation(
    annotations: &BTreeMap<String, String>,
    keys: &[&'static str],
    volume: &str,
) -> Option<&'static str> {
    keys.iter().copied().find(|key| {
        annotations
            .get(*key)
            .is_some_and(|v| list(v).any(|n| n == volume))
    })
}

/// The opt-in annotations, Velero's first.
pub const OPT_IN: [&str; 2] = [VELERO_BACKUP_VOLUMES, BACKUP_VOLUMES];
/// The opt-out annotations, Velero's first.
pub const OPT_OUT: [&str; 2] = [VELERO_BACKUP_VOLUMES_EXCLUDES, BACKUP_VOLUMES_EXCLUDES];

/// The names in a comma-separated annotation value (spaces around names are ignored, as
/// people write `a, b`; empty entries are dropped).
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// True when a label map carries `key: "true"` for any of `keys`.
pub fn labelled_true(labels: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find(|k| labels.get(**k).is_some_and(|v| v == "true"))
        .map(|k| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lists_tolerate_spaces_and_empty_entries() {
        assert_eq!(
            list(" data, cache,,logs ").collect::<Vec<_>>(),
            ["data", "cache", "logs"]
        );
    }

    #[test]
    fn velero_and_vbackup_lists_both_count() {
        let a = map(&[
            (VELERO_BACKUP_VOLUMES_EXCLUDES, "cache"),
            (BACKUP_VOLUMES_EXCLUDES, "tmp"),
        ]);
        assert_eq!(
            listing_annotation(&a, &OPT_OUT, "cache"),
            Some(VELERO_BACKUP_VOLUMES_EXCLUDES)
        );
        assert_eq!(
            listing_annotation(&a, &OPT_OUT, "tmp"),
            Some(BACKUP_VOLUMES_EXCLUDES)
        );
        assert_eq!(listing_annotation(&a, &OPT_OUT, "data"), None);
    }
}
