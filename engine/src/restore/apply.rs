//! Applying one restored object: create it, or compare it with the live one and leave it
//! or update it, as the existing-resource policy says (with `dryRun=All` on a dry run).

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::compare;
use super::request::ExistingResourcePolicy;
use crate::resources::discovery::DiscoveredTypes;
use crate::resources::types::group_of;

const FIELD_MANAGER: &str = "kubectl-vbackup";

/// What happened to one object.
pub(super) enum Applied {
    /// Created under this name.
    Created(String),
    /// Dry run: would be created, but its namespace or type does not exist yet, so the
    /// server could not check it.
    Unchecked,
    /// It existed already, as in the backup.
    Unchanged,
    /// It existed already and differs (shown as `resource/ns/name`); left as it is.
    Differs(String),
    /// It existed, differed, and was patched; its name.
    Updated(String),
}

/// What applying needs, shared by the objects applied at the same time.
pub(super) struct Target<'a> {
    pub(super) client: &'a Client,
    pub(super) discovered: &'a DiscoveredTypes,
    pub(super) policy: ExistingResourcePolicy,
    pub(super) dry_run: bool,
}

impl Target<'_> {
    /// Creates the object, or handles it existing already.
    pub(super) async fn apply(&self, object: Value) -> std::result::Result<Applied, String> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let group = group_of(&api_version).to_string();
        let rt = self.discovered.by_kind(&group, &kind).ok_or_else(|| {
            format!(
                "this cluster does not serve {kind} in group {group:?}: install its CRD or \
                 operator first, or exclude it"
            )
        })?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = object["metadata"]["namespace"].as_str().map(String::from);
        let ar = ApiResource {
            version: api_version
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            api_version: api_version.clone(),
            ..rt.api_resource()
        };
        let api: Api<DynamicObject> = match (&namespace, rt.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (None, false) => Api::all_with(self.client.clone(), &ar),
            _ => {
                return Err(format!(
                    "{kind} {name}: namespace scope in the backup differs from the cluster's"
                ));
            }
        };
        let dynamic: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run: self.dry_run,
        };
        match api.create(&pp, &dynamic).await {
            Ok(_) => return Ok(Applied::Created(name)),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error(e)),
        }
        let existing = api.get(&name).await.map_err(api_error)?;
        // The backed-up object as an update of the live one: the server applies the same
        // defaults and admission to it as it did to the live object, so what it would make
        // of it is comparable field for field.
        let mut desired = dynamic;
        desired
            .metadata
            .resource_version
            .clone_from(&existing.metadata.resource_version);
        let dry_run = PostParams {
            dry_run: true,
            ..pp.clone()
        };
        let existing = serde_json::to_value(&existing).map_err(|e| e.to_string())?;
        let same = match api.replace(&name, &dry_run, &desired).await {
            Ok(would_be) => {
                let would_be = serde_json::to_value(&would_be).map_err(|e| e.to_string())?;
                compare::same_content(&would_be, &existing)
            }
            // The server cannot take the backed-up object over the live one (an immutable
            // field the backup leaves out): compare the backup's own fields.
            Err(_) => compare::matches(&object, &existing),
        };
        if same {
            return Ok(Applied::Unchanged);
        }
        match self.policy {
            ExistingResourcePolicy::None => Ok(Applied::Differs(match &namespace {
                Some(ns) => format!("{}/{ns}/{name}", rt.group_resource()),
                None => format!("{}/{name}", rt.group_resource()),
            })),
            ExistingResourcePolicy::Update => {
                // A full update, not a merge: what the live object added (a key, a label,
                // a list entry) goes, so the object is exactly as backed up.
                api.replace(&name, &pp, &desired).await.map_err(api_error)?;
                Ok(Applied::Updated(name))
            }
        }
    }
}

/// An API error as a line for the report: the server's message and reason.
pub(super) fn api_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}
