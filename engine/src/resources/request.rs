//! What a backup should cover, built once from flags (or a schedule) and handed to the
//! engine.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::filter::{NamespaceFilter, ResourceFilter};
use super::selector::LabelSelector;
use crate::{Error, Result};

/// Default time a backup is kept: 30 days, as Velero.
pub const DEFAULT_TTL: Duration = Duration::from_secs(720 * 3600);

/// Which cluster-scoped objects a backup takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterResources {
    /// All of them when the whole cluster is backed up; otherwise only the ones the
    /// selected namespaced objects need (their PVs, CRDs, StorageClasses, bindings).
    #[default]
    Auto,
    /// Every cluster-scoped object the resource filters cover.
    True,
    /// None (the namespaces themselves are still recorded).
    False,
}

impl std::str::FromStr for ClusterResources {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(ClusterResources::Auto),
            "true" => Ok(ClusterResources::True),
            "false" => Ok(ClusterResources::False),
            other => Err(Error::BadInput(format!(
                "--include-cluster-resources must be auto, true or false, not {other:?}"
            ))),
        }
    }
}

/// Volume-data options: the volume work reads these; the object backup records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeOptions {
    /// Copy pod volume data (`None` = the policy's default: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_up_volumes: Option<bool>,
    /// Copy every claim-backed volume unless opted out (false: only opted-in volumes).
    #[serde(default = "yes")]
    pub default_volumes_to_fs_backup: bool,
    /// Copy claims through CSI snapshots by default.
    #[serde(default)]
    pub snapshot_volumes: bool,
    /// Move snapshot data into the location (and delete the snapshot).
    #[serde(default)]
    pub snapshot_move_data: bool,
    /// The snapshot class for every snapshot (default: the class fitting each driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_class: Option<String>,
    /// ConfigMap (in the vbackup namespace) holding Velero-style volume policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policies_configmap: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            back_up_volumes: None,
            default_volumes_to_fs_backup: true,
            snapshot_volumes: false,
            snapshot_move_data: false,
            snapshot_class: None,
            resource_policies_configmap: None,
        }
    }
}

impl VolumeOptions {
    /// The switches the shared volume policy reads.
    pub fn policy(&self) -> crate::policy::PolicyOptions {
        crate::policy::PolicyOptions {
            default_volumes_to_fs_backup: self.default_volumes_to_fs_backup,
            snapshot_volumes: self.snapshot_volumes,
            snapshot_move_data: self.snapshot_move_data,
        }
    }
}

/// Everything that defines one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    /// Backup name (also its folder in the location).
    pub name: String,
    /// Namespaces covered.
    #[serde(default)]
    pub namespaces: NamespaceFilter,
    /// Resource types covered.
    #[serde(default)]
    pub resources: ResourceFilter,
    /// Label selector (`-l`); empty selects everything.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Which cluster-scoped objects to take.
    #[serde(default)]
    pub include_cluster_resources: ClusterResources,
    /// Also take what selected pods and workloads reference (on by default with a selector).
    pub include_dependencies: bool,
    /// The storage location name (`None` = the default location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    /// How long to keep the backup.
    #[serde(with = "humantime_serde_secs")]
    pub ttl: Duration,
    /// Labels recorded on the backup.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Volume-data options.
    #[serde(default)]
    pub volumes: VolumeOptions,
    /// Hooks from `--hooks-file` (Velero's `spec.hooks`).
    #[serde(default, skip_serializing_if = "crate::hooks::HookFile::is_empty")]
    pub hooks: crate::hooks::HookFile,
}

impl BackupRequest {
    /// A request that backs up everything, with the defaults of `backup create NAME`.
    pub fn new(name: impl Into<String>) -> Self {
        BackupRequest {
            name: name.into(),
            namespaces: NamespaceFilter::default(),
            resources: ResourceFilter::default(),
            selector: String::new(),
            include_cluster_resources: ClusterResources::Auto,
            include_dependencies: true,
            storage_location: None,
            ttl: DEFAULT_TTL,
            labels: BTreeMap::new(),
            volumes: VolumeOptions::default(),
            hooks: crate::hooks::HookFile::default(),
        }
    }

