//! Does an object in the cluster already match what the backup holds?
//!
//! The exact answer compares the live object with what the server would make of the
//! backed-up one (a dry-run update, which applies the same defaults and admission): any
//! field, label, key or list entry that only the live object has is a difference. When the
//! server cannot answer (an immutable field the backup leaves out), [`matches`] compares
//! field by field as a fallback.

use serde_json::Value;

use super::actions::common::{BACKUP_LABEL, RESTORE_LABEL};

/// Metadata the server keeps per write, not content.
const BOOKKEEPING: [&str; 6] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// True when `would_be` (the server's dry-run result for the backed-up object) has the same
/// content as `existing`: server bookkeeping and the restore's own labels aside.
pub fn same_content(would_be: &Value, existing: &Value) -> bool {
    content(would_be) == content(existing)
}

fn content(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in BOOKKEEPING {
            meta.remove(field);
        }
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(BACKUP_LABEL);
            labels.remove(RESTORE_LABEL);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    object
}

/// True when every field of `desired` has the same value in `existing`; fields only in
/// `existing` (defaults, server fields, status) do not count. `metadata.labels` added by
/// the restore itself are ignored.
pub fn matches(desired: &Value, existing: &Value) -> bool {
    subset(desired, existing, 0)
}

fn subset(desired: &Value, existing: &Value, depth: usize) -> bool {
    match (desired, existing) {
        (Value::Object(d), Value::Object(e)) => d.iter().all(|(k, v)| {
            if depth == 1 && k == "labels" {
                let own = |l: &&String| l.starts_with("vbackup.io/") && l.ends_with("-name");
                let d: serde_json::Map<_, _> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(l, _)| !own(l))
                    .map(|(l, v)| (l.clone(), v.clone()))
                    .collect();
                return d.is_empty()
                    || e.get(k)
                        .is_some_and(|ev| subset(&Value::Object(d), ev, depth + 1));
            }
            match e.get(k) {
                Some(ev) => subset(v, ev, depth + 1),
                None => v.is_null() || v.as_object().is_some_and(|m| m.is_empty()),
            }
        }),
        (Value::Array(d), Value::Array(e)) => {
            d.len() == e.len() && d.iter().zip(e).all(|(dv, ev)| subset(dv, ev, depth + 1))
        }
        _ => desired == existing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_added_key_or_label_is_a_difference_bookkeeping_is_not() {
        let would_be = json!({"metadata": {"name": "a", "resourceVersion": "7", "labels": {"app": "x", "vbackup.io/restore-name": "r2"}, "managedFields": [{"manager": "vbackup"}]}, "data": {"k": "v"}});
        let existing = json!({"metadata": {"name": "a", "resourceVersion": "7", "uid": "u", "labels": {"app": "x"}}, "data": {"k": "v"}});
        assert!(same_content(&would_be, &existing));
        let added_key = json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "v", "extra": "1"}});
        assert!(!same_content(&would_be, &added_key));
        let added_label = json!({"metadata": {"name": "a", "labels": {"app": "x", "team": "y"}}, "data": {"k": "v"}});
        assert!(!same_content(&would_be, &added_label));
    }

    #[test]
    fn defaults_added_by_the_server_are_not_a_difference() {
        let desired = json!({"metadata": {"name": "a", "labels": {"app": "x", "vbackup.io/restore-name": "r"}}, "data": {"k": "v"}});
        let existing = json!({"metadata": {"name": "a", "uid": "u", "labels": {"app": "x"}}, "data": {"k": "v"}, "status": {}});
        assert!(matches(&desired, &existing));
    }

    #[test]
    fn a_changed_value_or_list_is_a_difference() {
        let desired = json!({"data": {"k": "v"}, "spec": {"ports": [{"port": 80}]}});
        assert!(!matches(
            &desired,
            &json!({"data": {"k": "changed"}, "spec": {"ports": [{"port": 80}]}})
        ));
        assert!(!matches(
            &desired,
            &json!({"data": {"k": "v"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!matches(&json!({"data": {"k": "v"}}), &json!({"data": {}})));
    }
}
