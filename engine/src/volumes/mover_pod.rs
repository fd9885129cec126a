//! The mover pod and its Secret, as plain values: what runs where, as whom, mounting what.
//!
//! Movers are ordinary pods in the application's namespace, created through the API (so they
//! pass admission, RBAC and Pod Security like any pod). No privileged mode and no hostPath for
//! the application's data: the claim itself is mounted, read-only for backups. By default the
//! mover runs as root with only the capability it needs (`DAC_READ_SEARCH` to read every file;
//! `CHOWN`, `FOWNER`, `DAC_OVERRIDE` to write files back with their owners); where the
//! namespace's Pod Security level forbids that, it runs as the application pod's own user.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EmptyDirVolumeSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::policy::annotations::MOVER_LABEL;

/// Where the volume is mounted in the mover.
pub const VOLUME_MOUNT: &str = "/vbackup/volume";
/// Where the job Secret is mounted.
pub const JOB_MOUNT: &str = "/vbackup/job";
/// The job file inside [`JOB_MOUNT`].
pub const JOB_FILE: &str = "job.json";
/// Where a filesystem location is mounted.
pub const LOCATION_MOUNT: &str = "/vbackup/location";
/// The mover's container name.
pub const CONTAINER: &str = "mover";
/// Label naming the backup or restore a mover works for.
pub const OPERATION_LABEL: &str = "vbackup.io/operation";
/// Annotation naming the claim a mover copies.
pub const CLAIM_ANNOTATION: &str = "vbackup.io/claim";

/// What the mover does to its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Reads the volume (mounted read-only).
    Backup,
    /// Writes the volume.
    Restore,
    /// Mounts no volume: only reaches the location.
    Probe,
}

/// Who the mover runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoverIdentity {
    /// Root with exactly these capabilities (everything else dropped).
    Root { capabilities: Vec<String> },
    /// The application's user, group and fsGroup, with no capability: files it cannot read
    /// become warnings.
    AppUser {
        uid: i64,
        gid: Option<i64>,
        fs_group: Option<i64>,
        supplemental_groups: Vec<i64>,
    },
}

/// Pod Security levels, from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodSecurityLevel {
    /// No restriction (also: no label).
    Privileged,
    /// Known privilege escalations forbidden; a small capability set allowed.
    Baseline,
    /// Non-root, no capabilities.
    Restricted,
}

impl PodSecurityLevel {
    /// The enforced level of a namespace, from its `pod-security.kubernetes.io/enforce` label.
    pub fn of_namespace(labels: &BTreeMap<String, String>) -> PodSecurityLevel {
        match labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str)
        {
            Some("restricted") => PodSecurityLevel::Restricted,
            Some("baseline") => PodSecurityLevel::Baseline,
            _ => PodSecurityLevel::Privileged,
        }
    }
}

/// Capabilities Pod Security's baseline level allows to add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Who a mover runs as: root with the direction's capabilities where the namespace's Pod
/// Security level allows them, else the application pod's user (`app` is its security
/// context, effective for its first container).
pub fn identity(direction: Direction, level: PodSecurityLevel, app: &AppSecurity) -> MoverIdentity {
    let capabilities: &[&str] = match direction {
        Direction::Backup => &["DAC_READ_SEARCH"],
        Direction::Restore => &["CHOWN", "FOWNER", "DAC_OVERRIDE"],
        Direction::Probe => &[],
    };
    let allowed = match level {
        PodSecurityLevel::Privileged => true,
        PodSecurityLevel::Baseline => capabilities
            .iter()
            .all(|c| BASELINE_CAPABILITIES.contains(c)),
        // Restricted admits no root container at all.
        PodSecurityLevel::Restricted => false,
    };
    if allowed {
        return MoverIdentity::Root {
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        };
    }
    MoverIdentity::AppUser {
        // A restricted namespace runs no root pod: an application without an explicit user
        // runs as its image's user, unknown here; `nobody` reads what the group may read.
        uid: app.uid.filter(|u| *u != 0).unwrap_or(65534),
        gid: app.gid,
        fs_group: app.fs_group,
        supplemental_groups: app.supplemental_groups.clone(),
    }
}

/// The identity an application pod's processes have (for movers that must run as it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSecurity {
    /// runAsUser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// runAsGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// fsGroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// supplementalGroups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
}

impl AppSecurity {
    /// The effective identity of a pod's first container (container settings win).
    pub fn of_pod(pod: &Pod) -> AppSecurity {
        let spec = pod.spec.as_ref();
        let psc = spec.and_then(|s| s.security_context.as_ref());
        let csc = spec
            .and_then(|s| s.containers.first())
            .and_then(|c| c.security_context.as_ref());
        AppSecurity {
            uid: csc
                .and_then(|c| c.run_as_user)
                .or(psc.and_then(|p| p.run_as_user)),
            gid: csc
                .and_then(|c| c.run_as_group)
                .or(psc.and_then(|p| p.run_as_group)),
            fs_group: psc.and_then(|p| p.fs_group),
            supplemental_groups: psc
                .and_then(|p| p.supplemental_groups.clone())
                .unwrap_or_default(),
        }
    }
}

