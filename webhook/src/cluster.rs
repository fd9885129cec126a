//! The cluster as the webhook sees it: namespaces' labels and BackupPolicies, kept in memory
//! by watches so that answering a request never waits on the API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use vbackup_engine::policy::{AppliedPolicy, BackupPolicy, select_policy};
use vbackup_engine::webhook::ClusterView;

/// Watched namespaces (metadata only) and BackupPolicies.
#[derive(Clone)]
pub struct WatchedCluster {
    namespaces: Store<PartialObjectMeta<Namespace>>,
    policies: Store<BackupPolicy>,
    /// Each watch has answered once (listed, or failed: then what is known applies, and the
    /// built-in default policy when no BackupPolicy is known).
    settled: [Arc<AtomicBool>; 2],
}

impl WatchedCluster {
    /// Starts the watches; they reconnect with backoff for as long as the process runs.
    pub fn start(client: kube::Client) -> Self {
        let (namespaces, ns_writer) = reflector::store();
        let namespaces_settled = Arc::new(AtomicBool::new(false));
        let ns_api = Api::<PartialObjectMeta<Namespace>>::all(client.clone());
        let ns_stream = watcher(ns_api, watcher::Config::default())
            .default_backoff()
            .reflect(ns_writer);
        drain(ns_stream, namespaces_settled.clone(), "namespaces");
        let (policies, policy_writer) = reflector::store();
        let policies_settled = Arc::new(AtomicBool::new(false));
        let policy_stream = watcher(Api::<BackupPolicy>::all(client), watcher::Config::default())
            .default_backoff()
            .reflect(policy_writer);
        drain(
            policy_stream,
            policies_settled.clone(),
            "BackupPolicies (is the CRD installed?)",
        );
        WatchedCluster {
            namespaces,
            policies,
            settled: [namespaces_settled, policies_settled],
        }
    }

    /// Both watches have their first answer.
    pub fn ready(&self) -> bool {
        self.settled.iter().all(|s| s.load(Ordering::Relaxed))
    }
}

impl ClusterView for WatchedCluster {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let ns = self.namespaces.get(&ObjectRef::new(namespace))?;
        Some(ns.metadata.labels.clone().unwrap_or_default())
    }

    fn policy_for(
        &self,
        namespace_labels: &BTreeMap<String, String>,
        pod_labels: &BTreeMap<String, String>,
    ) -> AppliedPolicy {
        let policies = self.policies.state();
        select_policy(
            policies.iter().map(Arc::as_ref),
            namespace_labels,
            pod_labels,
        )
    }
}

/// Runs a reflecting watch in the background, logging its errors; `settled` turns true once
/// the first listing is complete or has failed.
fn drain<S, K>(stream: S, settled: Arc<AtomicBool>, what: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {}
                Ok(_) => continue,
                Err(e) => tracing::warn!("watching {what}: {e}"),
            }
            settled.store(true, Ordering::Relaxed);
        }
    });
}
