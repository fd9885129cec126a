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
            let mut found = Findings::default();
            walk_message(&ty, obj, "", "", true, &mut found);
            if let Some(e) = found.type_error {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
                    kind = rt.kind
                )));
            }
            unknown = found.unknown;
        }
    }
    if mode == FieldValidation::Warn {
        for f in &unknown {
            crate::warnings::warn(format!("unknown field \"{f}\""));
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

/// What walking a built-in object found.
#[derive(Default)]
struct Findings {
    unknown: Vec<String>,
    /// The first value of the wrong JSON type, as Go's decoder words it.
    type_error: Option<String>,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn go_type(ty: &str) -> String {
    match ty {
        "bytes" => "[]uint8".to_string(),
        t if !t.contains('.') => t.to_string(),
        t => {
            let mut parts = t.rsplit('.');
            let name = parts.next().unwrap_or(t);
            let pkg = parts.next().unwrap_or_default();
            format!("{pkg}.{name}")
        }
    }
}

/// Whether a JSON value decodes into a scalar or leaf type.
fn scalar_fits(ty: &str, v: &Value) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let ok = match ty {
        "string" => v.is_string(),
        "bool" => v.is_boolean(),
        "int32" | "int64" | "uint32" | "uint64" => v.as_i64().is_some() || v.as_u64().is_some(),
        "double" | "float" => v.is_number(),
        "bytes" => match v.as_str() {
            Some(text) => {
                use base64::Engine;
                if let Err(e) = base64::engine::general_purpose::STANDARD.decode(text) {
                    let at = match e {
                        base64::DecodeError::InvalidByte(i, _)
                        | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                        _ => text.len(),
                    };
                    return Err(format!("illegal base64 data at input byte {at}"));
                }
                true
            }
            None => false,
        },
        t if t.ends_with("intstr.IntOrString") || t.ends_with("resource.Quantity") => {
            v.is_string() || v.is_number()
        }
        t if t.ends_with("meta.v1.Time")
            || t.ends_with("meta.v1.MicroTime")
            || t.ends_with("meta.v1.Duration") =>
        {
            v.is_string()
        }
        _ => true,
    };
    if ok { Ok(()) } else { Err(String::new()) }
}

/// Keeps the first type error, worded like Go's JSON decoder.
fn record(
    slot: &mut Option<String>,
    parent: &str,
    go_path: &str,
    value: &Value,
    go: String,
    why: Result<(), String>,
) {
    if slot.is_none() {
        *slot = Some(match why {
            Err(e) if !e.is_empty() => e,
            _ => format!(
                "json: cannot unmarshal {} into Go struct field {parent}.{go_path} of type {go}",
                json_type(value)
            ),
        });
    }
}

fn walk_message(
    ty: &str,
    v: &mut Value,
    path: &str,
    gopath: &str,
    root: bool,
    found: &mut Findings,
) {
    let Some(map) = v.as_object_mut() else { return };
    let parent = ty.rsplit('.').next().unwrap_or(ty).to_string();
    let mut drop = Vec::new();
    for (k, child) in map.iter_mut() {
        if root && (k == "apiVersion" || k == "kind") {
            continue;
        }
        let Some((kind, fty)) = protobuf::field_of(ty, k) else {
            found.unknown.push(join(path, k));
            drop.push(k.clone());
            continue;
        };
        let here = join(path, k);
        let go_here = join(gopath, k);
        match (kind, &mut *child) {
            (_, Value::Null) => {}
            (b'r', Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if protobuf::is_leaf_type(fty) {
                        if let Err(e) = scalar_fits(fty, item) {
                            record(
                                &mut found.type_error,
                                &parent,
                                &go_here,
                                item,
                                go_type(fty),
                                Err(e),
                            );
                        }
                    } else if item.is_object() {
                        walk_message(fty, item, &format!("{here}[{i}]"), &go_here, false, found);
                    } else {
                        record(
                            &mut found.type_error,
                            &parent,
                            &go_here,
                            item,
                            go_type(fty),
                            Ok(()),
                        );
                    }
                }
            }
            (b'r', other) => record(
                &mut found.type_error,
                &parent,
                &go_here,
                other,
                format!("[]{}", go_type(fty)),
                Ok(()),
            ),
            (b'm', Value::Object(entries)) => {
                for (key, item) in entries.iter_mut() {
                    if protobuf::is_leaf_type(fty) {
                        if let Err(e) = scalar_fits(fty, item) {
                            record(
                                &mut found.type_error,
                                &parent,
                                &go_here,
                                item,
                                go_type(fty),
                                Err(e),
                            );
                        }
                    } else {
                        walk_message(fty, item, &format!("{here}[{key}]"), &go_here, false, found);
                    }
                }
            }
            (b'm', other) => record(
                &mut found.type_error,
                &parent,
                &go_here,
                other,
                format!("map[string]{}", go_type(fty)),
                Ok(()),
            ),
            (_, value) if protobuf::is_leaf_type(fty) => {
                if let Err(e) = scalar_fits(fty, value) {
                    record(
                        &mut found.type_error,
                        &parent,
                        &go_here,
                        value,
                        go_type(fty),
                        Err(e),
                    );
                }
            }
            (_, value @ Value::Object(_)) => {
                walk_message(fty, value, &here, &go_here, false, found)
            }
            (_, other) => record(
                &mut found.type_error,
                &parent,
                &go_here,
                other,
                go_type(fty),
                Ok(()),
            ),
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
        let mut wrong = json!({"metadata": {"name": "d"}, "spec": {"replicas": "two"}});
        let err = prune(&rt, "v1", &mut wrong, FieldValidation::Ignore).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let secrets = builtin()
            .into_iter()
            .find(|t| t.plural == "secrets")
            .unwrap();
        let mut bad = json!({"metadata": {"name": "s"}, "data": {"k": "not base64!"}});
        let err = prune(&secrets, "v1", &mut bad, FieldValidation::Ignore).unwrap_err();
        assert_eq!(
            err.message,
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"
        );
        assert!(d["metadata"].get("bogus").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
            json!({}),
            "inlined volume sources are known"
        );
    }
}
