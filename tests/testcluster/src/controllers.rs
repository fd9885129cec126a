//! Controllers: background reactions to committed changes, like the real control plane's
//! (namespace termination, CRD cleanup, garbage collection, default service accounts).
//!
//! A controller sees every change in commit order and writes back through [`Api`]. More
//! controllers (a node running pods, volume binding...) plug in through
//! [`crate::ClusterOptions::controllers`].

use crate::api::{Api, Change, ChangeType, DeleteOptions, WriteOptions};
use crate::store::ObjectKey;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Something that reacts to object changes.
pub trait Controller: Send + Sync + 'static {
    /// A short name (used as its field manager).
    fn name(&self) -> &'static str;
    /// Called for each committed change, in order.
    fn on_change(&self, api: &Arc<Api>, change: &Change);
    /// Called at start and whenever changes may have been missed: reconcile everything.
    fn resync(&self, api: &Arc<Api>);
}

/// The controllers every cluster runs; `ca_pem` is the serving CA published in every
/// namespace's `kube-root-ca.crt` (a placeholder when serving plain HTTP).
pub fn builtin(ca_pem: Option<String>) -> Vec<Arc<dyn Controller>> {
    let ca = ca_pem.unwrap_or_else(|| "-----BEGIN CERTIFICATE-----\nvbackup-testcluster serves plain HTTP\n-----END CERTIFICATE-----\n".into());
    vec![
        Arc::new(Namespaces { ca }),
        Arc::new(CrdCleanup),
        Arc::new(crate::crd_establish::CrdEstablishing),
        Arc::new(crate::storage_protection::StorageProtection),
        Arc::new(crate::endpoints::EndpointsController),
        Arc::new(GarbageCollector),
    ]
}

