//! What an object cannot run without: the claims, config, secrets, service accounts,
//! volumes and storage classes it names. Pure functions over the object's JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use super::types::ObjectRef;

/// `resource.group` of the types dependency resolution can add.
pub mod kinds {
    /// Core configmaps.
    pub const CONFIGMAPS: &str = "configmaps";
    /// Core secrets.
    pub const SECRETS: &str = "secrets";
    /// Core PVCs.
    pub const PVCS: &str = "persistentvolumeclaims";
    /// Core PVs.
    pub const PVS: &str = "persistentvolumes";
    /// Core service accounts.
    pub const SERVICE_ACCOUNTS: &str = "serviceaccounts";
    /// Core services.
    pub const SERVICES: &str = "services";
    /// Storage classes.
    pub const STORAGE_CLASSES: &str = "storageclasses.storage.k8s.io";
    /// CRDs.
    pub const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
    /// Roles.
    pub const ROLES: &str = "roles.rbac.authorization.k8s.io";
    /// Role bindings.
    pub const ROLE_BINDINGS: &str = "rolebindings.rbac.authorization.k8s.io";
    /// Cluster roles.
    pub const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
    /// Cluster role bindings.
    pub const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";
    /// Namespaces.
    pub const NAMESPACES: &str = "namespaces";
}
use kinds::*;

/// The pod template (or pod spec) of a pod or workload.
pub fn pod_spec<'a>(group_resource: &str, object: &'a Value) -> Option<&'a Value> {
    let spec = &object["spec"];
    let found = match group_resource {
        "pods" => spec,
        "deployments.apps"
        | "statefulsets.apps"
        | "daemonsets.apps"
        | "replicasets.apps"
        | "jobs.batch"
        | "replicationcontrollers" => &spec["template"]["spec"],
        "cronjobs.batch" => &spec["jobTemplate"]["spec"]["template"]["spec"],
        _ => return None,
    };
    found.is_object().then_some(found)
}

/// The labels the pods of a workload (or a pod) carry, for matching Services.
pub fn pod_labels(group_resource: &str, object: &Value) -> Option<BTreeMap<String, String>> {
    let labels = match group_resource {
        "pods" => &object["metadata"]["labels"],
        "cronjobs.batch" => {
            &object["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        }
        _ if pod_spec(group_resource, object).is_some() => {
            &object["spec"]["template"]["metadata"]["labels"]
        }
        _ => return None,
    };
    Some(string_map(labels))
}

/// Everything `object` directly references that a restore needs too.
pub fn dependencies(group_resource: &str, object: &Value) -> Vec<ObjectRef> {
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    let mut add_ns = |resource: &str, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push(ObjectRef::namespaced(resource, ns, name));
        }
    };
    if let Some(spec) = pod_spec(group_resource, object) {
        pod_spec_refs(spec, &mut add_ns);
    }
    let spec = &object["spec"];
    match group_resource {
        "statefulsets.apps" => add_ns(SERVICES, spec["serviceName"].as_str()),
        ROLE_BINDINGS if object["roleRef"]["kind"] == "Role" => {
            add_ns(ROLES, object["roleRef"]["name"].as_str());
        }
        _ => {}
    }
    let mut cluster = |resource: &str, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push(ObjectRef::cluster(resource, name));
        }
    };
    match group_resource {
        "statefulsets.apps" => {
            for t in spec["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                cluster(STORAGE_CLASSES, t["spec"]["storageClassName"].as_str());
            }
        }
        PVCS => {
            cluster(PVS, spec["volumeName"].as_str());
            cluster(STORAGE_CLASSES, spec["storageClassName"].as_str());
        }
        PVS => cluster(STORAGE_CLASSES, spec["storageClassName"].as_str()),
        ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS if object["roleRef"]["kind"] == "ClusterRole" => {
            cluster(CLUSTER_ROLES, object["roleRef"]["name"].as_str());
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out
}

fn pod_spec_refs(spec: &Value, add: &mut impl FnMut(&str, Option<&str>)) {
    add(
        SERVICE_ACCOUNTS,
        spec["serviceAccountName"]
            .as_str()
            .or(spec["serviceAccount"].as_str()),
    );
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(SECRETS, s["name"].as_str());
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        add(PVCS, v["persistentVolumeClaim"]["claimName"].as_str());
        add(CONFIGMAPS, v["configMap"]["name"].as_str());
        add(SECRETS, v["secret"]["secretName"].as_str());
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            add(CONFIGMAPS, source["configMap"]["name"].as_str());
            add(SECRETS, source["secret"]["name"].as_str());
        }
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    for c in containers {
        for e in c["env"].as_array().into_iter().flatten() {
            add(
                CONFIGMAPS,
                e["valueFrom"]["configMapKeyRef"]["name"].as_str(),
            );
            add(SECRETS, e["valueFrom"]["secretKeyRef"]["name"].as_str());
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            add(CONFIGMAPS, e["configMapRef"]["name"].as_str());
            add(SECRETS, e["secretRef"]["name"].as_str());
        }
    }
}

