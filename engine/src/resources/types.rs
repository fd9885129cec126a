//! What the engine knows about one API resource type and one object.

use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};

/// One API resource type as discovery reports it, at the version used to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version served (the group's preferred one).
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, when discovery gives one.
    pub singular: String,
    /// Short names, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// True for namespaced types.
    pub namespaced: bool,
    /// Verbs the API server supports on it.
    pub verbs: Vec<String>,
    /// True when the type has a `status` subresource (its status is not restorable).
    pub has_status_subresource: bool,
}

impl ResourceType {
    /// `resource.group` (just `resource` for the core group), the name used in filters,
    /// counts and archive paths.
    pub fn group_resource(&self) -> String {
        group_resource(&self.plural, &self.group)
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube-rs description used to build a dynamic `Api`.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// True when the API server supports `verb` on this type.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// `resource.group`, or `resource` for the core group.
pub fn group_resource(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// One object, named by its resource type, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `resource.group`, e.g. `persistentvolumeclaims` or `deployments.apps`.
    pub resource: String,
    /// Namespace, `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// A namespaced object.
    pub fn namespaced(resource: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            resource: resource.into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// A cluster-scoped object.
    pub fn cluster(resource: &str, name: &str) -> Self {
        ObjectRef {
            resource: resource.into(),
            namespace: None,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.resource, ns, self.name),
            None => write!(f, "{}/{}", self.resource, self.name),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::ResourceType;

    /// A resource type as a test cluster's discovery would describe it.
    pub fn rt(
        group: &str,
        kind: &str,
        plural: &str,
        short: &[&str],
        namespaced: bool,
    ) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced,
            verbs: ["get", "list", "create", "patch"]
                .map(String::from)
                .to_vec(),
            has_status_subresource: false,
        }
    }

    /// A small but realistic set of types.
    pub fn cluster_types() -> Vec<ResourceType> {
        vec![
            rt("", "ConfigMap", "configmaps", &["cm"], true),
            rt("", "Secret", "secrets", &[], true),
            rt("", "Pod", "pods", &["po"], true),
            rt("", "Namespace", "namespaces", &["ns"], false),
            rt("", "PersistentVolume", "persistentvolumes", &["pv"], false),
            rt(
                "",
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                &["pvc"],
                true,
            ),
            rt("", "Event", "events", &["ev"], true),
            rt("events.k8s.io", "Event", "events", &["ev"], true),
            rt("apps", "Deployment", "deployments", &["deploy"], true),
            rt("apps", "StatefulSet", "statefulsets", &["sts"], true),
            rt(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                &["crd", "crds"],
                false,
            ),
            rt("acme.cert-manager.io", "Order", "orders", &[], true),
            rt(
                "storage.k8s.io",
                "StorageClass",
                "storageclasses",
                &["sc"],
                false,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_types_have_no_group_suffix() {
        assert_eq!(group_resource("configmaps", ""), "configmaps");
        assert_eq!(group_resource("deployments", "apps"), "deployments.apps");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
    }

    #[test]
    fn object_refs_display_namespace_only_when_namespaced() {
        assert_eq!(
            ObjectRef::namespaced("secrets", "a", "b").to_string(),
            "secrets/a/b"
        );
        assert_eq!(
            ObjectRef::cluster("persistentvolumes", "pv1").to_string(),
            "persistentvolumes/pv1"
        );
    }
}
