//! The pure half of an object backup: what to do with one listed object (keep it, leave it
//! out, and what it brings along). No I/O, so every rule is tested with plain values.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::deps::{self, kinds};
use super::request::BackupRequest;
use super::selector::LabelSelector;
use super::skip;
use super::types::{ObjectRef, ResourceType};

/// Which objects a kept object brings along.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Follow {
    /// The namespaced objects it needs (a selector with `--include-dependencies`).
    pub namespaced: bool,
    /// The cluster-scoped objects it needs (`--include-cluster-resources=auto` on a
    /// partial backup).
    pub cluster: bool,
    /// Its namespace (with a selector only the namespaces of kept objects are taken).
    pub namespace: bool,
}

impl Follow {
    /// What `request` follows; `selector` is its parsed label selector.
    pub fn of(request: &BackupRequest, selector: &LabelSelector) -> Follow {
        Follow {
            namespaced: request.adds_namespaced_dependencies(),
            cluster: request.adds_cluster_dependencies(),
            namespace: !selector.is_empty(),
        }
    }

    /// True when any dependency is followed.
    pub fn dependencies(self) -> bool {
        self.namespaced || self.cluster
    }
}

/// What a backup does with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Left out because the user labelled it so.
    Excluded(&'static str),
    /// Left out by default, for this reason.
    Skipped(&'static str),
    /// Written to the archive, bringing `Needs` along.
    Keep(Needs),
}

/// What a kept object brings along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Objects to back up too (the caller drops those already written).
    pub objects: Vec<ObjectRef>,
    /// Its namespace and the labels its pods carry, to find the Services selecting them.
    pub pod_labels: Option<(String, BTreeMap<String, String>)>,
    /// Service accounts it is or runs as (namespace, name), to find the bindings naming them.
    pub service_accounts: Vec<(String, String)>,
}

/// The reference of a listed object of type `rt`.
pub fn object_ref(rt: &ResourceType, object: &Value) -> ObjectRef {
    let gr = rt.group_resource();
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    match meta["namespace"].as_str().filter(|_| rt.namespaced) {
        Some(ns) => ObjectRef::namespaced(&gr, ns, name),
        None => ObjectRef::cluster(&gr, name),
    }
}

