//! The decision for each volume of a pod (or a claim no pod uses): copied or not, how, and why.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Volume};
use serde::{Deserialize, Serialize};

use super::annotations::{self as ann, EXCLUDE_FROM_BACKUP_LABELS, EXCLUDE_LABEL, OPT_IN, OPT_OUT};
use super::quantity;
use super::resource_policies::{PolicyAction, ResourcePolicies, VolumeFacts};

/// How a volume's data is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A mover pod mounts the claim read-only and copies its files.
    FsBackup,
    /// A CSI VolumeSnapshot, kept in the cluster.
    Snapshot,
    /// A CSI snapshot, then a mover copies a claim made from it (one consistent instant).
    SnapshotMoveData,
}

impl Method {
    /// How users read it.
    pub fn describe(self) -> &'static str {
        match self {
            Method::FsBackup => "file copy",
            Method::Snapshot => "CSI snapshot",
            Method::SnapshotMoveData => "CSI snapshot + data move",
        }
    }
}

/// Copied or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Copied with this method.
    Copy(Method),
    /// Not copied.
    Skip,
}

/// Why a volume got its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// The pod, its namespace or the claim carries an exclusion label.
    ExcludedByLabel { object: String, label: String },
    /// The volume's contents are API objects, restored with them.
    FromObjects { volume_type: String },
    /// emptyDir: pod-local scratch space.
    EmptyDir,
    /// hostPath: the node's own directory.
    HostPath { path: String },
    /// A generic ephemeral volume lives and dies with its pod.
    Ephemeral,
    /// An inline volume type a mover cannot mount again.
    Unsupported { volume_type: String },
    /// The claim the pod names does not exist.
    ClaimMissing { claim: String },
    /// The claim is not bound to a volume yet, so it holds no data.
    Unbound { phase: String },
    /// A volume policy matched.
    Policy {
        index: usize,
        line: u64,
        action: String,
    },
    /// Listed in an opt-out annotation.
    OptOut { annotation: String },
    /// Listed in an opt-in annotation.
    OptIn { annotation: String },
    /// Volumes are opt-in and this one is not listed.
    NotOptedIn,
    /// The default for claim-backed volumes.
    Default,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ExcludedByLabel { object, label } => {
                write!(f, "{object} is labelled {label}=true")
            }
            Reason::FromObjects { volume_type } => {
                write!(
                    f,
                    "{volume_type} volume: its contents come back with the API objects"
                )
            }
            Reason::EmptyDir => write!(f, "emptyDir is pod-local scratch space, not copied"),
            Reason::HostPath { path } => {
                write!(f, "hostPath {path} is a directory of the node, not copied")
            }
            Reason::Ephemeral => write!(f, "generic ephemeral volume: deleted with its pod"),
            Reason::Unsupported { volume_type } => write!(
                f,
                "inline {volume_type} volume: mount it through a PersistentVolumeClaim to have it copied"
            ),
            Reason::ClaimMissing { claim } => write!(f, "claim {claim} does not exist"),
            Reason::Unbound { phase } => {
                write!(
                    f,
                    "the claim is {phase}, not bound to a volume: it holds no data yet"
                )
            }
            Reason::Policy {
                index,
                line,
                action,
            } => {
                write!(
                    f,
                    "volume policy #{} (line {line}) says {action}",
                    index + 1
                )
            }
            Reason::OptOut { annotation } => write!(f, "listed in the pod's {annotation}"),
            Reason::OptIn { annotation } => write!(f, "listed in the pod's {annotation}"),
            Reason::NotOptedIn => write!(
                f,
                "volumes are opt-in (--default-volumes-to-fs-backup=false) and it is not listed in \
                 {} or {}",
                ann::VELERO_BACKUP_VOLUMES,
                ann::BACKUP_VOLUMES
            ),
            Reason::Default => write!(f, "claim-backed volumes are copied by default"),
        }
    }
}

/// The decision for one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDecision {
    /// The pod's name for the volume (the claim's name for a claim no pod uses).
    pub volume: String,
    /// The claim behind it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Copied or not, and how.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// What changed the method or made it impossible (e.g. ReadWriteOncePod, no snapshot
    /// class) — shown by `explain` and recorded as warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Worth a warning in the backup (a volume that may hold data and is not copied).
    #[serde(default)]
    pub warn: bool,
}

/// Backup-wide switches that shape the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Copy every claim-backed volume unless opted out (Velero's
    /// `--default-volumes-to-fs-backup`); false: only opted-in volumes.
    pub default_volumes_to_fs_backup: bool,
    /// Copy claims through CSI snapshots instead of live file copies by default.
    pub snapshot_volumes: bool,
    /// Move snapshot data into the repository (and delete the snapshot afterwards).
    pub snapshot_move_data: bool,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            default_volumes_to_fs_backup: true,
            snapshot_volumes: false,
            snapshot_move_data: false,
        }
    }
}

