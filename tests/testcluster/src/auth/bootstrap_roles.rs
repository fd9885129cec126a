//! The bootstrap RBAC policy a fresh cluster has (kube-apiserver's `bootstrappolicy`): the
//! user-facing roles `cluster-admin`, `admin`, `edit` and `view` (the last three aggregated
//! from `system:aggregate-to-*` roles by their `aggregate-to-*` labels), the discovery roles
//! every user is bound to, and the roles of the controllers that create pods, bound to their
//! ServiceAccounts in `kube-system`.

use super::rbac::GROUP;
use serde_json::{Value, json};

/// The ServiceAccounts of the controllers that create objects through the API.
pub const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "deployment-controller",
    "statefulset-controller",
    "daemon-set-controller",
    "job-controller",
    "cronjob-controller",
];

fn list(s: &str) -> Vec<&str> {
    s.split(',').map(str::trim).collect()
}

/// A rule from comma-separated API groups, resources and verbs.
fn rule(groups: &str, resources: &str, verbs: &str) -> Value {
    json!({"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)})
}

fn urls(paths: &str, verbs: &str) -> Value {
    json!({"nonResourceURLs": list(paths), "verbs": list(verbs)})
}

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    for (k, v) in labels {
        l[*k] = json!(v);
    }
    json!({"name": name, "labels": l, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]},
        "rules": []})
}

fn binding(name: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

fn groups(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"apiGroup": GROUP, "kind": "Group", "name": n}))
            .collect(),
    )
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const WRITE: &str = "create,delete,deletecollection,patch,update";
const READ: &str = "get,list,watch";
const EVENTS: (&str, &str, &str) = (",events.k8s.io", "events", "create,patch,update");

fn user_roles() -> Vec<Value> {
    let all_write = "create,delete,deletecollection,get,list,patch,update,watch";
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule("*", "*", "*"), urls("*", "*")],
        ),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(
                    "authorization.k8s.io",
                    "localsubjectaccessreviews",
                    "create",
                ),
                rule(GROUP, "rolebindings,roles", all_write),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(
                    "",
                    "pods/attach,pods/exec,pods/portforward,pods/proxy,secrets,services/proxy",
                    READ,
                ),
                rule("", "serviceaccounts", "impersonate"),
                rule(
                    "",
                    "pods,pods/attach,pods/exec,pods/portforward,pods/proxy",
                    WRITE,
                ),
                rule("", "pods/eviction", "create"),
                rule(
                    "",
                    "configmaps,events,persistentvolumeclaims,replicationcontrollers,replicationcontrollers/scale,secrets,serviceaccounts,services,services/proxy",
                    WRITE,
                ),
                rule("", "serviceaccounts/token", "create"),
                rule(
                    "apps",
                    "daemonsets,deployments,deployments/rollback,deployments/scale,replicasets,replicasets/scale,statefulsets,statefulsets/scale",
                    WRITE,
                ),
                rule("autoscaling", "horizontalpodautoscalers", WRITE),
                rule("batch", "cronjobs,jobs", WRITE),
                rule(
                    "extensions",
                    "daemonsets,deployments,deployments/rollback,deployments/scale,ingresses,networkpolicies,replicasets,replicasets/scale,replicationcontrollers/scale",
                    WRITE,
                ),
                rule("policy", "poddisruptionbudgets", WRITE),
                rule("networking.k8s.io", "ingresses,networkpolicies", WRITE),
                rule("coordination.k8s.io", "leases", all_write),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    "",
                    "configmaps,endpoints,persistentvolumeclaims,persistentvolumeclaims/status,pods,replicationcontrollers,replicationcontrollers/scale,serviceaccounts,services,services/status",
                    READ,
                ),
                rule(
                    "",
                    "bindings,events,limitranges,namespaces/status,pods/log,pods/status,replicationcontrollers/status,resourcequotas,resourcequotas/status",
                    READ,
                ),
                rule("", "namespaces", READ),
                rule("discovery.k8s.io", "endpointslices", READ),
                rule(
                    "apps",
                    "controllerrevisions,daemonsets,daemonsets/status,deployments,deployments/scale,deployments/status,replicasets,replicasets/scale,replicasets/status,statefulsets,statefulsets/scale,statefulsets/status",
                    READ,
                ),
                rule(
                    "autoscaling",
                    "horizontalpodautoscalers,horizontalpodautoscalers/status",
                    READ,
                ),
                rule("batch", "cronjobs,cronjobs/status,jobs,jobs/status", READ),
                rule(
                    "extensions",
                    "daemonsets,daemonsets/status,deployments,deployments/scale,deployments/status,ingresses,ingresses/status,networkpolicies,replicasets,replicasets/scale,replicasets/status,replicationcontrollers/scale",
                    READ,
                ),
                rule(
                    "policy",
                    "poddisruptionbudgets,poddisruptionbudgets/status",
                    READ,
                ),
                rule(
                    "networking.k8s.io",
                    "ingresses,ingresses/status,networkpolicies",
                    READ,
                ),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews,selfsubjectrulesreviews",
                    "create",
                ),
                rule("authentication.k8s.io", "selfsubjectreviews", "create"),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                "/api,/api/*,/apis,/apis/*,/healthz,/livez,/openapi,/openapi/*,/readyz,/version,/version/",
                "get",
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls("/healthz,/livez,/readyz,/version,/version/", "get")],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule("authentication.k8s.io", "tokenreviews", "create"),
                rule("authorization.k8s.io", "subjectaccessreviews", "create"),
            ],
        ),
    ]
}

