//! Object validation with the real server's messages: names (DNS-1123 / DNS-1035 / path
//! segments), labels, annotations, and the few per-kind rules clients trip over.

use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::{NameRule, ResourceType};
use serde_json::Value;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `s` is an RFC 1123 subdomain.
pub fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn invalid(field: &str, value: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {message}"),
        field: field.into(),
    }
}

fn required(field: &str, what: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: format!("Required value{what}"),
        field: field.into(),
    }
}

/// Problems with a name under a rule (empty when valid).
pub fn name_problems(rule: NameRule, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                out.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(is_label) {
                out.push(SUBDOMAIN_MSG.to_string());
            }
        }
        NameRule::Label | NameRule::Dns1035 => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            let ok = is_label(name)
                && (rule == NameRule::Label || name.starts_with(|c: char| c.is_ascii_lowercase()));
            if !ok {
                out.push(
                    if rule == NameRule::Label {
                        LABEL_MSG
                    } else {
                        DNS1035_MSG
                    }
                    .to_string(),
                );
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                out.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    out.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    out
}

fn qualified_name_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(|p| !p.is_empty() && is_subdomain(p))
}

fn metadata_causes(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            ": name or generateName is required",
        ));
    } else {
        for problem in name_problems(rt.name_rule, name) {
            causes.push(invalid("metadata.name", name, &problem));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !qualified_name_ok(k) {
                causes.push(invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            let value = v.as_str().unwrap_or_default();
            let ok = value.len() <= 63
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && (value.is_empty()
                    || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && value.ends_with(|c: char| c.is_ascii_alphanumeric())));
            if !ok || !v.is_string() {
                causes.push(invalid(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                ));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if !qualified_name_ok(k) {
                causes.push(invalid("metadata.annotations", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: must have at most 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
    }
}

fn container_causes(obj: &Value, spec_path: &str, field_prefix: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = obj.pointer(spec_path) else {
        return;
    };
    let mut volumes: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    // A StatefulSet's pods also get a volume per claim template.
    volumes.extend(
        obj.pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str)),
    );
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
                if !volumes.contains(&name) {
                    causes.push(Cause {
                        reason: "FieldValueNotFound".into(),
                        message: format!("Not found: \"{name}\""),
                        field: format!("{field_prefix}.{list}[{i}].volumeMounts[{j}].name"),
                    });
                }
            }
        }
    }
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {
            let mut seen = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let field = format!("{field_prefix}.containers[{i}]");
                if name.is_empty() {
                    causes.push(required(&format!("{field}.name"), ""));
                } else if seen.contains(&name) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: \"{name}\""),
                        field: format!("{field}.name"),
                    });
                } else {
                    for p in name_problems(NameRule::Label, name) {
                        causes.push(invalid(&format!("{field}.name"), name, &p));
                    }
                }
                seen.push(name);
                if c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
                {
                    causes.push(required(&format!("{field}.image"), ""));
                }
            }
        }
        _ => causes.push(required(&format!("{field_prefix}.containers"), "")),
    }
}

/// The IANA name characters Kubernetes accepts in one `/`-separated part of a time zone.
fn time_zone_part_ok(part: &str) -> bool {
    (1..=14).contains(&part.len())
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        && part != "."
        && part != ".."
        && !part.starts_with('-')
}

