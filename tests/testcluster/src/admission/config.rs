//! The parts of a stored MutatingWebhookConfiguration that admission needs, with the
//! defaults the real API server fills in on creation.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::AdmissionError;
use super::rules::Rule;

/// One webhook of a configuration, ready to match and call.
#[derive(Debug)]
pub(super) struct Webhook {
    pub name: String,
    pub client: ClientConfig,
    pub rules: Vec<Rule>,
    pub ignore_failures: bool,
    pub namespace_selector: Option<Value>,
    pub object_selector: Option<Value>,
    pub side_effects: Option<String>,
    pub timeout_seconds: u64,
    pub review_versions: Vec<String>,
    pub reinvoke_if_needed: bool,
    pub has_match_conditions: bool,
}

/// Where and how to reach a webhook.
#[derive(Debug)]
pub(super) struct ClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceReference>,
    /// PEM bytes decoded from `caBundle` (empty when absent).
    pub ca_bundle: Vec<u8>,
}

/// `clientConfig.service`.
#[derive(Debug, Deserialize)]
pub(super) struct ServiceReference {
    pub namespace: String,
    pub name: String,
    pub path: Option<String>,
    pub port: Option<u16>,
}

#[derive(Deserialize)]
struct ConfigurationDoc {
    #[serde(default)]
    metadata: MetadataDoc,
    #[serde(default)]
    webhooks: Option<Vec<WebhookDoc>>,
}

#[derive(Deserialize, Default)]
struct MetadataDoc {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookDoc {
    name: String,
    client_config: ClientConfigDoc,
    #[serde(default)]
    rules: Option<Vec<Rule>>,
    failure_policy: Option<String>,
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    side_effects: Option<String>,
    timeout_seconds: Option<i64>,
    #[serde(default)]
    admission_review_versions: Option<Vec<String>>,
    reinvocation_policy: Option<String>,
    #[serde(default)]
    match_conditions: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientConfigDoc {
    url: Option<String>,
    service: Option<ServiceReference>,
    ca_bundle: Option<String>,
}

/// Every webhook of every configuration, configurations sorted by name and webhooks in
/// their listed order, as the real server's webhook source yields them.
pub(super) fn webhooks_in_order(configurations: &[Value]) -> Result<Vec<Webhook>, AdmissionError> {
    let mut docs = configurations
        .iter()
        .map(|value| {
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            ConfigurationDoc::deserialize(value).map_err(|e| {
                AdmissionError::internal(&format!(
                    "mutatingwebhookconfiguration {name:?} cannot be used for admission: {e}; fix or delete it"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    docs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut hooks = Vec::new();
    for doc in docs {
        for hook in doc.webhooks.unwrap_or_default() {
            hooks.push(webhook_from_doc(&doc.metadata.name, hook)?);
        }
    }
    Ok(hooks)
}

fn webhook_from_doc(configuration: &str, doc: WebhookDoc) -> Result<Webhook, AdmissionError> {
    let ca_bundle = match doc.client_config.ca_bundle.as_deref() {
        None | Some("") => Vec::new(),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| {
                AdmissionError::internal(&format!(
                    "mutatingwebhookconfiguration {configuration:?} webhook {:?}: clientConfig.caBundle is not base64 ({e}); fix or delete it",
                    doc.name
                ))
            })?,
    };
    Ok(Webhook {
        client: ClientConfig {
            url: doc.client_config.url,
            service: doc.client_config.service,
            ca_bundle,
        },
        rules: doc.rules.unwrap_or_default(),
        ignore_failures: doc.failure_policy.as_deref() == Some("Ignore"),
        namespace_selector: doc.namespace_selector,
        object_selector: doc.object_selector,
        side_effects: doc.side_effects,
        // The real server defaults timeoutSeconds to 10 and validates 1..=30.
        timeout_seconds: doc.timeout_seconds.unwrap_or(10).clamp(1, 30) as u64,
        review_versions: doc.admission_review_versions.unwrap_or_default(),
        reinvoke_if_needed: doc.reinvocation_policy.as_deref() == Some("IfNeeded"),
        has_match_conditions: doc.match_conditions.is_some_and(|c| !c.is_empty()),
        name: doc.name,
    })
}
