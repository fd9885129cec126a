//! The RBAC authorizer: ClusterRoleBindings, then the namespace's RoleBindings, whose
//! subjects name the user (User, Group, ServiceAccount) grant the rules of the Role or
//! ClusterRole they reference; the first rule matching the request allows it. Members of
//! `system:masters` are allowed everything before RBAC is asked, as kube-apiserver does.

use super::request_info::Attributes;
use super::{MASTERS, UserInfo};
use crate::store::{ObjectKey, Store};
use serde_json::{Value, json};

/// The API group of RBAC objects.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// An authorization decision with kube-apiserver's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// `RBAC: allowed by ...` or the resolution errors of a denial (often empty).
    pub reason: String,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want)
}

/// Where a rule came from, described as the RBAC authorizer's reasons do.
struct Source<'a> {
    binding: &'a Value,
    subject: &'a Value,
}

impl Source<'_> {
    fn describe(&self) -> String {
        let ns = text(self.binding, "/metadata/namespace");
        let name = text(self.binding, "/metadata/name");
        let (kind, name) = if ns.is_empty() {
            ("ClusterRoleBinding", name.to_string())
        } else {
            ("RoleBinding", format!("{name}/{ns}"))
        };
        let subject_kind = text(self.subject, "/kind");
        let mut subject_name = text(self.subject, "/name").to_string();
        if subject_kind == "ServiceAccount" {
            let sa_ns = match text(self.subject, "/namespace") {
                "" => ns,
                n => n,
            };
            subject_name = format!("{subject_name}/{sa_ns}");
        }
        format!(
            "{kind} {name:?} of {} {:?} to {subject_kind} {subject_name:?}",
            text(self.binding, "/roleRef/kind"),
            text(self.binding, "/roleRef/name"),
        )
    }
}

fn subject_applies(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = text(subject, "/name");
    match text(subject, "/kind") {
        "User" => user.name == name,
        "Group" => has(&user.groups, name),
        "ServiceAccount" => {
            let ns = match text(subject, "/namespace") {
                "" => binding_ns,
                n => n,
            };
            !ns.is_empty() && user.name == super::service_account_user(ns, name)
        }
        _ => false,
    }
}

/// The rules a role reference grants in `binding_ns`, or the resolution error.
pub fn role_rules<'a>(
    store: &'a Store,
    role_ref: &Value,
    binding_ns: &str,
) -> Result<&'a [Value], String> {
    let name = text(role_ref, "/name");
    let (plural, ns, singular) = match text(role_ref, "/kind") {
        "ClusterRole" => ("clusterroles", "", "clusterrole"),
        "Role" => ("roles", binding_ns, "role"),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    match store.get(&ObjectKey::new(GROUP, plural, ns, name)) {
        Some(role) => Ok(role
            .get("rules")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()),
        None => Err(format!("{singular}.{GROUP} {name:?} not found")),
    }
}

/// Calls `visit` with every rule granted to `user` by cluster-wide bindings and by the
/// bindings of `namespace`, in the authorizer's order, until it returns true; resolution
/// errors are collected.
fn visit_rules<'a>(
    store: &'a Store,
    user: &UserInfo,
    namespace: &'a str,
    errors: &mut Vec<String>,
    visit: &mut dyn FnMut(&Source<'a>, &'a Value) -> bool,
) -> bool {
    let mut bindings: Vec<&Value> = store
        .range(GROUP, "clusterrolebindings", None, None)
        .map(|(_, v)| v)
        .collect();
    if !namespace.is_empty() {
        bindings.extend(
            store
                .range(GROUP, "rolebindings", Some(namespace), None)
                .map(|(_, v)| v),
        );
    }
    for binding in bindings {
        let binding_ns = text(binding, "/metadata/namespace");
        let Some(subject) = binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| subject_applies(s, user, binding_ns))
        else {
            continue;
        };
        let rules = match role_rules(
            store,
            binding.get("roleRef").unwrap_or(&Value::Null),
            binding_ns,
        ) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let source = Source { binding, subject };
        for rule in rules {
            if visit(&source, rule) {
                return true;
            }
        }
    }
    false
}

fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Whether `rule` allows the request `a`.
pub fn rule_allows(a: &Attributes, rule: &Value) -> bool {
    let verbs = strings(rule, "verbs");
    if !has(&verbs, "*") && !has(&verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(rule, "nonResourceURLs").iter().any(|u| {
            u == "*"
                || *u == a.path
                || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
        });
    }
    let groups = strings(rule, "apiGroups");
    if !has(&groups, "*") && !has(&groups, &a.group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let names = strings(rule, "resourceNames");
    resource_ok && (names.is_empty() || has(&names, &a.name))
}

/// Decides a request.
pub fn authorize(store: &Store, user: &UserInfo, a: &Attributes) -> Decision {
    if has(&user.groups, MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors = Vec::new();
    let mut reason = String::new();
    let allowed = visit_rules(
        store,
        user,
        &a.namespace,
        &mut errors,
        &mut |source, rule| {
            let ok = rule_allows(a, rule);
            if ok {
                reason = format!("RBAC: allowed by {}", source.describe());
            }
            ok
        },
    );
    if !allowed && !errors.is_empty() {
        reason = format!("RBAC: {}", aggregate(&errors));
    }
    Decision { allowed, reason }
}

/// Every rule `user` holds in `namespace` (cluster-wide ones included), and the errors met
/// resolving them: what SelfSubjectRulesReview and escalation checks see.
pub fn rules_for(store: &Store, user: &UserInfo, namespace: &str) -> (Vec<Value>, Vec<String>) {
    let mut rules = Vec::new();
    if has(&user.groups, MASTERS) {
        rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    let mut errors = Vec::new();
    visit_rules(store, user, namespace, &mut errors, &mut |_, rule| {
        rules.push(rule.clone());
        false
    });
    (rules, errors)
}

/// The aggregated resolution errors as one message.
pub fn errors_message(errors: &[String]) -> String {
    aggregate(errors)
}
