//! RoleBinding and ClusterRoleBinding subjects follow their service accounts into a mapped
//! namespace.

use serde_json::{Value, json};

use super::{ActionContext, ActionOutcome, ItemAction};

/// Rewrites the namespace of each subject through the namespace mappings.
pub struct BindingSubjects;

impl ItemAction for BindingSubjects {
    fn name(&self) -> &'static str {
        "binding subjects"
    }

    fn applies_to(&self, resource: &str) -> bool {
        matches!(
            resource,
            "rolebindings.rbac.authorization.k8s.io"
                | "clusterrolebindings.rbac.authorization.k8s.io"
        )
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let subjects = object.get_mut("subjects").and_then(Value::as_array_mut);
        for subject in subjects.into_iter().flatten() {
            if let Some(ns) = subject["namespace"].as_str() {
                let mapped = ctx.request.target_namespace(ns).to_string();
                subject["namespace"] = json!(mapped);
            }
        }
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;

    #[test]
    fn role_binding_subject_points_at_the_new_namespace() {
        let mut r = RestoreRequest::new("r", "b");
        r.namespace_mappings.insert("nc".into(), "nc2".into());
        let mut rb = json!({"metadata": {"name": "rb", "namespace": "nc"}, "subjects": [
            {"kind": "ServiceAccount", "name": "app", "namespace": "nc"},
            {"kind": "ServiceAccount", "name": "mon", "namespace": "monitoring"},
            {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}
        ]});
        BindingSubjects
            .apply(&mut rb, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(rb["subjects"][0]["namespace"], "nc2");
        assert_eq!(rb["subjects"][1]["namespace"], "monitoring");
        assert!(rb["subjects"][2].get("namespace").is_none());
    }
}
