//! PersistentVolumeClaims: dynamically provisioned claims get a new volume from their
//! (mapped) storage class; statically bound ones keep their volume.

use serde_json::{Value, json};

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Annotations the binder and provisioners set for the old cluster's volume.
pub const BIND_ANNOTATIONS: [&str; 5] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// True when a claim's volume was created by a provisioner (not bound to a static PV).
pub fn dynamically_provisioned(pvc: &Value) -> bool {
    let a = &pvc["metadata"]["annotations"];
    a["volume.kubernetes.io/storage-provisioner"].is_string()
        || a["volume.beta.kubernetes.io/storage-provisioner"].is_string()
}

/// Maps the storage class, drops `volumeName` of dynamic claims and the bind annotations.
pub struct PvcAction;

impl ItemAction for PvcAction {
    fn name(&self) -> &'static str {
        "persistentvolumeclaim"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "persistentvolumeclaims"
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let dynamic = dynamically_provisioned(object);
        let annotations = object
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut);
        if let Some(annotations) = annotations {
            for a in BIND_ANNOTATIONS {
                annotations.remove(a);
            }
        }
        if let Some(spec) = object.get_mut("spec") {
            if dynamic {
                remove(spec, "volumeName");
            }
            map_class(spec, ctx);
        }
        Ok(ActionOutcome::Restore)
    }
}

/// Maps `storageClassName` in a claim or volume spec.
pub fn map_class(spec: &mut Value, ctx: &ActionContext<'_>) {
    if let Some(class) = spec["storageClassName"].as_str() {
        let mapped = ctx.request.target_storage_class(class).to_string();
        spec["storageClassName"] = json!(mapped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;

    fn req() -> RestoreRequest {
        let mut r = RestoreRequest::new("r", "b");
        r.storage_class_mappings
            .insert("standard".into(), "fast".into());
        r
    }

    #[test]
    fn dynamic_claim_loses_its_volume_and_gets_the_mapped_class() {
        let r = req();
        let mut pvc = json!({"metadata": {"name": "data", "annotations": {
                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                "pv.kubernetes.io/bind-completed": "yes", "keep": "me"}},
            "spec": {"volumeName": "pvc-123", "storageClassName": "standard"}});
        PvcAction
            .apply(&mut pvc, &ActionContext { request: &r })
            .unwrap();
        assert!(pvc["spec"].get("volumeName").is_none());
        assert_eq!(pvc["spec"]["storageClassName"], "fast");
        assert_eq!(pvc["metadata"]["annotations"], json!({"keep": "me"}));
    }

    #[test]
    fn static_claim_keeps_its_volume() {
        let r = req();
        let mut pvc = json!({"metadata": {"name": "data", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": "nfs-share", "storageClassName": ""}});
        PvcAction
            .apply(&mut pvc, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(pvc["spec"]["volumeName"], "nfs-share");
        assert_eq!(pvc["spec"]["storageClassName"], "");
    }
}
