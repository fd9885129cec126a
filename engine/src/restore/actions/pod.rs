//! Pods are scheduled afresh in the new cluster, with the init containers of their init
//! restore hooks.

use serde_json::Value;

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Drops `nodeName` so the scheduler places the pod.
pub struct PodAction;

impl ItemAction for PodAction {
    fn name(&self) -> &'static str {
        "pod"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "pods"
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        if let Some(spec) = object.get_mut("spec") {
            remove(spec, "nodeName");
        }
        // Malformed init hooks are reported after the restore, with the other hook warnings.
        crate::hooks::restore::add_init_containers(object, &ctx.request.hooks);
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;
    use serde_json::json;

    #[test]
    fn pod_loses_its_node() {
        let r = RestoreRequest::new("r", "b");
        let mut p = json!({"spec": {"nodeName": "node-1", "containers": []}});
        PodAction
            .apply(&mut p, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(p, json!({"spec": {"containers": []}}));
    }
}
