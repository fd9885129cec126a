//! CSI snapshots of claims (`snapshot.storage.k8s.io/v1`), waited for with a bound that
//! restarts whenever the snapshot moves on (content bound, snapshot cut, ready) — never the
//! endless "waiting for snapshot handle" — and claims made from them for the data move.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use kube::{Api, Client};
use serde_json::json;

use crate::{Error, Result};

/// The VolumeSnapshot resource.
pub fn volume_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

/// A ready snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadySnapshot {
    /// The VolumeSnapshot's name.
    pub name: String,
    /// Its size, the smallest claim that can be made from it.
    pub restore_size: Option<String>,
}

/// Takes a snapshot of `claim` and waits until it is ready to use. `stall` bounds each stage:
/// the wait fails when the snapshot has not moved on for that long, naming the stage.
pub async fn take(
    client: &Client,
    namespace: &str,
    claim: &str,
    class: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    stall: Duration,
) -> Result<ReadySnapshot> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &volume_snapshot_resource());
    let mut object = DynamicObject::new(name, &volume_snapshot_resource()).within(namespace);
    object.metadata.labels = Some(labels);
    object.data = json!({
        "spec": {
            "volumeSnapshotClassName": class,
            "source": {"persistentVolumeClaimName": claim}
        }
    });
    api.create(&PostParams::default(), &object)
        .await
        .map_err(Error::kube(format!(
            "cannot create a VolumeSnapshot of claim {namespace}/{claim}"
        )))?;
    let mut stage = String::new();
    let mut since = Instant::now();
    loop {
        let snap = api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!(
                "cannot read VolumeSnapshot {namespace}/{name}"
            )))?
            .ok_or_else(|| {
                Error::Internal(format!(
                    "VolumeSnapshot {namespace}/{name} disappeared while it was taken"
                ))
            })?;
        let status = &snap.data["status"];
        if let Some(message) = status["error"]["message"].as_str() {
            return Err(Error::Snapshot(format!(
                "the snapshot of claim {namespace}/{claim} failed: {message}"
            )));
        }
        if status["readyToUse"].as_bool() == Some(true) {
            return Ok(ReadySnapshot {
                name: name.into(),
                restore_size: status["restoreSize"].as_str().map(str::to_string),
            });
        }
        let now = if status["boundVolumeSnapshotContentName"].is_string() {
            if status["creationTime"].is_string() {
                "waiting for the snapshot to become ready to use"
            } else {
                "waiting for the storage system to cut the snapshot"
            }
        } else {
            "waiting for a snapshot handle (VolumeSnapshotContent)"
        };
        if now != stage {
            stage = now.to_string();
            since = Instant::now();
        }
        if since.elapsed() > stall {
            tracing::warn!(namespace, claim, snapshot = %name, stage = %stage, ?stall, "volume snapshot made no progress; giving up on it");
            return Err(Error::Snapshot(format!(
                "the snapshot of claim {namespace}/{claim} (VolumeSnapshot {name}, class {class}) \
                 made no progress for {stall:?} while {stage}: check the snapshot class and the \
                 CSI driver's snapshotter, or raise --snapshot-timeout"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Makes a claim from a snapshot, for the mover to read (one consistent instant).
pub async fn claim_from(
    client: &Client,
    namespace: &str,
    snapshot: &ReadySnapshot,
    like: &PersistentVolumeClaim,
    name: &str,
) -> Result<()> {
    let spec = like.spec.clone().unwrap_or_default();
    let size = snapshot
        .restore_size
        .clone()
        .or_else(|| {
            spec.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone())
        })
        .unwrap_or_else(|| "1Gi".into());
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                crate::policy::annotations::MOVER_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            data_source: Some(TypedLocalObjectReference {
                api_group: Some("snapshot.storage.k8s.io".into()),
                kind: "VolumeSnapshot".into(),
                name: snapshot.name.clone(),
            }),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &claim)
        .await
        .map_err(Error::kube(format!(
            "cannot create claim {namespace}/{name} from snapshot {}",
            snapshot.name
        )))?;
    Ok(())
}

/// Deletes a snapshot (best effort: logged when it fails).
pub async fn delete(client: &Client, namespace: &str, name: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &volume_snapshot_resource());
    if let Err(e) = api.delete(name, &DeleteParams::background()).await
        && !matches!(&e, kube::Error::Api(ae) if ae.code == 404)
    {
        tracing::warn!(snapshot = name, namespace, error = %e, "could not delete a temporary VolumeSnapshot; delete it by hand");
    }
}

/// Deletes a claim (best effort: logged when it fails).
pub async fn delete_claim(client: &Client, namespace: &str, name: &str) {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.delete(name, &DeleteParams::background()).await
        && !matches!(&e, kube::Error::Api(ae) if ae.code == 404)
    {
        tracing::warn!(claim = name, namespace, error = %e, "could not delete a temporary claim; delete it by hand");
    }
}
