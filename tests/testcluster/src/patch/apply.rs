//! Server-side apply: merges an applied configuration into the live object, tracks field
//! ownership per manager, reports conflicts (409) unless forced, and removes fields a
//! manager stopped applying when nobody else owns them.

use crate::error::{ApiError, ApiResult, Cause};
use crate::listtypes::{ListType, atomic_map, list_type, same_item};
use crate::managed_fields::{self, Entry, FieldSet, get_at, remove_at, render, scope};
use crate::resources::ResourceType;
use serde_json::Value;

/// One apply request.
pub struct ApplyRequest<'a> {
    /// The resource applied to.
    pub rt: &'a ResourceType,
    /// `apps/v1` etc. as requested.
    pub api_version: &'a str,
    /// `fieldManager`.
    pub manager: &'a str,
    /// `force=true`.
    pub force: bool,
    /// `status` for `/status`.
    pub subresource: Option<&'a str>,
}

/// Parses an apply body (YAML or JSON).
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("apply body is not UTF-8"))?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// The live object after applying `applied` (with managedFields updated).
pub fn apply(req: &ApplyRequest, live: Option<&Value>, applied: &Value) -> ApiResult<Value> {
    let sc = scope(req.rt, req.subresource);
    let applied_set = managed_fields::leaves(req.rt, applied, sc);
    let mut entries = live.map(managed_fields::entries).unwrap_or_default();
    let empty = Value::Null;
    let live_obj = live.unwrap_or(&empty);

    let mut conflicts: Vec<(String, String, FieldSet)> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !e.is(req.manager, "Apply", req.subresource))
    {
        let clashing: FieldSet = e
            .fields
            .intersection(&applied_set)
            .filter(|p| p.last().map(String::as_str) != Some("."))
            .filter(|p| get_at(live_obj, p) != get_at(applied, p))
            .cloned()
            .collect();
        if !clashing.is_empty() {
            conflicts.push((e.manager.clone(), e.api_version.clone(), clashing));
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflict_error(req, &conflicts));
    }
    if req.force {
        for (_, _, paths) in &conflicts {
            for e in entries.iter_mut() {
                if !e.is(req.manager, "Apply", req.subresource) {
                    e.fields.retain(|p| !paths.contains(p));
                }
            }
        }
    }

    let previous: FieldSet = entries
        .iter()
        .find(|e| e.is(req.manager, "Apply", req.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !e.is(req.manager, "Apply", req.subresource))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut merged = live.cloned().unwrap_or_else(|| serde_json::json!({}));
    let mut dropped: Vec<&Vec<String>> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p))
        .filter(|p| !others.iter().any(|o| o.starts_with(p) || p.starts_with(o)))
        .collect();
    // Remove deeper paths first so list items are still addressable by their keys.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut merged, p);
    }
    let mut names = Vec::new();
    merge(req.rt, &mut names, &mut merged, applied);

    let now = crate::time::now();
    entries.retain(|e| !e.is(req.manager, "Apply", req.subresource));
    let mine = Entry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        api_version: req.api_version.to_string(),
        time: now,
        subresource: req.subresource.map(str::to_string),
        fields: applied_set,
    };
    let position = live
        .map(managed_fields::entries)
        .unwrap_or_default()
        .iter()
        .position(|e| e.is(req.manager, "Apply", req.subresource))
        .unwrap_or(entries.len())
        .min(entries.len());
    entries.insert(position, mine);
    managed_fields::set_entries(&mut merged, entries);
    Ok(merged)
}

fn conflict_error(req: &ApplyRequest, conflicts: &[(String, String, FieldSet)]) -> ApiError {
    let total: usize = conflicts.iter().map(|(_, _, p)| p.len()).sum();
    let mut causes = Vec::new();
    let mut parts = Vec::new();
    for (manager, api_version, paths) in conflicts {
        let rendered: Vec<String> = paths.iter().map(|p| render(p)).collect();
        for r in &rendered {
            causes.push(Cause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with \"{manager}\" using {api_version}"),
                field: r.clone(),
            });
        }
        if rendered.len() == 1 {
            parts.push(format!(
                "conflict with \"{manager}\" using {api_version}: {}",
                rendered[0]
            ));
        } else {
            parts.push(format!(
                "conflicts with \"{manager}\" using {api_version}:\n- {}",
                rendered.join("\n- ")
            ));
        }
    }
    let plural = if total == 1 { "conflict" } else { "conflicts" };
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!("Apply failed with {total} {plural}: {}", parts.join("\n")),
    );
    let name = String::new();
    e.details = Some(Box::new((
        name,
        req.rt.group.clone(),
        req.rt.plural.clone(),
    )));
    e.causes = causes;
    e
}

fn merge(rt: &ResourceType, names: &mut Vec<String>, live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                names.push(k.clone());
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let atomic = atomic_map(rt, &refs);
                match l.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() && !atomic => {
                        merge(rt, names, existing, v)
                    }
                    Some(Value::Array(existing)) if v.is_array() => {
                        let lt = list_type(rt, &refs);
                        merge_list(
                            rt,
                            names,
                            existing,
                            v.as_array().map(Vec::as_slice).unwrap_or_default(),
                            &lt,
                        );
                    }
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
                names.pop();
            }
        }
        (l, a) => *l = a.clone(),
    }
}

fn merge_list(
    rt: &ResourceType,
    names: &mut Vec<String>,
    live: &mut Vec<Value>,
    applied: &[Value],
    lt: &ListType,
) {
    match lt {
        ListType::Atomic => *live = applied.to_vec(),
        ListType::Set => {
            for v in applied {
                if !live.contains(v) {
                    live.push(v.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for item in applied {
                match live.iter().position(|l| same_item(l, item, keys)) {
                    Some(i) => merge(rt, names, &mut live[i], item),
                    None => live.push(item.clone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;
    use serde_json::json;

    fn req<'a>(rt: &'a ResourceType, manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            rt,
            api_version: "v1",
            manager,
            force,
            subresource: None,
        }
    }

    #[test]
    fn second_manager_changing_an_owned_field_conflicts_unless_forced() {
        let rt = builtin()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap();
        let first = apply(
            &req(&rt, "a", false),
            None,
            &json!({"metadata": {"name": "c"}, "data": {"k": "1"}}),
        )
        .unwrap();
        let err = apply(
            &req(&rt, "b", false),
            Some(&first),
            &json!({"metadata": {"name": "c"}, "data": {"k": "2"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\" using v1: .data.k"
        );
        let forced = apply(
            &req(&rt, "b", true),
            Some(&first),
            &json!({"metadata": {"name": "c"}, "data": {"k": "2"}}),
        )
        .unwrap();
        assert_eq!(forced["data"]["k"], "2");
        let owners: Vec<String> = managed_fields::entries(&forced)
            .into_iter()
            .map(|e| e.manager)
            .collect();
        assert_eq!(owners, vec!["b"]);
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let rt = builtin()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap();
        let first = apply(
            &req(&rt, "a", false),
            None,
            &json!({"metadata": {"name": "c"}, "data": {"k": "1", "x": "2"}}),
        )
        .unwrap();
        let second = apply(
            &req(&rt, "a", false),
            Some(&first),
            &json!({"metadata": {"name": "c"}, "data": {"k": "1"}}),
        )
        .unwrap();
        assert_eq!(second["data"], json!({"k": "1"}));
    }
}
