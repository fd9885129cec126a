//! The `BackupPolicy` custom resource: which pods the admission webhook protects, and how.
//!
//! Cluster-scoped. Several may match a pod; the highest `priority` wins (ties: the first
//! name in alphabetical order, so the answer never depends on listing order). When none
//! matches, the built-in default applies: volumes opt-out, databases detected.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the built-in policy, used when no BackupPolicy matches.
pub const DEFAULT_POLICY: &str = "default";

/// Which pods are protected, how their volumes are chosen, and whether databases get dump
/// hooks.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "vbackup.io",
    version = "v1alpha1",
    kind = "BackupPolicy",
    shortname = "bpol",
    category = "vbackup",
    doc = "Which pods the admission webhook protects and how: the volume mode and database hooks.",
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#,
    printcolumn = r#"{"name":"Volumes","type":"string","jsonPath":".spec.volumes"}"#,
    printcolumn = r#"{"name":"Databases","type":"boolean","jsonPath":".spec.databases"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// Namespaces whose pods it applies to, by their labels; absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods it applies to, by their labels; absent: every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// When several policies match a pod, the highest priority wins.
    #[serde(default)]
    pub priority: i32,
    /// `OptOut`: claim-backed volumes are copied and the others are listed as excluded;
    /// `OptIn`: the volumes to copy are listed as included.
    #[serde(default)]
    pub volumes: VolumeMode,
    /// Database containers (MariaDB/MySQL, PostgreSQL, Redis, MongoDB) get streaming dump and
    /// restore hooks.
    #[serde(default = "yes")]
    pub databases: bool,
}

fn yes() -> bool {
    true
}

/// How a policy chooses the volumes of its pods.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VolumeMode {
    /// Everything that may hold data is copied; the rest is named in the excludes annotation.
    #[default]
    OptOut,
    /// Only the volumes named in the includes annotation are copied (Velero's opt-in style).
    OptIn,
}

/// The policy that applies to one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// The BackupPolicy's name, or [`DEFAULT_POLICY`].
    pub name: String,
    /// How volumes are chosen.
    pub volumes: VolumeMode,
    /// Whether database containers get dump hooks.
    pub databases: bool,
}

impl Default for AppliedPolicy {
    fn default() -> Self {
        AppliedPolicy {
            name: DEFAULT_POLICY.into(),
            volumes: VolumeMode::OptOut,
            databases: true,
        }
    }
}

/// The policy for a pod with `pod_labels` in a namespace with `namespace_labels`: the
/// matching BackupPolicy with the highest priority, or the built-in default.
pub fn select_policy<'a>(
    policies: impl IntoIterator<Item = &'a BackupPolicy>,
    namespace_labels: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> AppliedPolicy {
    policies
        .into_iter()
        .filter(|p| {
            p.spec
                .namespace_selector
                .as_ref()
                .is_none_or(|s| selector_matches(s, namespace_labels))
                && p.spec
                    .pod_selector
                    .as_ref()
                    .is_none_or(|s| selector_matches(s, pod_labels))
        })
        .map(|p| (p.spec.priority, p.metadata.name.as_deref().unwrap_or(""), p))
        // Highest priority first; among equals, the alphabetically first name.
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map_or_else(AppliedPolicy::default, |(_, name, p)| AppliedPolicy {
            name: name.to_string(),
            volumes: p.spec.volumes,
            databases: p.spec.databases,
        })
}

/// A `metav1.LabelSelector` against labels, as the API server evaluates it (the empty
/// selector matches everything; an unknown operator matches nothing).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|e| requirement_matches(e, labels))
}

fn requirement_matches(e: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&e.key);
    let values = e.values.as_deref().unwrap_or_default();
    match e.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, spec: serde_json::Value) -> BackupPolicy {
        let mut p: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "vbackup.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        p.metadata.name = Some(name.into());
        p
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_policy_means_the_built_in_default() {
        let applied = select_policy(&[], &labels(&[]), &labels(&[]));
        assert_eq!(applied, AppliedPolicy::default());
        assert_eq!(applied.volumes, VolumeMode::OptOut);
        assert!(applied.databases);
    }

    #[test]
    fn highest_priority_matching_policy_wins_and_ties_go_by_name() {
        let policies = [
            policy("b-opt-in", json!({"priority": 10, "volumes": "OptIn"})),
            policy(
                "a-prod-no-db",
                json!({"priority": 10, "databases": false,
                       "namespaceSelector": {"matchLabels": {"env": "prod"}}}),
            ),
            policy(
                "z-web",
                json!({"priority": 20, "podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web"]}]}}),
            ),
        ];
        let prod = labels(&[("env", "prod")]);
        let db = labels(&[("app", "db")]);
        let chosen = select_policy(&policies, &prod, &db);
        assert_eq!(chosen.name, "a-prod-no-db");
        assert!(!chosen.databases);
        assert_eq!(select_policy(&policies, &labels(&[]), &db).name, "b-opt-in");
        assert_eq!(
            select_policy(&policies, &prod, &labels(&[("app", "web")])).name,
            "z-web"
        );
    }

    #[test]
    fn selectors_follow_the_api_servers_operators() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"tier": "data"},
            "matchExpressions": [
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"}
            ]
        }))
        .unwrap();
        assert!(selector_matches(
            &sel,
            &labels(&[("tier", "data"), ("team", "a")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("tier", "data"), ("team", "a"), ("env", "dev")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("tier", "data"), ("team", "a"), ("legacy", "")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("tier", "data")])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }
}
