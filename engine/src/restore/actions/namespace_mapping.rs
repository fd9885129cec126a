//! `--namespace-mappings`: namespaced objects move to the new namespace, and a Namespace
//! object is renamed.

use serde_json::{Value, json};

use super::{ActionContext, ActionOutcome, ItemAction};

/// Rewrites `metadata.namespace` (and a Namespace's own name) through the mappings.
pub struct NamespaceMapping;

impl ItemAction for NamespaceMapping {
    fn name(&self) -> &'static str {
        "namespace mapping"
    }

    fn applies_to(&self, _resource: &str) -> bool {
        true
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let is_namespace = object["kind"] == "Namespace" && object["apiVersion"] == "v1";
        let field = if is_namespace { "name" } else { "namespace" };
        if let Some(old) = object["metadata"][field].as_str() {
            let new = ctx.request.target_namespace(old).to_string();
            object["metadata"][field] = json!(new);
            // The API server keeps this label equal to the namespace's name.
            let label = object.pointer_mut("/metadata/labels/kubernetes.io~1metadata.name");
            if let (true, Some(label)) = (is_namespace, label) {
                *label = json!(new);
            }
        }
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;

    fn req() -> RestoreRequest {
        let mut r = RestoreRequest::new("r", "b");
        r.namespace_mappings.insert("nc".into(), "nc-copy".into());
        r
    }

    #[test]
    fn namespaced_objects_move_to_the_mapped_namespace() {
        let r = req();
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nc"}});
        NamespaceMapping
            .apply(&mut cm, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(cm["metadata"]["namespace"], "nc-copy");
        let mut other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}});
        NamespaceMapping
            .apply(&mut other, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(other["metadata"]["namespace"], "x");
    }

    #[test]
    fn namespace_object_is_renamed() {
        let r = req();
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nc",
            "labels": {"kubernetes.io/metadata.name": "nc", "team": "files"}}});
        NamespaceMapping
            .apply(&mut ns, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(ns["metadata"]["name"], "nc-copy");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "nc-copy"
        );
        assert_eq!(ns["metadata"]["labels"]["team"], "files");
    }
}