/// Everything that shapes one mover pod.
#[derive(Debug, Clone)]
pub struct MoverPod {
    /// Name of the pod and of its Secret.
    pub name: String,
    /// The application's namespace.
    pub namespace: String,
    /// The image (`ghcr.io/vbackup/vbackup:<version>`), which runs `kubectl-vbackup mover`.
    pub image: String,
    /// The claim to mount (none for a probe).
    pub claim: Option<String>,
    /// What it does.
    pub direction: Direction,
    /// Pin to this node (the node of the pod using the claim).
    pub node: Option<String>,
    /// Tolerations of the pod using the claim, so the mover may run where it runs.
    pub tolerations: Vec<Toleration>,
    /// Who it runs as.
    pub identity: MoverIdentity,
    /// The volume that holds a filesystem location (hostPath or NFS), mounted at
    /// [`LOCATION_MOUNT`].
    pub location_volume: Option<Volume>,
    /// The backup or restore it works for (label value).
    pub operation: String,
}

impl MoverPod {
    /// The pod.
    pub fn pod(&self) -> Pod {
        let read_only = self.direction != Direction::Restore;
        // Secret files belong to root; the kubelet gives them to the fsGroup (g+r), so a
        // mover running as another user without one can only read what all may read. The
        // pod runs nothing but the mover.
        let job_mode = match &self.identity {
            MoverIdentity::AppUser { fs_group: None, .. } => 0o444,
            _ => 0o400,
        };
        let mut volumes = vec![
            Volume {
                name: "job".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(self.name.clone()),
                    default_mode: Some(job_mode),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ];
        let mut mounts = vec![
            VolumeMount {
                name: "job".into(),
                mount_path: JOB_MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..Default::default()
            },
        ];
        if let Some(claim) = &self.claim {
            volumes.push(Volume {
                name: "volume".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: Some(read_only),
                }),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: "volume".into(),
                mount_path: VOLUME_MOUNT.into(),
                read_only: Some(read_only),
                ..Default::default()
            });
        }
        if let Some(location) = &self.location_volume {
            volumes.push(Volume {
                name: "location".into(),
                ..location.clone()
            });
            mounts.push(VolumeMount {
                name: "location".into(),
                mount_path: LOCATION_MOUNT.into(),
                ..Default::default()
            });
        }
        let (pod_sc, container_sc) = self.security();
        let mut labels = BTreeMap::from([(MOVER_LABEL.to_string(), "true".to_string())]);
        if self.operation.len() <= 63 {
            labels.insert(OPERATION_LABEL.into(), self.operation.clone());
        }
        let annotations = self
            .claim
            .as_ref()
            .map(|c| BTreeMap::from([(CLAIM_ANNOTATION.to_string(), c.clone())]));
        Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations,
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                termination_grace_period_seconds: Some(10),
                tolerations: (!self.tolerations.is_empty()).then(|| self.tolerations.clone()),
                affinity: self.node.as_ref().map(|node| Affinity {
                    node_affinity: Some(NodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                            node_selector_terms: vec![NodeSelectorTerm {
                                match_fields: Some(vec![NodeSelectorRequirement {
                                    key: "metadata.name".into(),
                                    operator: "In".into(),
                                    values: Some(vec![node.clone()]),
                                }]),
                                ..Default::default()
                            }],
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                security_context: Some(pod_sc),
                containers: vec![Container {
                    name: CONTAINER.into(),
                    image: Some(self.image.clone()),
                    command: Some(vec![
                        "kubectl-vbackup".into(),
                        "mover".into(),
                        "--job".into(),
                        format!("{JOB_MOUNT}/{JOB_FILE}"),
                    ]),
                    volume_mounts: Some(mounts),
                    security_context: Some(container_sc),
                    termination_message_policy: Some("File".into()),
                    resources: Some(ResourceRequirements {
                        // Memory is bounded by design (packs of at most 32 MiB, streamed
                        // restores): BENCHMARKS.md measures well under this.
                        requests: Some(BTreeMap::from([
                            ("cpu".to_string(), Quantity("100m".into())),
                            ("memory".to_string(), Quantity("128Mi".into())),
                        ])),
                        limits: Some(BTreeMap::from([(
                            "memory".to_string(),
                            Quantity("1Gi".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn security(&self) -> (PodSecurityContext, SecurityContext) {
        let seccomp = Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        });
        let mut container = SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            seccomp_profile: seccomp.clone(),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        };
        let mut pod = PodSecurityContext {
            seccomp_profile: seccomp,
            ..Default::default()
        };
        match &self.identity {
            MoverIdentity::Root { capabilities } => {
                container.run_as_user = Some(0);
                container.run_as_group = Some(0);
                container.run_as_non_root = Some(false);
                if let Some(caps) = container.capabilities.as_mut() {
                    caps.add = (!capabilities.is_empty()).then(|| capabilities.clone());
                }
            }
            MoverIdentity::AppUser {
                uid,
                gid,
                fs_group,
                supplemental_groups,
            } => {
                container.run_as_user = Some(*uid);
                container.run_as_group = *gid;
                container.run_as_non_root = Some(true);
                pod.fs_group = *fs_group;
                pod.supplemental_groups =
                    (!supplemental_groups.is_empty()).then(|| supplemental_groups.clone());
            }
        }
        (pod, container)
    }

    /// The Secret holding the job, owned by the pod so the garbage collector removes it with
    /// the pod even if the plugin dies.
    pub fn secret(&self, pod_uid: &str, job_json: Vec<u8>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MOVER_LABEL.to_string(),
                    "true".to_string(),
                )])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    name: self.name.clone(),
                    uid: pod_uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..Default::default()
            },
            immutable: Some(true),
            data: Some(BTreeMap::from([(
                JOB_FILE.to_string(),
                ByteString(job_json),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }
}

/// A fresh mover name: `vbackup-mover-` and ten random lowercase characters.
pub fn mover_name() -> crate::Result<String> {
    Ok(format!("vbackup-mover-{}", random_suffix(10)?))
}

/// `len` random lowercase letters and digits, without vowels (no accidental words), for
/// names that must not collide.
pub fn random_suffix(len: usize) -> crate::Result<String> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| {
        crate::Error::BadInput(format!("the system's random generator failed: {e}"))
    })?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mover(direction: Direction, identity: MoverIdentity) -> MoverPod {
        MoverPod {
            name: "vbackup-mover-abc".into(),
            namespace: "app".into(),
            image: "ghcr.io/vbackup/vbackup:0.1.0".into(),
            claim: Some("data".into()),
            direction,
            node: Some("testnode-2".into()),
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("db".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }],
            identity,
            location_volume: None,
            operation: "nightly".into(),
        }
    }

    #[test]
    fn a_backup_mover_reads_the_claim_read_only_with_one_capability() {
        let id = identity(
            Direction::Backup,
            PodSecurityLevel::Privileged,
            &AppSecurity::default(),
        );
        let pod = mover(Direction::Backup, id).pod();
        let spec = pod.spec.unwrap();
        let c = &spec.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_user, Some(0));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().add,
            Some(vec!["DAC_READ_SEARCH".to_string()])
        );
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(sc.privileged, None);
        let claim = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "volume")
            .unwrap();
        assert_eq!(claim.persistent_volume_claim.unwrap().read_only, Some(true));
        assert!(
            c.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .all(|m| m.mount_path != "/var/lib/kubelet")
        );
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.tolerations.unwrap().len(), 1);
        let terms = spec
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(
            terms.node_selector_terms[0].match_fields.as_ref().unwrap()[0].values,
            Some(vec!["testnode-2".to_string()])
        );
        assert_eq!(pod.metadata.labels.unwrap()["vbackup.io/mover"], "true");
    }

    #[test]
    fn restores_write_with_owner_capabilities_allowed_by_baseline() {
        let id = identity(
            Direction::Restore,
            PodSecurityLevel::Baseline,
            &AppSecurity::default(),
        );
        assert_eq!(
            id,
            MoverIdentity::Root {
                capabilities: vec!["CHOWN".into(), "FOWNER".into(), "DAC_OVERRIDE".into()]
            }
        );
        let pod = mover(Direction::Restore, id).pod();
        let spec = pod.spec.unwrap();
        let claim = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "volume")
            .unwrap();
        assert_eq!(
            claim.persistent_volume_claim.unwrap().read_only,
            Some(false)
        );
    }

    #[test]
    fn baseline_and_restricted_backups_run_as_the_application() {
        let app = AppSecurity {
            uid: Some(1001),
            gid: Some(1001),
            fs_group: Some(2000),
            supplemental_groups: vec![],
        };
        for level in [PodSecurityLevel::Baseline, PodSecurityLevel::Restricted] {
            let id = identity(Direction::Backup, level, &app);
            assert_eq!(
                id,
                MoverIdentity::AppUser {
                    uid: 1001,
                    gid: Some(1001),
                    fs_group: Some(2000),
                    supplemental_groups: vec![]
                }
            );
            let spec = mover(Direction::Backup, id).pod().spec.unwrap();
            let sc = spec.containers[0].security_context.clone().unwrap();
            assert_eq!(sc.run_as_non_root, Some(true));
            assert_eq!(sc.capabilities.unwrap().add, None);
            assert_eq!(spec.security_context.unwrap().fs_group, Some(2000));
        }
    }

    #[test]
    fn the_secret_is_owned_by_its_pod() {
        let s = mover(
            Direction::Backup,
            MoverIdentity::Root {
                capabilities: vec![],
            },
        )
        .secret("uid-1", b"{}".to_vec());
        let owner = &s.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Pod", "uid-1"));
    }

    #[test]
    fn names_are_valid_and_distinct() {
        let (a, b) = (mover_name().unwrap(), mover_name().unwrap());
        assert_ne!(a, b);
        assert!(
            a.len() <= 63
                && a.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }
}
