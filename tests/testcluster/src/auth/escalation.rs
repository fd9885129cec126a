//! RBAC escalation prevention, as the RBAC registry enforces it: a Role or ClusterRole may
//! only grant what its writer already holds (or the writer has `escalate` on it), and a
//! binding may only grant a role whose rules its writer holds (or the writer has `bind` on
//! that role). `system:masters` may do anything.

use super::rbac::{self, GROUP};
use super::request_info::Attributes;
use super::{MASTERS, UserInfo};
use crate::api::Api;
use crate::error::ApiResult;
use crate::resources::ResourceType;
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want)
}

/// One (group, resource, verb, name) or (URL, verb) of a rule.
fn breakdown(rule: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let verbs = strings(rule, "verbs");
    for g in strings(rule, "apiGroups") {
        for r in strings(rule, "resources") {
            for v in &verbs {
                let names = strings(rule, "resourceNames");
                if names.is_empty() {
                    out.push(json!({"apiGroups": [g], "resources": [r], "verbs": [v]}));
                }
                for n in names {
                    out.push(
                        json!({"apiGroups": [g], "resources": [r], "resourceNames": [n], "verbs": [v]}),
                    );
                }
            }
        }
    }
    for u in strings(rule, "nonResourceURLs") {
        for v in &verbs {
            out.push(json!({"nonResourceURLs": [u], "verbs": [v]}));
        }
    }
    out
}

fn resource_covers(owner: &[String], wanted: &str) -> bool {
    has(owner, "*")
        || has(owner, wanted)
        || wanted
            .split_once('/')
            .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
}

fn covers(owner: &Value, sub: &Value) -> bool {
    let (ov, sv) = (strings(owner, "verbs"), strings(sub, "verbs"));
    let (og, sg) = (strings(owner, "apiGroups"), strings(sub, "apiGroups"));
    let (on, sn) = (
        strings(owner, "resourceNames"),
        strings(sub, "resourceNames"),
    );
    let verbs = has(&ov, "*") || sv.iter().all(|v| has(&ov, v));
    let groups = has(&og, "*") || sg.iter().all(|g| has(&og, g));
    let resources = strings(sub, "resources")
        .iter()
        .all(|r| resource_covers(&strings(owner, "resources"), r));
    let urls = strings(sub, "nonResourceURLs").iter().all(|u| {
        strings(owner, "nonResourceURLs")
            .iter()
            .any(|o| o == u || (o.ends_with('*') && u.starts_with(o.trim_end_matches('*'))))
    });
    let names = if sn.is_empty() {
        on.is_empty()
    } else {
        on.is_empty() || sn.iter().all(|n| has(&on, n))
    };
    verbs && groups && resources && urls && names
}

/// kube's `CompactString` of a rule: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
fn compact(rule: &Value) -> String {
    let list = |field: &str| {
        let items: Vec<String> = strings(rule, field)
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        format!("[{}]", items.join(" "))
    };
    let mut parts = Vec::new();
    for (field, label) in [
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ] {
        if rule.get(field).and_then(Value::as_array).is_some() {
            parts.push(format!("{label}:{}", list(field)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The rules of `wanted` that `user` does not hold in `namespace`, with resolution errors.
fn missing(
    store: &Store,
    user: &UserInfo,
    namespace: &str,
    wanted: &[Value],
) -> (Vec<String>, Vec<String>) {
    let (owner, errors) = rbac::rules_for(store, user, namespace);
    let mut out = BTreeSet::new();
    for rule in wanted {
        for sub in breakdown(rule) {
            if !owner.iter().any(|o| covers(o, &sub)) {
                out.insert(compact(&sub));
            }
        }
    }
    (out.into_iter().collect(), errors)
}

fn refuse(
    user: &UserInfo,
    rt: &ResourceType,
    name: &str,
    missing: &[String],
    errors: &[String],
) -> crate::error::ApiError {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut msg = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        missing.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    super::forbidden_error(&rt.group, &rt.plural, name, &msg)
}

/// Refuses a Role, ClusterRole or binding `obj` that would grant `user` more than they hold.
pub fn check(api: &Api, user: &UserInfo, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if rt.group != GROUP || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    let text = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (name, ns) = (text("/metadata/name"), text("/metadata/namespace"));
    let inner = api.lock();
    let allowed = |verb: &str, plural: &str, target: &str| {
        rbac::authorize(
            &inner.store,
            user,
            &Attributes::resource(verb, GROUP, plural, &ns, target),
        )
        .allowed
    };
    match rt.plural.as_str() {
        "roles" | "clusterroles" => {
            if allowed("escalate", &rt.plural, &name) {
                return Ok(());
            }
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                return Err(super::forbidden_error(
                    &rt.group,
                    &rt.plural,
                    &name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
            let rules: Vec<Value> = obj
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let (missing, errors) = missing(&inner.store, user, &ns, &rules);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(refuse(user, rt, &name, &missing, &errors))
            }
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            let role_plural = if text("/roleRef/kind") == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed("bind", role_plural, &text("/roleRef/name")) {
                return Ok(());
            }
            let rules = rbac::role_rules(&inner.store, &role_ref, &ns)
                .map_err(|e| super::forbidden_error(&rt.group, &rt.plural, &name, &e))?
                .to_vec();
            let (missing, errors) = missing(&inner.store, user, &ns, &rules);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(refuse(user, rt, &name, &missing, &errors))
            }
        }
        _ => Ok(()),
    }
}
