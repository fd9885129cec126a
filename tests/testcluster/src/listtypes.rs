//! How lists merge (strategic merge patch and server-side apply): atomic, set, or map keyed
//! by merge keys. Built-in types use the Kubernetes patch merge keys; custom resources use
//! `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` from their CRD schema.

use crate::resources::ResourceType;
use serde_json::Value;

/// The merge behaviour of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Set of scalars, merged by value.
    Set,
    /// Objects merged by these key fields (the first is the strategic merge key).
    Map(Vec<String>),
}

fn keys(k: &[&str]) -> ListType {
    ListType::Map(k.iter().map(|s| s.to_string()).collect())
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The list type at `path` (field names from the object root, list positions omitted).
pub fn list_type(rt: &ResourceType, path: &[&str]) -> ListType {
    if rt.custom {
        if path == ["metadata", "finalizers"] {
            return ListType::Set;
        }
        if path == ["metadata", "ownerReferences"] {
            return keys(&["uid"]);
        }
        return schema_list_type(rt.schema.as_ref(), path);
    }
    let last = path.last().copied().unwrap_or_default();
    let parent = if path.len() >= 2 {
        path[path.len() - 2]
    } else {
        ""
    };
    match last {
        "finalizers" => ListType::Set,
        "ownerReferences" => keys(&["uid"]),
        c if CONTAINER_LISTS.contains(&c) => keys(&["name"]),
        "volumes" if parent == "spec" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "env" => keys(&["name"]),
        "ports" if CONTAINER_LISTS.contains(&parent) => keys(&["containerPort", "protocol"]),
        "ports" if rt.plural == "services" && path.len() == 2 => keys(&["port", "protocol"]),
        "imagePullSecrets" | "resourceClaims" | "secrets" | "schedulingGates" => keys(&["name"]),
        "hostAliases" => keys(&["ip"]),
        "podIPs" | "hostIPs" => keys(&["ip"]),
        "conditions" if parent == "status" => keys(&["type"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "readinessGates" => keys(&["conditionType"]),
        _ => ListType::Atomic,
    }
}

fn schema_list_type(schema: Option<&Value>, path: &[&str]) -> ListType {
    let mut node = match schema {
        Some(s) => s,
        None => return ListType::Atomic,
    };
    for field in path {
        // Lists are traversed through `items` implicitly: the path has no list positions.
        if node.get("type").and_then(Value::as_str) == Some("array") {
            node = match node.get("items") {
                Some(i) => i,
                None => return ListType::Atomic,
            };
        }
        node = match node
            .pointer(&format!("/properties/{field}"))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        {
            Some(n) => n,
            None => return ListType::Atomic,
        };
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            node.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// The key of a list item under `keys`, as the JSON object managedFields uses (`{"name":"x"}`).
pub fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut map = serde_json::Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            map.insert(k.clone(), v.clone());
        }
    }
    if map.is_empty() {
        return None;
    }
    Some(Value::Object(map).to_string())
}

/// Whether two items are the same list-map entry: equal on every key present in the patch
/// item (a missing `protocol` matches the defaulted `TCP`).
pub fn same_item(a: &Value, b: &Value, keys: &[String]) -> bool {
    let mut any = false;
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) => {
                if x != y {
                    return false;
                }
                any = true;
            }
            (None, Some(v)) | (Some(v), None) if k == "protocol" && v == "TCP" => {}
            (None, None) => {}
            _ if *k != keys[0] => {}
            _ => return false,
        }
    }
    any
}
