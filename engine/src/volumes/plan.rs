//! Which claims a backup copies, once each, how, on which node and as whom — from the
//! namespace's pods and claims through the shared policy ([`crate::policy`]).
//!
//! [`assemble`] is pure (tested with plain values); [`gather`] reads what it needs from the
//! cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Toleration,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use super::mover_pod::{AppSecurity, PodSecurityLevel};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;

use crate::cluster::list_all;
use crate::policy::{
    Action, AppliedPolicy, BackupPolicy, ClaimFacts, ExcludePaths, Method, PolicyInput,
    PolicyOptions, ResourcePolicies, VolumeDecision, decide_pod, decide_unused_claim,
    exclude_paths, select_policy, with_admission_annotations,
};
use crate::resources::selector::LabelSelector;
use crate::webhook::config::CONFIGURATION_NAME;
use crate::{Error, Result};

/// One claim to copy.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimWork {
    /// Its namespace.
    pub namespace: String,
    /// The claim.
    pub claim: String,
    /// How it is copied.
    pub method: Method,
    /// The pods that mount it, with their name for the volume (empty: no pod uses it).
    pub pods: Vec<(String, String)>,
    /// Where a pod using it runs: the mover goes there (RWO claims attach to one node).
    pub node: Option<String>,
    /// That pod's tolerations, so the mover may run there too.
    pub tolerations: Vec<Toleration>,
    /// That pod's identity, for namespaces where the mover must run as the application.
    pub app: AppSecurity,
    /// The namespace's enforced Pod Security level.
    pub level: PodSecurityLevel,
    /// Paths not copied.
    pub excludes: ExcludePaths,
    /// The snapshot class for snapshot methods.
    pub snapshot_class: Option<String>,
    /// The decision that chose it (reason and notes, for `describe` and the log).
    pub decision: VolumeDecision,
}

/// A volume that is not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotCopied {
    /// Its namespace.
    pub namespace: String,
    /// `pvc/NAME` for claims, `pod/POD/VOLUME` for pod-scoped volumes.
    pub volume: String,
    /// Why, in words.
    pub reason: String,
    /// Worth a warning (it may hold data nobody chose to drop).
    pub warn: bool,
}

/// The volume part of a backup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupPlan {
    /// Claims to copy, each once.
    pub work: Vec<ClaimWork>,
    /// Volumes left out, each with its reason.
    pub not_copied: Vec<NotCopied>,
}

/// What one namespace holds, as read from the cluster.
#[derive(Debug, Clone, Default)]
pub struct NamespaceState {
    /// Its name.
    pub name: String,
    /// Its labels (exclusion, Pod Security level).
    pub labels: BTreeMap<String, String>,
    /// Its pods.
    pub pods: Vec<Pod>,
    /// Its claims with their volumes and snapshot classes.
    pub claims: BTreeMap<String, ClaimFacts>,
    /// The cluster's BackupPolicies (what the admission webhook applies).
    pub policies: Vec<BackupPolicy>,
}

impl NamespaceState {
    /// The BackupPolicy the admission webhook applies to `pod`.
    pub fn policy_for(&self, pod: &Pod) -> AppliedPolicy {
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        select_policy(&self.policies, &self.labels, labels)
    }
}

