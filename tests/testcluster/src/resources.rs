//! The resource types the server serves: a built-in table plus those defined by CRDs.

use serde_json::Value;

/// How `metadata.name` is validated for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035,
    /// Any path segment (RBAC objects): not `.`/`..`, no `/` or `%`.
    PathSegment,
}

/// A column of `kubectl get` output (a CRD's `additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `date`, ...
    pub type_: String,
    /// JSONPath into the object, e.g. `.spec.replicas`.
    pub json_path: String,
    /// Shown only with `-o wide` when > 0.
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// One servable resource (group + plural), with everything discovery and storage need.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// Served versions, by Kubernetes version priority (preferred first).
    pub versions: Vec<String>,
    /// The version objects are stored at.
    pub storage: String,
    /// Lowercase plural, e.g. `deployments`.
    pub plural: String,
    /// Lowercase singular.
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Kind of lists, e.g. `DeploymentList`.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub status: bool,
    /// JSON paths (spec replicas, status replicas, label selector) of a `/scale` subresource.
    pub scale: Option<ScalePaths>,
    /// Extra subresources listed in discovery only (`log`, `exec`, ...).
    pub connect_subresources: Vec<String>,
    /// `metadata.generation` is maintained.
    pub generation: bool,
    /// Name validation rule.
    pub name_rule: NameRule,
    /// Printer columns (CRDs).
    pub columns: Vec<PrinterColumn>,
    /// The CRD's structural schema of the storage version (CRDs only).
    pub schema: Option<Value>,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
    /// Create-only reviews answered without storing anything (access and token reviews).
    pub review: bool,
}

/// Where a `/scale` subresource reads and writes.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// e.g. `.status.replicas`.
    pub status_replicas: String,
    /// e.g. `.status.selector` (may be empty).
    pub label_selector: String,
}

impl ResourceType {
    /// `apps/v1` or `v1` for a version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The storage version.
    pub fn storage_version(&self) -> &str {
        &self.storage
    }

