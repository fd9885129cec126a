//! Does an object in the cluster already match what the backup holds?

use serde_json::Value;

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
