//! End to end in the test cluster: the API server calls the webhook through its Service
//! (mapped to the local process) on `kubectl create`, the webhook reads namespaces and
//! BackupPolicies from the cluster, and a webhook that is down blocks nothing.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use vbackup_testcluster::{ClusterOptions, ServiceEndpoints, TestCluster};

fn annotations(cluster: &TestCluster, ns: &str, pod: &str) -> Value {
    let out = kubectl(cluster, &["get", "pod", pod, "-n", ns, "-o", "json"], None);
    let pod: Value = serde_json::from_str(&out).unwrap();
    pod["metadata"]["annotations"].clone()
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_ready(addr: &str, ca_pem: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = client(ca_pem);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = rt.block_on(async {
            http.get(format!("https://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "webhook not ready within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn manifest(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn kubectl_created_pods_are_annotated_by_policy_and_admitted_when_the_webhook_is_down() {
    let addr = free_port();
    let mut endpoints = ServiceEndpoints::default();
    endpoints.insert("vbackup-system", "vbackup-webhook", addr);
    let cluster = TestCluster::start_with(ClusterOptions {
        service_endpoints: endpoints,
        ..Default::default()
    })
    .unwrap();
    kubectl(
        &cluster,
        &[
            "apply",
            "-f",
            &manifest("manifests/crds/backuppolicies.vbackup.io.yaml"),
        ],
        None,
    );
    kubectl(
        &cluster,
        &[
            "wait",
            "--for",
            "condition=established",
            "crd/backuppolicies.vbackup.io",
            "--timeout=30s",
        ],
        None,
    );
    kubectl(&cluster, &["create", "namespace", "shop"], None);
    kubectl(&cluster, &["create", "namespace", "prod"], None);
    kubectl(&cluster, &["label", "namespace", "prod", "env=prod"], None);
    kubectl(
        &cluster,
        &["create"],
        Some(&json!({
            "apiVersion": "vbackup.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "prod-opt-in"},
            "spec": {"volumes": "OptIn", "databases": false, "priority": 10,
                     "namespaceSelector": {"matchLabels": {"env": "prod"}}}
        })),
    );

    let dir = tempfile::tempdir().unwrap();
    let certs = certs("webhook-ca");
    let (crt, key) = install(dir.path(), &certs);
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    let hook = start(
        &crt,
        &key,
        &addr.to_string(),
        &["--kubeconfig", &kubeconfig],
    );
    wait_ready(&hook.addr, &certs.ca_pem);
    let config = vbackup_engine::webhook::mutating_webhook_configuration(certs.ca_pem.as_bytes());
    kubectl(
        &cluster,
        &["create"],
        Some(&serde_json::to_value(&config).unwrap()),
    );

    // The MariaDB pod in an ordinary namespace: default policy, dump hooks, user keys kept.
    let mut pod = mariadb_pod();
    pod["metadata"]["namespace"] = json!("shop");
    kubectl(&cluster, &["create"], Some(&pod));
    let a = annotations(&cluster, "shop", "mariadb-0");
    assert_eq!(a["checksum/configuration"], "8f1c2a", "{a}");
    assert_eq!(a["vbackup.io/policy"], "default", "{a}");
    assert_eq!(a["vbackup.io/backup-volumes-excludes"], "empty-dir", "{a}");
    assert_eq!(a["vbackup.io/backup-command-container"], "mariadb", "{a}");
    assert_eq!(a["vbackup.io/file-extension"], ".sql", "{a}");

    // The same pod in the prod namespace: the BackupPolicy's opt-in list, no dump.
    pod["metadata"]["namespace"] = json!("prod");
    kubectl(&cluster, &["create"], Some(&pod));
    let a = annotations(&cluster, "prod", "mariadb-0");
    assert_eq!(a["vbackup.io/policy"], "prod-opt-in", "{a}");
    assert_eq!(a["vbackup.io/backup-volumes"], "data", "{a}");
    assert!(a.get("vbackup.io/backup-command").is_none(), "{a}");

    // Webhook down: pods are still created, without annotations.
    drop(hook);
    let nginx = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}],
                 "volumes": [{"name": "cache", "emptyDir": {}}]}
    });
    kubectl(&cluster, &["create"], Some(&nginx));
    let a = annotations(&cluster, "shop", "web");
    assert!(a.get("vbackup.io/policy").is_none(), "{a}");
}

/// Polls until a pod matching `selector` exists in `ns`, and returns it.
fn first_pod(cluster: &TestCluster, ns: &str, selector: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kubectl(
            cluster,
            &["get", "pods", "-n", ns, "-l", selector, "-o", "json"],
            None,
        );
        let list: Value = serde_json::from_str(&out).unwrap();
        if let Some(pod) = list["items"].as_array().and_then(|i| i.first()) {
            return pod.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no pod {selector} in {ns} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pods_made_by_statefulset_and_deployment_controllers_carry_the_annotations() {
    let addr = free_port();
    let mut endpoints = ServiceEndpoints::default();
    endpoints.insert("vbackup-system", "vbackup-webhook", addr);
    let cluster = TestCluster::start_with(ClusterOptions {
        service_endpoints: endpoints,
        node: Some(Default::default()),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = certs("webhook-ca");
    let (crt, key) = install(dir.path(), &certs);
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    // No BackupPolicy CRD in this cluster: the built-in default applies.
    let _hook = start(
        &crt,
        &key,
        &addr.to_string(),
        &["--kubeconfig", &kubeconfig],
    );
    wait_ready(&_hook.addr, &certs.ca_pem);
    let config = vbackup_engine::webhook::mutating_webhook_configuration(certs.ca_pem.as_bytes());
    kubectl(
        &cluster,
        &["create"],
        Some(&serde_json::to_value(&config).unwrap()),
    );
    kubectl(&cluster, &["create", "namespace", "shop"], None);
    kubectl(
        &cluster,
        &["create"],
        Some(&json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "mariadb", "namespace": "shop"},
            "spec": {
                "serviceName": "mariadb", "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "mariadb"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "mariadb"}},
                    "spec": {
                        "containers": [{"name": "mariadb", "image": "docker.io/bitnami/mariadb:11.4.3-debian-12-r0",
                                        "env": [{"name": "MARIADB_ROOT_PASSWORD", "value": "secret"}],
                                        "volumeMounts": [{"name": "data", "mountPath": "/bitnami/mariadb"},
                                                         {"name": "empty-dir", "mountPath": "/tmp"}]}],
                        "volumes": [{"name": "empty-dir", "emptyDir": {}}]
                    }
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }]
            }
        })),
    );
    kubectl(
        &cluster,
        &["create"],
        Some(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nextcloud", "namespace": "shop"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "nextcloud"}},
                "template": {
                    "metadata": {"labels": {"app": "nextcloud"}},
                    "spec": {
                        "containers": [{"name": "nextcloud", "image": "nextcloud:29-apache",
                                        "volumeMounts": [{"name": "nextcloud-main", "mountPath": "/var/www/html"},
                                                         {"name": "tmp", "mountPath": "/tmp"}]}],
                        "volumes": [{"name": "nextcloud-main", "persistentVolumeClaim": {"claimName": "nextcloud-data"}},
                                    {"name": "tmp", "emptyDir": {}}]
                    }
                }
            }
        })),
    );
    let db = first_pod(&cluster, "shop", "app.kubernetes.io/name=mariadb");
    let a = &db["metadata"]["annotations"];
    assert_eq!(a["vbackup.io/policy"], "default", "{a}");
    assert_eq!(a["vbackup.io/backup-volumes-excludes"], "empty-dir", "{a}");
    assert_eq!(a["vbackup.io/backup-command-container"], "mariadb", "{a}");
    assert_eq!(a["vbackup.io/file-extension"], ".sql", "{a}");
    let app = first_pod(&cluster, "shop", "app=nextcloud");
    let a = &app["metadata"]["annotations"];
    assert_eq!(a["vbackup.io/policy"], "default", "{a}");
    assert_eq!(a["vbackup.io/backup-volumes-excludes"], "tmp", "{a}");
    assert!(a.get("vbackup.io/backup-command").is_none(), "{a}");
}
