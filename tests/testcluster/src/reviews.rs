//! Access, rules and token reviews (`kubectl auth can-i [--list]`, `kubectl auth whoami`),
//! answered by the same authenticator and RBAC evaluator that guard every request, and
//! TokenRequests (`kubectl create token`, `serviceaccounts/NAME/token`).

use crate::api::Api;
use crate::auth::request_info::Attributes;
use crate::auth::tokens::{BoundPod, ISSUER, TokenClaims};
use crate::auth::{UserInfo, current_user, rbac};
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::ResourceType;
use crate::store::ObjectKey;
use serde_json::{Value, json};

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn attributes(spec: &Value) -> Attributes {
    if let Some(r) = spec.get("resourceAttributes") {
        let mut a = Attributes::resource(
            text(r, "/verb"),
            text(r, "/group"),
            text(r, "/resource"),
            text(r, "/namespace"),
            text(r, "/name"),
        );
        a.subresource = text(r, "/subresource").to_string();
        a.version = text(r, "/version").to_string();
        a
    } else {
        let n = spec.get("nonResourceAttributes").unwrap_or(&Value::Null);
        Attributes::non_resource(text(n, "/verb"), text(n, "/path"))
    }
}

fn access_status(api: &Api, user: &UserInfo, spec: &Value) -> Value {
    let d = crate::auth::authorize(api, user, &attributes(spec));
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    status
}

fn subject_of(spec: &Value) -> UserInfo {
    let mut user = UserInfo {
        name: text(spec, "/user").to_string(),
        uid: text(spec, "/uid").to_string(),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        ..Default::default()
    };
    for (k, v) in spec
        .get("extra")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let values = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        user.extra.insert(k.clone(), values);
    }
    user
}

fn rules_status(api: &Api, user: &UserInfo, namespace: &str) -> Value {
    let (rules, errors) = {
        let inner = api.lock();
        rbac::rules_for(&inner.store, user, namespace)
    };
    let strings = |r: &Value, f: &str| r.get(f).cloned().unwrap_or(json!([]));
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in &rules {
        let has = |f: &str| {
            r.get(f)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        if has("resources") || has("apiGroups") {
            let mut rr = json!({"verbs": strings(r, "verbs"), "apiGroups": strings(r, "apiGroups"), "resources": strings(r, "resources")});
            if has("resourceNames") {
                rr["resourceNames"] = strings(r, "resourceNames");
            }
            resource_rules.push(rr);
        }
        if has("nonResourceURLs") {
            non_resource_rules.push(
                json!({"verbs": strings(r, "verbs"), "nonResourceURLs": strings(r, "nonResourceURLs")}),
            );
        }
    }
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false});
    if !errors.is_empty() {
        status["evaluationError"] = json!(rbac::errors_message(&errors));
    }
    status
}

/// The review object answered for a created review; `namespace` is the URL's (local
/// reviews).
pub fn answer(
    api: &Api,
    rt: &ResourceType,
    version: &str,
    namespace: Option<&str>,
    mut body: Value,
) -> ApiResult<Value> {
    let me = current_user();
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let status = match rt.kind.as_str() {
        "SelfSubjectRulesReview" => {
            let ns = text(&spec, "/namespace");
            if ns.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: "spec.namespace".into(),
                    }],
                ));
            }
            rules_status(api, &me, ns)
        }
        "SelfSubjectReview" => json!({"userInfo": me.to_json()}),
        "TokenReview" => match crate::auth::authn::user_for_token(api, text(&spec, "/token")) {
            Some(u) => {
                json!({"authenticated": true, "user": u.to_json(), "audiences": [ISSUER]})
            }
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        },
        "SelfSubjectAccessReview" => access_status(api, &me, &spec),
        "LocalSubjectAccessReview" => {
            let url_ns = namespace.unwrap_or_default();
            if text(&spec, "/resourceAttributes/namespace") != url_ns {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {url_ns}"
                )));
            }
            access_status(api, &subject_of(&spec), &spec)
        }
        _ => access_status(api, &subject_of(&spec), &spec),
    };
    if let Some(m) = body.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
        m.entry("metadata").or_insert_with(|| json!({}));
        m.insert("status".into(), status);
    }
    Ok(body)
}

fn invalid_token_request(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        "",
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

/// A TokenRequest for `serviceaccounts/NAME/token`: a signed token for the account (bound to
/// a pod when `spec.boundObjectRef` names one) with the requested lifetime.
pub fn token(api: &Api, account: &Value, mut request: Value) -> ApiResult<Value> {
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(invalid_token_request(
            "spec.expirationSeconds",
            "may not specify a duration less than 10 minutes",
        ));
    }
    let ns = text(account, "/metadata/namespace").to_string();
    let pod = match request.pointer("/spec/boundObjectRef") {
        Some(r) if !r.is_null() => {
            if text(r, "/kind") != "Pod" {
                return Err(invalid_token_request(
                    "spec.boundObjectRef.kind",
                    &format!(
                        "Unsupported value: {:?}: supported values: \"Pod\"",
                        text(r, "/kind")
                    ),
                ));
            }
            let name = text(r, "/name");
            let pod = api
                .get_key(&ObjectKey::new("", "pods", &ns, name))
                .ok_or_else(|| ApiError::not_found("", "pods", name))?;
            let uid = text(&pod, "/metadata/uid").to_string();
            let wanted_uid = text(r, "/uid");
            if !wanted_uid.is_empty() && wanted_uid != uid {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on pods {name:?}: the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            Some(BoundPod {
                name: name.to_string(),
                uid,
            })
        }
        _ => None,
    };
    let (expires, warn_after) = crate::auth::tokens::lifetime(seconds, pod.is_some());
    let audiences: Vec<String> = match request.pointer("/spec/audiences").and_then(Value::as_array)
    {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![ISSUER.to_string()],
    };
    let claims = TokenClaims {
        namespace: ns,
        name: text(account, "/metadata/name").to_string(),
        uid: text(account, "/metadata/uid").to_string(),
        pod,
        audiences: audiences.clone(),
        expires,
        id: crate::ids::uid(),
    };
    let token = api.tokens().issue(&claims, warn_after);
    let expiry = jiff::Timestamp::from_second(expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    if let Some(m) = request.as_object_mut() {
        m.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
        m.insert("kind".into(), json!("TokenRequest"));
        m.entry("metadata").or_insert_with(|| json!({}));
        m.insert(
            "status".into(),
            json!({"token": token, "expirationTimestamp": expiry}),
        );
        if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("audiences".into(), json!(audiences));
            spec.insert("expirationSeconds".into(), json!(seconds));
        }
    }
    Ok(request)
}
