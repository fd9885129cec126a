//! The objects a fresh cluster has besides namespaces and the `kubernetes` service.

use serde_json::{Value, json};

/// Cluster-scoped objects every real cluster has from the start (the bootstrap RBAC roles and
/// system priority classes), recreated at start when missing as the real server does.
pub fn system_objects() -> Vec<(&'static str, &'static str, Value)> {
    let rbac = "rbac.authorization.k8s.io";
    let bootstrap = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": bootstrap, "annotations": annotations}, "rules": rules})
    };
    let all = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]);
    let read = json!([{"apiGroups": ["", "apps", "batch", "networking.k8s.io", "policy", "autoscaling"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]);
    let write = json!([{"apiGroups": ["", "apps", "batch", "networking.k8s.io", "policy", "autoscaling"], "resources": ["*"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}]);
    let priority = |name: &str, value: i64| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": "Used for system critical pods that must not be moved from their current node.",
            "preemptionPolicy": "PreemptLowerPriority"})
    };
    vec![
        (rbac, "clusterroles", role("cluster-admin", all)),
        (rbac, "clusterroles", role("admin", write.clone())),
        (rbac, "clusterroles", role("edit", write)),
        (rbac, "clusterroles", role("view", read)),
        (
            rbac,
            "clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin", "labels": bootstrap, "annotations": annotations},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            priority("system-cluster-critical", 2_000_000_000),
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            priority("system-node-critical", 2_000_001_000),
        ),
    ]
}
