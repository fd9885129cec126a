//! StatefulSets: the storage class mapping reaches `volumeClaimTemplates`, so the claims
//! the StatefulSet creates use the new class (elsewhere this was forgotten and whole
//! StatefulSets failed to come back).

use serde_json::Value;

use super::{ActionContext, ActionOutcome, ItemAction};

/// Maps the storage class of every volume claim template.
pub struct StatefulSetAction;

impl ItemAction for StatefulSetAction {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "statefulsets.apps"
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let templates = object
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut);
        for spec in templates
            .into_iter()
            .flatten()
            .filter_map(|t| t.get_mut("spec"))
        {
            super::pvc::map_class(spec, ctx);
        }
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;
    use serde_json::json;

    #[test]
    fn restore_maps_storage_class_in_statefulset_templates() {
        let mut r = RestoreRequest::new("r", "b");
        r.storage_class_mappings
            .insert("standard".into(), "fast".into());
        let mut sts = json!({"spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"storageClassName": "standard"}},
            {"metadata": {"name": "logs"}, "spec": {"storageClassName": "slow"}},
            {"metadata": {"name": "default"}, "spec": {}}
        ]}});
        StatefulSetAction
            .apply(&mut sts, &ActionContext { request: &r })
            .unwrap();
        let classes: Vec<_> = sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["spec"]["storageClassName"].clone())
            .collect();
        assert_eq!(classes, [json!("fast"), json!("slow"), Value::Null]);
    }
}
