//! `metadata.managedFields`: which manager owns which fields, in the `FieldsV1` format.
//!
//! A field path is a list of `FieldsV1` keys (`f:spec`, `k:{"name":"c"}`, `v:"x"`, `.`);
//! a field set is the set of leaf paths an object (or an applied configuration) sets.

use crate::listtypes::{ListType, atomic_map, item_key, list_type, same_item};
use crate::resources::ResourceType;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A path of `FieldsV1` keys.
pub type FieldPath = Vec<String>;
/// A set of leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Which part of an object a field set covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything except status (for resources with a status subresource).
    Main,
    /// Only status.
    Status,
    /// Everything (resources without a status subresource).
    All,
}

/// The scope of a write to `rt` through `subresource`.
pub fn scope(rt: &ResourceType, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::Status,
        _ if rt.status => Scope::Main,
        _ => Scope::All,
    }
}

/// The leaf paths `obj` sets within `scope`.
pub fn leaves(rt: &ResourceType, obj: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        let included = match (k.as_str(), scope) {
            ("apiVersion" | "kind", _) => false,
            ("status", Scope::Main) => false,
            ("status", _) => true,
            (_, Scope::Status) => false,
            _ => true,
        };
        if !included {
            continue;
        }
        if k == "metadata" {
            if let Some(md) = v.as_object() {
                for (mk, mv) in md {
                    if SERVER_METADATA.contains(&mk.as_str()) {
                        continue;
                    }
                    walk(
                        rt,
                        mv,
                        &mut vec!["metadata".into(), mk.clone()],
                        &mut vec!["f:metadata".into(), format!("f:{mk}")],
                        &mut out,
                    );
                }
            }
            continue;
        }
        walk(
            rt,
            v,
            &mut vec![k.clone()],
            &mut vec![format!("f:{k}")],
            &mut out,
        );
    }
    out
}

fn walk(
    rt: &ResourceType,
    v: &Value,
    names: &mut Vec<String>,
    fpath: &mut FieldPath,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m)
            if !m.is_empty()
                && !atomic_map(rt, &names.iter().map(String::as_str).collect::<Vec<_>>()) =>
        {
            for (k, child) in m {
                names.push(k.clone());
                fpath.push(format!("f:{k}"));
                walk(rt, child, names, fpath, out);
                fpath.pop();
                names.pop();
            }
        }
        Value::Array(items) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_type(rt, &refs) {
                ListType::Atomic => {
                    out.insert(fpath.clone());
                }
                ListType::Set => {
                    for item in items {
                        let mut p = fpath.clone();
                        p.push(format!("v:{item}"));
                        out.insert(p);
                    }
                }
                ListType::Map(keys) => {
                    for item in items {
                        let Some(key) = item_key(item, &keys) else {
                            out.insert(fpath.clone());
                            continue;
                        };
                        fpath.push(format!("k:{key}"));
                        let mut marker = fpath.clone();
                        marker.push(".".into());
                        out.insert(marker);
                        walk(rt, item, names, fpath, out);
                        fpath.pop();
                    }
                }
            }
        }
        _ => {
            out.insert(fpath.clone());
        }
    }
}

fn find_item(items: &[Value], step: &str) -> Option<usize> {
    if let Some(k) = step.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
        items.iter().position(|i| same_item(i, &key, &keys))
    } else if let Some(v) = step.strip_prefix("v:") {
        let val: Value = serde_json::from_str(v).ok()?;
        items.iter().position(|i| *i == val)
    } else {
        None
    }
}

/// The value at a field path (`.` yields the list item itself).
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        if step == "." {
            return Some(cur);
        }
        cur = if let Some(f) = step.strip_prefix("f:") {
            cur.get(f)?
        } else {
            let items = cur.as_array()?;
            &items[find_item(items, step)?]
        };
    }
    Some(cur)
}

/// Removes the value at a field path (a `.` path removes the whole list item).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if last == "." {
        if let Some((item, grand)) = parents.split_last()
            && let Some(Value::Array(items)) = get_mut_at(obj, grand)
            && let Some(i) = find_item(items, item)
        {
            items.remove(i);
        }
        return;
    }
    match get_mut_at(obj, parents) {
        Some(Value::Object(m)) => {
            if let Some(f) = last.strip_prefix("f:") {
                m.remove(f);
            }
        }
        Some(Value::Array(items)) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn get_mut_at<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for step in path {
        cur = if let Some(f) = step.strip_prefix("f:") {
            cur.get_mut(f)?
        } else {
            let items = cur.as_array_mut()?;
            let i = find_item(items, step)?;
            &mut items[i]
        };
    }
    Some(cur)
}

/// Encodes a field set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node
                .entry(step.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// Decodes `fieldsV1` into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    go(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version the manager used.
    pub api_version: String,
    /// Last time this entry changed.
    pub time: String,
    /// `status` or none.
    pub subresource: Option<String>,
    /// Owned fields.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this entry is the one for (manager, operation, subresource).
    pub fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// Parses `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes entries (dropping empty ones) into `metadata.managedFields`.
pub fn set_entries(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records a non-apply write by `manager`: it takes ownership of every field it changed,
/// other managers lose those fields, and removed fields are dropped from everyone.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
) {
    let sc = scope(rt, subresource);
    let client_reset = new
        .pointer("/metadata/managedFields")
        .filter(|m| Some(*m) != old.and_then(|o| o.pointer("/metadata/managedFields")))
        .cloned();
    let mut list = match (&client_reset, old) {
        (Some(Value::Array(a)), _)
            if a.iter().all(|e| e.as_object().is_some_and(Map::is_empty)) =>
        {
            Vec::new()
        }
        (Some(_), _) => entries(new),
        (None, Some(o)) => entries(o),
        (None, None) => Vec::new(),
    };
    let new_leaves = leaves(rt, new, sc);
    let empty = Value::Null;
    let old_obj = old.unwrap_or(&empty);
    let old_leaves = old.map(|o| leaves(rt, o, sc)).unwrap_or_default();
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| get_at(old_obj, p) != get_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_leaves.difference(&new_leaves).cloned().collect();
    for e in &mut list {
        e.fields.retain(|p| !removed.contains(p));
        if !e.is(manager, "Update", subresource) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        let now = crate::time::now();
        match list
            .iter_mut()
            .find(|e| e.is(manager, "Update", subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now;
                e.api_version = api_version.to_string();
            }
            None => list.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now,
                subresource: subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    set_entries(new, list);
}

/// Renders a field path as the real server does in conflict messages
/// (`.spec.containers[name="c"].image`).
pub fn render(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = key
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;

    #[test]
    fn fields_v1_round_trips_keyed_lists() {
        let rt = builtin().into_iter().find(|t| t.plural == "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let set = leaves(&rt, &pod, Scope::Main);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
        let path: FieldPath = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(get_at(&pod, &path), Some(&json!("i")));
        assert_eq!(render(&path), ".spec.containers[name=\"c\"].image");
    }
}
