//! The pvc-protection and pv-protection controllers of kube-controller-manager (they run
//! with or without a node): a claim being deleted keeps its `kubernetes.io/pvc-protection`
//! finalizer while a scheduled pod references it (whatever the pod's phase, as upstream); a
//! volume being deleted keeps `kubernetes.io/pv-protection` while it is Bound. The
//! finalizers themselves are added on creation (the StorageObjectInUseProtection admission
//! plugin, in [`crate::defaults`]).

use crate::api::{Api, Change, ChangeType};
use crate::controllers::Controller;
use crate::store::ObjectKey;
use serde_json::Value;
use std::sync::Arc;

const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

/// The claims a pod mounts.
pub fn pod_claims(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect()
}

fn list(api: &Api, plural: &str, ns: Option<&str>) -> Vec<Value> {
    api.keys_of("", plural)
        .into_iter()
        .filter(|k| ns.is_none_or(|n| k.namespace == n))
        .filter_map(|k| api.get_key(&k))
        .collect()
}

fn without(api: &Api, plural: &str, mut o: Value, finalizer: &str, manager: &str) {
    let Some(rt) = api.resource("", plural) else {
        return;
    };
    let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(Value::Array(f)) = md.get_mut("finalizers") else {
        return;
    };
    let before = f.len();
    f.retain(|x| x != finalizer);
    if f.len() == before {
        return;
    }
    md.remove("resourceVersion");
    let ns = text(&o, "/metadata/namespace").to_string();
    let name = text(&o, "/metadata/name").to_string();
    let ns = (!ns.is_empty()).then_some(ns.as_str());
    let _ = api.update_now(&rt, ns, &name, o, manager, None);
}

/// Releases the claims being deleted in `ns` that no scheduled pod uses any more.
fn reconcile_claims(api: &Api, ns: &str) {
    let claims: Vec<Value> = list(api, "persistentvolumeclaims", Some(ns))
        .into_iter()
        .filter(deleting)
        .collect();
    if claims.is_empty() {
        return;
    }
    let pods = list(api, "pods", Some(ns));
    for pvc in claims {
        let name = text(&pvc, "/metadata/name");
        let used = pods.iter().any(|p| {
            !text(p, "/spec/nodeName").is_empty() && pod_claims(p).iter().any(|c| c == name)
        });
        if !used {
            without(
                api,
                "persistentvolumeclaims",
                pvc,
                PVC_PROTECTION,
                "pvc-protection-controller",
            );
        }
    }
}

/// Releases a volume being deleted once it is no longer Bound.
fn reconcile_volume(api: &Api, pv: &Value) {
    if deleting(pv) && text(pv, "/status/phase") != "Bound" {
        without(
            api,
            "persistentvolumes",
            pv.clone(),
            PV_PROTECTION,
            "pv-protection-controller",
        );
    }
}

/// The two protection controllers.
pub struct StorageProtection;

impl Controller for StorageProtection {
    fn name(&self) -> &'static str {
        "storage-protection"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        let ObjectKey {
            group,
            resource,
            namespace,
            ..
        } = &change.key;
        if !group.is_empty() {
            return;
        }
        match resource.as_str() {
            // A deleted pod, or a claim marked for deletion, may free a claim.
            "pods" if change.type_ == ChangeType::Deleted => reconcile_claims(api, namespace),
            "persistentvolumeclaims" if deleting(&change.object) => {
                reconcile_claims(api, namespace)
            }
            "persistentvolumes" => reconcile_volume(api, &change.object),
            _ => {}
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        let mut namespaces: Vec<String> = api
            .keys_of("", "persistentvolumeclaims")
            .into_iter()
            .map(|k| k.namespace)
            .collect();
        namespaces.sort();
        namespaces.dedup();
        for ns in namespaces {
            reconcile_claims(api, &ns);
        }
        for pv in list(api, "persistentvolumes", None) {
            reconcile_volume(api, &pv);
        }
    }
}