fn controller_role(name: &str) -> Option<Value> {
    let events = rule(EVENTS.0, EVENTS.1, EVENTS.2);
    let rules = match name {
        "replicaset-controller" => vec![
            rule("apps,extensions", "replicasets", "get,list,update,watch"),
            rule("apps,extensions", "replicasets/status", "update"),
            rule("apps,extensions", "replicasets/finalizers", "update"),
            rule("", "pods", "create,delete,list,patch,watch"),
            events,
        ],
        "deployment-controller" => vec![
            rule("apps,extensions", "deployments", "get,list,update,watch"),
            rule("apps,extensions", "deployments/status", "update"),
            rule("apps,extensions", "deployments/finalizers", "update"),
            rule(
                "apps,extensions",
                "replicasets",
                "create,delete,get,list,patch,update,watch",
            ),
            rule("", "pods", "get,list,update,watch"),
            events,
        ],
        "statefulset-controller" => vec![
            rule("", "pods", "list,watch"),
            rule("apps", "statefulsets", READ),
            rule("apps", "statefulsets/status", "update"),
            rule("apps", "statefulsets/finalizers", "update"),
            rule("", "pods", "create,delete,get,patch,update"),
            rule(
                "apps",
                "controllerrevisions",
                "create,delete,get,list,patch,update,watch",
            ),
            rule("", "persistentvolumeclaims", "create,get,list,watch"),
            rule("", "persistentvolumeclaims", "delete,update"),
            rule("", "pods/finalizers", "update"),
            events,
        ],
        "daemon-set-controller" => vec![
            rule("apps,extensions", "daemonsets", READ),
            rule("apps,extensions", "daemonsets/status", "update"),
            rule("apps,extensions", "daemonsets/finalizers", "update"),
            rule("", "nodes", "list,watch"),
            rule("", "pods", "create,delete,list,patch,watch"),
            rule("", "pods/binding", "create"),
            rule(
                "apps",
                "controllerrevisions",
                "create,delete,get,list,patch,update,watch",
            ),
            events,
        ],
        "job-controller" => vec![
            rule("batch", "jobs", "get,list,patch,update,watch"),
            rule("batch", "jobs/status", "update"),
            rule("batch", "jobs/finalizers", "update"),
            rule("", "pods", "create,delete,list,patch,watch"),
            events,
        ],
        "cronjob-controller" => vec![
            rule("batch", "cronjobs", "get,list,update,watch"),
            rule("batch", "jobs", "create,delete,get,list,patch,update,watch"),
            rule("batch", "cronjobs/status", "update"),
            rule("batch", "cronjobs/finalizers", "update"),
            rule("", "pods", "delete,list,watch"),
            events,
        ],
        _ => return None,
    };
    Some(role(&format!("system:controller:{name}"), &[], rules))
}

/// Every bootstrap ClusterRole and ClusterRoleBinding, as `(plural, object)`.
pub fn objects() -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&str, Value)> = user_roles()
        .into_iter()
        .map(|r| ("clusterroles", r))
        .collect();
    let bindings = [
        binding(
            "cluster-admin",
            "cluster-admin",
            groups(&["system:masters"]),
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            groups(&["system:authenticated"]),
        ),
        binding(
            "system:discovery",
            "system:discovery",
            groups(&["system:authenticated"]),
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            groups(&["system:authenticated", "system:unauthenticated"]),
        ),
    ];
    out.extend(bindings.into_iter().map(|b| ("clusterrolebindings", b)));
    for c in CONTROLLERS {
        let name = format!("system:controller:{c}");
        if let Some(r) = controller_role(c) {
            out.push(("clusterroles", r));
        }
        out.push((
            "clusterrolebindings",
            binding(
                &name,
                &name,
                json!([{"kind": "ServiceAccount", "name": c, "namespace": "kube-system"}]),
            ),
        ));
    }
    out
}

/// The bootstrap object `existing` should become, when kube-apiserver's reconciliation at
/// start would change it (objects annotated `autoupdate: "true"` get the bootstrap content
/// back; aggregated roles keep the rules their controller computed).
pub fn reconciled(existing: &Value, wanted: &Value) -> Option<Value> {
    let auto = existing
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str)
        != Some("false");
    if !auto {
        return None;
    }
    let mut new = existing.clone();
    for field in ["rules", "roleRef", "subjects", "aggregationRule"] {
        match wanted.get(field) {
            Some(v) if !(field == "rules" && wanted.get("aggregationRule").is_some()) => {
                new[field] = v.clone();
            }
            _ => {}
        }
    }
    for (k, v) in wanted
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        new["metadata"]["labels"][k] = v.clone();
    }
    (new != *existing).then_some(new)
}
