//! The pvc-protection and pv-protection controllers: a claim being deleted keeps its
//! `kubernetes.io/pvc-protection` finalizer while a scheduled pod references it (whatever
//! the pod's phase, as upstream); a volume being deleted keeps `kubernetes.io/pv-protection`
//! while it is Bound.

use super::Node;
use super::objects::{self, s};
use super::volumes::claims;
use serde_json::Value;

const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn without(api: &crate::api::Api, plural: &str, mut o: Value, finalizer: &str, manager: &str) {
    let Some(f) = o
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let before = f.len();
    f.retain(|x| x != finalizer);
    if f.len() != before {
        let _ = objects::update(api, "", plural, o, manager);
    }
}

/// Releases the claims being deleted in `ns` that no scheduled pod uses any more.
pub fn reconcile_claims(node: &Node, ns: &str) {
    let deleting: Vec<Value> = objects::list(&node.api, "", "persistentvolumeclaims", Some(ns))
        .into_iter()
        .filter(objects::deleting)
        .collect();
    if deleting.is_empty() {
        return;
    }
    let pods = objects::list(&node.api, "", "pods", Some(ns));
    for pvc in deleting {
        let used = pods.iter().any(|p| {
            !s(p, "/spec/nodeName").is_empty() && claims(p).iter().any(|c| c == objects::name(&pvc))
        });
        if !used {
            without(
                &node.api,
                "persistentvolumeclaims",
                pvc,
                PVC_PROTECTION,
                "pvc-protection-controller",
            );
        }
    }
}

/// Releases a volume being deleted once it is no longer Bound.
pub fn reconcile_volume(node: &Node, pv: &Value) {
    if objects::deleting(pv) && s(pv, "/status/phase") != "Bound" {
        without(
            &node.api,
            "persistentvolumes",
            pv.clone(),
            PV_PROTECTION,
            "pv-protection-controller",
        );
    }
}
