//! The contract the volume-data work relies on: when the object engine calls its
//! [`VolumeStep`], and how its results end up in the records.

mod objects;

use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use objects::Env;
use vbackup_engine::backups::{
    BackupVolumeContext, Phase, RestoreVolumeContext, VolumeRecord, VolumeStep,
};
use vbackup_engine::resources::{BackupRequest, run_backup_with_volumes};
use vbackup_engine::restore::{RestoreRecords, RestoreRequest, run_restore_with_volumes};
use vbackup_engine::store::{SYSTEM_NAMESPACE, layout};

/// Looks at the cluster and the location when it is called, and reports one good and one
/// failed volume on backup.
#[derive(Default)]
struct Observer {
    seen: Mutex<Vec<String>>,
}

fn volume(namespace: &str, name: &str, phase: &str) -> VolumeRecord {
    VolumeRecord {
        message: (phase == "Failed").then(|| "mover pod evicted".to_string()),
        ..VolumeRecord::new(namespace, name, phase)
    }
}

#[async_trait]
impl VolumeStep for Observer {
    async fn back_up(&self, ctx: BackupVolumeContext<'_>) -> Vec<VolumeRecord> {
        let name = &ctx.request.name;
        let archive = ctx
            .store
            .head(&layout::backup_resources(name))
            .await
            .unwrap();
        let metadata = ctx
            .store
            .head(&layout::backup_metadata(name))
            .await
            .unwrap();
        self.seen.lock().unwrap().push(format!(
            "backup: archive stored {}, metadata written {}, namespaces {:?}",
            archive.is_some(),
            metadata.is_some(),
            ctx.namespaces
        ));
        vec![
            volume("nextcloud", "nextcloud-data", "Completed"),
            volume("nextcloud", "data-mariadb-0", "Failed"),
        ]
    }

    async fn restore(&self, ctx: RestoreVolumeContext<'_>) -> Vec<VolumeRecord> {
        let ns = ctx.request.target_namespace("nextcloud");
        let pvc = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns)
            .get_opt("nextcloud-data")
            .await
            .unwrap();
        let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), ns)
            .get_opt("nextcloud")
            .await
            .unwrap();
        self.seen.lock().unwrap().push(format!(
            "restore into {ns}: claim exists {}, deployment exists {}, backup volumes {}",
            pvc.is_some(),
            deployment.is_some(),
            ctx.backup.status.volumes.len()
        ));
        vec![volume(ns, "nextcloud-data", "Completed")]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_step_runs_after_the_archive_and_before_workloads_and_its_failures_count() {
    let env = Env::start().await;
    env.create_nextcloud();
    let store = env.store(objects::FS_LOCATION).await;
    let observer = Observer::default();
    let mut backup = BackupRequest::new("nc1");
    backup.namespaces.include = vec!["nextcloud".into()];
    let record = run_backup_with_volumes(&env.client, &store, &backup, Some(&observer), &|_| {})
        .await
        .unwrap();
    assert_eq!(record.status.phase, Phase::PartiallyFailed);
    assert_eq!(record.status.volumes.len(), 2);
    assert_eq!(record.status.tally.errors[0].object.name, "data-mariadb-0");
    assert!(
        record.status.tally.errors[0]
            .message
            .contains("mover pod evicted")
    );

    let records = RestoreRecords::new(&env.client, SYSTEM_NAMESPACE, store.clone());
    let mut restore = RestoreRequest::new("r1", "nc1");
    restore
        .namespace_mappings
        .insert("nextcloud".into(), "copy".into());
    let restored = run_restore_with_volumes(
        &env.client,
        &store,
        &records,
        &restore,
        Some(&observer),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(restored.status.phase, Phase::Completed);
    assert_eq!(
        restored.status.volumes,
        vec![volume("copy", "nextcloud-data", "Completed")]
    );

    let mut without = RestoreRequest::new("r2", "nc1");
    without
        .namespace_mappings
        .insert("nextcloud".into(), "copy2".into());
    without.restore_volumes = false;
    let restored = run_restore_with_volumes(
        &env.client,
        &store,
        &records,
        &without,
        Some(&observer),
        &|_| {},
    )
    .await
    .unwrap();
    assert!(restored.status.volumes.is_empty());

    assert_eq!(
        *observer.seen.lock().unwrap(),
        [
            "backup: archive stored true, metadata written false, namespaces [\"nextcloud\"]",
            "restore into copy: claim exists true, deployment exists false, backup volumes 2",
        ]
    );
}