/// Builds the plan of one namespace. A claim mounted by several pods is copied once, with the
/// first running pod's decision; a claim no running pod mounts is copied by a mover alone.
pub fn assemble(
    ns: &NamespaceState,
    selector: &LabelSelector,
    policies: Option<&ResourcePolicies>,
    options: PolicyOptions,
) -> BackupPlan {
    let input = PolicyInput {
        namespace_labels: &ns.labels,
        claims: &ns.claims,
        policies,
        options,
    };
    let level = PodSecurityLevel::of_namespace(&ns.labels);
    let mut plan = BackupPlan::default();
    let mut by_claim: BTreeMap<String, ClaimWork> = BTreeMap::new();
    let mut skipped_claims: BTreeMap<String, NotCopied> = BTreeMap::new();
    let mut mounted: BTreeSet<String> = BTreeSet::new();
    let mut pods: Vec<&Pod> = ns.pods.iter().filter(|p| is_live(p)).collect();
    // Running pods first: their node is where the claim is attached.
    pods.sort_by_key(|p| (!is_running(p), p.metadata.name.clone()));
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let selected = selector.matches(&labels);
        for d in decide_pod(pod, &input) {
            let Some(claim) = d.claim.clone() else {
                if selected && (d.warn || matches!(d.action, Action::Copy(_))) {
                    plan.not_copied.push(NotCopied {
                        namespace: ns.name.clone(),
                        volume: format!("pod/{pod_name}/{}", d.volume),
                        reason: explain_decision(&d),
                        warn: d.warn,
                    });
                }
                continue;
            };
            mounted.insert(claim.clone());
            if !selected {
                continue;
            }
            match (d.action, by_claim.get_mut(&claim)) {
                (Action::Copy(_), Some(work)) => {
                    work.pods.push((pod_name.clone(), d.volume.clone()))
                }
                (Action::Copy(method), None) => {
                    skipped_claims.remove(&claim);
                    let facts = ns.claims.get(&claim);
                    by_claim.insert(
                        claim.clone(),
                        ClaimWork {
                            namespace: ns.name.clone(),
                            claim: claim.clone(),
                            method,
                            pods: vec![(pod_name.clone(), d.volume.clone())],
                            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                            tolerations: pod
                                .spec
                                .as_ref()
                                .and_then(|s| s.tolerations.clone())
                                .unwrap_or_default(),
                            app: AppSecurity::of_pod(pod),
                            level,
                            excludes: facts
                                .map(|f| {
                                    exclude_paths::for_claim(
                                        &claim,
                                        f.pvc
                                            .metadata
                                            .annotations
                                            .as_ref()
                                            .unwrap_or(&BTreeMap::new()),
                                    )
                                })
                                .unwrap_or_default(),
                            snapshot_class: facts.and_then(|f| f.snapshot_class.clone()),
                            decision: d,
                        },
                    );
                }
                (Action::Skip, None) => {
                    skipped_claims.entry(claim.clone()).or_insert(NotCopied {
                        namespace: ns.name.clone(),
                        volume: format!("pvc/{claim}"),
                        reason: format!(
                            "pod {pod_name}, volume {}: {}",
                            d.volume,
                            explain_decision(&d)
                        ),
                        warn: d.warn,
                    });
                }
                (Action::Skip, Some(_)) => {}
            }
        }
    }
    for (name, facts) in &ns.claims {
        if mounted.contains(name) {
            continue;
        }
        let labels = facts.pvc.metadata.labels.clone().unwrap_or_default();
        if !selector.matches(&labels) {
            continue;
        }
        let d = decide_unused_claim(facts, &input);
        match d.action {
            Action::Copy(method) => {
                by_claim.insert(
                    name.clone(),
                    ClaimWork {
                        namespace: ns.name.clone(),
                        claim: name.clone(),
                        method,
                        pods: Vec::new(),
                        node: None,
                        tolerations: Vec::new(),
                        app: AppSecurity::default(),
                        level,
                        excludes: exclude_paths::for_claim(
                            name,
                            facts
                                .pvc
                                .metadata
                                .annotations
                                .as_ref()
                                .unwrap_or(&BTreeMap::new()),
                        ),
                        snapshot_class: facts.snapshot_class.clone(),
                        decision: d,
                    },
                );
            }
            Action::Skip => {
                skipped_claims.insert(
                    name.clone(),
                    NotCopied {
                        namespace: ns.name.clone(),
                        volume: format!("pvc/{name}"),
                        reason: format!("no pod uses it: {}", explain_decision(&d)),
                        warn: d.warn,
                    },
                );
            }
        }
    }
    plan.work.extend(by_claim.into_values());
    plan.not_copied.extend(skipped_claims.into_values());
    plan
}

/// The reason and notes of a decision, in one sentence.
pub fn explain_decision(d: &VolumeDecision) -> String {
    let mut text = d.reason.to_string();
    for note in &d.notes {
        text.push_str("; ");
        text.push_str(note);
    }
    text
}

/// Pods that hold their volumes: not finished, not being deleted.
/// The live pods of a namespace the selector takes: those whose hooks and dumps run.
pub fn hook_pods(ns: &NamespaceState, selector: &LabelSelector) -> Vec<Pod> {
    ns.pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            is_live(p)
                && selector.matches(&labels)
                && crate::policy::annotations::labelled_true(
                    &labels,
                    &crate::policy::annotations::EXCLUDE_FROM_BACKUP_LABELS,
                )
                .is_none()
        })
        .cloned()
        .collect()
}

