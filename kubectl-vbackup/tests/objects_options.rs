//! Backup and restore options beyond the round trip: CRDs recreated first, paging,
//! exclusion labels, storage-class mappings from a ConfigMap, and `--wait=false`.

mod objects;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use objects::{Env, show};
use serde_json::Value;
use vbackup_engine::store::SYSTEM_NAMESPACE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_recreates_a_deleted_crd_before_its_objects() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let out = env.kubectl(&["delete", "crd", "certificates.acme.example.io"]);
    assert!(out.status.success(), "{}", show(&out));
    env.delete_namespace("nextcloud");
    assert!(
        env.get(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            "certificates.acme.example.io"
        )
        .await
        .is_none()
    );

    let out = env.vbackup_ok(&["restore", "create", "r1", "--from-backup", "nc1"]);
    assert!(out.contains("Completed"), "{out}");
    let cert = env
        .get(
            "certificates.acme.example.io",
            Some("nextcloud"),
            "nextcloud-tls",
        )
        .await
        .unwrap();
    assert_eq!(cert["spec"]["dnsNames"][0], "cloud.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pages_through_types_larger_than_one_list_call() {
    let env = Env::start().await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("many".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "many");
    let total = vbackup_engine::cluster::PAGE_SIZE as usize * 2 + 37;
    for i in 0..total {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i:04}")),
                ..Default::default()
            },
            data: Some([("i".to_string(), i.to_string())].into()),
            ..Default::default()
        };
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    env.vbackup_ok(&["backup", "create", "many", "--include-namespaces", "many"]);
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "many", "-o", "json"]))
            .unwrap();
    assert_eq!(record["status"]["counts"]["configmaps"], total);
    env.delete_namespace("many");
    env.vbackup_ok(&["restore", "create", "--from-backup", "many"]);
    let restored = cms.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        restored
            .iter()
            .filter(|c| c.metadata.name.as_deref().unwrap().starts_with("cm-"))
            .count(),
        total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_labelled_exclude_from_backup_are_left_out() {
    let env = Env::start().await;
    env.create_nextcloud();
    for (name, label) in [
        ("nginx-config", "vbackup.io/exclude-from-backup=true"),
        ("nextcloud-config", "velero.io/exclude-from-backup=true"),
    ] {
        let out = env.kubectl(&["-n", "nextcloud", "label", "configmap", name, label]);
        assert!(out.status.success(), "{}", show(&out));
    }
    env.backup_nextcloud("nc1");
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "nc1", "-o", "json"]))
            .unwrap();
    assert!(
        record["status"]["counts"].get("configmaps").is_none(),
        "{}",
        record["status"]["counts"]
    );
    let log = env.vbackup_ok(&["backup", "logs", "nc1"]);
    assert!(
        log.lines()
            .any(|l| l.contains("\"nginx-config\"") && l.contains("\"excluded\"")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_mappings_are_read_from_a_labelled_configmap_too() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), SYSTEM_NAMESPACE);
    let mapping = ConfigMap {
        metadata: ObjectMeta {
            name: Some("change-storage-class".into()),
            labels: Some(
                [(
                    "velero.io/change-storage-class".to_string(),
                    "RestoreItemAction".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        data: Some([("standard".to_string(), "from-configmap".to_string())].into()),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &mapping).await.unwrap();
    env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:copy",
    ]);
    let sts = env
        .get("statefulsets.apps", Some("copy"), "redis")
        .await
        .unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "from-configmap"
    );
    // A flag wins over the ConfigMap.
    env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:copy2",
        "--storage-class-mappings",
        "standard:from-flag",
    ]);
    let pvc = env
        .get("persistentvolumeclaims", Some("copy2"), "nextcloud-data")
        .await
        .unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "from-flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_returns_at_once_and_the_backup_finishes_in_the_background() {
    let env = Env::start().await;
    env.create_nextcloud();
    let out = env.vbackup_ok(&[
        "backup",
        "create",
        "bg",
        "--include-namespaces",
        "nextcloud",
        "--wait=false",
    ]);
    assert!(out.contains("started in the background"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = env.vbackup(&["backup", "describe", "bg", "-o", "json"]);
        if out.status.success() {
            let record: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(record["status"]["phase"], "Completed");
            assert_eq!(record["status"]["counts"]["statefulsets.apps"], 2);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background backup never finished:\n{}",
            show(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let out = env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "bg",
        "--namespace-mappings",
        "nextcloud:bg-copy",
        "--wait=false",
    ]);
    let name = out.split_whitespace().nth(1).unwrap().to_string();
    assert!(name.starts_with("bg-"), "{out}");
    loop {
        let out = env.vbackup(&["restore", "describe", &name, "-o", "json"]);
        if out.status.success() {
            let record: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(record["status"]["phase"], "Completed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background restore never finished:\n{}",
            show(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        env.get("statefulsets.apps", Some("bg-copy"), "mariadb")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_owned_by_a_controller_are_left_to_it_and_bare_pods_are_kept() {
    let env = Env::start().await;
    env.create_nextcloud();
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(env.client.clone(), "nextcloud");
    let pod = |name: &str, owned: bool| -> k8s_openapi::api::core::v1::Pod {
        let mut p = serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "nextcloud"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
        });
        if owned {
            p["metadata"]["ownerReferences"] = serde_json::json!([{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "nextcloud-7d9f", "uid": "0b7e6f8c-1111-4222-8333-944455556666",
                "controller": true}]);
        }
        serde_json::from_value(p).unwrap()
    };
    pods.create(&PostParams::default(), &pod("nextcloud-7d9f-abcde", true))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("debug", false))
        .await
        .unwrap();

    env.backup_nextcloud("nc1");
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "nc1", "-o", "json"]))
            .unwrap();
    assert_eq!(record["status"]["counts"]["pods"], 1);
    let skipped = record["status"]["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["resource"] == "pods" && s["count"] == 1),
        "{skipped:?}"
    );

    env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:copy",
    ]);
    let restored = env.get("pods", Some("copy"), "debug").await.unwrap();
    assert!(
        restored["spec"].get("nodeName").is_none(),
        "nodeName was restored: {restored}"
    );
    assert!(
        env.get("pods", Some("copy"), "nextcloud-7d9f-abcde")
            .await
            .is_none()
    );

    // With dependencies off, a selector takes only what it selects.
    env.vbackup_ok(&[
        "backup",
        "create",
        "only",
        "-l",
        "app=nextcloud",
        "--include-namespaces",
        "nextcloud",
        "--include-dependencies=false",
        "--include-cluster-resources=false",
    ]);
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "only", "-o", "json"]))
            .unwrap();
    let counts = &record["status"]["counts"];
    assert_eq!(counts["secrets"], 1, "{counts}");
    assert_eq!(counts["namespaces"], 1, "{counts}");
    assert!(counts.get("serviceaccounts").is_none(), "{counts}");
    assert!(
        counts.get("storageclasses.storage.k8s.io").is_none(),
        "{counts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_volume_comes_with_its_claim_and_follows_it_into_a_mapped_namespace() {
    let env = Env::start().await;
    env.create_nextcloud();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("share.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: nfs-share
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  nfs: {server: nfs.example.com, path: /exports/share}
  claimRef: {kind: PersistentVolumeClaim, namespace: nextcloud, name: share}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: share
  namespace: nextcloud
spec:
  accessModes: [ReadWriteMany]
  storageClassName: standard
  volumeName: nfs-share
  resources: {requests: {storage: 100Gi}}
"#,
    )
    .unwrap();
    let out = env.kubectl(&["create", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    env.backup_nextcloud("nc1");
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "nc1", "-o", "json"]))
            .unwrap();
    assert_eq!(record["status"]["counts"]["persistentvolumes"], 1);

    env.delete_namespace("nextcloud");
    let out = env.kubectl(&["delete", "pv", "nfs-share"]);
    assert!(out.status.success(), "{}", show(&out));
    env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:moved",
        "--storage-class-mappings",
        "standard:nfs",
    ]);
    let pv = env
        .get("persistentvolumes", None, "nfs-share")
        .await
        .unwrap();
    assert_eq!(pv["spec"]["claimRef"]["namespace"], "moved");
    assert_eq!(pv["spec"]["storageClassName"], "nfs");
    assert_eq!(pv["spec"]["nfs"]["path"], "/exports/share");
    let pvc = env
        .get("persistentvolumeclaims", Some("moved"), "share")
        .await
        .unwrap();
    assert_eq!(
        pvc["spec"]["volumeName"], "nfs-share",
        "a static claim keeps its volume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_n_narrows_a_backup_to_one_namespace() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.vbackup_ok(&[
        "backup",
        "create",
        "web",
        "-n",
        "nextcloud",
        "-l",
        "app=nextcloud",
    ]);
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "web", "-o", "json"]))
            .unwrap();
    assert_eq!(record["spec"]["namespaces"]["include"][0], "nextcloud");
    assert_eq!(record["status"]["counts"]["deployments.apps"], 1);
    let out = env.vbackup(&[
        "backup",
        "create",
        "both",
        "-n",
        "a",
        "--include-namespaces",
        "b",
    ]);
    assert!(
        !out.status.success() && objects::stderr(&out).contains("use one of them"),
        "{}",
        show(&out)
    );
}
