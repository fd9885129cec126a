//! The objects a fresh cluster has besides namespaces and the `kubernetes` service.

use serde_json::{Value, json};

/// Objects every real cluster has from the start (the bootstrap RBAC policy, the
/// ServiceAccounts of the controllers that create pods, the system priority classes),
/// created at start when missing and reconciled as the real server does.
pub fn system_objects() -> Vec<(&'static str, &'static str, Value)> {
    let priority = |name: &str, value: i64| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": "Used for system critical pods that must not be moved from their current node.",
            "preemptionPolicy": "PreemptLowerPriority"})
    };
    let mut out: Vec<(&str, &str, Value)> = crate::auth::bootstrap_roles::objects()
        .into_iter()
        .map(|(plural, obj)| (crate::auth::rbac::GROUP, plural, obj))
        .collect();
    for c in crate::auth::bootstrap_roles::CONTROLLERS {
        out.push((
            "",
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": c, "namespace": "kube-system"}}),
        ));
    }
    out.push((
        "scheduling.k8s.io",
        "priorityclasses",
        priority("system-cluster-critical", 2_000_000_000),
    ));
    out.push((
        "scheduling.k8s.io",
        "priorityclasses",
        priority("system-node-critical", 2_000_001_000),
    ));
    out
}

/// What an existing bootstrap object becomes at start, if anything changes (RBAC objects
/// annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` get their bootstrap
/// content back; other objects are left as they are).
pub fn reconciled(existing: &Value, wanted: &Value) -> Option<Value> {
    let is_rbac = wanted
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with(crate::auth::rbac::GROUP));
    if !is_rbac {
        return None;
    }
    crate::auth::bootstrap_roles::reconciled(existing, wanted)
}
