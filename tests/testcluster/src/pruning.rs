//! Unknown fields: the real server decodes bodies into typed structs (built-ins) or prunes
//! them by the CRD's structural schema, so unknown fields are never stored; with
//! `fieldValidation=Strict` (kubectl's default) they are a 400 instead.

use crate::error::{ApiError, ApiResult};
use crate::protobuf;
use crate::resources::ResourceType;
use serde_json::Value;

/// `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them (the real server also sends a warning header).
    #[default]
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter.
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is invalid: supported values are \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

/// Removes unknown fields from `obj` (at `version` of `rt`); under `Strict` any unknown
/// field is a `400 BadRequest` naming them all.
pub fn prune(
    rt: &ResourceType,
    version: &str,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<()> {
    let mut unknown = Vec::new();
    if rt.custom {
        if let Some(schema) = &rt.schema
            && let Some(map) = obj.as_object_mut()
        {
            for (k, v) in map.iter_mut() {
                if k == "apiVersion" || k == "kind" || k == "metadata" {
                    continue;
                }
                match schema.pointer(&format!("/properties/{}", escape(k))) {
                    Some(s) => walk_schema(s, v, k, &mut unknown),
                    None if preserves(schema) => {}
                    None => unknown.push(k.clone()),
                }
            }
            apply_defaults(schema, map);
            let known = |k: &String| {
                ["apiVersion", "kind", "metadata"].contains(&k.as_str())
                    || schema
                        .pointer(&format!("/properties/{}", escape(k)))
                        .is_some()
                    || preserves(schema)
            };
            map.retain(|k, _| known(k));
        }
    } else {
        let ty = protobuf::message_type(&rt.api_version(version), &rt.kind);
        if protobuf::knows(&ty) {
            walk_message(&ty, obj, "", true, &mut unknown);
        }
    }
    if mode == FieldValidation::Strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            list.join(", "),
            kind = rt.kind
        )));
    }
    Ok(())
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk_message(ty: &str, v: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    let Some(map) = v.as_object_mut() else { return };
    let mut drop = Vec::new();
    for (k, child) in map.iter_mut() {
        if root && (k == "apiVersion" || k == "kind") {
            continue;
        }
        let Some((kind, fty)) = protobuf::field_of(ty, k) else {
            unknown.push(join(path, k));
            drop.push(k.clone());
            continue;
        };
        if protobuf::is_leaf_type(fty) {
            continue;
        }
        let here = join(path, k);
        match (kind, child) {
            (b'r', Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_message(fty, item, &format!("{here}[{i}]"), false, unknown);
                }
            }
            (b'm', Value::Object(entries)) => {
                for (key, item) in entries.iter_mut() {
                    walk_message(fty, item, &format!("{here}[{key}]"), false, unknown);
                }
            }
            (_, child) => walk_message(fty, child, &here, false, unknown),
        }
    }
    for k in drop {
        map.remove(&k);
    }
}

/// Structural-schema defaulting: absent properties with a `default` get it.
fn apply_defaults(schema: &Value, map: &mut serde_json::Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, p) in props {
        if let Some(d) = p.get("default")
            && !map.contains_key(k)
        {
            map.insert(k.clone(), d.clone());
        }
    }
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn walk_schema(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if preserves(schema) && schema.get("properties").is_none() {
                return;
            }
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut drop = Vec::new();
            for (k, child) in map.iter_mut() {
                if embedded && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                let sub = schema
                    .pointer(&format!("/properties/{}", escape(k)))
                    .or(additional);
                match sub {
                    Some(s) => walk_schema(s, child, &join(path, k), unknown),
                    None if preserves(schema) => {}
                    None => {
                        unknown.push(join(path, k));
                        drop.push(k.clone());
                    }
                }
            }
            for k in drop {
                map.remove(&k);
            }
            apply_defaults(schema, map);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_schema(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;
    use serde_json::json;

    #[test]
    fn unknown_fields_of_built_ins_are_dropped_or_rejected() {
        let rt = builtin()
            .into_iter()
            .find(|t| t.plural == "deployments")
            .unwrap();
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "bogus": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagez": "x"}], "volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let err = prune(&rt, "v1", &mut d.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.template.spec.containers[0].imagez\""
        );
        prune(&rt, "v1", &mut d, FieldValidation::Warn).unwrap();
        assert!(d["metadata"].get("bogus").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
            json!({}),
            "inlined volume sources are known"
        );
    }
}