/// True when a (Cluster)RoleBinding names the service account `namespace/name`.
pub fn binding_names_service_account(binding: &Value, namespace: &str, name: &str) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace)
}

/// True when a Service's selector picks pods carrying `labels`.
pub fn service_selects(service: &Value, labels: &BTreeMap<String, String>) -> bool {
    let selector = string_map(&service["spec"]["selector"]);
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The CRD that defines a custom type: `plural.group`.
pub fn crd_name(plural: &str, group: &str) -> String {
    format!("{plural}.{group}")
}

/// A JSON object of strings as a map (labels, selectors); other values are ignored.
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "nc"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "serviceAccountName": "web-sa",
                "imagePullSecrets": [{"name": "registry"}],
                "volumes": [
                    {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "c", "configMap": {"name": "conf"}},
                    {"name": "s", "secret": {"secretName": "tls"}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "token"}}]}},
                    {"name": "tmp", "emptyDir": {}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "db"}}]}],
                "containers": [{"name": "app", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "b"}}},
                    {"name": "C", "value": "plain"}
                ]}]
            }}}
        })
    }

    #[test]
    fn workload_dependencies_cover_claims_config_secrets_and_service_account() {
        let refs: Vec<String> = dependencies("deployments.apps", &deployment())
            .iter()
            .map(ToString::to_string)
            .collect();
        for want in [
            "persistentvolumeclaims/nc/data",
            "configmaps/nc/conf",
            "configmaps/nc/extra",
            "configmaps/nc/env",
            "secrets/nc/tls",
            "secrets/nc/token",
            "secrets/nc/db",
            "secrets/nc/pw",
            "secrets/nc/registry",
            "serviceaccounts/nc/web-sa",
        ] {
            assert!(
                refs.contains(&want.to_string()),
                "missing {want} in {refs:?}"
            );
        }
        assert_eq!(refs.len(), 10, "{refs:?}");
    }

    #[test]
    fn cronjob_pod_template_is_found_two_levels_down() {
        let cj = json!({"metadata": {"namespace": "nc"}, "spec": {"jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"job": "cron"}},
            "spec": {"containers": [{"envFrom": [{"configMapRef": {"name": "cron-env"}}]}]}}}}}});
        assert_eq!(
            dependencies("cronjobs.batch", &cj),
            vec![ObjectRef::namespaced("configmaps", "nc", "cron-env")]
        );
        assert_eq!(pod_labels("cronjobs.batch", &cj).unwrap()["job"], "cron");
    }

    #[test]
    fn claims_need_their_volume_and_class_and_statefulsets_their_classes() {
        let pvc = json!({"metadata": {"namespace": "nc", "name": "data"}, "spec": {"volumeName": "pv-1", "storageClassName": "fast"}});
        assert_eq!(
            dependencies(PVCS, &pvc),
            vec![
                ObjectRef::cluster(PVS, "pv-1"),
                ObjectRef::cluster(STORAGE_CLASSES, "fast"),
            ]
        );
        let sts = json!({"metadata": {"namespace": "nc"}, "spec": {"serviceName": "db-headless",
            "template": {"spec": {"containers": []}},
            "volumeClaimTemplates": [{"spec": {"storageClassName": "ssd"}}]}});
        assert_eq!(
            dependencies("statefulsets.apps", &sts),
            vec![
                ObjectRef::namespaced(SERVICES, "nc", "db-headless"),
                ObjectRef::cluster(STORAGE_CLASSES, "ssd"),
            ]
        );
    }

    #[test]
    fn bindings_need_their_roles() {
        let rb =
            json!({"metadata": {"namespace": "nc"}, "roleRef": {"kind": "Role", "name": "reader"}});
        assert_eq!(
            dependencies(ROLE_BINDINGS, &rb),
            vec![ObjectRef::namespaced(ROLES, "nc", "reader")]
        );
        let crb = json!({"metadata": {}, "roleRef": {"kind": "ClusterRole", "name": "view"}});
        assert_eq!(
            dependencies(CLUSTER_ROLE_BINDINGS, &crb),
            vec![ObjectRef::cluster(CLUSTER_ROLES, "view")]
        );
    }

    #[test]
    fn services_and_bindings_are_matched_to_pods_and_service_accounts() {
        let labels = pod_labels("deployments.apps", &deployment()).unwrap();
        assert!(service_selects(
            &json!({"spec": {"selector": {"app": "web"}}}),
            &labels
        ));
        assert!(!service_selects(
            &json!({"spec": {"selector": {"app": "db"}}}),
            &labels
        ));
        assert!(!service_selects(&json!({"spec": {}}), &labels));
        let crb =
            json!({"subjects": [{"kind": "ServiceAccount", "name": "web-sa", "namespace": "nc"}]});
        assert!(binding_names_service_account(&crb, "nc", "web-sa"));
        assert!(!binding_names_service_account(&crb, "other", "web-sa"));
    }
}
