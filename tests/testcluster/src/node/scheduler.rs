//! The scheduler: places a pod on one of the cluster's nodes as kube-scheduler's default
//! profile would, with its filters in upstream order (unschedulable nodes, taints and
//! tolerations, node affinity and `nodeSelector`, ReadWriteOncePod claims, volume binding,
//! inter-pod affinity) and its `0/N nodes are available: …` message when none fits.
//! Claims of a `WaitForFirstConsumer` class are bound through the scheduler: it picks the
//! node, annotates the claim with `volume.kubernetes.io/selected-node`, and binds the pod
//! once the provisioner has bound the claim there.

use super::objects::{self, s};
use super::{Node, storage, volumes};
use crate::selectors::LabelSelector;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The annotation that tells the provisioner on which node a claim's volume must be.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Why the pod cannot be placed.
enum Unschedulable {
    /// A PreFilter failed (the same for every node).
    PreFilter(String),
    /// Each node's first failing filter.
    Filters(Vec<String>),
}

/// Whether a node selector requirement holds for a node (`labels`, `name`).
fn requirement_holds(r: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = r
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |v: &str| v.parse::<i64>().ok();
    match s(r, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// Whether one `nodeSelectorTerm` (its expressions and fields, ANDed) selects the node.
fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term.get("matchExpressions").and_then(Value::as_array);
    let fields = term.get("matchFields").and_then(Value::as_array);
    if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
        return false;
    }
    let label = |k: &str| {
        node.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    exprs
        .into_iter()
        .flatten()
        .all(|r| requirement_holds(r, label(s(r, "/key"))))
        && fields.into_iter().flatten().all(|r| {
            let v = (s(r, "/key") == "metadata.name").then(|| objects::name(node));
            requirement_holds(r, v)
        })
}

/// Whether a `NodeSelector` (terms ORed) selects the node.
pub fn node_selector_matches(selector: &Value, node: &Value) -> bool {
    selector
        .get("nodeSelectorTerms")
        .and_then(Value::as_array)
        .is_some_and(|terms| terms.iter().any(|t| term_matches(t, node)))
}

fn node_affinity_fits(pod: &Value, node: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    let selector_fits = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required =
        pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution");
    selector_fits && required.is_none_or(|r| node_selector_matches(r, node))
}

fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = s(toleration, "/effect");
    if !effect.is_empty() && effect != s(taint, "/effect") {
        return false;
    }
    let key = s(toleration, "/key");
    if !key.is_empty() && key != s(taint, "/key") {
        return false;
    }
    match s(toleration, "/operator") {
        "Exists" => true,
        "" | "Equal" => s(toleration, "/value") == s(taint, "/value"),
        _ => false,
    }
}

/// The first `NoSchedule`/`NoExecute` taint of the node that the pod does not tolerate.
fn untolerated_taint<'a>(pod: &Value, node: &'a Value) -> Option<&'a Value> {
    let tolerations: Vec<&Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| matches!(s(t, "/effect"), "NoSchedule" | "NoExecute"))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// The pods bound to a node that still hold it (not finished).
fn pods_on<'a>(pods: &'a [Value], node: &str) -> impl Iterator<Item = &'a Value> {
    pods.iter().filter(move |p| {
        s(p, "/spec/nodeName") == node && !matches!(s(p, "/status/phase"), "Succeeded" | "Failed")
    })
}

/// Whether a pod affinity term is satisfied by some pod in the node's topology domain.
fn affinity_term_met(
    term: &Value,
    pod: &Value,
    node: &Value,
    nodes: &[Value],
    pods: &[Value],
) -> bool {
    let key = s(term, "/topologyKey");
    let Some(domain) = node.pointer("/metadata/labels").and_then(|l| l.get(key)) else {
        return false;
    };
    let selector = LabelSelector::from_object(term.get("labelSelector").unwrap_or(&Value::Null));
    let namespaces: Vec<&str> = term
        .get("namespaces")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .filter(|a: &Vec<&str>| !a.is_empty())
        .unwrap_or_else(|| vec![objects::namespace(pod)]);
    nodes
        .iter()
        .filter(|n| n.pointer("/metadata/labels").and_then(|l| l.get(key)) == Some(domain))
        .flat_map(|n| pods_on(pods, objects::name(n)))
        .any(|other| {
            objects::uid(other) != objects::uid(pod)
                && namespaces.contains(&objects::namespace(other))
                && term.get("labelSelector").is_some()
                && selector.matches(other)
        })
}

fn terms<'a>(pod: &'a Value, pointer: &str) -> Vec<&'a Value> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

