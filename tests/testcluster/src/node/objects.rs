//! Thin helpers over [`Api`] for the node's controllers: they read and write objects
//! as JSON values, bypassing admission like the real controllers' own writes.

use crate::api::{Api, DeleteOptions, WriteOptions};
use crate::error::{ApiError, ApiResult};
use crate::store::ObjectKey;
use serde_json::Value;

/// A string at a JSON pointer, or `""`.
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.name`.
pub fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

/// `metadata.namespace`.
pub fn namespace(v: &Value) -> &str {
    s(v, "/metadata/namespace")
}

/// `metadata.uid`.
pub fn uid(v: &Value) -> &str {
    s(v, "/metadata/uid")
}

/// Whether a deletion is pending (`metadata.deletionTimestamp`).
pub fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

/// One object.
pub fn get(api: &Api, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
    api.get_key(&ObjectKey::new(group, plural, ns, name))
}

/// Every object of a resource, in one namespace or all (`None`).
pub fn list(api: &Api, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
    api.keys_of(group, plural)
        .into_iter()
        .filter(|k| ns.is_none_or(|n| k.namespace == n))
        .filter_map(|k| api.get_key(&k))
        .collect()
}

fn rt(api: &Api, group: &str, plural: &str) -> ApiResult<crate::resources::ResourceType> {
    api.resource(group, plural).ok_or_else(|| {
        ApiError::not_found("", "resources", &crate::error::qualified(group, plural))
    })
}

fn ns_opt(ns: &str) -> Option<&str> {
    (!ns.is_empty()).then_some(ns)
}

/// Creates an object as `manager`.
pub fn create(api: &Api, group: &str, plural: &str, obj: Value, manager: &str) -> ApiResult<Value> {
    let rt = rt(api, group, plural)?;
    let ns = namespace(&obj).to_string();
    let opts = WriteOptions {
        field_manager: manager.to_string(),
        ..Default::default()
    };
    api.create_now(&rt, ns_opt(&ns), obj, &opts)
}

/// Creates an object through the API's whole create path (admission, defaulting,
/// validation, RBAC) as the controller's ServiceAccount `kube-system/CONTROLLER`, as the
/// real controllers do; a refusal becomes a `FailedCreate` event on `owner`.
pub fn create_as(
    api: &Api,
    group: &str,
    plural: &str,
    obj: Value,
    controller: &str,
    owner: &Value,
) -> ApiResult<Value> {
    let rt = rt(api, group, plural)?;
    crate::auth::create_as_controller(api, controller, &rt, obj).inspect_err(|e| {
        if e.code != 409 {
            super::events::record(
                api,
                owner,
                "Warning",
                "FailedCreate",
                &format!("Error creating: {}", e.message),
                controller,
            );
        }
    })
}

fn write(
    api: &Api,
    group: &str,
    plural: &str,
    mut obj: Value,
    manager: &str,
    sub: Option<&str>,
) -> ApiResult<Value> {
    let rt = rt(api, group, plural)?;
    let ns = namespace(&obj).to_string();
    let name = name(&obj).to_string();
    // Last writer wins: the node's controllers recompute from the current state each time.
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("resourceVersion");
    }
    api.update_now(&rt, ns_opt(&ns), &name, obj, manager, sub)
}

/// Replaces an object's spec and metadata.
pub fn update(api: &Api, group: &str, plural: &str, obj: Value, manager: &str) -> ApiResult<Value> {
    write(api, group, plural, obj, manager, None)
}

/// Replaces an object's status.
pub fn update_status(
    api: &Api,
    group: &str,
    plural: &str,
    obj: Value,
    manager: &str,
) -> ApiResult<Value> {
    let has_status = api.resource(group, plural).is_some_and(|r| r.status);
    write(
        api,
        group,
        plural,
        obj,
        manager,
        has_status.then_some("status"),
    )
}

/// Deletes an object (absent is fine).
pub fn delete(api: &Api, group: &str, plural: &str, ns: &str, name: &str) {
    if let Ok(rt) = rt(api, group, plural) {
        let _ = api.delete(&rt, ns_opt(ns), name, &DeleteOptions::default());
    }
}

/// An owner reference to `owner` marked as its controller.
pub fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    serde_json::json!({
        "apiVersion": api_version, "kind": kind, "name": name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// The uid of an object's controller, if any.
pub fn controller_uid(v: &Value) -> Option<&str> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// The kind and name of an object's controller, if any.
pub fn controller_of(v: &Value) -> Option<(&str, &str)> {
    let r = v
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some((
        r.get("kind").and_then(Value::as_str)?,
        r.get("name").and_then(Value::as_str)?,
    ))
}

/// FNV-1a (32 bits): stable names for template revisions, like the real controllers' hashes.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A template hash shaped like the real controllers' (the decimal FNV hash, each digit
/// mapped into the alphabet without vowels), e.g. `7c5ddbdf54`.
pub fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(template.to_string().as_bytes())
        .to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}
