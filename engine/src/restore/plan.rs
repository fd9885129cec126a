//! The pure half of a restore: which archived objects a request selects, the batches they
//! are applied in, and the type of an archived object the cluster does not serve.

use std::ops::Range;

use serde_json::Value;

use super::order;
use super::request::RestoreRequest;
use crate::resources::deps::{kinds, string_map};
use crate::resources::selector::LabelSelector;
use crate::resources::types::{ObjectRef, ResourceType, group_of};

/// What a restore request selects among the archived objects.
pub(super) struct Selection<'a> {
    pub(super) request: &'a RestoreRequest,
    /// The cluster's types and the archive's own (so filters may name either).
    pub(super) known: &'a [ResourceType],
    pub(super) selector: &'a LabelSelector,
}

impl Selection<'_> {
    /// True when the namespace and type filters and the label selector all take `object`.
    pub(super) fn selects(&self, r: &ObjectRef, object: &Value) -> bool {
        let namespace_ok = match (&r.namespace, r.resource.as_str()) {
            (Some(ns), _) => self.request.namespaces.matches(ns),
            (None, kinds::NAMESPACES) => self.request.namespaces.matches(&r.name),
            (None, _) => true,
        };
        let type_ok = self
            .known
            .iter()
            .find(|t| t.group_resource() == r.resource)
            .is_none_or(|t| self.request.resources.matches(t));
        namespace_ok
            && type_ok
            && self
                .selector
                .matches(&string_map(&object["metadata"]["labels"]))
    }
}

/// The batch starting at `start` in `objects` (sorted by [`order::compare`]): objects of
/// one rank only, so what a rank needs is in place before the next one starts, and at
/// most `max` of them, which bounds memory. Empty only when `start` is past the end.
pub(super) fn batch(objects: &[ObjectRef], start: usize, max: usize) -> Range<usize> {
    let Some(first) = objects.get(start) else {
        return start..start;
    };
    let rank = order::rank(&first.resource);
    let len = objects[start..]
        .iter()
        .take(max.max(1))
        .take_while(|r| order::rank(&r.resource) == rank)
        .count();
    start..start + len
}

/// The type of an archived object the cluster does not serve, as far as the object tells.
pub(super) fn archived_type(r: &ObjectRef, object: &Value) -> ResourceType {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let plural = r
        .resource
        .split_once('.')
        .map_or(r.resource.as_str(), |(p, _)| p);
    ResourceType {
        group: group_of(api_version).to_string(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: object["kind"].as_str().unwrap_or_default().to_string(),
        plural: plural.to_string(),
        singular: String::new(),
        short_names: Vec::new(),
        namespaced: r.namespace.is_some(),
        verbs: Vec::new(),
        has_status_subresource: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(resources: &[&str]) -> Vec<ObjectRef> {
        let mut out: Vec<ObjectRef> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| ObjectRef::namespaced(r, "ns", &format!("o{i}")))
            .collect();
        out.sort_by(order::compare);
        out
    }

    #[test]
    fn batches_hold_one_rank_and_at_most_max_objects_and_cover_everything() {
        let objects = refs(&[
            "pods",
            "configmaps",
            "configmaps",
            "configmaps",
            "secrets",
            "deployments.apps",
            "widgets.example.com",
        ]);
        let mut start = 0;
        let mut seen = 0;
        while start < objects.len() {
            let range = batch(&objects, start, 2);
            assert!(!range.is_empty() && range.len() <= 2, "{range:?}");
            let rank = order::rank(&objects[range.start].resource);
            assert!(
                objects[range.clone()]
                    .iter()
                    .all(|r| order::rank(&r.resource) == rank),
                "{:?}",
                &objects[range.clone()]
            );
            seen += range.len();
            start = range.end;
        }
        assert_eq!(seen, objects.len());
        // Three config maps with room for two: two batches.
        let first_cm = objects
            .iter()
            .position(|r| r.resource == "configmaps")
            .unwrap();
        assert_eq!(batch(&objects, first_cm, 2).len(), 2);
        assert_eq!(batch(&objects, first_cm + 2, 2).len(), 1);
        assert!(batch(&objects, objects.len(), 2).is_empty());
    }

    #[test]
    fn selection_applies_namespace_type_and_label_filters() {
        let mut request = RestoreRequest::new("r", "b");
        request.namespaces.include = vec!["shop".into()];
        request.resources.exclude = vec!["secrets".into()];
        let known = vec![
            archived_type(
                &ObjectRef::namespaced("configmaps", "shop", "c"),
                &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            ),
            archived_type(
                &ObjectRef::namespaced("secrets", "shop", "s"),
                &json!({"apiVersion": "v1", "kind": "Secret"}),
            ),
        ];
        let selector = LabelSelector::parse("app=web").unwrap();
        let selection = Selection {
            request: &request,
            known: &known,
            selector: &selector,
        };
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        assert!(selection.selects(&ObjectRef::namespaced("configmaps", "shop", "c"), &web));
        assert!(!selection.selects(&ObjectRef::namespaced("configmaps", "shop", "c"), &db));
        assert!(!selection.selects(&ObjectRef::namespaced("configmaps", "dev", "c"), &web));
        assert!(!selection.selects(&ObjectRef::namespaced("secrets", "shop", "s"), &web));
        assert!(selection.selects(&ObjectRef::cluster(kinds::NAMESPACES, "shop"), &web));
        assert!(!selection.selects(&ObjectRef::cluster(kinds::NAMESPACES, "dev"), &web));
    }

    #[test]
    fn an_archived_custom_type_keeps_its_group_version_and_scope() {
        let rt = archived_type(
            &ObjectRef::cluster("widgets.example.com", "w"),
            &json!({"apiVersion": "example.com/v1beta1", "kind": "Widget"}),
        );
        assert_eq!(
            (
                rt.group.as_str(),
                rt.version.as_str(),
                rt.kind.as_str(),
                rt.plural.as_str()
            ),
            ("example.com", "v1beta1", "Widget", "widgets")
        );
        assert!(!rt.namespaced);
        assert_eq!(rt.group_resource(), "widgets.example.com");
    }
}
