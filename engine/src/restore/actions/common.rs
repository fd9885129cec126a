//! Rules for every object: forget the old owners and label what the restore created.

use serde_json::{Value, json};

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Label naming the backup a restored object came from.
pub const BACKUP_LABEL: &str = "vbackup.io/backup-name";
/// Label naming the restore that created an object.
pub const RESTORE_LABEL: &str = "vbackup.io/restore-name";

/// Drops owner references (the owners get new uids, and the garbage collector deletes
/// objects whose owner uid does not exist) and adds the backup and restore labels.
pub struct Common;

impl ItemAction for Common {
    fn name(&self) -> &'static str {
        "common"
    }

    fn applies_to(&self, _resource: &str) -> bool {
        true
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let meta = object
            .get_mut("metadata")
            .filter(|m| m.is_object())
            .ok_or("the object has no metadata")?;
        remove(meta, "ownerReferences");
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        meta["labels"][BACKUP_LABEL] = json!(ctx.request.backup);
        meta["labels"][RESTORE_LABEL] = json!(ctx.request.name);
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;

    #[test]
    fn restored_objects_lose_owner_references_and_gain_restore_labels() {
        let req = RestoreRequest::new("r1", "b1");
        let mut o = json!({"metadata": {"name": "x", "labels": {"app": "a"},
            "ownerReferences": [{"kind": "Widget", "name": "w", "uid": "old"}]}});
        Common
            .apply(&mut o, &ActionContext { request: &req })
            .unwrap();
        assert!(o["metadata"].get("ownerReferences").is_none());
        assert_eq!(
            o["metadata"]["labels"],
            json!({"app": "a", BACKUP_LABEL: "b1", RESTORE_LABEL: "r1"})
        );
    }

    #[test]
    fn object_without_metadata_is_an_error() {
        let req = RestoreRequest::new("r1", "b1");
        assert!(
            Common
                .apply(&mut json!({"kind": "X"}), &ActionContext { request: &req })
                .is_err()
        );
    }
}
