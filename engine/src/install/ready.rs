//! After install: waiting until the webhook really answers. A ready Deployment only proves
//! the pods answer their probes; the API server must also reach them through the Service
//! and trust their certificate (the `caBundle`). So once the Deployment is available, a
//! dry-run pod is created in a namespace the webhook watches, until it comes back carrying
//! the webhook's [`POLICY_ANNOTATION`]. Failures name what is wrong and where to look.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{FIELD_MANAGER, webhook};
use crate::hooks::backup::is_ready;
use crate::policy::POLICY_ANNOTATION;
use crate::policy::annotations::{EXCLUDE_LABEL, labelled_true};
use crate::{Error, Result};

/// The namespace the dry-run pod is created in: it exists in every cluster.
pub const PROBE_NAMESPACE: &str = "default";

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// A dry-run pod in `namespace` came back annotated with `policy`.
    Annotated {
        /// Where the dry-run pod was created.
        namespace: String,
        /// The BackupPolicy the webhook applied.
        policy: String,
    },
    /// The Deployment is available but no namespace could prove the webhook answers.
    NotProbed(String),
}

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answered::Annotated { namespace, policy } => write!(
                f,
                "the webhook answers the API server: a dry-run pod in namespace {namespace} \
                 was annotated ({POLICY_ANNOTATION}={policy})"
            ),
            Answered::NotProbed(why) => write!(
                f,
                "the webhook Deployment is available; whether the API server reaches it was \
                 not checked: {why}"
            ),
        }
    }
}

/// Waits (at most `limit`) until the webhook Deployment in `namespace` is available and the
/// API server's calls to the webhook are answered; `image` is the install's image (the
/// dry-run pod names it, nothing runs it).
pub async fn wait_webhook_answers(
    client: &Client,
    namespace: &str,
    image: &str,
    limit: Duration,
) -> Result<Answered> {
    let deadline = Instant::now() + limit;
    wait_available(client, namespace, limit, deadline).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let probe_ns = namespaces
        .get_opt(PROBE_NAMESPACE)
        .await
        .map_err(Error::kube(format!(
            "cannot read namespace {PROBE_NAMESPACE}"
        )))?;
    let Some(probe_ns) = probe_ns else {
        return Ok(Answered::NotProbed(format!(
            "namespace {PROBE_NAMESPACE} does not exist"
        )));
    };
    if let Some(label) = labelled_true(probe_ns.labels(), &[EXCLUDE_LABEL]) {
        return Ok(Answered::NotProbed(format!(
            "namespace {PROBE_NAMESPACE} is labelled {label}=true, so the webhook skips it"
        )));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let pod = probe_pod(image)?;
    loop {
        let created = pods.create(&params, &pod).await.map_err(|e| {
            Error::NotReady(format!(
                "cannot create a dry-run pod in namespace {PROBE_NAMESPACE} to check that the \
                 webhook answers ({e}); install --wait=false skips the check"
            ))
        })?;
        if let Some(policy) = created.annotations().get(POLICY_ANNOTATION) {
            return Ok(Answered::Annotated {
                namespace: PROBE_NAMESPACE.into(),
                policy: policy.clone(),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady(format!(
                "the webhook Deployment {namespace}/{svc} is available, but the API server's \
                 calls to the webhook fail: a dry-run pod in namespace {PROBE_NAMESPACE} was \
                 still not annotated after {limit:?}. Pods are created meanwhile, without \
                 vbackup's annotations (failurePolicy Ignore). Check the Service's endpoints \
                 (`kubectl -n {namespace} get endpointslices -l \
                 kubernetes.io/service-name={svc}`), the caBundle of MutatingWebhookConfiguration \
                 {config} against Secret {namespace}/{secret}, and NetworkPolicies between the \
                 API server and {namespace}",
                svc = webhook::SERVICE,
                config = webhook::CONFIGURATION,
                secret = webhook::TLS_SECRET,
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A pod the webhook annotates and every Pod Security level admits. It is only ever sent
/// with `dryRun`: nothing is stored, nothing runs.
fn probe_pod(image: &str) -> Result<Pod> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "vbackup-install-probe-",
            "labels": {"app.kubernetes.io/part-of": super::PART_OF},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": crate::schedules::cronjob::RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "probe",
                "image": image,
                "command": ["kubectl-vbackup", "version"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "10m", "memory": "16Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .map_err(|e| Error::Internal(format!("cannot build the probe pod: {e}")))
}

/// Waits until every webhook replica of the current template is ready; on timeout the error
/// says why, from the Deployment's conditions and its pods' states and Warning events.
async fn wait_available(
    client: &Client,
    namespace: &str,
    limit: Duration,
    deadline: Instant,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    loop {
        let d = api
            .get(webhook::SERVICE)
            .await
            .map_err(Error::kube("cannot read the webhook Deployment"))?;
        let want = d.spec.replicas.unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let current = status.observed_generation >= d.metadata.generation;
        if current && ready >= want && updated >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut why = Vec::new();
            for c in status.conditions.iter().flatten() {
                if c.status.as_deref() != Some("True") {
                    why.push(format!(
                        "condition {} {}: {}",
                        c.type_.as_deref().unwrap_or_default(),
                        c.reason.as_deref().unwrap_or_default(),
                        c.message.as_deref().unwrap_or_default()
                    ));
                }
            }
            why.extend(pod_problems(client, namespace).await);
            if why.is_empty() {
                why.push("no condition or pod event says why".into());
            }
            return Err(Error::NotReady(format!(
                "the webhook Deployment {namespace}/{svc} is not available after {limit:?} \
                 ({ready}/{want} replicas ready, {updated}/{want} updated): {}. See `kubectl -n \
                 {namespace} describe deployment,pods -l app.kubernetes.io/name={svc}`; pods \
                 are created meanwhile, without vbackup's annotations (failurePolicy Ignore)",
                why.join("; "),
                svc = webhook::SERVICE,
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why the webhook's pods that are not ready are not: their waiting state and Warning
/// events. Errors reading them are left out: they only add to a timeout's message.
async fn pod_problems(client: &Client, namespace: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/name={}", webhook::SERVICE);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pod in list.items.iter().filter(|p| !is_ready(p)) {
        let name = pod.name_any();
        let mut notes = vec![crate::volumes::launch::pending_reason(pod)];
        let statuses = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten());
        for last in statuses.filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()) {
            notes.push(format!(
                "last exit code {}{}",
                last.exit_code,
                last.message
                    .as_deref()
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default()
            ));
        }
        let field = format!("involvedObject.kind=Pod,involvedObject.name={name}");
        if let Ok(evs) = events.list(&ListParams::default().fields(&field)).await {
            let mut warnings: Vec<String> = evs
                .items
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.reason.as_deref().unwrap_or_default(),
                        e.message.as_deref().unwrap_or_default().trim()
                    )
                })
                .collect();
            warnings.dedup();
            notes.extend(warnings);
        }
        notes.dedup();
        out.push(format!("pod {name}: {}", notes.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::admission::admission_annotations;
    use crate::policy::backup_policy::AppliedPolicy;
    use std::collections::BTreeMap;

    #[test]
    fn the_probe_pod_is_one_the_webhook_annotates() {
        let pod = probe_pod("ghcr.io/vbackup/vbackup:1").unwrap();
        let added =
            admission_annotations(&pod, &BTreeMap::new(), &AppliedPolicy::default()).unwrap();
        assert!(added.contains_key(POLICY_ANNOTATION), "{added:?}");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        let c = &spec.containers[0].security_context.as_ref().unwrap();
        assert_eq!(c.allow_privilege_escalation, Some(false));
    }
}
