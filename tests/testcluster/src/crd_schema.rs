//! apiextensions-apiserver's checks of a CRD's OpenAPI schemas: every served version needs
//! one (`schemas are required`), `x-kubernetes-preserve-unknown-fields` may only be true,
//! and the schema must be structural (a type for the root, every field and every array
//! item; no `additionalProperties` at the root; only `name`/`generateName` under
//! `metadata`; nothing but value validation under `anyOf`/`allOf`/`oneOf`/`not`), with the
//! real messages. Structural errors come sorted, as upstream sorts them.

use crate::error::Cause;
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn required(field: &str, detail: &str) -> Cause {
    cause(
        "FieldValueRequired",
        field,
        format!("Required value: {detail}"),
    )
}

fn forbidden(field: &str, detail: &str) -> Cause {
    cause("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

/// `field.Invalid` with the value printed as Go prints it (strings quoted).
fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {shown}: {detail}"),
    )
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

fn type_of(s: &Value) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn properties(s: &Value) -> impl Iterator<Item = (&String, &Value)> {
    s.get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

const JUNCTORS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// The causes for the CRD `crd`'s version schemas.
pub fn crd_causes(crd: &Value, causes: &mut Vec<Cause>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let Some(schema) = v.pointer("/schema/openAPIV3Schema") else {
            causes.push(required(&path, "schemas are required"));
            continue;
        };
        let mut generic = Vec::new();
        generic_causes(schema, &path, &mut generic);
        let mut structural = Vec::new();
        invariants(schema, Level::Root, &path, &mut structural);
        structural.sort_by_key(|c| format!("{}: {}", c.field, c.message));
        causes.extend(generic);
        causes.extend(structural);
    }
}

/// `ValidateCustomResourceDefinitionOpenAPISchema`'s checks that this server makes.
fn generic_causes(s: &Value, path: &str, causes: &mut Vec<Cause>) {
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        causes.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if s.get("additionalProperties").is_some_and(Value::is_object)
        && s.get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty())
    {
        causes.push(forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    for (k, p) in properties(s) {
        generic_causes(p, &format!("{path}.properties[{k}]"), causes);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = s.get(key).filter(|c| c.is_object()) {
            generic_causes(child, &format!("{path}.{key}"), causes);
        }
    }
    for j in JUNCTORS {
        for (i, child) in s
            .get(j)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            generic_causes(child, &format!("{path}.{j}[{i}]"), causes);
        }
    }
}

/// `validateStructuralInvariants`.
fn invariants(s: &Value, level: Level, path: &str, causes: &mut Vec<Cause>) {
    let ty = type_of(s);
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if ty == "array" && s.get("items").is_none() {
        causes.push(required(&format!("{path}.items"), "must be specified"));
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        invariants(items, Level::Item, &format!("{path}.items"), causes);
    }
    for (k, p) in properties(s) {
        invariants(p, Level::Field, &format!("{path}.properties[{k}]"), causes);
    }
    if let Some(additional) = s.get("additionalProperties") {
        if level == Level::Root {
            causes.push(forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if additional.is_object() {
            invariants(
                additional,
                Level::Field,
                &format!("{path}.additionalProperties"),
                causes,
            );
        }
    }
    if int_or_string && preserve {
        causes.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        causes.push(invalid(
            &format!("{path}.x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    junctor_causes(
        s,
        int_or_string_pair(s.get("anyOf")),
        int_or_string_pair(s.pointer("/allOf/0/anyOf")),
        path,
        causes,
    );
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        causes.push(if ty.is_empty() {
            required(&format!("{path}.type"), detail)
        } else {
            invalid(&format!("{path}.type"), &Value::from(ty), detail)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        causes.push(required(&format!("{path}.type"), detail));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        causes.push(invalid(
            &format!("{path}.type"),
            &Value::from(ty),
            "must be object at the root",
        ));
    }
    let check_metadata = level == Level::Root || embedded;
    let props = s.get("properties");
    for (field, want) in [
        ("kind", "string"),
        ("apiVersion", "string"),
        ("metadata", "object"),
    ] {
        if let Some(p) = props.and_then(|p| p.get(field))
            && check_metadata
            && type_of(p) != want
        {
            causes.push(invalid(
                &format!("{path}.properties[{field}].type"),
                &Value::from(type_of(p)),
                &format!("must be {want}"),
            ));
        }
    }
    if level == Level::Root
        && let Some(metadata) = props.and_then(|p| p.get("metadata"))
        && !only_names(metadata)
    {
        causes.push(forbidden(
            &format!("{path}.properties[metadata]"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}

/// Whether a root `metadata` schema restricts at most `name` and `generateName`.
fn only_names(metadata: &Value) -> bool {
    let Some(m) = metadata.as_object() else {
        return true;
    };
    m.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v
            .as_object()
            .is_some_and(|p| p.keys().all(|n| n == "name" || n == "generateName")),
        _ => false,
    })
}

/// Whether `anyOf` is exactly the int-or-string pair.
fn int_or_string_pair(any_of: Option<&Value>) -> bool {
    any_of.and_then(Value::as_array).is_some_and(|a| {
        a.len() == 2
            && a[0] == serde_json::json!({"type": "integer"})
            && a[1] == serde_json::json!({"type": "string"})
    })
}

/// Value validations under junctors may not specify structure (`validateValueValidation`);
/// the int-or-string `anyOf` pattern (also as the first `allOf`) is exempt.
fn junctor_causes(
    s: &Value,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for j in JUNCTORS {
        for (i, child) in s
            .get(j)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if j == "anyOf" && skip_any_of {
                continue;
            }
            let skip = j == "allOf" && i == 0 && skip_first_all_of_any_of;
            nested(child, skip, &format!("{path}.{j}[{i}]"), causes);
        }
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object()) {
        nested(not, false, &format!("{path}.not"), causes);
    }
}

/// `validateNestedValueValidation`.
fn nested(v: &Value, skip_any_of: bool, path: &str, causes: &mut Vec<Cause>) {
    junctor_causes(v, skip_any_of, false, path, causes);
    if let Some(items) = v.get("items").filter(|i| i.is_object()) {
        nested(items, false, &format!("{path}.items"), causes);
    }
    for (k, p) in properties(v) {
        nested(p, false, &format!("{path}.properties[{k}]"), causes);
    }
    let present = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    let checks: [(&str, bool, &str); 11] = [
        (
            "type",
            !type_of(v).is_empty(),
            "must be empty to be structural",
        ),
        (
            "additionalProperties",
            present("additionalProperties"),
            "must be undefined to be structural",
        ),
        (
            "default",
            present("default"),
            "must be undefined to be structural",
        ),
        (
            "title",
            v.get("title")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty()),
            "must be empty to be structural",
        ),
        (
            "description",
            v.get("description")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty()),
            "must be empty to be structural",
        ),
        (
            "nullable",
            flag(v, "nullable"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-preserve-unknown-fields",
            flag(v, "x-kubernetes-preserve-unknown-fields"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            flag(v, "x-kubernetes-embedded-resource"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            flag(v, "x-kubernetes-int-or-string"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            v.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            present("x-kubernetes-list-type"),
            "must be undefined to be structural",
        ),
    ];
    for (field, bad, detail) in checks {
        if bad {
            causes.push(forbidden(&format!("{path}.{field}"), detail));
        }
    }
    if v.pointer("/properties/metadata").is_some() {
        causes.push(forbidden(
            &format!("{path}.properties[metadata]"),
            "must not be specified in a nested context",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: Value) -> Vec<String> {
        let crd =
            json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}});
        let mut causes = Vec::new();
        crd_causes(&crd, &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn structural_schemas_pass() {
        assert!(messages(json!({"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "any": {"x-kubernetes-preserve-unknown-fields": true},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
            "list": {"type": "array", "items": {"type": "string"}, "anyOf": [{"minItems": 1}]},
        }}))
        .is_empty());
    }

    #[test]
    fn non_structural_schemas_have_the_real_messages() {
        let p = "spec.versions[0].schema.openAPIV3Schema";
        assert_eq!(
            messages(
                json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}})
            ),
            [format!(
                "{p}.properties[spec].type: Required value: must not be empty for specified object fields"
            )]
        );
        assert_eq!(
            messages(json!({"type": "object", "properties": {"l": {"type": "array"}}})),
            [format!(
                "{p}.properties[l].items: Required value: must be specified"
            )]
        );
        assert_eq!(
            messages(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false})),
            [format!(
                "{p}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            )]
        );
        assert_eq!(
            messages(json!({"type": "string"})),
            [format!(
                "{p}.type: Invalid value: \"string\": must be object at the root"
            )]
        );
        assert_eq!(
            messages(json!({"type": "object", "anyOf": [{"type": "object"}]})),
            [format!(
                "{p}.anyOf[0].type: Forbidden: must be empty to be structural"
            )]
        );
        assert_eq!(
            messages(
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}})
            ),
            [format!(
                "{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )]
        );
        let crd = json!({"spec": {"versions": [{"name": "v1"}]}});
        let mut causes = Vec::new();
        crd_causes(&crd, &mut causes);
        assert_eq!(causes[0].message, "Required value: schemas are required");
    }
}