fn is_live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Reads what [`assemble`] needs about one namespace.
pub async fn gather(
    client: &Client,
    namespace: &str,
    snapshot_class: Option<&str>,
) -> Result<NamespaceState> {
    let labels = namespace_labels(client, namespace).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = list_all(&pods, ListParams::default())
        .await
        .map_err(Error::kube(format!("cannot list pods in {namespace}")))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvcs = list_all(&pvcs, ListParams::default())
        .await
        .map_err(Error::kube(format!("cannot list claims in {namespace}")))?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let classes = snapshot_classes(client).await?;
    let storage_classes: Api<StorageClass> = Api::all(client.clone());
    let mut claims = BTreeMap::new();
    for pvc in pvcs {
        let Some(name) = pvc.metadata.name.clone() else {
            continue;
        };
        let pv = match pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) {
            Some(pv_name) if !pv_name.is_empty() => {
                pvs.get_opt(pv_name).await.map_err(Error::kube(format!(
                    "cannot read volume {pv_name} of claim {namespace}/{name}"
                )))?
            }
            _ => None,
        };
        let driver = match pv
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.csi.as_ref())
        {
            Some(csi) => Some(csi.driver.clone()),
            None => match pvc
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
            {
                Some(sc) => storage_classes
                    .get_opt(sc)
                    .await
                    .map_err(Error::kube(format!("cannot read StorageClass {sc}")))?
                    .map(|c| c.provisioner),
                None => None,
            },
        };
        let snapshot_class = match snapshot_class {
            Some(forced) => Some(forced.to_string()),
            None => driver.and_then(|d| classes.for_driver(&d)),
        };
        claims.insert(
            name,
            ClaimFacts {
                pvc,
                pv,
                snapshot_class,
            },
        );
    }
    let (webhook_installed, policies) = admission_policies(client).await;
    let mut state = NamespaceState {
        name: namespace.into(),
        labels,
        pods,
        claims,
        policies,
    };
    if webhook_installed {
        // Pods created before the webhook get what it would have added, so protection does
        // not depend on when a pod was created; annotated pods are left as they are.
        state.pods = state
            .pods
            .iter()
            .map(|p| with_admission_annotations(p, &state.labels, &state.policy_for(p)))
            .collect();
    }
    Ok(state)
}

/// `pod` with what the admission webhook would have added, when the webhook is registered: a
/// pod it missed (created before it, or while it was down or too slow: failurePolicy Ignore)
/// gets the same annotations, as [`gather`] gives them for backups; annotated pods, and every
/// pod of a cluster without the webhook, are returned as they are.
pub async fn as_admitted(client: &Client, pod: &Pod) -> Result<Pod> {
    let (webhook_installed, policies) = admission_policies(client).await;
    if !webhook_installed {
        return Ok(pod.clone());
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let state = NamespaceState {
        name: namespace.into(),
        labels: namespace_labels(client, namespace).await?,
        policies,
        ..Default::default()
    };
    Ok(with_admission_annotations(
        pod,
        &state.labels,
        &state.policy_for(pod),
    ))
}

/// Whether the admission webhook is registered (the cluster opted into protection by
/// default), and the cluster's BackupPolicies. Neither being readable is no reason to fail a
/// backup: the pods' own annotations still apply.
async fn admission_policies(client: &Client) -> (bool, Vec<BackupPolicy>) {
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let installed = match configs.get_opt(CONFIGURATION_NAME).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::warn!("cannot read MutatingWebhookConfiguration {CONFIGURATION_NAME}: {e}");
            false
        }
    };
    let policies: Api<BackupPolicy> = Api::all(client.clone());
    let policies = match policies.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
        Err(e) => {
            tracing::warn!("cannot list BackupPolicies, the built-in default applies: {e}");
            Vec::new()
        }
    };
    (installed, policies)
}

/// A namespace's labels (exclusion, Pod Security level); none when it does not exist.
pub async fn namespace_labels(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    Ok(api
        .get_opt(namespace)
        .await
        .map_err(Error::kube(format!("cannot read namespace {namespace}")))?
        .and_then(|n| n.metadata.labels)
        .unwrap_or_default())
}

/// The cluster's VolumeSnapshotClasses by driver (none when the snapshot CRDs are absent).
#[derive(Debug, Default)]
pub struct SnapshotClasses(Vec<(String, String, bool)>);

impl SnapshotClasses {
    /// The class for a driver: the one marked default, else the only one.
    pub fn for_driver(&self, driver: &str) -> Option<String> {
        let matching: Vec<_> = self.0.iter().filter(|(_, d, _)| d == driver).collect();
        matching
            .iter()
            .find(|(_, _, default)| *default)
            .or(matching.first().filter(|_| matching.len() == 1))
            .map(|(name, _, _)| name.clone())
    }
}

/// The `snapshot.storage.k8s.io/v1` VolumeSnapshotClass resource.
pub fn snapshot_class_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    )
}

async fn snapshot_classes(client: &Client) -> Result<SnapshotClasses> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &snapshot_class_resource());
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(ae)) if ae.code == 404 => return Ok(SnapshotClasses::default()),
        Err(e) => return Err(Error::kube("cannot list VolumeSnapshotClasses")(e)),
    };
    Ok(SnapshotClasses(
        list.items
            .into_iter()
            .filter_map(|o| {
                let name = o.metadata.name.clone()?;
                let driver = o.data.get("driver")?.as_str()?.to_string();
                let default = o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("snapshot.storage.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true");
                Some((name, driver, default))
            })
            .collect(),
    ))
}
