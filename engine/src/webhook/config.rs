//! The MutatingWebhookConfiguration that registers the webhook, built here so that
//! `kubectl vbackup install` and the manifests say the same thing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use crate::policy::annotations::{EXCLUDE_LABEL, MOVER_LABEL};
use crate::store::SYSTEM_NAMESPACE;

/// Name of the MutatingWebhookConfiguration.
pub const CONFIGURATION_NAME: &str = "vbackup";
/// Name of its one webhook.
pub const WEBHOOK_NAME: &str = "pods.vbackup.io";
/// The webhook's Service in [`SYSTEM_NAMESPACE`].
pub const SERVICE_NAME: &str = "vbackup-webhook";
/// The Service port the API server calls.
pub const SERVICE_PORT: i32 = 443;
/// The path the API server posts AdmissionReviews to.
pub const MUTATE_PATH: &str = "/mutate";
/// Namespaces never sent to the webhook (besides those labelled `vbackup.io/exclude=true`).
pub const SKIPPED_NAMESPACES: [&str; 2] = ["kube-system", SYSTEM_NAMESPACE];

/// The webhook's registration: pod CREATEs, never blocking (`failurePolicy: Ignore`, 5 s),
/// no side effects, re-invoked when a later webhook changes the pod; system namespaces,
/// excluded namespaces and vbackup's own mover pods are not sent to it. `ca_bundle` is the
/// PEM of the CA that signed the serving certificate.
pub fn mutating_webhook_configuration(ca_bundle: &[u8]) -> MutatingWebhookConfiguration {
    let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    };
    let webhook = MutatingWebhook {
        name: WEBHOOK_NAME.into(),
        admission_review_versions: vec!["v1".into()],
        client_config: WebhookClientConfig {
            ca_bundle: Some(ByteString(ca_bundle.to_vec())),
            service: Some(ServiceReference {
                namespace: SYSTEM_NAMESPACE.into(),
                name: SERVICE_NAME.into(),
                path: Some(MUTATE_PATH.into()),
                port: Some(SERVICE_PORT),
            }),
            url: None,
        },
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(vec!["CREATE".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("Namespaced".into()),
        }]),
        failure_policy: Some("Ignore".into()),
        match_policy: Some("Equivalent".into()),
        side_effects: "None".into(),
        timeout_seconds: Some(5),
        reinvocation_policy: Some("IfNeeded".into()),
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![
                requirement("kubernetes.io/metadata.name", "NotIn", &SKIPPED_NAMESPACES),
                requirement(EXCLUDE_LABEL, "NotIn", &["true"]),
            ]),
            match_labels: None,
        }),
        object_selector: Some(LabelSelector {
            match_expressions: Some(vec![requirement(MOVER_LABEL, "DoesNotExist", &[])]),
            match_labels: None,
        }),
        match_conditions: None,
    };
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(CONFIGURATION_NAME.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_string(),
                "vbackup".to_string(),
            )])),
            ..Default::default()
        },
        webhooks: Some(vec![webhook]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::backup_policy::selector_matches;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn configuration_never_blocks_and_skips_system_namespaces_and_movers() {
        let config = mutating_webhook_configuration(b"PEM");
        let value = serde_json::to_value(&config).unwrap();
        let hook = &value["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["timeoutSeconds"], 5);
        assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
        assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate");
        assert_eq!(hook["clientConfig"]["caBundle"], "UEVN", "base64 of PEM");
        assert_eq!(hook["rules"][0]["operations"][0], "CREATE");

        let webhook = &config.webhooks.as_ref().unwrap()[0];
        let ns = webhook.namespace_selector.as_ref().unwrap();
        let name = |n: &str| labels(&[("kubernetes.io/metadata.name", n)]);
        assert!(selector_matches(ns, &name("shop")));
        assert!(!selector_matches(ns, &name("kube-system")));
        assert!(!selector_matches(ns, &name("vbackup-system")));
        let mut excluded = name("shop");
        excluded.insert(EXCLUDE_LABEL.into(), "true".into());
        assert!(!selector_matches(ns, &excluded));
        let objects = webhook.object_selector.as_ref().unwrap();
        assert!(selector_matches(objects, &labels(&[("app", "web")])));
        assert!(!selector_matches(
            objects,
            &labels(&[(MOVER_LABEL, "true")])
        ));
    }
}