/// What the cluster knows about a claim.
#[derive(Debug, Clone)]
pub struct ClaimFacts {
    /// The claim.
    pub pvc: PersistentVolumeClaim,
    /// Its volume, once bound.
    pub pv: Option<PersistentVolume>,
    /// The VolumeSnapshotClass that fits its driver, if any.
    pub snapshot_class: Option<String>,
}

/// Everything besides the pod that a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// Labels of the pod's namespace.
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// The namespace's claims, by name.
    pub claims: &'a BTreeMap<String, ClaimFacts>,
    /// Velero-style volume policies of this backup, if any.
    pub policies: Option<&'a ResourcePolicies>,
    /// Backup-wide switches.
    pub options: PolicyOptions,
}

/// Decides every volume of a pod. This is the function the webhook, `explain` and backups
/// share, so the three always agree.
pub fn decide_pod(pod: &Pod, input: &PolicyInput<'_>) -> Vec<VolumeDecision> {
    let empty = BTreeMap::new();
    let meta = &pod.metadata;
    let pod_labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let pod_name = meta.name.as_deref().unwrap_or("");
    let excluded = ann::labelled_true(input.namespace_labels, &[EXCLUDE_LABEL])
        .map(|l| {
            (
                format!("namespace {}", meta.namespace.as_deref().unwrap_or("")),
                l,
            )
        })
        .or_else(|| {
            let mut keys = vec![EXCLUDE_LABEL, ann::MOVER_LABEL];
            keys.extend(EXCLUDE_FROM_BACKUP_LABELS);
            ann::labelled_true(pod_labels, &keys).map(|l| (format!("pod {pod_name}"), l))
        });
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .map(|v| match &excluded {
            Some((object, label)) => skip(
                v,
                claim_of(v),
                Reason::ExcludedByLabel {
                    object: object.clone(),
                    label: label.clone(),
                },
            ),
            None => decide_volume(v, annotations, input),
        })
        .collect()
}

/// Decides a claim that no pod mounts: a mover mounts it alone. Pod annotations do not apply.
pub fn decide_unused_claim(claim: &ClaimFacts, input: &PolicyInput<'_>) -> VolumeDecision {
    let name = claim.pvc.metadata.name.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let volume = Volume {
        name: name.clone(),
        persistent_volume_claim: Some(
            k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: name,
                read_only: None,
            },
        ),
        ..Default::default()
    };
    if let Some((object, label)) = ann::labelled_true(input.namespace_labels, &[EXCLUDE_LABEL])
        .map(|l| ("the namespace".to_string(), l))
    {
        return skip(
            &volume,
            claim_of(&volume),
            Reason::ExcludedByLabel { object, label },
        );
    }
    // The claim may not be in the caller's map: the decision must see it.
    let claims = BTreeMap::from([(volume.name.clone(), claim.clone())]);
    decide_volume(
        &volume,
        &empty,
        &PolicyInput {
            claims: &claims,
            ..*input
        },
    )
}

fn claim_of(v: &Volume) -> Option<String> {
    v.persistent_volume_claim
        .as_ref()
        .map(|c| c.claim_name.clone())
}

fn skip(v: &Volume, claim: Option<String>, reason: Reason) -> VolumeDecision {
    VolumeDecision {
        volume: v.name.clone(),
        claim,
        action: Action::Skip,
        reason,
        notes: Vec::new(),
        warn: false,
    }
}

