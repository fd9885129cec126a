//! Removes what the API server owns from an object, so the archive holds only what can be
//! created again.

use serde_json::Value;

/// Metadata fields set by the API server for this cluster only.
pub const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "managedFields",
    "generation",
    "selfLink",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Strips server-owned metadata, and `status` when the type has a status subresource (the
/// API server ignores it on create, so keeping it would only mislead).
pub fn sanitize(object: &mut Value, strip_status: bool) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            meta.remove(field);
        }
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.is_empty())
        {
            meta.remove("annotations");
        }
    }
    if strip_status && let Some(obj) = object.as_object_mut() {
        obj.remove("status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sanitize_strips_server_fields_and_keeps_user_ones() {
        let mut o = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "5",
                "managedFields": [{}], "generation": 2, "creationTimestamp": "t",
                "labels": {"a": "b"}, "annotations": {"k": "v"}},
            "data": {"x": "y"},
            "status": {"phase": "Active"}
        });
        sanitize(&mut o, true);
        assert_eq!(
            o,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}, "annotations": {"k": "v"}},
                "data": {"x": "y"}
            })
        );
    }

    #[test]
    fn status_stays_when_it_is_part_of_the_object() {
        let mut o = json!({"metadata": {"name": "c"}, "status": {"ready": true}});
        sanitize(&mut o, false);
        assert_eq!(o["status"]["ready"], true);
    }
}
