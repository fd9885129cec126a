//! Velero's volume policies (`version: v1`, `volumePolicies:`), read from the same YAML that
//! Velero reads from its resource-policies ConfigMap, with the same matching rules: every
//! condition of a policy must match, and the first matching policy wins.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::quantity::{self, Milli};
use crate::{Error, Result};

/// What a matching policy does with a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Not copied.
    Skip,
    /// Copied file by file (a mover pod).
    FsBackup,
    /// Copied through a CSI snapshot (moved into the repository with `--snapshot-move-data`).
    Snapshot,
}

impl PolicyAction {
    /// The name used in the YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Skip => "skip",
            PolicyAction::FsBackup => "fs-backup",
            PolicyAction::Snapshot => "snapshot",
        }
    }
}

/// The volume types a `volumeTypes` condition may name (Velero's list).
pub const VOLUME_TYPES: &[&str] = &[
    "awsAzureDisk",
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cinder",
    "cephfs",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flocker",
    "flexVolume",
    "gitRepo",
    "glusterfs",
    "gcePersistentDisk",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageOS",
    "vsphereVolume",
];

/// What a policy is matched against: the facts of one volume (from its PV, its claim, or the
/// pod's inline volume source).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeFacts {
    /// Capacity in thousandths of a byte (PV capacity, else the claim's request).
    pub capacity: Option<Milli>,
    /// Storage class name.
    pub storage_class: Option<String>,
    /// NFS server and path.
    pub nfs: Option<(String, String)>,
    /// CSI driver and volume attributes.
    pub csi: Option<(String, BTreeMap<String, String>)>,
    /// Velero's volume type name (`csi`, `nfs`, `hostPath`, `emptyDir`…).
    pub volume_type: Option<String>,
    /// The claim's labels.
    pub pvc_labels: BTreeMap<String, String>,
    /// The claim's phase.
    pub pvc_phase: Option<String>,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePolicies {
    policies: Vec<VolumePolicy>,
}

