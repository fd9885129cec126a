//! Matching a request against a webhook's `rules` (operations, groups, versions,
//! resources with subresource forms, scope).

use serde::Deserialize;

use super::AdmissionAttributes;

/// One `RuleWithOperations`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    api_versions: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    scope: Option<String>,
}

impl Rule {
    /// Whether the request falls under this rule.
    pub fn matches(&self, attributes: &AdmissionAttributes) -> bool {
        self.scope_matches(attributes)
            && self
                .operations
                .iter()
                .any(|op| op == "*" || op == attributes.operation.as_str())
            && exact_or_wildcard(&self.api_groups, &attributes.group)
            && exact_or_wildcard(&self.api_versions, &attributes.version)
            && self.resource_matches(attributes)
    }

    fn scope_matches(&self, attributes: &AdmissionAttributes) -> bool {
        // Namespace objects are cluster-scoped even though their requests carry a namespace.
        let is_namespace = attributes.group.is_empty()
            && attributes.version == "v1"
            && attributes.resource == "namespaces";
        match self.scope.as_deref() {
            None | Some("*") => true,
            Some("Namespaced") => !is_namespace && !attributes.namespace().is_empty(),
            Some("Cluster") => is_namespace || attributes.namespace().is_empty(),
            Some(_) => false,
        }
    }

    fn resource_matches(&self, attributes: &AdmissionAttributes) -> bool {
        self.resources.iter().any(|entry| {
            let (resource, subresource) = entry.split_once('/').unwrap_or((entry, ""));
            (resource == "*" || resource == attributes.resource)
                && (subresource == "*" || subresource == attributes.subresource())
        })
    }
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|item| item == "*" || item == requested)
}

/// Webhook configurations themselves are never sent to webhooks, so a broken webhook
/// cannot lock the cluster out of fixing it.
pub(super) fn is_exempt_configuration_resource(attributes: &AdmissionAttributes) -> bool {
    attributes.group == "admissionregistration.k8s.io"
        && matches!(
            attributes.kind.as_str(),
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Operation;
    use serde_json::json;

    fn rule(value: serde_json::Value) -> Rule {
        serde_json::from_value(value).unwrap()
    }

    fn pod(operation: Operation, subresource: Option<&str>) -> AdmissionAttributes {
        AdmissionAttributes {
            operation,
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            subresource: subresource.map(str::to_owned),
            name: "p".into(),
            namespace: Some("team".into()),
            ..Default::default()
        }
    }

    fn namespace_object() -> AdmissionAttributes {
        AdmissionAttributes {
            version: "v1".into(),
            kind: "Namespace".into(),
            resource: "namespaces".into(),
            name: "team".into(),
            namespace: Some("team".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rule_matches_operation_group_version_and_resource() {
        let r = rule(
            json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}),
        );
        assert!(r.matches(&pod(Operation::Create, None)));
        assert!(!r.matches(&pod(Operation::Update, None)));
        assert!(!r.matches(&AdmissionAttributes {
            group: "apps".into(),
            resource: "pods".into(),
            ..pod(Operation::Create, None)
        }));
        assert!(!r.matches(&pod(Operation::Create, Some("status"))));
    }

    #[test]
    fn rule_wildcards_and_subresource_forms() {
        let all = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
        );
        assert!(all.matches(&pod(Operation::Delete, None)));
        assert!(!all.matches(&pod(Operation::Create, Some("status"))));
        let pods_any_sub = rule(
            json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/*"]}),
        );
        assert!(pods_any_sub.matches(&pod(Operation::Update, Some("status"))));
        // As in kube-apiserver, "pods/*" also covers the pod itself (its subresource "").
        assert!(pods_any_sub.matches(&pod(Operation::Update, None)));
        let everything = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}),
        );
        assert!(everything.matches(&pod(Operation::Update, Some("status"))));
        assert!(everything.matches(&pod(Operation::Update, None)));
        let pod_status = rule(
            json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}),
        );
        assert!(pod_status.matches(&pod(Operation::Update, Some("status"))));
        assert!(!pod_status.matches(&pod(Operation::Update, Some("exec"))));
    }

    #[test]
    fn rule_scope_treats_namespaces_as_cluster_scoped() {
        let namespaced = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
        );
        let cluster = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        );
        assert!(namespaced.matches(&pod(Operation::Create, None)));
        assert!(!cluster.matches(&pod(Operation::Create, None)));
        assert!(!namespaced.matches(&namespace_object()));
        assert!(cluster.matches(&namespace_object()));
        let storage_class = AdmissionAttributes {
            group: "storage.k8s.io".into(),
            version: "v1".into(),
            resource: "storageclasses".into(),
            ..Default::default()
        };
        assert!(cluster.matches(&storage_class));
        assert!(!namespaced.matches(&storage_class));
    }
}
