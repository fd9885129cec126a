//! Access and token reviews (`kubectl auth can-i`, `kubectl auth whoami`): this server
//! authorizes everyone as a cluster admin, so every review says yes.

use crate::resources::ResourceType;
use serde_json::{Value, json};

/// The user every request is treated as.
pub const USER: &str = "kubernetes-admin";
/// Their groups.
pub const GROUPS: &[&str] = &["system:masters", "system:authenticated"];

/// The review object answered for a created review.
pub fn answer(rt: &ResourceType, version: &str, mut body: Value) -> Value {
    let status = match rt.kind.as_str() {
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        "SelfSubjectReview" => json!({"userInfo": {"username": USER, "groups": GROUPS}}),
        "TokenReview" => {
            json!({"authenticated": true, "user": {"username": USER, "groups": GROUPS}})
        }
        _ => {
            json!({"allowed": true, "reason": "the vbackup test cluster authorizes every request"})
        }
    };
    if let Some(m) = body.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
        m.entry("metadata").or_insert_with(|| json!({}));
        m.insert("status".into(), status);
    }
    body
}

/// A TokenRequest answered for `serviceaccounts/NAME/token`: a JWT-shaped token (not
/// signed: nothing in the test cluster verifies it) with the requested lifetime.
pub fn token(namespace: &str, name: &str, mut request: Value) -> Value {
    use base64::Engine;
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let exp = jiff::Timestamp::now().as_second() + seconds;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let claims = b64(
        &json!({"sub": format!("system:serviceaccount:{namespace}:{name}"), "exp": exp, "iss": "vbackup-testcluster"}),
    );
    let expiry = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    if let Some(m) = request.as_object_mut() {
        m.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
        m.insert("kind".into(), json!("TokenRequest"));
        m.entry("metadata").or_insert_with(|| json!({}));
        m.insert(
            "status".into(),
            json!({"token": format!("{header}.{claims}.unsigned"), "expirationTimestamp": expiry}),
        );
    }
    request
}
