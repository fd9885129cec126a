//! Server-side apply of the install objects (field manager `vbackup`, so a re-run upgrades
//! in place and takes over fields from an earlier `kubectl apply -k manifests/`), the wait
//! for CRDs to be established, and uninstall. The wait for the webhook is [`super::ready`].

use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{FIELD_MANAGER, certs, webhook};
use crate::{Error, Result};

fn gvk(object: &Value) -> Result<GroupVersionKind> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if kind.is_empty() || version.is_empty() {
        return Err(Error::Internal(format!(
            "object without apiVersion/kind: {object}"
        )));
    }
    Ok(GroupVersionKind::gvk(group, version, kind))
}

async fn api_for(client: &Client, object: &Value) -> Result<Api<DynamicObject>> {
    let gvk = gvk(object)?;
    let (resource, caps) = pinned_kind(client, &gvk).await.map_err(|e| {
        Error::BadInput(format!(
            "the cluster does not serve {}/{} {} ({e}){}",
            gvk.group,
            gvk.version,
            gvk.kind,
            if gvk.group == "cert-manager.io" {
                ": install cert-manager first, or drop --cert-manager"
            } else {
                ""
            }
        ))
    })?;
    Ok(
        match (caps.scope, object["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        },
    )
}

/// Applies every object in order; returns `kind/name` of each.
pub async fn apply_all(client: &Client, objects: &[Value]) -> Result<Vec<String>> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut done = Vec::with_capacity(objects.len());
    for object in objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let api = api_for(client, object).await?;
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(Error::kube(format!("cannot apply {kind} {name}")))?;
        done.push(format!("{kind}/{name}"));
        if kind == "CustomResourceDefinition" {
            let limit = Duration::from_secs(60);
            if !crate::cluster::crds::wait_established(client, name, limit).await {
                return Err(Error::BadInput(format!(
                    "CRD {name} was not established within {limit:?}: see `kubectl describe crd {name}`"
                )));
            }
        }
    }
    Ok(done)
}

/// The serving certificate to use: the existing Secret's while it is valid (a re-run keeps
/// what the running webhook serves), else a new one.
pub async fn serving_certificate(client: &Client, namespace: &str) -> Result<certs::Bundle> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(webhook::TLS_SECRET)
        .await
        .map_err(Error::kube("cannot read the webhook's TLS Secret"))?;
    match existing.as_ref().and_then(certs::reusable) {
        Some(bundle) => Ok(bundle),
        None => certs::generate(namespace),
    }
}

/// Removes what install made, webhook configuration first (so pod creation stops calling
/// it). Kept unless `purge`: the namespace with the location key Secrets, the CRDs with the
/// locations. Backups in the locations are never touched.
pub async fn uninstall(client: &Client, namespace: &str, purge: bool) -> Result<Vec<String>> {
    let opts = super::InstallOptions {
        namespace: namespace.into(),
        image: String::new(),
        cert_manager: false,
    };
    let mut objects = super::objects(&opts, None)?;
    objects.reverse();
    // The webhook configuration first (last applied), then the rest in reverse order.
    let mut removed = Vec::new();
    let dp = DeleteParams::background();
    let mut targets: Vec<Value> = objects
        .into_iter()
        .filter(|o| {
            purge
                || !matches!(
                    o["kind"].as_str(),
                    Some("Namespace" | "CustomResourceDefinition")
                )
        })
        .collect();
    // The TLS Secret is vbackup's own; location key Secrets are not in this list.
    targets.insert(
        1,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": webhook::TLS_SECRET, "namespace": namespace}}),
    );
    // Schedules are CronJobs of vbackup's: their runs would fail without the RBAC.
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    match cron_jobs
        .list(&ListParams::default().labels(crate::schedules::SCHEDULE_LABEL))
        .await
    {
        Ok(list) => {
            for cj in list.items {
                let name = cj.name_any();
                cron_jobs
                    .delete(&name, &dp)
                    .await
                    .map_err(Error::kube(format!("cannot delete schedule {name}")))?;
                removed.push(format!("CronJob/{name}"));
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(Error::kube("cannot list schedules")(e)),
    }
    for object in &targets {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let api = api_for(client, object).await?;
        match api.delete(name, &dp).await {
            Ok(_) => removed.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("cannot delete {kind} {name}"))(e)),
        }
    }
    Ok(removed)
}
