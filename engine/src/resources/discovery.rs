//! The discovery walk: every API group (built-in, aggregated and CRD-defined) at its
//! preferred version, with short names and scope.
//!
//! kube's `Discovery` drops short names, which the resource filters accept, so this walks
//! the same endpoints itself; a group whose aggregated API server is down is reported
//! instead of failing the whole backup.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;

use super::types::ResourceType;
use crate::{Error, Result};

/// The types a cluster serves, and the groups that could not be read.
#[derive(Debug, Clone, Default)]
pub struct DiscoveredTypes {
    /// Every listable type, at its group's preferred version.
    pub types: Vec<ResourceType>,
    /// `group/version: error` for each group that failed.
    pub failed_groups: Vec<String>,
}

impl DiscoveredTypes {
    /// The type with this `resource.group`.
    pub fn by_group_resource(&self, group_resource: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group_resource() == group_resource)
    }

    /// The type of an object's `apiVersion` and `kind`: the same version when the cluster
    /// serves it as preferred, else the group's preferred version of that kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
    }
}

/// Walks discovery.
pub async fn discover(client: &Client) -> Result<DiscoveredTypes> {
    let mut out = DiscoveredTypes::default();
    let core = client.list_core_api_versions().await.map_err(Error::kube(
        "cannot read the cluster's API versions (discovery)",
    ))?;
    let core_version = core
        .versions
        .first()
        .cloned()
        .unwrap_or_else(|| "v1".into());
    let list = client
        .list_core_api_resources(&core_version)
        .await
        .map_err(Error::kube(
            "cannot read the core API resources (discovery)",
        ))?;
    add_list(&mut out.types, "", &core_version, &list);
    let groups = client.list_api_groups().await.map_err(Error::kube(
        "cannot read the cluster's API groups (discovery)",
    ))?;
    for group in groups.groups {
        let Some(version) = group
            .preferred_version
            .or_else(|| group.versions.first().cloned())
        else {
            continue;
        };
        match client
            .list_api_group_resources(&version.group_version)
            .await
        {
            Ok(list) => add_list(&mut out.types, &group.name, &version.version, &list),
            Err(e) => out
                .failed_groups
                .push(format!("{}: {e}", version.group_version)),
        }
    }
    Ok(out)
}

/// Turns one `APIResourceList` into types; subresources only mark their parent.
pub fn add_list(types: &mut Vec<ResourceType>, group: &str, version: &str, list: &APIResourceList) {
    for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
        if !r.verbs.iter().any(|v| v == "list") {
            continue;
        }
        let status = format!("{}/status", r.name);
        types.push(ResourceType {
            group: r.group.clone().unwrap_or_else(|| group.to_string()),
            version: r.version.clone().unwrap_or_else(|| version.to_string()),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            singular: r.singular_name.clone(),
            short_names: r.short_names.clone().unwrap_or_default(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
            has_status_subresource: list.resources.iter().any(|s| s.name == status),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subresources_mark_their_parent_and_unlistable_types_are_dropped() {
        let list: APIResourceList = serde_json::from_value(json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["create", "get", "list"], "shortNames": ["deploy"]},
                {"name": "deployments/status", "singularName": "", "namespaced": true, "kind": "Deployment", "verbs": ["get"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true, "kind": "Scale", "verbs": ["get"]},
                {"name": "tokenreviews", "singularName": "", "namespaced": false, "kind": "TokenReview", "verbs": ["create"]}
            ]
        })).unwrap();
        let mut types = Vec::new();
        add_list(&mut types, "apps", "v1", &list);
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].group_resource(), "deployments.apps");
        assert!(types[0].has_status_subresource);
        assert_eq!(types[0].short_names, ["deploy"]);
    }
}