/// One entry of `volumePolicies`.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumePolicy {
    /// 1-based line of the entry in the YAML, for messages.
    pub line: u64,
    /// What to do with matching volumes.
    pub action: PolicyAction,
    capacity: Option<(Milli, Milli)>,
    storage_class: Vec<String>,
    nfs: Option<NfsCondition>,
    csi: Option<CsiCondition>,
    volume_types: Vec<String>,
    pvc_labels: BTreeMap<String, String>,
    pvc_phase: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    version: Spanned<String>,
    #[serde(default)]
    volume_policies: Vec<Spanned<RawPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    conditions: RawConditions,
    action: RawAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(rename = "type")]
    type_: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // accepted as Velero accepts it; no action here takes parameters
    parameters: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConditions {
    capacity: Option<Spanned<String>>,
    #[serde(default)]
    storage_class: Vec<String>,
    nfs: Option<NfsCondition>,
    csi: Option<CsiCondition>,
    #[serde(default)]
    volume_types: Vec<Spanned<String>>,
    #[serde(default)]
    pvc_labels: BTreeMap<String, String>,
    #[serde(default)]
    pvc_phase: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct NfsCondition {
    #[serde(default)]
    server: String,
    #[serde(default)]
    path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CsiCondition {
    #[serde(default)]
    driver: String,
    #[serde(default)]
    volume_attributes: BTreeMap<String, String>,
}

impl ResourcePolicies {
    /// Parses and validates a policy document; `source` names it in errors (e.g. the
    /// ConfigMap). Every error names the line to fix.
    pub fn parse(source: &str, yaml: &str) -> Result<ResourcePolicies> {
        let doc: Document = serde_saphyr::from_str(yaml).map_err(|e| {
            Error::BadInput(format!("volume policies in {source} are not valid: {e}"))
        })?;
        let bad = |line: u64, what: String| {
            Error::BadInput(format!("volume policies in {source}, line {line}: {what}"))
        };
        if doc.version.value != "v1" {
            return Err(bad(
                doc.version.referenced.line(),
                format!(
                    "version {:?} is not supported; write `version: v1`",
                    doc.version.value
                ),
            ));
        }
        let mut policies = Vec::with_capacity(doc.volume_policies.len());
        for entry in doc.volume_policies {
            let line = entry.referenced.line();
            let raw = entry.value;
            let action = match raw.action.type_.value.as_str() {
                "skip" => PolicyAction::Skip,
                "fs-backup" => PolicyAction::FsBackup,
                "snapshot" => PolicyAction::Snapshot,
                other => {
                    return Err(bad(
                        raw.action.type_.referenced.line(),
                        format!(
                            "action type {other:?} is not supported; use skip, fs-backup or snapshot"
                        ),
                    ));
                }
            };
            let c = raw.conditions;
            let capacity = match &c.capacity {
                None => None,
                Some(cap) => {
                    Some(parse_capacity(&cap.value).map_err(|e| bad(cap.referenced.line(), e))?)
                }
            };
            let mut volume_types = Vec::with_capacity(c.volume_types.len());
            for t in c.volume_types {
                if !VOLUME_TYPES.contains(&t.value.as_str()) {
                    return Err(bad(
                        t.referenced.line(),
                        format!(
                            "volume type {:?} is unknown; known types: {}",
                            t.value,
                            VOLUME_TYPES.join(", ")
                        ),
                    ));
                }
                volume_types.push(t.value);
            }
            if let Some(csi) = &c.csi
                && csi.driver.is_empty()
                && !csi.volume_attributes.is_empty()
            {
                return Err(bad(
                    line,
                    "csi driver should not be empty when filtering by volume attributes".into(),
                ));
            }
            policies.push(VolumePolicy {
                line,
                action,
                capacity,
                storage_class: c.storage_class,
                nfs: c.nfs,
                csi: c.csi,
                volume_types,
                pvc_labels: c.pvc_labels,
                pvc_phase: c.pvc_phase,
            });
        }
        Ok(ResourcePolicies { policies })
    }

    /// Reads the policies from a ConfigMap's data, which must hold exactly one key (as Velero
    /// requires).
    pub fn from_config_map(
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<ResourcePolicies> {
        let mut values = data.iter();
        match (values.next(), values.next()) {
            (Some((key, yaml)), None) => {
                ResourcePolicies::parse(&format!("ConfigMap {name}, key {key}"), yaml)
            }
            _ => Err(Error::BadInput(format!(
                "ConfigMap {name} must hold exactly one data key with the volume policies YAML (it has {})",
                data.len()
            ))),
        }
    }

    /// Reads the policies of ConfigMap `name` in `namespace` (a schedule's or a backup's
    /// `--resource-policies-configmap`); `None` when no name is given.
    pub async fn read(
        client: &kube::Client,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<Option<ResourcePolicies>> {
        let Some(name) = name else { return Ok(None) };
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), namespace);
        let cm = api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!(
                "cannot read ConfigMap {namespace}/{name} (--resource-policies-configmap)"
            )))?
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "--resource-policies-configmap {name}: no ConfigMap {name} in namespace \
                     {namespace}: create it with `kubectl create configmap {name} -n {namespace} \
                     --from-file=policy.yaml`"
                ))
            })?;
        ResourcePolicies::from_config_map(
            &format!("{namespace}/{name}"),
            &cm.data.unwrap_or_default(),
        )
        .map(Some)
    }

    /// The first policy whose every condition matches, with its index.
    pub fn first_match(&self, v: &VolumeFacts) -> Option<(usize, &VolumePolicy)> {
        self.policies.iter().enumerate().find(|(_, p)| p.matches(v))
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[VolumePolicy] {
        &self.policies
    }
}

