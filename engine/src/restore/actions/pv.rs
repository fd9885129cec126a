//! PersistentVolumes: a static volume is recreated bound to its claim's new namespace; a
//! dynamically provisioned one is left to its claim, which provisions a fresh volume.

use serde_json::{Value, json};

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Skips dynamically provisioned volumes; maps the class and resets `claimRef`.
pub struct PvAction;

/// Annotation provisioners put on the volumes they create.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

impl ItemAction for PvAction {
    fn name(&self) -> &'static str {
        "persistentvolume"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "persistentvolumes"
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        if object["metadata"]["annotations"][PROVISIONED_BY].is_string() {
            return Ok(ActionOutcome::Skip(
                "dynamically provisioned: its claim provisions a new volume (volume data comes \
                 back with --restore-volumes)"
                    .into(),
            ));
        }
        let Some(spec) = object.get_mut("spec") else {
            return Ok(ActionOutcome::Restore);
        };
        super::pvc::map_class(spec, ctx);
        if let Some(claim) = spec.get_mut("claimRef").filter(|c| c.is_object()) {
            for field in ["uid", "resourceVersion"] {
                remove(claim, field);
            }
            if let Some(ns) = claim["namespace"].as_str() {
                let mapped = ctx.request.target_namespace(ns).to_string();
                claim["namespace"] = json!(mapped);
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
    fn static_volume_is_rebound_to_the_mapped_namespace_with_the_mapped_class() {
        let mut r = RestoreRequest::new("r", "b");
        r.namespace_mappings.insert("nc".into(), "nc2".into());
        r.storage_class_mappings
            .insert("nfs".into(), "nfs-new".into());
        let mut pv = json!({"metadata": {"name": "share"}, "spec": {"storageClassName": "nfs",
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "nc", "name": "data", "uid": "u", "resourceVersion": "9"}}});
        assert_eq!(
            PvAction.apply(&mut pv, &ActionContext { request: &r }),
            Ok(ActionOutcome::Restore)
        );
        assert_eq!(pv["spec"]["storageClassName"], "nfs-new");
        assert_eq!(
            pv["spec"]["claimRef"],
            json!({"kind": "PersistentVolumeClaim", "namespace": "nc2", "name": "data"})
        );
    }

    #[test]
    fn dynamically_provisioned_volume_is_skipped_with_a_reason() {
        let r = RestoreRequest::new("r", "b");
        let mut pv = json!({"metadata": {"name": "pvc-1", "annotations": {PROVISIONED_BY: "ebs.csi.aws.com"}}, "spec": {}});
        assert!(matches!(
            PvAction.apply(&mut pv, &ActionContext { request: &r }),
            Ok(ActionOutcome::Skip(_))
        ));
    }
}
