//! Strategic merge patch for built-in types: maps merge recursively, lists with a patch merge
//! key merge by that key, `$patch: delete|replace`, `$retainKeys`, `$setElementOrder/…` and
//! `$deleteFromPrimitiveList/…` directives.

use crate::error::{ApiError, ApiResult};
use crate::listtypes::{ListType, same_item, strategic_list_type as list_type};
use crate::resources::ResourceType;
use serde_json::{Map, Value};

/// Merges `patch` into `target`.
pub fn merge(rt: &ResourceType, target: &mut Value, patch: &Value) -> ApiResult<()> {
    let mut path = Vec::new();
    merge_value(rt, &mut path, target, patch)
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// A patch value with every directive removed (what gets stored for new content).
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| directive(i).is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_value(
    rt: &ResourceType,
    path: &mut Vec<String>,
    target: &mut Value,
    patch: &Value,
) -> ApiResult<()> {
    let Some(pm) = patch.as_object() else {
        *target = clean(patch);
        return Ok(());
    };
    match directive(patch) {
        Some("replace") => {
            *target = clean(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::bad_request(format!(
                "Unknown patch type: {other}"
            )));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (key, value) in pm {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let map = target.as_object_mut().expect("made an object above");
        if value.is_null() {
            map.remove(key);
            continue;
        }
        path.push(key.clone());
        match (map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                merge_value(rt, path, existing, value)?
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let lt = list_type(rt, &refs);
                merge_list(rt, path, existing, items, &lt)?;
            }
            _ => {
                map.insert(key.clone(), clean(value));
            }
        }
        path.pop();
    }
    for (key, value) in pm {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(order)) = (
                target.as_object_mut().and_then(|m| m.get_mut(field)),
                value.as_array(),
            )
        {
            let mut refs: Vec<&str> = path.iter().map(String::as_str).collect();
            refs.push(field);
            let lt = list_type(rt, &refs);
            reorder(list, order, &lt);
        }
    }
    if let Some(Value::Array(retain)) = pm.get("$retainKeys")
        && let Some(map) = target.as_object_mut()
    {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        map.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(
    rt: &ResourceType,
    path: &mut Vec<String>,
    existing: &mut Vec<Value>,
    items: &[Value],
    lt: &ListType,
) -> ApiResult<()> {
    if items.iter().any(|i| directive(i) == Some("replace")) {
        *existing = items
            .iter()
            .filter(|i| directive(i).is_none())
            .map(clean)
            .collect();
        return Ok(());
    }
    match lt {
        ListType::Atomic => {
            *existing = clean(&Value::Array(items.to_vec()))
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
        ListType::Set => {
            for item in items {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for item in items {
                let position = existing.iter().position(|e| same_item(e, item, keys));
                match (directive(item), position) {
                    (Some("delete"), Some(i)) => {
                        existing.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => merge_value(rt, path, &mut existing[i], item)?,
                    (_, None) => existing.push(clean(item)),
                }
            }
        }
    }
    Ok(())
}

fn reorder(list: &mut [Value], order: &[Value], lt: &ListType) {
    let rank = |item: &Value| -> usize {
        order
            .iter()
            .position(|o| match lt {
                ListType::Map(keys) => same_item(item, o, keys),
                _ => item == o,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;
    use serde_json::json;

    fn deploy() -> ResourceType {
        builtin()
            .into_iter()
            .find(|t| t.plural == "deployments")
            .unwrap()
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ]}}}});
        merge(&deploy(), &mut d, &patch).unwrap();
        assert_eq!(
            d,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ]}}}})
        );
    }

    #[test]
    fn null_removes_a_key_and_atomic_lists_are_replaced() {
        let mut d = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}}});
        let patch = json!({"metadata": {"labels": {"a": null}}, "spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"]}]}}}});
        merge(&deploy(), &mut d, &patch).unwrap();
        assert_eq!(d["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["z"])
        );
    }
}