/// `ValidateCronJobCreate`/`ValidateCronJobUpdate`: name length (the controller appends
/// an 11-character suffix to Job names), schedule, `TZ=` in the schedule, `timeZone`.
fn cronjob_causes(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if old.is_none() && name.len() > 52 {
        causes.push(invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let schedule = obj
        .pointer("/spec/schedule")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let time_zone = obj.pointer("/spec/timeZone").and_then(Value::as_str);
    if schedule.is_empty() {
        causes.push(required("spec.schedule", ""));
    } else {
        if let Err(e) = crate::cron::Schedule::parse(schedule) {
            causes.push(invalid("spec.schedule", schedule, &e));
        }
        let allow_tz = old
            .and_then(|o| o.pointer("/spec/schedule"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("TZ"));
        if schedule.contains("TZ") {
            if !allow_tz {
                causes.push(invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if time_zone.is_some() {
                causes.push(invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    let Some(tz) = time_zone else {
        return;
    };
    if tz.is_empty() {
        causes.push(invalid(
            "spec.timeZone",
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    if !tz.split('/').all(time_zone_part_ok) {
        causes.push(invalid(
            "spec.timeZone",
            tz,
            &format!("unknown time zone {tz}"),
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("local") {
        causes.push(invalid(
            "spec.timeZone",
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if tz != "Local"
        && let Err(e) = crate::cron::load_location(tz)
    {
        causes.push(invalid("spec.timeZone", tz, &e));
    }
}

fn kind_causes(rt: &ResourceType, obj: &Value, causes: &mut Vec<Cause>) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => container_causes(obj, "/spec", "spec", causes),
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            match obj.pointer("/spec/selector") {
                None | Some(Value::Null) => causes.push(required("spec.selector", "")),
                Some(sel) => {
                    let selector = crate::selectors::LabelSelector::from_object(sel);
                    let template = obj
                        .pointer("/spec/template")
                        .cloned()
                        .unwrap_or(Value::Null);
                    if selector.is_empty() {
                        causes.push(invalid(
                            "spec.selector",
                            "{}",
                            "empty selector is invalid for deployment",
                        ));
                    } else if !selector.matches(&template) {
                        let labels = template
                            .pointer("/metadata/labels")
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "map[]".into());
                        causes.push(invalid(
                            "spec.template.metadata.labels",
                            &labels,
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
            container_causes(obj, "/spec/template/spec", "spec.template.spec", causes);
        }
        ("batch", "jobs") => {
            container_causes(obj, "/spec/template/spec", "spec.template.spec", causes)
        }
        ("", "services") => {
            for (i, p) in obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(invalid(
                        &format!("spec.ports[{i}].port"),
                        &port.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                let many = obj
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.len() > 1);
                if many
                    && p.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .is_empty()
                {
                    causes.push(required(&format!("spec.ports[{i}].name"), ""));
                }
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let text = |p: &str| {
                obj.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (name, plural, group) = (
                text("/metadata/name"),
                text("/spec/names/plural"),
                text("/spec/group"),
            );
            if name != format!("{plural}.{group}") {
                causes.push(invalid(
                    "metadata.name",
                    &name,
                    "must be spec.names.plural+\".\"+spec.group",
                ));
            }
            if text("/spec/names/kind").is_empty() {
                causes.push(required("spec.names.kind", ""));
            }
            crate::crd_schema::crd_causes(obj, causes);
            if !matches!(text("/spec/scope").as_str(), "Namespaced" | "Cluster") {
                causes.push(Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: \"{}\": supported values: \"Cluster\", \"Namespaced\"",
                        text("/spec/scope")
                    ),
                    field: "spec.scope".into(),
                });
            }
            let versions = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let storage = versions
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if versions.is_empty() {
                causes.push(required(
                    "spec.versions",
                    ": must have exactly one version marked as storage version",
                ));
            } else if storage != 1 {
                causes.push(invalid(
                    "spec.versions",
                    &format!("{storage}"),
                    "must have exactly one version marked as storage version",
                ));
            }
        }
        ("", "configmaps" | "secrets") => {
            for field in ["data", "binaryData", "stringData"] {
                for key in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let ok = !key.is_empty()
                        && key.len() <= 253
                        && key != "."
                        && key != ".."
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                    if !ok {
                        causes.push(invalid(&format!("{field}[{key}]"), key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                    }
                }
            }
        }
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => causes.extend(
            crate::admission::configuration_problems(obj)
                .into_iter()
                .map(|p| Cause {
                    reason: p.reason.into(),
                    message: p.message,
                    field: p.field,
                }),
        ),
        _ => {}
    }
}

/// Validates an object about to be stored; `422 Invalid` with every cause found.
pub fn validate(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    validate_change(rt, obj, None)
}

/// Validates an update of `old` to `obj`: what [`validate`] checks, with the rules that
/// depend on the old object (a CronJob keeps a `TZ=` schedule it already had).
pub fn validate_update(rt: &ResourceType, obj: &Value, old: &Value) -> ApiResult<()> {
    validate_change(rt, obj, Some(old))
}

fn validate_change(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let mut causes = Vec::new();
    metadata_causes(rt, obj, &mut causes);
    kind_causes(rt, obj, &mut causes);
    if rt.group == "batch" && rt.plural == "cronjobs" {
        cronjob_causes(obj, old, &mut causes);
    }
    if let Some(schema) = rt.schema.as_ref().filter(|_| rt.custom) {
        causes.extend(crate::schema_validation::object_causes(schema, obj));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;
    use serde_json::json;

    fn rt(plural: &str) -> ResourceType {
        builtin().into_iter().find(|t| t.plural == plural).unwrap()
    }

    #[test]
    fn bad_configmap_name_is_invalid_with_a_field_cause() {
        let err = validate(
            &rt("configmaps"),
            &json!({"metadata": {"name": "Bad_Name"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.causes[0].field, "metadata.name");
        assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn namespaces_reject_dots_and_services_reject_leading_digits() {
        assert!(validate(&rt("namespaces"), &json!({"metadata": {"name": "a.b"}})).is_err());
        assert!(validate(&rt("services"), &json!({"metadata": {"name": "1abc"}})).is_err());
        assert!(validate(&rt("services"), &json!({"metadata": {"name": "abc1"}})).is_ok());
    }

    #[test]
    fn mounts_need_volumes_and_multi_port_services_need_port_names() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}});
        let err = validate(&rt("pods"), &pod).unwrap_err();
        assert_eq!(
            err.message,
            "Pod \"p\" is invalid: spec.containers[0].volumeMounts[0].name: Not found: \"data\""
        );
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81, "name": "b"}]}});
        assert_eq!(
            validate(&rt("services"), &svc).unwrap_err().causes[0].field,
            "spec.ports[0].name"
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"bad key": "x"}});
        assert_eq!(
            validate(&rt("configmaps"), &cm).unwrap_err().causes[0].field,
            "data[bad key]"
        );
    }

    #[test]
    fn crd_names_must_be_plural_dot_group() {
        let crd = builtin()
            .into_iter()
            .find(|t| t.plural == "customresourcedefinitions")
            .unwrap();
        let bad = json!({"metadata": {"name": "widgets.example.org"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let err = validate(&crd, &bad).unwrap_err();
        assert!(err.message.ends_with("metadata.name: Invalid value: \"widgets.example.org\": must be spec.names.plural+\".\"+spec.group"), "{}", err.message);
    }

    #[test]
    fn pods_need_containers_with_images() {
        let err = validate(
            &rt("pods"),
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .unwrap_err();
        assert_eq!(err.causes[0].field, "spec.containers[0].image");
    }
}