impl VolumePolicy {
    fn matches(&self, v: &VolumeFacts) -> bool {
        self.capacity_matches(v)
            && (self.storage_class.is_empty()
                || v.storage_class
                    .as_ref()
                    .is_some_and(|sc| self.storage_class.contains(sc)))
            && self.nfs_matches(v)
            && self.csi_matches(v)
            && (self.volume_types.is_empty()
                || v.volume_type
                    .as_ref()
                    .is_some_and(|t| self.volume_types.contains(t)))
            && (self.pvc_labels.is_empty()
                || self
                    .pvc_labels
                    .iter()
                    .all(|(k, val)| v.pvc_labels.get(k) == Some(val)))
            && (self.pvc_phase.is_empty()
                || v.pvc_phase
                    .as_ref()
                    .is_some_and(|p| self.pvc_phase.contains(p)))
    }

    /// Velero's ranges: `lower,upper` with an empty or zero bound meaning open on that side.
    fn capacity_matches(&self, v: &VolumeFacts) -> bool {
        let Some((lower, upper)) = self.capacity else {
            return true;
        };
        let size = v.capacity.unwrap_or(0);
        match (lower, upper) {
            (0, 0) => true,
            (0, up) => size <= up,
            (low, 0) => size >= low,
            (low, up) => low <= size && size <= up,
        }
    }

    fn nfs_matches(&self, v: &VolumeFacts) -> bool {
        let Some(want) = &self.nfs else { return true };
        let Some((server, path)) = &v.nfs else {
            return false;
        };
        (want.server.is_empty() || &want.server == server)
            && (want.path.is_empty() || &want.path == path)
    }

    fn csi_matches(&self, v: &VolumeFacts) -> bool {
        let Some(want) = &self.csi else { return true };
        let Some((driver, attributes)) = &v.csi else {
            return false;
        };
        if want.driver.is_empty() {
            return true;
        }
        &want.driver == driver
            && want
                .volume_attributes
                .iter()
                .all(|(k, val)| attributes.get(k) == Some(val))
    }
}

