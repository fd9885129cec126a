//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): each header is authorized as
//! the `impersonate` verb on `users`, `groups`, `serviceaccounts` (for
//! `system:serviceaccount:NS:NAME`), `uids` or `userextras/KEY`, and the request then runs
//! as the impersonated user, with kube-apiserver's rules for the groups it gets.

use super::request_info::Attributes;
use super::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo};
use crate::api::Api;
use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;

const USER: &str = "Impersonate-User";
const GROUP: &str = "Impersonate-Group";
const UID: &str = "Impersonate-Uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user a request acts as: `user` itself without impersonation headers, else the
/// impersonated user once every header is allowed.
pub fn apply(api: &Api, user: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let name = values(headers, USER).first().map(|s| s.to_string());
    let groups_asked: Vec<String> = values(headers, GROUP)
        .into_iter()
        .map(str::to_string)
        .collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let mut extras: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            let key = url::form_urlencoded::parse(format!("k={key}").as_bytes())
                .next()
                .map(|(_, k)| k.into_owned())
                .unwrap_or_else(|| key.to_string());
            extras.push((key, v.to_string()));
        }
    }
    let Some(name) = name else {
        if !groups_asked.is_empty() || uid.is_some() || !extras.is_empty() {
            return Err(ApiError::internal(format!(
                "requested impersonation of groups {groups_asked:?} without impersonating a user"
            )));
        }
        return Ok(user);
    };
    let groups_specified = !groups_asked.is_empty();
    let mut checks = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    match super::parse_service_account_user(&name) {
        Some((ns, sa)) => {
            checks.push(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                ns,
                sa,
            ));
            if !groups_specified {
                groups = super::service_account_groups(ns);
                groups.retain(|g| g != AUTHENTICATED);
            }
        }
        None => checks.push(Attributes::resource("impersonate", "", "users", "", &name)),
    }
    for g in &groups_asked {
        checks.push(Attributes::resource("impersonate", "", "groups", "", g));
        groups.push(g.clone());
    }
    for (k, v) in &extras {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            &format!("userextras/{k}"),
            "",
            v,
        ));
    }
    if let Some(u) = &uid {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            u,
        ));
    }
    for a in &checks {
        super::require(api, &user, a)?;
    }
    if name != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
        {
            groups.push(AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == UNAUTHENTICATED) {
        groups.push(UNAUTHENTICATED.into());
    }
    let mut out = UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        ..Default::default()
    };
    for (k, v) in extras {
        out.extra.entry(k).or_default().push(v);
    }
    Ok(out)
}