fn decide_volume(
    v: &Volume,
    annotations: &BTreeMap<String, String>,
    input: &PolicyInput<'_>,
) -> VolumeDecision {
    let empty = BTreeMap::new();
    let claim_name = claim_of(v);
    let facts = match volume_kind(v) {
        Kind::FromObjects(t) => {
            return skip(
                v,
                None,
                Reason::FromObjects {
                    volume_type: t.into(),
                },
            );
        }
        Kind::EmptyDir => {
            let mut d = skip(v, None, Reason::EmptyDir);
            if let Some(a) = ann::listing_annotation(annotations, &OPT_IN, &v.name) {
                d.notes.push(format!(
                    "listed in {a}, but a mover pod cannot reach another pod's emptyDir"
                ));
                d.warn = true;
            }
            return d;
        }
        Kind::HostPath(path) => {
            let mut d = skip(v, None, Reason::HostPath { path });
            d.warn = true;
            return d;
        }
        Kind::Ephemeral => return skip(v, None, Reason::Ephemeral),
        Kind::Unsupported(t) => {
            let mut d = skip(
                v,
                None,
                Reason::Unsupported {
                    volume_type: t.into(),
                },
            );
            d.warn = true;
            return d;
        }
        Kind::Nfs => inline_facts(v),
        Kind::Claim(name) => match input.claims.get(&name) {
            Some(c) => {
                let labels = c.pvc.metadata.labels.as_ref().unwrap_or(&empty);
                if let Some(label) = ann::labelled_true(labels, &EXCLUDE_FROM_BACKUP_LABELS) {
                    return skip(
                        v,
                        claim_name,
                        Reason::ExcludedByLabel {
                            object: format!("claim {name}"),
                            label,
                        },
                    );
                }
                let phase = c
                    .pvc
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Pending".into());
                if phase != "Bound" {
                    return skip(v, claim_name, Reason::Unbound { phase });
                }
                claim_facts(c)
            }
            None => {
                let mut d = skip(v, claim_name, Reason::ClaimMissing { claim: name });
                d.warn = true;
                return d;
            }
        },
    };
    let is_claim = claim_name.is_some();
    let snapshot_method = if input.options.snapshot_move_data {
        Method::SnapshotMoveData
    } else {
        Method::Snapshot
    };
    let (action, reason) =
        if let Some((index, policy)) = input.policies.and_then(|p| p.first_match(&facts)) {
            let action = match policy.action {
                PolicyAction::Skip => Action::Skip,
                PolicyAction::FsBackup => Action::Copy(Method::FsBackup),
                PolicyAction::Snapshot => Action::Copy(snapshot_method),
            };
            (
                action,
                Reason::Policy {
                    index,
                    line: policy.line,
                    action: policy.action.as_str().into(),
                },
            )
        } else if let Some(a) = ann::listing_annotation(annotations, &OPT_OUT, &v.name) {
            (
                Action::Skip,
                Reason::OptOut {
                    annotation: a.into(),
                },
            )
        } else if !input.options.default_volumes_to_fs_backup {
            match ann::listing_annotation(annotations, &OPT_IN, &v.name) {
                Some(a) => (
                    Action::Copy(Method::FsBackup),
                    Reason::OptIn {
                        annotation: a.into(),
                    },
                ),
                None if input.options.snapshot_volumes && is_claim => {
                    (Action::Copy(snapshot_method), Reason::Default)
                }
                None => (Action::Skip, Reason::NotOptedIn),
            }
        } else if input.options.snapshot_volumes && is_claim {
            (Action::Copy(snapshot_method), Reason::Default)
        } else {
            (Action::Copy(Method::FsBackup), Reason::Default)
        };
    let mut decision = VolumeDecision {
        volume: v.name.clone(),
        claim: claim_name.clone(),
        action,
        reason,
        notes: Vec::new(),
        warn: false,
    };
    let claim = claim_name.as_ref().and_then(|c| input.claims.get(c));
    adjust_for_capabilities(&mut decision, claim);
    decision
}

/// What the volume and the cluster can do changes the method: a ReadWriteOncePod claim cannot
/// be mounted by a mover, snapshots need a snapshot class, inline volumes cannot be
/// snapshotted.
fn adjust_for_capabilities(d: &mut VolumeDecision, claim: Option<&ClaimFacts>) {
    let Action::Copy(method) = d.action else {
        return;
    };
    let Some(claim) = claim else {
        if method != Method::FsBackup {
            d.notes
                .push("inline volumes cannot be snapshotted: copied by file copy instead".into());
            d.action = Action::Copy(Method::FsBackup);
        }
        return;
    };
    let rwop = claim
        .pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"));
    let class = claim.snapshot_class.as_deref();
    match (method, rwop, class) {
        (Method::FsBackup, true, Some(class)) => {
            d.notes.push(format!(
                "ReadWriteOncePod claims cannot be mounted by a mover: copied through a snapshot \
                 (class {class}) and a data move instead"
            ));
            d.action = Action::Copy(Method::SnapshotMoveData);
        }
        (Method::FsBackup, true, None) => {
            d.notes.push(
                "ReadWriteOncePod claims cannot be mounted by a mover and no VolumeSnapshotClass fits \
                 its driver: not copied; add a snapshot class for the driver"
                    .into(),
            );
            d.action = Action::Skip;
            d.warn = true;
        }
        (Method::Snapshot | Method::SnapshotMoveData, _, None) if !rwop => {
            d.notes
                .push("no VolumeSnapshotClass fits its driver: copied by file copy instead".into());
            d.action = Action::Copy(Method::FsBackup);
        }
        (Method::Snapshot | Method::SnapshotMoveData, _, None) => {
            d.notes.push(
                "no VolumeSnapshotClass fits its driver and ReadWriteOncePod claims cannot be mounted \
                 by a mover: not copied"
                    .into(),
            );
            d.action = Action::Skip;
            d.warn = true;
        }
        _ => {}
    }
}

