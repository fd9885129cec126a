//! Per-kind restore transforms, Velero's "restore item actions" without global state: each
//! kind's rules live in their own module with their own tests, and the restore loop just
//! runs [`transform`].

mod bindings;
pub mod common;
mod namespace_mapping;
mod pod;
mod pv;
mod pvc;
mod secret;
mod service;
mod statefulset;

use serde_json::Value;

use super::request::RestoreRequest;

/// What the transforms need to know about the restore.
#[derive(Debug, Clone, Copy)]
pub struct ActionContext<'a> {
    /// The restore being run.
    pub request: &'a RestoreRequest,
}

/// What to do with an object after its transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Create (or update) it.
    Restore,
    /// Leave it out, for this reason (recorded, never silent).
    Skip(String),
}

/// One kind-specific rule.
pub trait ItemAction: Send + Sync {
    /// Name for logs and errors.
    fn name(&self) -> &'static str;
    /// True when the rule concerns objects of `resource` (`resource.group`).
    fn applies_to(&self, resource: &str) -> bool;
    /// Rewrites the object; an `Err` fails this object only.
    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String>;
}

/// Every rule, in the order they run.
pub fn actions() -> [&'static dyn ItemAction; 9] {
    [
        &common::Common,
        &namespace_mapping::NamespaceMapping,
        &bindings::BindingSubjects,
        &service::ServiceAction,
        &secret::TokenSecret,
        &pod::PodAction,
        &pvc::PvcAction,
        &pv::PvAction,
        &statefulset::StatefulSetAction,
    ]
}

/// Runs every applicable rule on one object; stops at the first skip or error.
pub fn transform(
    resource: &str,
    object: &mut Value,
    ctx: &ActionContext<'_>,
) -> Result<ActionOutcome, String> {
    for action in actions() {
        if action.applies_to(resource) {
            match action
                .apply(object, ctx)
                .map_err(|e| format!("{}: {e}", action.name()))?
            {
                ActionOutcome::Restore => {}
                skip => return Ok(skip),
            }
        }
    }
    Ok(ActionOutcome::Restore)
}

/// Removes `key` from the JSON object at `value`, if both exist.
fn remove(value: &mut Value, key: &str) {
    if let Some(map) = value.as_object_mut() {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transform_chains_the_rules_that_apply() {
        let mut req = RestoreRequest::new("r", "b");
        req.namespace_mappings.insert("nc".into(), "nc2".into());
        let ctx = ActionContext { request: &req };
        let mut svc = json!({"metadata": {"name": "s", "namespace": "nc"}, "spec": {"clusterIP": "10.0.0.1"}});
        assert_eq!(
            transform("services", &mut svc, &ctx),
            Ok(ActionOutcome::Restore)
        );
        assert_eq!(svc["metadata"]["namespace"], "nc2");
        assert!(svc["spec"].get("clusterIP").is_none());
        assert_eq!(svc["metadata"]["labels"]["vbackup.io/restore-name"], "r");
    }

    #[test]
    fn transforms_never_add_fields_the_object_did_not_have() {
        let req = RestoreRequest::new("r", "b");
        let ctx = ActionContext { request: &req };
        for resource in [
            "statefulsets.apps",
            "pods",
            "persistentvolumeclaims",
            "persistentvolumes",
            "services",
            "rolebindings.rbac.authorization.k8s.io",
        ] {
            let mut o = json!({"metadata": {"name": "x", "namespace": "n"}});
            transform(resource, &mut o, &ctx).unwrap();
            let meta = o["metadata"].as_object().unwrap();
            assert_eq!(o.as_object().unwrap().len(), 1, "{resource}: {o}");
            assert_eq!(
                meta.keys().collect::<Vec<_>>(),
                ["labels", "name", "namespace"],
                "{resource}: {o}"
            );
        }
    }
}