/// InterPodAffinity's filter reason, if any.
fn pod_affinity_problem(
    pod: &Value,
    node: &Value,
    nodes: &[Value],
    pods: &[Value],
) -> Option<&'static str> {
    let anti = terms(
        pod,
        "/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution",
    );
    if anti
        .iter()
        .any(|t| affinity_term_met(t, pod, node, nodes, pods))
    {
        return Some("node(s) didn't match pod anti-affinity rules");
    }
    let wanted = terms(
        pod,
        "/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution",
    );
    let unmet = wanted
        .iter()
        .any(|t| !affinity_term_met(t, pod, node, nodes, pods));
    // The first pod of a group that selects itself may go anywhere (as upstream).
    let first_of_its_group = wanted.iter().all(|t| {
        LabelSelector::from_object(t.get("labelSelector").unwrap_or(&Value::Null)).matches(pod)
            && !nodes
                .iter()
                .any(|n| affinity_term_met(t, pod, n, nodes, pods))
    });
    (unmet && !first_of_its_group).then_some("node(s) didn't match pod affinity rules")
}

/// The claims of a pod with their state, for volume binding.
struct ClaimInfo {
    claim: Value,
    /// The bound volume.
    pv: Option<Value>,
    /// Bound later, through the scheduler (`WaitForFirstConsumer`).
    delayed: bool,
}

/// VolumeBinding's PreFilter: every claim exists, is not being deleted, and is bound
/// unless its class binds on first consumer.
fn claim_infos(node: &Node, pod: &Value) -> Result<Vec<ClaimInfo>, String> {
    let ns = objects::namespace(pod);
    let mut out = Vec::new();
    for name in volumes::claims(pod) {
        let claim = objects::get(&node.api, "", "persistentvolumeclaims", ns, &name)
            .ok_or_else(|| format!("persistentvolumeclaim \"{name}\" not found"))?;
        if objects::deleting(&claim) {
            return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        if s(&claim, "/status/phase") == "Bound" {
            let pv = objects::get(
                &node.api,
                "",
                "persistentvolumes",
                "",
                s(&claim, "/spec/volumeName"),
            );
            out.push(ClaimInfo {
                claim,
                pv,
                delayed: false,
            });
            continue;
        }
        if !storage::binds_on_first_consumer(node, &claim) {
            return Err("pod has unbound immediate PersistentVolumeClaims".into());
        }
        out.push(ClaimInfo {
            claim,
            pv: None,
            delayed: true,
        });
    }
    Ok(out)
}

/// VolumeBinding's filter for one node.
fn volume_problem(node: &Node, claims: &[ClaimInfo], n: &Value) -> Option<&'static str> {
    let name = objects::name(n);
    for c in claims {
        if let Some(pv) = &c.pv
            && let Some(affinity) = pv.pointer("/spec/nodeAffinity/required")
            && !node_selector_matches(affinity, n)
        {
            return Some("node(s) had volume node affinity conflict");
        }
        if c.delayed {
            let selected = s(
                &c.claim,
                &format!("/metadata/annotations/{}", SELECTED_NODE.replace('/', "~1")),
            );
            if !selected.is_empty() && selected != name {
                return Some("node(s) had volume node affinity conflict");
            }
            if !storage::can_provision(node, &c.claim) {
                return Some("node(s) didn't find available persistent volumes to bind");
            }
        }
    }
    None
}

/// VolumeRestrictions: a ReadWriteOncePod claim in use by another pod.
fn rwop_problem(node: &Node, pod: &Value, pods: &[Value]) -> Option<&'static str> {
    let ns = objects::namespace(pod);
    for claim in volumes::claims(pod) {
        let rwop =
            objects::get(&node.api, "", "persistentvolumeclaims", ns, &claim).is_some_and(|c| {
                c.pointer("/spec/accessModes")
                    .and_then(Value::as_array)
                    .is_some_and(|m| m.iter().any(|x| x == "ReadWriteOncePod"))
            });
        let in_use = rwop
            && pods.iter().any(|other| {
                objects::uid(other) != objects::uid(pod)
                    && objects::namespace(other) == ns
                    && !s(other, "/spec/nodeName").is_empty()
                    && !matches!(s(other, "/status/phase"), "Succeeded" | "Failed")
                    && volumes::claims(other).contains(&claim)
            });
        if in_use {
            return Some(
                "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode",
            );
        }
    }
    None
}

fn unschedulable_node(pod: &Value, node: &Value) -> bool {
    let taint = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
    node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true)
        && !terms(pod, "/spec/tolerations")
            .iter()
            .any(|t| tolerates(t, &taint))
}

/// The first failing filter for the pod on `n`.
fn filter(
    node: &Node,
    pod: &Value,
    n: &Value,
    nodes: &[Value],
    pods: &[Value],
    claims: &[ClaimInfo],
) -> Option<String> {
    if unschedulable_node(pod, n) {
        return Some("node(s) were unschedulable".into());
    }
    if let Some(t) = untolerated_taint(pod, n) {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            s(t, "/key"),
            s(t, "/value")
        ));
    }
    if !node_affinity_fits(pod, n) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if let Some(p) = rwop_problem(node, pod, pods) {
        return Some(p.into());
    }
    if let Some(p) = volume_problem(node, claims, n) {
        return Some(p.into());
    }
    pod_affinity_problem(pod, n, nodes, pods).map(str::to_string)
}

