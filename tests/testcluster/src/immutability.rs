//! Fields the real server refuses to change after creation, with its messages.

use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::ResourceType;
use serde_json::Value;

fn forbidden(field: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {message}"),
        field: field.into(),
    }
}

fn immutable(field: &str, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: field is immutable", value),
        field: field.into(),
    }
}

/// `spec` of `v` without the listed fields.
fn spec_without(v: &Value, mutable: &[&str]) -> Value {
    let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(m) = spec.as_object_mut() {
        for f in mutable {
            m.remove(*f);
        }
    }
    spec
}

fn pod_spec_without_mutable(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        for f in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
            "nodeName",
        ] {
            m.remove(f);
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    s
}

/// Rejects an update that changes immutable fields (`422 Invalid`).
pub fn check(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    if rt.custom {
        return Ok(());
    }
    let mut causes = Vec::new();
    let changed = |p: &str| old.pointer(p) != new.pointer(p);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments" | "replicasets" | "daemonsets") if changed("/spec/selector") => {
            causes.push(immutable(
                "spec.selector",
                new.pointer("/spec/selector").unwrap_or(&Value::Null),
            ));
        }
        ("apps", "statefulsets") => {
            let mutable = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            if spec_without(old, &mutable) != spec_without(new, &mutable) {
                causes.push(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        ("batch", "jobs") => {
            for (p, f) in [
                ("/spec/selector", "spec.selector"),
                ("/spec/completions", "spec.completions"),
                ("/spec/template", "spec.template"),
            ] {
                if changed(p) {
                    causes.push(immutable(f, new.pointer(p).unwrap_or(&Value::Null)));
                }
            }
        }
        ("", "pods") => {
            let spec = |v: &Value| pod_spec_without_mutable(v.get("spec").unwrap_or(&Value::Null));
            if spec(old) != spec(new) {
                causes.push(forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
            }
        }
        ("", "configmaps" | "secrets")
            if old.get("immutable").and_then(Value::as_bool) == Some(true) =>
        {
            for f in ["data", "binaryData", "stringData"] {
                if old.get(f) != new.get(f) {
                    causes.push(forbidden(f, "field is immutable when `immutable` is set"));
                }
            }
            if new.get("immutable").and_then(Value::as_bool) != Some(true) {
                causes.push(forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        ("", "persistentvolumeclaims") => {
            // Since 1.28 a claim without a class may get the default one set later.
            let unset_class = old
                .pointer("/spec/storageClassName")
                .is_none_or(Value::is_null);
            let fixed = |v: &Value| {
                let mut s = spec_without(v, &["volumeAttributesClassName", "volumeName"]);
                if unset_class && let Some(m) = s.as_object_mut() {
                    m.remove("storageClassName");
                }
                if let Some(r) = s.pointer_mut("/resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
                s
            };
            if fixed(old) != fixed(new) {
                causes.push(forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
            }
        }
        ("", "services") => {
            let ip = |v: &Value| {
                v.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            if !ip(old).is_empty() && !ip(new).is_empty() && ip(old) != ip(new) {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: []string{{\"{}\"}}: may not change once set",
                        ip(new)
                    ),
                    field: "spec.clusterIPs[0]".into(),
                });
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            for f in [
                "parameters",
                "provisioner",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if old.get(f) != new.get(f) {
                    causes.push(forbidden(f, &format!("updates to {f} are forbidden.")));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;
    use serde_json::json;

    #[test]
    fn deployment_selectors_and_immutable_configmaps_cannot_change() {
        let deploy = builtin()
            .into_iter()
            .find(|t| t.plural == "deployments")
            .unwrap();
        let old = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "1"}}, "replicas": 1}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        check(&deploy, &old, &new).unwrap();
        new["spec"]["selector"] = json!({"matchLabels": {"a": "2"}});
        let err = check(&deploy, &old, &new).unwrap_err();
        assert!(
            err.message
                .starts_with("Deployment.apps \"d\" is invalid: spec.selector: Invalid value:"),
            "{}",
            err.message
        );
        assert!(err.message.ends_with("field is immutable"));

        let cm = builtin()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap();
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "2"}});
        assert_eq!(check(&cm, &old, &new).unwrap_err().causes[0].field, "data");
    }
}
