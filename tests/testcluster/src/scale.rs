//! The `/scale` subresource (`autoscaling/v1` Scale) for deployments, statefulsets,
//! replicasets and CRDs that declare it.

use crate::api::{Api, WriteOptions};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use serde_json::{Map, Value, json};

fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

fn selector_text(rt: &ResourceType, obj: &Value) -> String {
    if rt.custom {
        let p = rt
            .scale
            .as_ref()
            .map(|s| s.label_selector.clone())
            .unwrap_or_default();
        return obj
            .pointer(&pointer(&p))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    }
    let Some(sel) = obj.pointer("/spec/selector") else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The Scale view of an object.
pub fn to_scale(rt: &ResourceType, obj: &Value) -> Value {
    let paths = rt
        .scale
        .clone()
        .unwrap_or_else(|| crate::resources::ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: String::new(),
        });
    let md = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut metadata = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = md.get(k) {
            metadata.insert(k.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": obj.pointer(&pointer(&paths.status_replicas)).and_then(Value::as_i64).unwrap_or(0)});
    let selector = selector_text(rt, obj);
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer(&pointer(&paths.spec_replicas)).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    })
}

/// Applies a PUT or PATCH of the Scale to the object's replicas.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    api: &Api,
    rt: &ResourceType,
    version: &str,
    ns: Option<&str>,
    name: &str,
    put: bool,
    content_type: &str,
    body: &[u8],
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let current = api.get(rt, ns, name)?;
    let scale = to_scale(rt, &current);
    let new_scale = if put {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid Scale: {e}")))?;
        let rv = v
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !rv.is_empty()
            && Some(rv)
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        v
    } else {
        let ty = match PatchType::from_content_type(content_type, rt) {
            Ok(PatchType::Apply) | Ok(PatchType::Strategic) | Err(_) => PatchType::Merge,
            Ok(t) => t,
        };
        patch::patch_object(rt, &scale, ty, body)?
    };
    let replicas = new_scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("Scale spec.replicas must be an integer"))?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let spec_path = rt
        .scale
        .as_ref()
        .map(|s| s.spec_replicas.clone())
        .unwrap_or_else(|| ".spec.replicas".into());
    let mut patch_body = json!(replicas);
    for part in spec_path.trim_start_matches('.').split('.').rev() {
        patch_body = json!({ part: patch_body });
    }
    let bytes = patch_body.to_string().into_bytes();
    let (updated, _) = api
        .patch(rt, version, ns, name, PatchType::Merge, &bytes, opts, None)
        .await?;
    Ok(to_scale(rt, &updated))
}
