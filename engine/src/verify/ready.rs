//! Whether a scratch namespace's workloads came up: Deployments, StatefulSets and
//! DaemonSets available, pods Ready.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::Resource;
use kube::api::{Api, ListParams, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::cluster::list::list_all;
use crate::hooks::backup::is_ready;
use crate::{Error, Result};

/// How often the workloads are looked at again while waiting.
const POLL: Duration = Duration::from_secs(1);

/// What is in a namespace, as far as readiness goes.
#[derive(Debug, Default, Clone)]
pub struct Workloads {
    /// Its Deployments.
    pub deployments: Vec<Deployment>,
    /// Its StatefulSets.
    pub stateful_sets: Vec<StatefulSet>,
    /// Its DaemonSets.
    pub daemon_sets: Vec<DaemonSet>,
    /// Its pods.
    pub pods: Vec<Pod>,
}

impl Workloads {
    /// Reads them, page by page.
    pub async fn read(client: &Client, namespace: &str) -> Result<Workloads> {
        Ok(Workloads {
            deployments: list(client, namespace, "Deployments").await?,
            stateful_sets: list(client, namespace, "StatefulSets").await?,
            daemon_sets: list(client, namespace, "DaemonSets").await?,
            pods: list(client, namespace, "pods").await?,
        })
    }

    /// What is not ready yet, each named with how far it got; empty when all is.
    pub fn not_ready(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.deployments {
            let want = d.spec.replicas.unwrap_or(1);
            let status = d.status.clone().unwrap_or_default();
            let available = status.available_replicas.unwrap_or(0);
            let updated = status.updated_replicas.unwrap_or(0);
            if available < want || updated < want {
                out.push(format!(
                    "Deployment {} ({available}/{want} available)",
                    d.name_any()
                ));
            }
        }
        for s in &self.stateful_sets {
            let want = s.spec.replicas.unwrap_or(1);
            let ready = s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            if ready < want {
                out.push(format!(
                    "StatefulSet {} ({ready}/{want} ready)",
                    s.name_any()
                ));
            }
        }
        for d in &self.daemon_sets {
            let status = d.status.clone().unwrap_or_default();
            let (want, available) = (
                status.desired_number_scheduled,
                status.number_available.unwrap_or(0),
            );
            if available < want {
                out.push(format!(
                    "DaemonSet {} ({available}/{want} available)",
                    d.name_any()
                ));
            }
        }
        for p in self.running_pods() {
            if !is_ready(p) {
                out.push(format!(
                    "pod {} ({})",
                    p.name_any(),
                    crate::volumes::launch::pending_reason(p)
                ));
            }
        }
        out
    }

    /// Pods that are meant to run: a Job's finished pods are done, not unready.
    pub fn running_pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
                && p.metadata.deletion_timestamp.is_none()
        })
    }
}

/// Every `K` in `namespace`; `what` names them in errors.
async fn list<K>(client: &Client, namespace: &str, what: &str) -> Result<Vec<K>>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    list_all(
        &Api::namespaced(client.clone(), namespace),
        ListParams::default(),
    )
    .await
    .map_err(Error::kube(format!(
        "cannot list the {what} of namespace {namespace}"
    )))
}

/// Waits until everything in `namespace` is ready, at most until `deadline`; `Err` holds
/// what was still not ready then.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    deadline: Instant,
) -> Result<std::result::Result<Workloads, Vec<String>>> {
    loop {
        let workloads = Workloads::read(client, namespace).await?;
        let missing = workloads.not_ready();
        if missing.is_empty() {
            return Ok(Ok(workloads));
        }
        if Instant::now() >= deadline {
            return Ok(Err(missing));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, available: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"availableReplicas": available, "updatedReplicas": available},
        }))
        .unwrap()
    }

    fn pod(phase: &str, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p-{phase}")},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn unavailable_deployments_and_unready_pods_are_named() {
        let w = Workloads {
            deployments: vec![deployment(2, 1)],
            pods: vec![pod("Running", false), pod("Succeeded", false)],
            ..Default::default()
        };
        let missing = w.not_ready();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(
            missing[0].contains("Deployment web (1/2 available)"),
            "{missing:?}"
        );
        assert!(missing[1].starts_with("pod p-Running"), "{missing:?}");
    }

    #[test]
    fn a_namespace_whose_workloads_are_available_is_ready() {
        let w = Workloads {
            deployments: vec![deployment(2, 2)],
            pods: vec![pod("Running", true), pod("Succeeded", false)],
            ..Default::default()
        };
        assert!(w.not_ready().is_empty());
    }
}
