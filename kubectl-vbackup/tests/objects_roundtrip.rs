//! The object half of backup and restore, end to end: the plugin run through real
//! `kubectl` against the test API server, with a filesystem and an S3 (moto) location.

mod objects;

use objects::{Env, FS_LOCATION, show, stderr};
use serde_json::Value;
use vbackup_engine::store::AccessMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_namespace_comes_back_equal_to_the_original() {
    let env = Env::start().await;
    env.create_nextcloud();
    let before = env.snapshot("nextcloud").await;
    assert!(
        before.len() >= 19,
        "fixture not created in full: {:?}",
        before.keys()
    );

    let out = env.backup_nextcloud("nc1");
    assert!(out.contains("backup nc1 Completed"), "{out}");
    env.delete_namespace("nextcloud");
    assert!(env.snapshot("nextcloud").await.is_empty());

    let out = env.vbackup_ok(&["restore", "create", "r1", "--from-backup", "nc1"]);
    assert!(out.contains("restore r1 Completed"), "{out}");
    let after = env.snapshot("nextcloud").await;
    let missing: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(missing.is_empty(), "not restored: {missing:?}");
    for (key, original) in &before {
        assert_eq!(&after[key], original, "{key} differs after the restore");
    }
    let ns = env.get("namespaces", None, "nextcloud").await.unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_records_counts_skips_and_the_cluster_objects_the_namespace_needs() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let out = env.vbackup_ok(&["backup", "describe", "nc1", "-o", "json"]);
    let record: Value = serde_json::from_str(&out).unwrap();
    let status = &record["status"];
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["counts"]["statefulsets.apps"], 2);
    assert_eq!(status["counts"]["certificates.acme.example.io"], 2);
    // auto: the CRD of the Certificates, the StorageClass of the claims and the RBAC the
    // service account is bound to; nothing else cluster-scoped.
    assert_eq!(
        status["counts"]["customresourcedefinitions.apiextensions.k8s.io"],
        1
    );
    assert_eq!(status["counts"]["storageclasses.storage.k8s.io"], 1);
    assert_eq!(status["counts"]["namespaces"], 1);
    // The ClusterRoleBinding naming the service account, and its ClusterRole.
    assert_eq!(
        status["counts"]["clusterrolebindings.rbac.authorization.k8s.io"],
        1
    );
    assert_eq!(
        status["counts"]["clusterroles.rbac.authorization.k8s.io"],
        1
    );
    assert!(status["counts"].get("persistentvolumes").is_none());
    assert!(
        status["clusterVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let skipped: Vec<&str> = status["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["resource"].as_str().unwrap())
        .collect();
    assert!(skipped.contains(&"events"), "{skipped:?}");

    let table = env.vbackup_ok(&["backup", "get"]);
    let line = table
        .lines()
        .find(|l| l.starts_with("nc1 "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("Completed") && line.contains(objects::FS_LOCATION),
        "{line}"
    );

    let log = env.vbackup_ok(&["backup", "logs", "nc1"]);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["resource"] == "deployments.apps"
        && l["name"] == "nextcloud"
        && l["action"] == "backed-up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_another_namespace_maps_storage_classes_and_binding_subjects() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let out = env.vbackup_ok(&[
        "restore",
        "create",
        "copy",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:nextcloud-copy",
        "--storage-class-mappings",
        "standard:fast",
    ]);
    assert!(out.contains("Completed"), "{out}");
    for sts in ["mariadb", "redis"] {
        let s = env
            .get("statefulsets.apps", Some("nextcloud-copy"), sts)
            .await
            .unwrap();
        assert_eq!(
            s["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "fast",
            "{sts}"
        );
    }
    let pvc = env
        .get(
            "persistentvolumeclaims",
            Some("nextcloud-copy"),
            "nextcloud-data",
        )
        .await
        .unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "fast");
    let rb = env
        .get(
            "rolebindings.rbac.authorization.k8s.io",
            Some("nextcloud-copy"),
            "nextcloud-reader",
        )
        .await
        .unwrap();
    assert_eq!(rb["subjects"][0]["namespace"], "nextcloud-copy");
    let ns = env.get("namespaces", None, "nextcloud-copy").await.unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "files");
    // The original is untouched.
    let original = env
        .get("statefulsets.apps", Some("nextcloud"), "mariadb")
        .await
        .unwrap();
    assert_eq!(
        original["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "standard"
    );
    let copy = env.snapshot("nextcloud-copy").await;
    assert_eq!(copy.len(), env.snapshot("nextcloud").await.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_left_with_a_warning_or_updated_on_request() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let out = env.kubectl(&[
        "-n",
        "nextcloud",
        "patch",
        "configmap",
        "nginx-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"nginx.conf":"changed"}}"#,
    ]);
    assert!(out.status.success(), "{}", show(&out));
    // Only added, nothing the backup holds changed: still a difference.
    let out = env.kubectl(&[
        "-n",
        "nextcloud",
        "patch",
        "configmap",
        "nextcloud-config",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"added":"label"}},"data":{"added-key":"x"}}"#,
    ]);
    assert!(out.status.success(), "{}", show(&out));

    env.vbackup_ok(&["restore", "create", "keep", "--from-backup", "nc1"]);
    let cm = env
        .get("configmaps", Some("nextcloud"), "nginx-config")
        .await
        .unwrap();
    assert_eq!(cm["data"]["nginx.conf"], "changed");
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["restore", "describe", "keep", "-o", "json"]))
            .unwrap();
    let warnings = record["status"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("configmaps/nextcloud/nginx-config exists and differs")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("configmaps/nextcloud/nextcloud-config exists and differs")),
        "an added key and label are a difference: {warnings:?}"
    );
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.as_str().unwrap().contains("exists and differs"))
            .count(),
        2,
        "objects nobody changed are not reported: {warnings:?}"
    );

    env.vbackup_ok(&[
        "restore",
        "create",
        "overwrite",
        "--from-backup",
        "nc1",
        "--existing-resource-policy",
        "update",
    ]);
    let cm = env
        .get("configmaps", Some("nextcloud"), "nginx-config")
        .await
        .unwrap();
    assert_eq!(cm["data"]["nginx.conf"], "server { listen 80; }");
    let cm = env
        .get("configmaps", Some("nextcloud"), "nextcloud-config")
        .await
        .unwrap();
    assert!(
        cm["data"].get("added-key").is_none() && cm["metadata"]["labels"].get("added").is_none(),
        "update puts back exactly the backed-up content: {cm}"
    );
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["restore", "describe", "overwrite", "-o", "json"]))
            .unwrap();
    assert_eq!(record["status"]["updated"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_restore_reports_what_the_server_would_do_and_writes_nothing() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    // One object gone, one changed, one the cluster now refuses (its CRD's schema changed).
    let kubectl_ok = |args: &[&str]| {
        let out = env.kubectl(args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
    };
    kubectl_ok(&["-n", "nextcloud", "delete", "configmap", "nginx-config"]);
    kubectl_ok(&[
        "-n",
        "nextcloud",
        "patch",
        "configmap",
        "nextcloud-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"added-key":"x"}}"#,
    ]);
    kubectl_ok(&["-n", "nextcloud", "delete", "certificate", "collabora-tls"]);
    kubectl_ok(&[
        "patch",
        "crd",
        "certificates.acme.example.io",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties","value":{"spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"secretName":{"type":"string","enum":["nextcloud-tls"]}}}}}]"#,
    ]);
    let before = env.snapshot("nextcloud").await;

    let out = env.vbackup(&[
        "restore",
        "create",
        "dry",
        "--from-backup",
        "nc1",
        "--dry-run",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a refusal: {}", show(&out));
    assert!(
        stdout.contains("dry run, nothing written")
            && stdout.contains("1 objects would be created")
            && stdout.contains("1 refused"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("would be refused: certificates.acme.example.io/nextcloud/collabora-tls"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("configmaps/nextcloud/nextcloud-config exists and differs"),
        "{}",
        show(&out)
    );

    assert_eq!(
        env.snapshot("nextcloud").await,
        before,
        "a dry run changes no object"
    );
    let out = env.vbackup(&["restore", "describe", "dry"]);
    assert_eq!(out.status.code(), Some(2), "no record: {}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_backup_takes_what_the_selected_workload_needs() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.vbackup_ok(&["backup", "create", "app", "-l", "app=nextcloud"]);
    let record: Value =
        serde_json::from_str(&env.vbackup_ok(&["backup", "describe", "app", "-o", "json"]))
            .unwrap();
    let counts = &record["status"]["counts"];
    // Selected by label: the deployment, a configmap, a secret, the claim, the service.
    // Added as dependencies: the unlabelled admin secret, the service account, its
    // RoleBinding and Role, the StorageClass, the Namespace.
    assert_eq!(counts["deployments.apps"], 1, "{counts}");
    assert_eq!(counts["secrets"], 2, "{counts}");
    assert_eq!(counts["serviceaccounts"], 1, "{counts}");
    assert_eq!(
        counts["rolebindings.rbac.authorization.k8s.io"], 1,
        "{counts}"
    );
    assert_eq!(counts["roles.rbac.authorization.k8s.io"], 1, "{counts}");
    assert_eq!(counts["storageclasses.storage.k8s.io"], 1, "{counts}");
    assert_eq!(counts["persistentvolumeclaims"], 1, "{counts}");
    assert!(counts.get("statefulsets.apps").is_none(), "{counts}");
    // Only the namespace the selected objects live in.
    assert_eq!(counts["namespaces"], 1, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_location_round_trip_and_a_readonly_location_writes_nothing() {
    let env = Env::start().await;
    env.create_s3_location("s3").await;
    env.create_nextcloud();
    let before = env.snapshot("nextcloud").await;
    env.vbackup_ok(&[
        "backup",
        "create",
        "nc-s3",
        "--include-namespaces",
        "nextcloud",
        "--storage-location",
        "s3",
    ]);
    let table = env.vbackup_ok(&["backup", "get", "--storage-location", "s3"]);
    assert!(
        table.contains("nc-s3") && table.contains("Completed"),
        "{table}"
    );
    env.delete_namespace("nextcloud");

    let out = env.vbackup(&["location", "set-readonly", "s3"]);
    assert!(out.status.success(), "{}", show(&out));
    let store = env.store("s3").await;
    let before_keys = store.list("").await.unwrap();
    env.vbackup_ok(&["restore", "create", "from-ro", "--from-backup", "nc-s3"]);
    assert_eq!(
        store.list("").await.unwrap(),
        before_keys,
        "a ReadOnly location was written to"
    );
    let after = env.snapshot("nextcloud").await;
    assert_eq!(after, before);
    let restores = env.vbackup_ok(&["restore", "get"]);
    assert!(restores.contains("from-ro"), "{restores}");

    let out = env.vbackup(&["backup", "create", "refused", "--storage-location", "s3"]);
    assert!(
        !out.status.success(),
        "a backup was written to a ReadOnly location"
    );
    assert!(stderr(&out).contains("ReadOnly"), "{}", show(&out));
    let out = env.vbackup(&["backup", "delete", "nc-s3"]);
    assert!(
        !out.status.success(),
        "delete on a ReadOnly location succeeded"
    );
    assert!(stderr(&out).contains("ReadOnly"), "{}", show(&out));
    assert!(
        env.vbackup(&["location", "set-readonly", "s3", "--off"])
            .status
            .success()
    );
    env.vbackup_ok(&["backup", "delete", "nc-s3"]);
    let out = env.vbackup(&["backup", "describe", "nc-s3"]);
    assert!(!out.status.success());
    assert!(store.list("backups/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_sees_the_backups_and_restores_them_without_writing() {
    let first = Env::start().await;
    first.create_nextcloud();
    let before = first.snapshot("nextcloud").await;
    first.backup_nextcloud("nc1");

    let root = first.fs_root();
    let key = first.locations().key(FS_LOCATION).await.unwrap();
    let second = Env::start_with_location(Some(&root), AccessMode::ReadOnly, Some(key)).await;
    let listed = second.vbackup_ok(&["backup", "get"]);
    assert!(
        listed.contains("nc1") && listed.contains("Completed"),
        "{listed}"
    );
    let files_before = list_files(&root);
    second.vbackup_ok(&["restore", "create", "migrate", "--from-backup", "nc1"]);
    assert_eq!(second.snapshot("nextcloud").await, before);
    assert_eq!(
        list_files(&root),
        files_before,
        "restoring from a ReadOnly location wrote to it"
    );
    let out = second.vbackup_ok(&["restore", "describe", "migrate"]);
    assert!(out.contains("Completed"), "{out}");
    // The first cluster, which owns the location, does not see the second one's restore.
    let out = first.vbackup_ok(&["restore", "get"]);
    assert!(!out.contains("migrate"), "{out}");
}

fn list_files(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out.sort();
    out
}
