//! Authentication: the bearer token of a request (the `Authorization` header, or the
//! WebSocket subprotocol `base64url.bearer.authorization.k8s.io.TOKEN` browsers use) is the
//! kubeconfig's admin token or a ServiceAccount token this cluster issued; a request without
//! one is `system:anonymous` (over TLS); any other token is 401, never anonymous
//! (kube-apiserver's fail-on-error union of authenticators).

use super::tokens::ISSUER;
use super::{UserInfo, unauthorized};
use crate::api::Api;
use crate::error::ApiResult;
use crate::store::ObjectKey;
use axum::http::{HeaderMap, header};
use base64::Engine;
use serde_json::Value;

/// The token the kubeconfig carries; it authenticates as [`super::ADMIN_USER`] in
/// `system:masters`.
pub const ADMIN_TOKEN: &str = "vbackup-testcluster-admin";

const WEBSOCKET_TOKEN_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// The bearer token of a request, if it carries one.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = v.split_whitespace();
        if parts
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            && let Some(t) = parts.next()
        {
            return Some(t.to_string());
        }
    }
    let protocols = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())?;
    protocols
        .split(',')
        .filter_map(|p| p.trim().strip_prefix(WEBSOCKET_TOKEN_PREFIX))
        .find_map(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        })
}

/// Who a request is from: 401 for a token this cluster does not know.
///
/// client-go (kubectl) never sends a bearer token over plain HTTP, so on a cluster served
/// without TLS a request without credentials is taken to be the kubeconfig's admin — as
/// kube-apiserver's former insecure port served everyone in `system:masters`. Over TLS it
/// is `system:anonymous`.
pub fn authenticate(api: &Api, headers: &HeaderMap, tls: bool) -> ApiResult<UserInfo> {
    match bearer_token(headers) {
        None if !tls => Ok(UserInfo::admin()),
        None => Ok(UserInfo::anonymous()),
        Some(t) => user_for_token(api, &t).ok_or_else(unauthorized),
    }
}

/// The user a token authenticates as, if valid: the admin token, or a ServiceAccount token
/// whose account (and bound pod) still exist with the uids it names.
pub fn user_for_token(api: &Api, token: &str) -> Option<UserInfo> {
    if token == ADMIN_TOKEN {
        return Some(UserInfo::admin());
    }
    let c = api.tokens().verify(token)?;
    if !c.audiences.iter().any(|a| a == ISSUER) {
        return None;
    }
    let uid_of = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let account = api.get_key(&ObjectKey::new(
        "",
        "serviceaccounts",
        &c.namespace,
        &c.name,
    ))?;
    if uid_of(&account) != c.uid {
        return None;
    }
    let mut user = UserInfo::service_account(&c.namespace, &c.name);
    user.uid = c.uid.clone();
    if let Some(p) = &c.pod {
        let pod = api.get_key(&ObjectKey::new("", "pods", &c.namespace, &p.name))?;
        if uid_of(&pod) != p.uid {
            return None;
        }
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![p.name.clone()],
        );
        user.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![p.uid.clone()],
        );
    }
    if !c.id.is_empty() {
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", c.id)],
        );
    }
    Some(user)
}