enum Kind {
    FromObjects(&'static str),
    EmptyDir,
    HostPath(String),
    Ephemeral,
    Unsupported(&'static str),
    Nfs,
    Claim(String),
}

fn volume_kind(v: &Volume) -> Kind {
    if let Some(c) = &v.persistent_volume_claim {
        return Kind::Claim(c.claim_name.clone());
    }
    if v.config_map.is_some() {
        return Kind::FromObjects("configMap");
    }
    if v.secret.is_some() {
        return Kind::FromObjects("secret");
    }
    if v.projected.is_some() {
        return Kind::FromObjects("projected");
    }
    if v.downward_api.is_some() {
        return Kind::FromObjects("downwardAPI");
    }
    if v.empty_dir.is_some() {
        return Kind::EmptyDir;
    }
    if let Some(h) = &v.host_path {
        return Kind::HostPath(h.path.clone());
    }
    if v.ephemeral.is_some() {
        return Kind::Ephemeral;
    }
    if v.nfs.is_some() {
        return Kind::Nfs;
    }
    Kind::Unsupported(inline_type(v))
}

/// Velero's name for an inline volume source.
fn inline_type(v: &Volume) -> &'static str {
    let known: [(&'static str, bool); 20] = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("fc", v.fc.is_some()),
        ("flocker", v.flocker.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("rbd", v.rbd.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageOS", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    known
        .iter()
        .find(|(_, set)| *set)
        .map_or("unknown", |(name, _)| name)
}

fn inline_facts(v: &Volume) -> VolumeFacts {
    VolumeFacts {
        nfs: v.nfs.as_ref().map(|n| (n.server.clone(), n.path.clone())),
        csi: v.csi.as_ref().map(|c| {
            (
                c.driver.clone(),
                c.volume_attributes.clone().unwrap_or_default(),
            )
        }),
        volume_type: Some(
            if v.nfs.is_some() {
                "nfs"
            } else {
                inline_type(v)
            }
            .to_string(),
        ),
        ..Default::default()
    }
}

/// Policy facts of a claim: from its PV when bound (as Velero), plus the claim's labels and
/// phase; an unbound claim also offers its class and requested size.
fn claim_facts(c: &ClaimFacts) -> VolumeFacts {
    let pvc_spec = c.pvc.spec.as_ref();
    let mut facts = VolumeFacts {
        pvc_labels: c.pvc.metadata.labels.clone().unwrap_or_default(),
        pvc_phase: c.pvc.status.as_ref().and_then(|s| s.phase.clone()),
        storage_class: pvc_spec.and_then(|s| s.storage_class_name.clone()),
        capacity: pvc_spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| quantity::parse_milli(&q.0)),
        ..Default::default()
    };
    if let Some(pv) = c.pv.as_ref().and_then(|pv| pv.spec.as_ref()) {
        facts.capacity = pv
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .and_then(|q| quantity::parse_milli(&q.0));
        facts.storage_class = pv.storage_class_name.clone();
        facts.nfs = pv.nfs.as_ref().map(|n| (n.server.clone(), n.path.clone()));
        facts.csi = pv.csi.as_ref().map(|c| {
            (
                c.driver.clone(),
                c.volume_attributes.clone().unwrap_or_default(),
            )
        });
        facts.volume_type = Some(pv_type(pv).to_string()).filter(|t| !t.is_empty());
    }
    facts
}

fn pv_type(pv: &k8s_openapi::api::core::v1::PersistentVolumeSpec) -> &'static str {
    let known: [(&'static str, bool); 21] = [
        ("awsElasticBlockStore", pv.aws_elastic_block_store.is_some()),
        ("azureDisk", pv.azure_disk.is_some()),
        ("azureFile", pv.azure_file.is_some()),
        ("cephfs", pv.cephfs.is_some()),
        ("cinder", pv.cinder.is_some()),
        ("csi", pv.csi.is_some()),
        ("fc", pv.fc.is_some()),
        ("flocker", pv.flocker.is_some()),
        ("flexVolume", pv.flex_volume.is_some()),
        ("gcePersistentDisk", pv.gce_persistent_disk.is_some()),
        ("glusterfs", pv.glusterfs.is_some()),
        ("hostPath", pv.host_path.is_some()),
        ("iscsi", pv.iscsi.is_some()),
        ("local", pv.local.is_some()),
        ("nfs", pv.nfs.is_some()),
        ("photonPersistentDisk", pv.photon_persistent_disk.is_some()),
        ("portworxVolume", pv.portworx_volume.is_some()),
        ("quobyte", pv.quobyte.is_some()),
        ("rbd", pv.rbd.is_some()),
        ("scaleIO", pv.scale_io.is_some()),
        ("vsphereVolume", pv.vsphere_volume.is_some()),
    ];
    known
        .iter()
        .find(|(_, set)| *set)
        .map_or("", |(name, _)| name)
}