/// `lower,upper` (either may be empty) into thousandths of a byte; lower must not exceed a
/// non-zero upper.
fn parse_capacity(text: &str) -> std::result::Result<(Milli, Milli), String> {
    let Some((lower, upper)) = text.split_once(',') else {
        return Err(format!(
            "capacity {text:?} must be `LOWER,UPPER` (either may be empty), e.g. \"0,10Gi\" or \"100Gi,\""
        ));
    };
    let bound = |s: &str| -> std::result::Result<Milli, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(0);
        }
        quantity::parse_milli(s)
            .ok_or_else(|| format!("capacity bound {s:?} is not a quantity (e.g. 10Gi, 500M)"))
    };
    let (lower, upper) = (bound(lower)?, bound(upper)?);
    if upper != 0 && lower > upper {
        return Err(format!(
            "capacity {text:?}: the lower bound is above the upper bound"
        ));
    }
    Ok((lower, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: v1
volumePolicies:
- conditions:
    capacity: \"0,10Gi\"
    storageClass: [local-fast]
  action:
    type: skip
- conditions:
    nfs: {}
  action:
    type: fs-backup
- conditions:
    csi:
      driver: ebs.csi.aws.com
    pvcLabels:
      tier: db
  action:
    type: snapshot
- conditions:
    volumeTypes: [hostPath]
    pvcPhase: [Pending]
  action:
    type: skip
";

    fn gi(n: u128) -> Option<Milli> {
        Some(n * (1 << 30) * 1000)
    }

    #[test]
    fn first_matching_policy_wins() {
        let p = ResourcePolicies::parse("test", DOC).unwrap();
        let small_fast = VolumeFacts {
            capacity: gi(5),
            storage_class: Some("local-fast".into()),
            ..Default::default()
        };
        assert_eq!(p.first_match(&small_fast).map(|(i, _)| i), Some(0));
        let big_fast = VolumeFacts {
            capacity: gi(50),
            ..small_fast.clone()
        };
        assert_eq!(p.first_match(&big_fast), None);
        let nfs = VolumeFacts {
            nfs: Some(("10.0.0.1".into(), "/export".into())),
            ..Default::default()
        };
        assert_eq!(
            p.first_match(&nfs).map(|(_, m)| m.action),
            Some(PolicyAction::FsBackup)
        );
    }

    #[test]
    fn csi_and_label_conditions_must_all_match() {
        let p = ResourcePolicies::parse("test", DOC).unwrap();
        let mut v = VolumeFacts {
            csi: Some(("ebs.csi.aws.com".into(), BTreeMap::new())),
            ..Default::default()
        };
        assert_eq!(p.first_match(&v), None, "label missing");
        v.pvc_labels.insert("tier".into(), "db".into());
        assert_eq!(
            p.first_match(&v).map(|(_, m)| m.action),
            Some(PolicyAction::Snapshot)
        );
        v.csi = Some(("other.csi".into(), BTreeMap::new()));
        assert_eq!(p.first_match(&v), None);
    }

    #[test]
    fn volume_type_and_phase_conditions() {
        let p = ResourcePolicies::parse("test", DOC).unwrap();
        let v = VolumeFacts {
            volume_type: Some("hostPath".into()),
            pvc_phase: Some("Pending".into()),
            ..Default::default()
        };
        assert_eq!(p.first_match(&v).map(|(i, _)| i), Some(3));
    }

    #[test]
    fn open_capacity_bounds_follow_velero() {
        let p = |c: &str| parse_capacity(c).unwrap();
        let policy = |cap| VolumePolicy {
            line: 1,
            action: PolicyAction::Skip,
            capacity: Some(cap),
            storage_class: vec![],
            nfs: None,
            csi: None,
            volume_types: vec![],
            pvc_labels: BTreeMap::new(),
            pvc_phase: vec![],
        };
        let facts = |n| VolumeFacts {
            capacity: gi(n),
            ..Default::default()
        };
        assert!(policy(p("100Gi,")).capacity_matches(&facts(200)));
        assert!(!policy(p("100Gi,")).capacity_matches(&facts(50)));
        assert!(policy(p(",10Gi")).capacity_matches(&facts(10)));
        assert!(policy(p("1Gi,2Gi")).capacity_matches(&facts(2)));
        assert!(!policy(p("1Gi,2Gi")).capacity_matches(&facts(3)));
    }

    #[test]
    fn errors_name_the_line_to_fix() {
        let bad_action =
            "version: v1\nvolumePolicies:\n- conditions: {}\n  action:\n    type: custom\n";
        let e = ResourcePolicies::parse("ConfigMap p", bad_action)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("\"custom\""), "{e}");
        let bad_capacity = "version: v1\nvolumePolicies:\n- conditions:\n    capacity: \"10Gi\"\n  action:\n    type: skip\n";
        let e = ResourcePolicies::parse("p", bad_capacity)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("LOWER,UPPER"), "{e}");
        let bad_type = "version: v1\nvolumePolicies:\n- conditions:\n    volumeTypes:\n    - emptydir\n  action:\n    type: skip\n";
        let e = ResourcePolicies::parse("p", bad_type)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("emptydir"), "{e}");
        let unknown_field = "version: v1\nvolumePolicies:\n- conditions:\n    storageclass: [x]\n  action:\n    type: skip\n";
        let e = ResourcePolicies::parse("p", unknown_field)
            .unwrap_err()
            .to_string();
        assert!(e.contains("storageclass") && e.contains('4'), "{e}");
        let e = ResourcePolicies::parse("p", "version: v2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("v1"), "{e}");
        let e = ResourcePolicies::parse("p", "version: v1\nvolumePolicies: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid"), "{e}");
    }

    #[test]
    fn a_config_map_holds_exactly_one_document() {
        let mut data = BTreeMap::new();
        assert!(ResourcePolicies::from_config_map("p", &data).is_err());
        data.insert("policy.yaml".to_string(), DOC.to_string());
        assert_eq!(
            ResourcePolicies::from_config_map("p", &data)
                .unwrap()
                .policies()
                .len(),
            4
        );
        data.insert("other".to_string(), DOC.to_string());
        assert!(ResourcePolicies::from_config_map("p", &data).is_err());
    }
}
