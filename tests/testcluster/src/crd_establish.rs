//! CRD names and establishment, as apiextensions-apiserver's naming and establishing
//! controllers do it: asynchronously after the CRD is written, first `acceptedNames` with
//! `NamesAccepted=True` (and `Established=False`, `Installing`), then `Established=True`.
//! Until names are accepted the CRD's objects are not served (404), see
//! [`crate::registry::from_crd`].

use crate::api::{Api, Change, ChangeType};
use crate::controllers::Controller;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the naming controller takes to notice a CRD (a watch and a work queue upstream).
const NAMING_DELAY: Duration = Duration::from_millis(300);
/// How long the establishing controller takes after names are accepted.
const ESTABLISHING_DELAY: Duration = Duration::from_millis(100);

const MANAGER: &str = "kube-apiserver";

/// The naming and establishing controllers.
pub struct CrdEstablishing;

fn condition<'a>(crd: &'a Value, type_: &str) -> Option<&'a Value> {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// Whether a condition of the CRD is `True`.
pub fn condition_true(crd: &Value, type_: &str) -> bool {
    condition(crd, type_).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// The names the CRD asks for, with the defaults the API server fills in.
fn wanted_names(crd: &Value) -> Value {
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(n) = names.as_object_mut() {
        if !n.contains_key("singular") {
            n.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if !n.contains_key("listKind") {
            n.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    names
}

fn set_condition(status: &mut Value, type_: &str, ok: bool, reason: &str, message: &str) {
    let now = crate::time::now();
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    let value = if ok { "True" } else { "False" };
    let fresh = json!({"type": type_, "status": value, "lastTransitionTime": now,
        "reason": reason, "message": message});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(value) => {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        Some(c) => *c = fresh,
        None => list.push(fresh),
    }
}

/// Writes a status change to the current CRD named `name` (if it still exists and is
/// not being deleted).
fn update_status(api: &Api, name: &str, f: impl FnOnce(&Value, &mut Value)) {
    let Some(rt) = api.resource("apiextensions.k8s.io", "customresourcedefinitions") else {
        return;
    };
    let Ok(mut crd) = api.get(&rt, None, name) else {
        return;
    };
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let mut status = crd.get("status").cloned().unwrap_or(json!({}));
    f(&crd, &mut status);
    crd["status"] = status;
    if let Some(md) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("resourceVersion");
    }
    let _ = api.update_now(&rt, None, name, crd, MANAGER, Some("status"));
}

fn accept_names(api: &Api, name: &str) {
    update_status(api, name, |crd, status| {
        status["acceptedNames"] = wanted_names(crd);
        set_condition(
            status,
            "NamesAccepted",
            true,
            "NoConflicts",
            "no conflicts found",
        );
        if !condition_true(crd, "Established") {
            set_condition(
                status,
                "Established",
                false,
                "Installing",
                "the initial names have been accepted",
            );
        }
    });
}

fn establish(api: &Api, name: &str) {
    update_status(api, name, |_, status| {
        set_condition(
            status,
            "Established",
            true,
            "InitialNamesAccepted",
            "the initial names have been accepted",
        );
    });
}

/// Whether the CRD needs the controllers: names not (yet) accepted as asked, or not
/// established.
fn pending(crd: &Value) -> bool {
    crd.pointer("/metadata/deletionTimestamp").is_none()
        && (!condition_true(crd, "NamesAccepted")
            || crd.pointer("/status/acceptedNames") != Some(&wanted_names(crd))
            || !condition_true(crd, "Established"))
}

fn schedule(api: &Arc<Api>, crd: &Value) {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api = api.clone();
    tokio::spawn(async move {
        tokio::time::sleep(NAMING_DELAY).await;
        accept_names(&api, &name);
        tokio::time::sleep(ESTABLISHING_DELAY).await;
        establish(&api, &name);
    });
}

impl Controller for CrdEstablishing {
    fn name(&self) -> &'static str {
        "crd-establishing"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        let k = &change.key;
        if k.group == "apiextensions.k8s.io"
            && k.resource == "customresourcedefinitions"
            && change.type_ != ChangeType::Deleted
            && pending(&change.object)
        {
            schedule(api, &change.object);
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        for key in api.keys_of("apiextensions.k8s.io", "customresourcedefinitions") {
            if let Some(crd) = api.get_key(&key)
                && pending(&crd)
            {
                schedule(api, &crd);
            }
        }
    }
}