    /// `deployments.apps` (used in messages).
    pub fn qualified(&self) -> String {
        crate::error::qualified(&self.group, &self.plural)
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

struct Row {
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    flags: &'static str,
}

const STANDARD_SCALE: (&str, &str, &str) =
    (".spec.replicas", ".status.replicas", ".status.selector");

// flags: s = status subresource, c = scale, g = generation, a = category "all",
// t = serviceaccount token subresource, r = create-only review, l = RFC 1123 label names, 5 = RFC 1035 label names, p = path-segment names, x = pod connect subresources
#[rustfmt::skip]
const BUILTIN: &[Row] = &[
    Row { gv: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, short: &["ns"], flags: "sl" },
    Row { gv: "v1", plural: "pods", kind: "Pod", namespaced: true, short: &["po"], flags: "sax" },
    Row { gv: "v1", plural: "services", kind: "Service", namespaced: true, short: &["svc"], flags: "sa5" },
    Row { gv: "v1", plural: "endpoints", kind: "Endpoints", namespaced: true, short: &["ep"], flags: "" },
    Row { gv: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true, short: &["cm"], flags: "" },
    Row { gv: "v1", plural: "secrets", kind: "Secret", namespaced: true, short: &[], flags: "" },
    Row { gv: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, short: &["sa"], flags: "t" },
    Row { gv: "v1", plural: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true, short: &["pvc"], flags: "s" },
    Row { gv: "v1", plural: "persistentvolumes", kind: "PersistentVolume", namespaced: false, short: &["pv"], flags: "s" },
    Row { gv: "v1", plural: "events", kind: "Event", namespaced: true, short: &["ev"], flags: "" },
    Row { gv: "v1", plural: "nodes", kind: "Node", namespaced: false, short: &["no"], flags: "s" },
    Row { gv: "v1", plural: "resourcequotas", kind: "ResourceQuota", namespaced: true, short: &["quota"], flags: "s" },
    Row { gv: "v1", plural: "limitranges", kind: "LimitRange", namespaced: true, short: &["limits"], flags: "" },
    Row { gv: "v1", plural: "replicationcontrollers", kind: "ReplicationController", namespaced: true, short: &["rc"], flags: "sacg" },
    Row { gv: "v1", plural: "podtemplates", kind: "PodTemplate", namespaced: true, short: &[], flags: "" },
    Row { gv: "apps/v1", plural: "deployments", kind: "Deployment", namespaced: true, short: &["deploy"], flags: "sacg" },
    Row { gv: "apps/v1", plural: "statefulsets", kind: "StatefulSet", namespaced: true, short: &["sts"], flags: "sacg" },
    Row { gv: "apps/v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true, short: &["ds"], flags: "sag" },
    Row { gv: "apps/v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true, short: &["rs"], flags: "sacg" },
    Row { gv: "apps/v1", plural: "controllerrevisions", kind: "ControllerRevision", namespaced: true, short: &[], flags: "" },
    Row { gv: "batch/v1", plural: "jobs", kind: "Job", namespaced: true, short: &[], flags: "sag" },
    Row { gv: "batch/v1", plural: "cronjobs", kind: "CronJob", namespaced: true, short: &["cj"], flags: "sag" },
    Row { gv: "networking.k8s.io/v1", plural: "ingresses", kind: "Ingress", namespaced: true, short: &["ing"], flags: "sg" },
    Row { gv: "networking.k8s.io/v1", plural: "networkpolicies", kind: "NetworkPolicy", namespaced: true, short: &["netpol"], flags: "g" },
    Row { gv: "networking.k8s.io/v1", plural: "ingressclasses", kind: "IngressClass", namespaced: false, short: &[], flags: "" },
    Row { gv: "rbac.authorization.k8s.io/v1", plural: "roles", kind: "Role", namespaced: true, short: &[], flags: "p" },
    Row { gv: "rbac.authorization.k8s.io/v1", plural: "rolebindings", kind: "RoleBinding", namespaced: true, short: &[], flags: "p" },
    Row { gv: "rbac.authorization.k8s.io/v1", plural: "clusterroles", kind: "ClusterRole", namespaced: false, short: &[], flags: "p" },
    Row { gv: "rbac.authorization.k8s.io/v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false, short: &[], flags: "p" },
    Row { gv: "storage.k8s.io/v1", plural: "storageclasses", kind: "StorageClass", namespaced: false, short: &["sc"], flags: "" },
    Row { gv: "storage.k8s.io/v1", plural: "csidrivers", kind: "CSIDriver", namespaced: false, short: &[], flags: "" },
    Row { gv: "admissionregistration.k8s.io/v1", plural: "mutatingwebhookconfigurations", kind: "MutatingWebhookConfiguration", namespaced: false, short: &[], flags: "g" },
    Row { gv: "admissionregistration.k8s.io/v1", plural: "validatingwebhookconfigurations", kind: "ValidatingWebhookConfiguration", namespaced: false, short: &[], flags: "g" },
    Row { gv: "apiextensions.k8s.io/v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, short: &["crd", "crds"], flags: "sg" },
    Row { gv: "coordination.k8s.io/v1", plural: "leases", kind: "Lease", namespaced: true, short: &[], flags: "" },
    Row { gv: "policy/v1", plural: "poddisruptionbudgets", kind: "PodDisruptionBudget", namespaced: true, short: &["pdb"], flags: "sg" },
    Row { gv: "autoscaling/v2", plural: "horizontalpodautoscalers", kind: "HorizontalPodAutoscaler", namespaced: true, short: &["hpa"], flags: "sa" },
    Row { gv: "scheduling.k8s.io/v1", plural: "priorityclasses", kind: "PriorityClass", namespaced: false, short: &["pc"], flags: "" },
    Row { gv: "discovery.k8s.io/v1", plural: "endpointslices", kind: "EndpointSlice", namespaced: true, short: &[], flags: "" },
    Row { gv: "authorization.k8s.io/v1", plural: "selfsubjectaccessreviews", kind: "SelfSubjectAccessReview", namespaced: false, short: &[], flags: "r" },
    Row { gv: "authorization.k8s.io/v1", plural: "selfsubjectrulesreviews", kind: "SelfSubjectRulesReview", namespaced: false, short: &[], flags: "r" },
    Row { gv: "authorization.k8s.io/v1", plural: "subjectaccessreviews", kind: "SubjectAccessReview", namespaced: false, short: &[], flags: "r" },
    Row { gv: "authorization.k8s.io/v1", plural: "localsubjectaccessreviews", kind: "LocalSubjectAccessReview", namespaced: true, short: &[], flags: "r" },
    Row { gv: "authentication.k8s.io/v1", plural: "selfsubjectreviews", kind: "SelfSubjectReview", namespaced: false, short: &[], flags: "r" },
    Row { gv: "authentication.k8s.io/v1", plural: "tokenreviews", kind: "TokenReview", namespaced: false, short: &[], flags: "r" },
];

/// The built-in resource types, in discovery order.
pub fn builtin() -> Vec<ResourceType> {
    BUILTIN
        .iter()
        .map(|row| {
            let (group, version) = match row.gv.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", row.gv),
            };
            let f = |c: char| row.flags.contains(c);
            let name_rule = if f('l') {
                NameRule::Label
            } else if f('5') {
                NameRule::Dns1035
            } else if f('p') {
                NameRule::PathSegment
            } else {
                NameRule::Subdomain
            };
            ResourceType {
                group: group.to_string(),
                // autoscaling serves HorizontalPodAutoscaler at v2 and v1 (see conversion.rs).
                versions: if row.plural == "horizontalpodautoscalers" {
                    vec![version.to_string(), "v1".to_string()]
                } else {
                    vec![version.to_string()]
                },
                storage: version.to_string(),
                plural: row.plural.to_string(),
                singular: row.kind.to_lowercase(),
                kind: row.kind.to_string(),
                list_kind: format!("{}List", row.kind),
                namespaced: row.namespaced,
                short_names: row.short.iter().map(|s| s.to_string()).collect(),
                categories: if f('a') {
                    vec!["all".to_string()]
                } else {
                    Vec::new()
                },
                status: f('s'),
                scale: f('c').then(|| ScalePaths {
                    spec_replicas: STANDARD_SCALE.0.into(),
                    status_replicas: STANDARD_SCALE.1.into(),
                    label_selector: STANDARD_SCALE.2.into(),
                }),
                connect_subresources: if f('x') {
                    [
                        "attach",
                        "binding",
                        "eviction",
                        "exec",
                        "log",
                        "portforward",
                        "proxy",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
                } else if f('t') {
                    vec!["token".to_string()]
                } else {
                    Vec::new()
                },
                generation: f('g'),
                name_rule,
                columns: Vec::new(),
                schema: None,
                custom: false,
                review: f('r'),
            }
        })
        .collect()
}
