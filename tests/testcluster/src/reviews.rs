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