/// Preferred node affinity: the summed weights of the terms the node matches.
fn score(pod: &Value, n: &Value) -> i64 {
    terms(
        pod,
        "/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution",
    )
    .iter()
    .filter(|t| t.get("preference").is_some_and(|p| term_matches(p, n)))
    .filter_map(|t| t.get("weight").and_then(Value::as_i64))
    .sum()
}

/// The FitError message.
fn message(total: usize, why: &Unschedulable) -> String {
    let mut msg = format!("0/{total} nodes are available:");
    match why {
        Unschedulable::PreFilter(m) => msg.push_str(&format!(" {m}.")),
        Unschedulable::Filters(reasons) => {
            let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
            for r in reasons {
                *histogram.entry(r.as_str()).or_default() += 1;
            }
            let mut parts: Vec<String> =
                histogram.iter().map(|(r, n)| format!("{n} {r}")).collect();
            parts.sort();
            msg.push_str(&format!(" {}.", parts.join(", ")));
        }
    }
    msg.push_str(&format!(
        " preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    ));
    msg
}

fn report(node: &Node, pod: &Value, total: usize, why: &Unschedulable) {
    super::kubelet::mark_unschedulable(node, pod, &message(total, why));
}

/// Schedules `pod`: returns it bound to a node of this cluster, or `None` while it waits
/// (unschedulable, or its delayed claims being provisioned on the chosen node).
pub fn schedule(node: &Node, pod: Value) -> Option<Value> {
    let bound = s(&pod, "/spec/nodeName");
    if !bound.is_empty() {
        return node.names.iter().any(|n| n == bound).then_some(pod);
    }
    let scheduler = s(&pod, "/spec/schedulerName");
    if !scheduler.is_empty() && scheduler != "default-scheduler" {
        return None;
    }
    let nodes: Vec<Value> = node
        .names
        .iter()
        .filter_map(|n| objects::get(&node.api, "", "nodes", "", n))
        .collect();
    let claims = match claim_infos(node, &pod) {
        Ok(c) => c,
        Err(m) => {
            report(node, &pod, nodes.len(), &Unschedulable::PreFilter(m));
            return None;
        }
    };
    let pods = objects::list(&node.api, "", "pods", None);
    let mut reasons = Vec::new();
    let mut feasible = Vec::new();
    for n in &nodes {
        match filter(node, &pod, n, &nodes, &pods, &claims) {
            Some(r) => reasons.push(r),
            None => feasible.push(n),
        }
    }
    let Some(chosen) = feasible
        .iter()
        .max_by_key(|n| {
            let load = pods_on(&pods, objects::name(n)).count() as i64;
            (
                score(&pod, n),
                -load,
                std::cmp::Reverse(objects::name(n).to_string()),
            )
        })
        .map(|n| objects::name(n).to_string())
    else {
        report(node, &pod, nodes.len(), &Unschedulable::Filters(reasons));
        return None;
    };
    let mut waiting = false;
    for c in claims.iter().filter(|c| c.delayed) {
        waiting = true;
        let selected = s(
            &c.claim,
            &format!("/metadata/annotations/{}", SELECTED_NODE.replace('/', "~1")),
        );
        if selected.is_empty() {
            let mut claim = c.claim.clone();
            if !claim
                .pointer("/metadata/annotations")
                .is_some_and(Value::is_object)
            {
                claim["metadata"]["annotations"] = json!({});
            }
            claim["metadata"]["annotations"][SELECTED_NODE] = json!(chosen);
            let _ = objects::update(
                &node.api,
                "",
                "persistentvolumeclaims",
                claim,
                "kube-scheduler",
            );
        }
    }
    if waiting {
        return None;
    }
    let mut bound = pod;
    bound["spec"]["nodeName"] = json!(chosen);
    objects::update(&node.api, "", "pods", bound, "default-scheduler").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_histograms_of_first_failing_filters() {
        let why = Unschedulable::Filters(
            [
                "node(s) had untolerated taint {dedicated: infra}",
                "node(s) didn't match Pod's node affinity/selector",
                "node(s) didn't match Pod's node affinity/selector",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            message(3, &why),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn tolerations_match_taints_as_upstream() {
        let taint = json!({"key": "dedicated", "value": "infra", "effect": "NoSchedule"});
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "Equal", "value": "infra"}),
            &taint
        ));
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
            &taint
        ));
        assert!(tolerates(&json!({"operator": "Exists"}), &taint));
        assert!(!tolerates(
            &json!({"key": "dedicated", "value": "db"}),
            &taint
        ));
        assert!(!tolerates(
            &json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
            &taint
        ));
    }
}