    /// Checks what can be checked without a cluster; returns the parsed selector.
    pub fn validate(&self) -> Result<LabelSelector> {
        validate_name(&self.name, "backup")?;
        LabelSelector::parse(&self.selector)
    }

    /// True when everything namespaced is taken (all namespaces, no selector), so
    /// `auto` takes all cluster-scoped objects as well.
    pub fn is_whole_cluster(&self) -> bool {
        self.namespaces.is_all() && self.selector.trim().is_empty()
    }

    /// True when namespaced objects that selected pods and workloads reference are added
    /// (asked for, and a selector narrows the selection).
    pub fn adds_namespaced_dependencies(&self) -> bool {
        self.include_dependencies && !self.selector.trim().is_empty()
    }

    /// True when the cluster-scoped objects selected objects need are added (`auto` on a
    /// partial backup; a whole-cluster backup takes them all anyway).
    pub fn adds_cluster_dependencies(&self) -> bool {
        self.include_cluster_resources == ClusterResources::Auto && !self.is_whole_cluster()
    }

    /// True when cluster-scoped types are listed in full.
    pub fn takes_all_cluster_resources(&self) -> bool {
        match self.include_cluster_resources {
            ClusterResources::True => true,
            ClusterResources::False => false,
            ClusterResources::Auto => self.is_whole_cluster(),
        }
    }
}

/// Names are object-store folders and Kubernetes label values: DNS-1123 labels.
pub fn validate_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "invalid {what} name {name:?}: use up to 63 lower-case letters, digits and '-', \
             starting and ending with a letter or digit"
        )))
    }
}

/// Parses `k=v,k2=v2` label lists.
pub fn parse_labels(values: &[String]) -> Result<BTreeMap<String, String>> {
    super::filter::split_list(values)
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(Error::BadInput(format!(
                "invalid label {kv:?}: use key=value"
            ))),
        })
        .collect()
}

/// Serde for durations as humantime text (`720h`, `1h 30m`).
pub(crate) mod humantime_serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_cluster_backup_takes_every_cluster_object_without_a_dependency_walk() {
        let r = BackupRequest::new("nightly");
        assert!(r.is_whole_cluster() && r.takes_all_cluster_resources());
        assert!(!r.adds_namespaced_dependencies() && !r.adds_cluster_dependencies());
    }

    #[test]
    fn selector_or_namespace_list_turns_dependency_walk_on() {
        let mut r = BackupRequest::new("b");
        r.selector = "app=web".into();
        assert!(r.adds_namespaced_dependencies() && r.adds_cluster_dependencies());
        assert!(!r.takes_all_cluster_resources());
        let mut r = BackupRequest::new("b");
        r.namespaces.include = vec!["nc".into()];
        assert!(!r.adds_namespaced_dependencies() && r.adds_cluster_dependencies());
        r.include_cluster_resources = ClusterResources::False;
        assert!(!r.adds_cluster_dependencies());
        r.include_cluster_resources = ClusterResources::True;
        assert!(r.takes_all_cluster_resources());
    }

    #[test]
    fn request_round_trips_through_json_with_a_readable_ttl() {
        let r = BackupRequest::new("b");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ttl"], "30days");
        assert_eq!(serde_json::from_value::<BackupRequest>(json).unwrap(), r);
    }

    #[test]
    fn bad_names_and_labels_are_refused() {
        assert!(validate_name("Nightly", "backup").is_err());
        assert!(validate_name("a/b", "backup").is_err());
        assert!(validate_name("nightly-2", "backup").is_ok());
        assert!(parse_labels(&["a=b,c".into()]).is_err());
        assert_eq!(parse_labels(&["a=b".into()]).unwrap()["a"], "b");
    }
}
