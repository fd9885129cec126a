//! Validating custom resources against their CRD's OpenAPI v3 schema (types, required
//! properties, enums, numeric and length bounds), with the real server's messages.

use crate::error::Cause;
use serde_json::Value;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn fits(expected: &str, v: &Value) -> bool {
    match expected {
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn invalid(path: &str, value: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {message}"),
        field: path.into(),
    }
}

/// Every schema violation in `v` (at `path`).
pub fn causes(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !int_or_string
        && !fits(expected, v)
    {
        let actual = type_name(v);
        out.push(invalid(
            path,
            &format!("\"{actual}\""),
            format!("{path} in body must be of type {expected}: \"{actual}\""),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        out.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
            field: path.into(),
        });
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push(invalid(
                path,
                &v.to_string(),
                format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push(invalid(
                path,
                &v.to_string(),
                format!("{path} in body should be less than or equal to {max}"),
            ));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.push(invalid(
                path,
                &v.to_string(),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: may not be more than {max} bytes"),
                field: path.into(),
            });
        }
    }
    match v {
        Value::Object(map) => {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(r) {
                    out.push(Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: format!("{path}.{r}"),
                    });
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or(additional);
                if let Some(sub) = sub {
                    causes(sub, child, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    causes(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Violations of a custom object against its root schema (metadata is validated elsewhere).
pub fn object_causes(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) {
            out.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: r.into(),
            });
        }
    }
    for (k, v) in map {
        if ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
            continue;
        }
        if let Some(sub) = schema.get("properties").and_then(|p| p.get(k)) {
            causes(sub, v, k, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_enums_and_missing_required_fields_are_reported() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object", "required": ["size"],
            "properties": {"size": {"type": "integer", "minimum": 1}, "color": {"type": "string", "enum": ["red", "blue"]}}}}});
        let found = object_causes(&schema, &json!({"spec": {"size": "big", "color": "pink"}}));
        let messages: Vec<String> = found
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            messages,
            [
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
            ]
        );
        assert_eq!(object_causes(&schema, &json!({}))[0].field, "spec");
        assert_eq!(
            object_causes(&schema, &json!({"spec": {"size": 0}}))[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
    }
}
