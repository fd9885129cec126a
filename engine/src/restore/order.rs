//! The order objects are created in: what others need comes first, pods last.

use std::cmp::Ordering;

use crate::resources::types::ObjectRef;

/// Types restored first, in this order; everything else follows in a stable order, and
/// pods come last.
pub const PRIORITIES: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "limitranges",
    "resourcequotas",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "services",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "replicasets.apps",
    "cronjobs.batch",
    "jobs.batch",
];

/// Sort key of a type: its place in [`PRIORITIES`], then the rest alphabetically, pods last.
pub fn rank(resource: &str) -> (usize, &str) {
    if resource == "pods" {
        return (PRIORITIES.len() + 1, "");
    }
    match PRIORITIES.iter().position(|p| *p == resource) {
        Some(i) => (i, ""),
        None => (PRIORITIES.len(), resource),
    }
}

/// Orders objects for restoring: by type rank, then namespace, then name.
pub fn compare(a: &ObjectRef, b: &ObjectRef) -> Ordering {
    rank(&a.resource)
        .cmp(&rank(&b.resource))
        .then_with(|| a.namespace.cmp(&b.namespace))
        .then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_namespaces_and_storage_come_first_and_pods_last() {
        let mut objs = [
            ObjectRef::namespaced("pods", "a", "p"),
            ObjectRef::namespaced("ingresses.networking.k8s.io", "a", "i"),
            ObjectRef::namespaced("deployments.apps", "a", "d"),
            ObjectRef::namespaced("certificates.cert-manager.io", "a", "c"),
            ObjectRef::namespaced("persistentvolumeclaims", "a", "pvc"),
            ObjectRef::cluster("namespaces", "a"),
            ObjectRef::namespaced("secrets", "a", "s"),
            ObjectRef::cluster("customresourcedefinitions.apiextensions.k8s.io", "c"),
        ];
        objs.sort_by(compare);
        let order: Vec<&str> = objs.iter().map(|o| o.resource.as_str()).collect();
        assert_eq!(
            order,
            [
                "customresourcedefinitions.apiextensions.k8s.io",
                "namespaces",
                "persistentvolumeclaims",
                "secrets",
                "deployments.apps",
                "certificates.cert-manager.io",
                "ingresses.networking.k8s.io",
                "pods",
            ]
        );
    }
}
