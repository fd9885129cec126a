//! What stands between a scheduled pod and its volumes on its node: the attach/detach
//! controller's rule that an attachable volume (here: one not pinned to a node) without
//! multi-node access modes is attached to one node at a time (`Multi-Attach error`), and
//! the kubelet's check of a local volume's node affinity when mounting it.
//! Both leave the pod in ContainerCreating with the real Warning events.

use super::Node;
use super::events;
use super::objects::{self, s};
use super::scheduler::node_selector_matches;
use super::volumes::{NotReady, claims};
use serde_json::Value;

fn terminal(pod: &Value) -> bool {
    matches!(s(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Whether a volume may be attached to several nodes (ReadWriteMany or ReadOnlyMany).
fn multi_attach_allowed(pv: &Value) -> bool {
    pv.pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .is_some_and(|m| {
            m.iter()
                .any(|x| x == "ReadWriteMany" || x == "ReadOnlyMany")
        })
}

/// The attach/detach controller's message naming the pods that hold the volume elsewhere.
fn multi_attach_message(pv_name: &str, pod: &Value, holders: &[&Value]) -> String {
    let ns = objects::namespace(pod);
    let local: Vec<&str> = holders
        .iter()
        .filter(|p| objects::namespace(p) == ns)
        .map(|p| objects::name(p))
        .collect();
    let others = holders.len() - local.len();
    let suffix = match (local.is_empty(), others) {
        (false, 0) => format!("Volume is already used by pod(s) {}", local.join(", ")),
        (false, n) => format!(
            "Volume is already used by pod(s) {} and {n} pod(s) in different namespaces",
            local.join(", ")
        ),
        (true, n) => format!("Volume is already used by {n} pod(s) in different namespaces"),
    };
    format!("Multi-Attach error for volume \"{pv_name}\" {suffix}")
}

/// Checks that every claim of the scheduled `pod` can be attached to and mounted on its
/// node; records the reason as an event on the pod when not.
pub fn check(node: &Node, pod: &Value) -> Result<(), NotReady> {
    let ns = objects::namespace(pod);
    let here = s(pod, "/spec/nodeName");
    let Some(this_node) = objects::get(&node.api, "", "nodes", "", here) else {
        return Ok(());
    };
    let mut pods: Option<Vec<Value>> = None;
    for claim in claims(pod) {
        let Some(pvc) = objects::get(&node.api, "", "persistentvolumeclaims", ns, &claim) else {
            continue;
        };
        let Some(pv) = objects::get(
            &node.api,
            "",
            "persistentvolumes",
            "",
            s(&pvc, "/spec/volumeName"),
        ) else {
            continue;
        };
        let pv_name = objects::name(&pv).to_string();
        // Volumes pinned to a node are local disks: mounted, never attached. The others
        // stand for network disks, attached to one node at a time unless multi-node.
        let local = pv.pointer("/spec/nodeAffinity/required").is_some();
        if !local && !multi_attach_allowed(&pv) {
            let all = pods.get_or_insert_with(|| objects::list(&node.api, "", "pods", None));
            let holders: Vec<&Value> = all
                .iter()
                .filter(|p| objects::uid(p) != objects::uid(pod) && !terminal(p))
                .filter(|p| {
                    let there = s(p, "/spec/nodeName");
                    !there.is_empty() && there != here
                })
                .filter(|p| {
                    claims(p).iter().any(|c| {
                        objects::get(
                            &node.api,
                            "",
                            "persistentvolumeclaims",
                            objects::namespace(p),
                            c,
                        )
                        .is_some_and(|other| s(&other, "/spec/volumeName") == pv_name)
                    })
                })
                .collect();
            let attached_elsewhere = holders
                .iter()
                .any(|p| node.kubelet.pod(objects::uid(p)).is_some());
            if attached_elsewhere {
                let msg = multi_attach_message(&pv_name, pod, &holders);
                events::record(
                    &node.api,
                    pod,
                    "Warning",
                    "FailedAttachVolume",
                    &msg,
                    "attachdetach-controller",
                );
                return Err(NotReady(msg));
            }
        }
        if let Some(affinity) = pv.pointer("/spec/nodeAffinity/required")
            && !node_selector_matches(affinity, &this_node)
        {
            let msg = format!(
                "MountVolume.NodeAffinity check failed for volume \"{pv_name}\" : no matching NodeSelectorTerms"
            );
            events::record(&node.api, pod, "Warning", "FailedMount", &msg, "kubelet");
            return Err(NotReady(msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_attach_names_the_pods_of_the_same_namespace_only() {
        let pod = json!({"metadata": {"name": "b", "namespace": "app"}});
        let a = json!({"metadata": {"name": "a", "namespace": "app"}});
        let x = json!({"metadata": {"name": "x", "namespace": "other"}});
        assert_eq!(
            multi_attach_message("pvc-1", &pod, &[&a]),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by pod(s) a"
        );
        assert_eq!(
            multi_attach_message("pvc-1", &pod, &[&a, &x]),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by pod(s) a and 1 pod(s) in different namespaces"
        );
        assert_eq!(
            multi_attach_message("pvc-1", &pod, &[&x]),
            "Multi-Attach error for volume \"pvc-1\" Volume is already used by 1 pod(s) in different namespaces"
        );
    }
}