/// Decides about one object of type `rt`. `crds` names the cluster's
/// CustomResourceDefinitions, so a custom object brings its definition along.
pub fn decide(
    rt: &ResourceType,
    object: &Value,
    follow: Follow,
    crds: &HashSet<String>,
) -> Decision {
    let gr = rt.group_resource();
    if skip::excluded_by_label(object) {
        return Decision::Excluded("labelled exclude-from-backup=true");
    }
    if let Some(reason) = skip::skipped_object(&gr, object) {
        return Decision::Skipped(reason);
    }
    let mut needs = Needs::default();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .filter(|_| rt.namespaced);
    if follow.dependencies() {
        for dep in deps::dependencies(&gr, object) {
            if dep.resource == kinds::SERVICE_ACCOUNTS
                && let Some(ns) = &dep.namespace
            {
                needs.service_accounts.push((ns.clone(), dep.name.clone()));
            }
            let wanted = match dep.namespace {
                Some(_) => follow.namespaced,
                None => follow.cluster,
            };
            if wanted {
                needs.objects.push(dep);
            }
        }
        if follow.namespaced
            && let (Some(labels), Some(ns)) = (deps::pod_labels(&gr, object), namespace)
        {
            needs.pod_labels = Some((ns.to_string(), labels));
        }
        if gr == kinds::SERVICE_ACCOUNTS
            && let Some(ns) = namespace
        {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            needs
                .service_accounts
                .push((ns.to_string(), name.to_string()));
        }
        if follow.cluster && !rt.group.is_empty() {
            let crd = deps::crd_name(&rt.plural, &rt.group);
            if crds.contains(&crd) {
                needs.objects.push(ObjectRef::cluster(kinds::CRDS, &crd));
            }
        }
    }
    if follow.namespace
        && let Some(ns) = namespace
    {
        needs
            .objects
            .push(ObjectRef::cluster(kinds::NAMESPACES, ns));
    }
    Decision::Keep(needs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn core(plural: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: String::new(),
            short_names: Vec::new(),
            namespaced: true,
            verbs: Vec::new(),
            has_status_subresource: false,
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "c", "image": "nginx",
                    "envFrom": [{"configMapRef": {"name": "settings"}}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]
            }
        })
    }

    const ALL: Follow = Follow {
        namespaced: true,
        cluster: true,
        namespace: true,
    };

    fn keep(decision: Decision) -> Needs {
        match decision {
            Decision::Keep(needs) => needs,
            other => panic!("expected the object kept, got {other:?}"),
        }
    }

    #[test]
    fn a_selected_pod_brings_its_claim_config_account_and_namespace() {
        let needs = keep(decide(&core("pods", "Pod"), &pod(), ALL, &HashSet::new()));
        for wanted in [
            ObjectRef::namespaced(kinds::PVCS, "shop", "data-web-0"),
            ObjectRef::namespaced(kinds::CONFIGMAPS, "shop", "settings"),
            ObjectRef::namespaced(kinds::SERVICE_ACCOUNTS, "shop", "web"),
            ObjectRef::cluster(kinds::NAMESPACES, "shop"),
        ] {
            assert!(
                needs.objects.contains(&wanted),
                "{wanted} missing: {needs:?}"
            );
        }
        assert_eq!(
            needs.pod_labels,
            Some((
                "shop".to_string(),
                BTreeMap::from([("app".to_string(), "web".to_string())])
            ))
        );
        assert_eq!(
            needs.service_accounts,
            vec![("shop".to_string(), "web".to_string())]
        );
    }

    #[test]
    fn without_followed_dependencies_a_pod_brings_nothing() {
        let needs = keep(decide(
            &core("pods", "Pod"),
            &pod(),
            Follow::default(),
            &HashSet::new(),
        ));
        assert_eq!(needs, Needs::default());
    }

    #[test]
    fn cluster_only_dependencies_keep_namespaced_ones_out_but_note_the_account() {
        let follow = Follow {
            cluster: true,
            ..Follow::default()
        };
        let needs = keep(decide(
            &core("pods", "Pod"),
            &pod(),
            follow,
            &HashSet::new(),
        ));
        assert!(needs.objects.is_empty(), "{needs:?}");
        assert_eq!(needs.pod_labels, None);
        // The account still matters: a ClusterRoleBinding may name it.
        assert_eq!(needs.service_accounts.len(), 1);
    }

    #[test]
    fn a_service_account_is_noted_as_one() {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "ci"}});
        let needs = keep(decide(
            &core("serviceaccounts", "ServiceAccount"),
            &sa,
            ALL,
            &HashSet::new(),
        ));
        assert_eq!(
            needs.service_accounts,
            vec![("ci".to_string(), "builder".to_string())]
        );
    }

    #[test]
    fn a_custom_object_brings_its_definition_only_when_the_cluster_has_it() {
        let rt = ResourceType {
            group: "example.com".into(),
            plural: "widgets".into(),
            ..core("widgets", "Widget")
        };
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "shop"}});
        let crd = ObjectRef::cluster(kinds::CRDS, "widgets.example.com");
        let crds = HashSet::from(["widgets.example.com".to_string()]);
        assert!(
            keep(decide(&rt, &widget, ALL, &crds))
                .objects
                .contains(&crd)
        );
        assert!(
            !keep(decide(&rt, &widget, ALL, &HashSet::new()))
                .objects
                .contains(&crd)
        );
    }

    #[test]
    fn the_exclude_label_wins_over_everything() {
        let mut p = pod();
        p["metadata"]["labels"]["velero.io/exclude-from-backup"] = json!("true");
        assert!(matches!(
            decide(&core("pods", "Pod"), &p, ALL, &HashSet::new()),
            Decision::Excluded(_)
        ));
    }

    #[test]
    fn a_pod_a_controller_recreates_is_skipped_with_its_reason() {
        let mut p = pod();
        p["metadata"]["ownerReferences"] =
            json!([{"kind": "StatefulSet", "name": "web", "controller": true}]);
        match decide(&core("pods", "Pod"), &p, ALL, &HashSet::new()) {
            Decision::Skipped(reason) => assert!(reason.contains("controller"), "{reason}"),
            other => panic!("expected the pod skipped, got {other:?}"),
        }
    }

    #[test]
    fn object_ref_ignores_a_namespace_on_a_cluster_scoped_type() {
        let rt = ResourceType {
            namespaced: false,
            ..core("persistentvolumes", "PersistentVolume")
        };
        let pv = json!({"metadata": {"name": "pv-1", "namespace": "stray"}});
        assert_eq!(object_ref(&rt, &pv), ObjectRef::cluster(kinds::PVS, "pv-1"));
        assert_eq!(
            object_ref(&core("pods", "Pod"), &pod()),
            ObjectRef::namespaced("pods", "shop", "web-0")
        );
    }
}