/// Runs each controller on its own task until `shutdown`.
pub fn spawn(api: &Arc<Api>, controllers: Vec<Arc<dyn Controller>>, shutdown: &CancellationToken) {
    for c in controllers {
        let api = api.clone();
        let shutdown = shutdown.clone();
        let mut rx = api.subscribe();
        tokio::spawn(async move {
            c.resync(&api);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    msg = rx.recv() => match msg {
                        Ok(change) => c.on_change(&api, &change),
                        Err(RecvError::Lagged(_)) => c.resync(&api),
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
    }
}

fn deletion_pending(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

fn delete_key(api: &Api, key: &ObjectKey) {
    match api.resource(&key.group, &key.resource) {
        Some(rt) => {
            let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            // Already gone or still finalizing: both are fine, the next change retries.
            let _ = api.delete(&rt, ns, &key.name, &DeleteOptions::default());
        }
        None => {
            let _ = api.remove_now(key);
        }
    }
}

/// Namespace lifecycle: the default ServiceAccount and root CA ConfigMap in new namespaces,
/// and deleting a Terminating namespace's content before the namespace itself.
pub struct Namespaces {
    ca: String,
}

impl Namespaces {
    fn populate(&self, api: &Api, ns: &str) {
        let opts = WriteOptions {
            field_manager: "kube-controller-manager".into(),
            ..Default::default()
        };
        if let Some(sa) = api.resource("", "serviceaccounts") {
            let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
            let _ = api.create_now(&sa, Some(ns), obj, &opts);
        }
        if let Some(cm) = api.resource("", "configmaps") {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": self.ca}});
            let _ = api.create_now(&cm, Some(ns), obj, &opts);
        }
    }

    fn terminate(&self, api: &Api, ns: &str) {
        let keys = api.keys_in_namespace(ns);
        if keys.is_empty() {
            let Some(rt) = api.resource("", "namespaces") else {
                return;
            };
            if let Ok(mut obj) = api.get(&rt, None, ns) {
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("finalizers".into(), json!([]));
                }
                let _ =
                    api.update_now(&rt, None, ns, obj, "namespace-controller", Some("finalize"));
            }
            return;
        }
        for key in keys {
            if let Some(obj) = api.get_key(&key)
                && !deletion_pending(&obj)
            {
                delete_key(api, &key);
            }
        }
    }

    fn terminating(api: &Api, ns: &str) -> bool {
        api.get_key(&ObjectKey::new("", "namespaces", "", ns))
            .is_some_and(|n| deletion_pending(&n))
    }
}

impl Controller for Namespaces {
    fn name(&self) -> &'static str {
        "namespace-controller"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        let k = &change.key;
        if k.group.is_empty() && k.resource == "namespaces" {
            match change.type_ {
                ChangeType::Added if !deletion_pending(&change.object) => {
                    self.populate(api, &k.name)
                }
                ChangeType::Modified if deletion_pending(&change.object) => {
                    self.terminate(api, &k.name)
                }
                _ => {}
            }
        } else if !k.namespace.is_empty()
            && change.type_ == ChangeType::Deleted
            && Self::terminating(api, &k.namespace)
        {
            self.terminate(api, &k.namespace);
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        for key in api.keys_of("", "namespaces") {
            if Self::terminating(api, &key.name) {
                self.terminate(api, &key.name);
            } else {
                self.populate(api, &key.name);
            }
        }
    }
}

const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Deleting a CRD deletes its custom objects, then the CRD.
pub struct CrdCleanup;

impl CrdCleanup {
    fn cleanup(&self, api: &Api, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let keys = api.keys_of(group, plural);
        if keys.is_empty() {
            let Some(rt) = api.resource("apiextensions.k8s.io", "customresourcedefinitions") else {
                return;
            };
            let name = crd
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Ok(mut obj) = api.get(&rt, None, name)
                && let Some(f) = obj
                    .pointer_mut("/metadata/finalizers")
                    .and_then(Value::as_array_mut)
            {
                f.retain(|x| x != CRD_FINALIZER);
                let _ = api.update_now(&rt, None, name, obj, "apiextensions-controller", None);
            }
            return;
        }
        for key in keys {
            if api.get_key(&key).is_some_and(|o| !deletion_pending(&o)) {
                delete_key(api, &key);
            }
        }
    }

    fn check_all(&self, api: &Api) {
        for key in api.keys_of("apiextensions.k8s.io", "customresourcedefinitions") {
            if let Some(crd) = api.get_key(&key)
                && deletion_pending(&crd)
            {
                self.cleanup(api, &crd);
            }
        }
    }
}

impl Controller for CrdCleanup {
    fn name(&self) -> &'static str {
        "apiextensions-controller"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        let k = &change.key;
        let is_crd = k.group == "apiextensions.k8s.io" && k.resource == "customresourcedefinitions";
        if (is_crd && deletion_pending(&change.object))
            || (change.type_ == ChangeType::Deleted && !k.group.is_empty())
        {
            self.check_all(api);
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        self.check_all(api);
    }
}

/// Deletes objects whose owners (by `ownerReferences` uid) have all been deleted, and
/// orphans the dependents of objects deleted with `propagationPolicy=Orphan`.
pub struct GarbageCollector;

impl GarbageCollector {
    fn orphan(&self, api: &Api, key: &ObjectKey, owner: &Value) {
        let uid = owner
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for dep in api.dependents_of(uid) {
            let (Some(mut obj), Some(rt)) =
                (api.get_key(&dep), api.resource(&dep.group, &dep.resource))
            else {
                continue;
            };
            if let Some(md) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                md.remove("resourceVersion");
                if let Some(Value::Array(refs)) = md.get_mut("ownerReferences") {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                    if refs.is_empty() {
                        md.remove("ownerReferences");
                    }
                }
            }
            let ns = (!dep.namespace.is_empty()).then_some(dep.namespace.as_str());
            let _ = api.update_now(&rt, ns, &dep.name, obj, "garbage-collector", None);
        }
        let Some(rt) = api.resource(&key.group, &key.resource) else {
            return;
        };
        let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
        if let Ok(mut obj) = api.get(&rt, ns, &key.name)
            && let Some(f) = obj
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
        {
            f.retain(|x| x != crate::api::ORPHAN_FINALIZER);
            let _ = api.update_now(&rt, ns, &key.name, obj, "garbage-collector", None);
        }
    }

    fn orphaning(obj: &Value) -> bool {
        deletion_pending(obj)
            && obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x == crate::api::ORPHAN_FINALIZER))
    }

    fn collect(&self, api: &Api, uid: &str) {
        for key in api.dependents_of(uid) {
            let Some(obj) = api.get_key(&key) else {
                continue;
            };
            let owners = crate::api::owner_uids(&obj);
            if owners.iter().all(|u| !api.uid_exists(u)) && !deletion_pending(&obj) {
                delete_key(api, &key);
            }
        }
    }
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        if change.type_ != ChangeType::Deleted && Self::orphaning(&change.object) {
            self.orphan(api, &change.key, &change.object);
        }
        if change.type_ == ChangeType::Deleted
            && let Some(uid) = change
                .object
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
        {
            self.collect(api, uid);
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        let mut orphaning = Vec::new();
        for (key, obj) in api.lock().store.iter() {
            if Self::orphaning(obj) {
                orphaning.push((key.clone(), obj.clone()));
            }
        }
        for (key, obj) in orphaning {
            self.orphan(api, &key, &obj);
        }
    }
}
