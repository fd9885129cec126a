//! The webhook serves the backup metrics of a real backup: the installed RBAC (from the same
//! Rust as `manifests/install.yaml`), the webhook authenticated with its ServiceAccount's
//! token against the test cluster (HTTPS: tokens are checked, RBAC enforced), a directory
//! location, a schedule, and a backup written by the engine as a scheduled run writes it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::*;
use vbackup_engine::cluster::{ClusterOptions as Connect, connect};
use vbackup_engine::install::{InstallOptions, objects, rbac};
use vbackup_engine::resources::Progress;
use vbackup_engine::resources::backup::run_backup;
use vbackup_engine::schedules::{MoverOptions, Retention, ScheduleSpec, Schedules};
use vbackup_engine::store::{BackupStorageLocationSpec, Locations};
use vbackup_testcluster::{ClusterOptions, TestCluster};

const NS: &str = "vbackup-system";

/// A kubeconfig that authenticates as the webhook's ServiceAccount.
fn webhook_kubeconfig(cluster: &TestCluster, dir: &Path) -> String {
    let token = kubectl(
        cluster,
        &["create", "token", rbac::WEBHOOK_ACCOUNT, "-n", NS],
        None,
    );
    let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem().unwrap());
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster.url(), "certificate-authority-data": ca}}],
        "users": [{"name": "webhook", "user": {"token": token.trim()}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "test", "user": "webhook"}}],
        "current-context": "webhook"
    });
    let path = dir.join("webhook.kubeconfig");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path.display().to_string()
}

/// Each sample of a scrape, `name{labels}` → value.
fn scrape(http: &reqwest::Client, addr: &str) -> BTreeMap<String, f64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = rt.block_on(async {
        let r = http
            .get(format!("https://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    });
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until `done` holds (each refresh takes a second here).
fn scrape_until(
    http: &reqwest::Client,
    addr: &str,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = scrape(http, addr);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 60 s; last scrape: {m:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn backup_metrics_follow_a_real_backup_with_the_installed_rbac_only() {
    let cluster = TestCluster::start_with(ClusterOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let crds = crds.to_string_lossy();
    kubectl(&cluster, &["apply", "-f", &crds], None);
    kubectl(
        &cluster,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &crds,
        ],
        None,
    );
    // The namespace, ServiceAccounts and RBAC exactly as install applies them.
    let installed = objects(
        &InstallOptions {
            namespace: NS.into(),
            image: "vbackup:test".into(),
            cert_manager: false,
        },
        None,
    )
    .unwrap();
    let rbac_objects: Vec<Value> = installed
        .into_iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "Namespace"
                        | "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect();
    kubectl(
        &cluster,
        &["apply"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": rbac_objects})),
    );

    // shop: a schedule backs it up; the pod keeps its cache out. scratch: nobody does.
    let claim = |ns: &str, name: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    };
    kubectl(&cluster, &["create", "namespace", "shop"], None);
    kubectl(&cluster, &["create", "namespace", "scratch"], None);
    for (ns, name) in [("shop", "data"), ("shop", "cache"), ("scratch", "tmp")] {
        // Bound to a volume, as the volume controller would (no node runs here): an unbound
        // claim holds no data and is never copied.
        let pv = format!("pv-{ns}-{name}");
        kubectl(
            &cluster,
            &["create"],
            Some(&json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "claimRef": {"namespace": ns, "name": name},
                         "csi": {"driver": "local.csi.vbackup.io", "volumeHandle": pv}}
            })),
        );
        let mut c = claim(ns, name);
        c["spec"]["volumeName"] = json!(pv);
        kubectl(&cluster, &["create"], Some(&c));
        for (kind, object, namespace) in [("pv", &pv, None), ("pvc", &name.to_string(), Some(ns))] {
            let mut args = vec![
                "patch",
                kind,
                object.as_str(),
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Bound"}}"#,
            ];
            if let Some(namespace) = namespace {
                args.extend(["-n", namespace]);
            }
            kubectl(&cluster, &args, None);
        }
    }
    kubectl(
        &cluster,
        &["create"],
        Some(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"backup.velero.io/backup-volumes-excludes": "cache"}},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                      {"name": "cache", "mountPath": "/cache"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                                 {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}]}
        })),
    );
    kubectl(
        &cluster,
        &[
            "-n",
            "shop",
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ],
        None,
    );

    // A directory location, a schedule writing to it, and one run's backup.
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (before, after) = rt.block_on(async {
        let admin = connect(&Connect {
            kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
            context: None,
        })
        .await
        .unwrap();
        let locations = Locations::new(admin.clone(), NS);
        let spec: BackupStorageLocationSpec = serde_json::from_value(json!({
            "provider": "filesystem",
            "filesystem": {"path": dir.path().join("backups").display().to_string(), "podAccess": {"hostPath": true}}
        }))
        .unwrap();
        std::fs::create_dir_all(dir.path().join("backups")).unwrap();
        let created = locations.create("dir", spec, false, None).await.unwrap();
        let mut template = vbackup_engine::resources::BackupRequest::new("nightly");
        template.namespaces.include = vec!["shop".into()];
        let spec = ScheduleSpec {
            schedule: "0 2 * * *".into(),
            time_zone: None,
            template,
            retention: Retention::default(),
            movers: MoverOptions {
                parallel_volumes: 1,
                mover_image: "vbackup:test".into(),
                mover_start_timeout: Duration::from_secs(60),
                stall_timeout: Duration::from_secs(60),
                snapshot_timeout: Duration::from_secs(60),
            },
            verify_every: 0,
        };
        let schedule = Schedules::new(admin.clone(), NS)
            .create("nightly", &spec, "vbackup:test", &created.location)
            .await
            .unwrap();
        let store = locations.open(&created.location).await.unwrap();
        let before = jiff::Timestamp::now().as_second();
        let request = schedule
            .spec
            .backup_request("nightly", jiff::Timestamp::now());
        let record = run_backup(&admin, &store, &request, &|_: &Progress| {})
            .await
            .unwrap();
        assert_eq!(record.status.phase.to_string(), "Completed", "{record:?}");
        // Records keep times rounded to the second: up to half a second later than now.
        (before, jiff::Timestamp::now().as_second() + 1)
    });

    let certs = certs("webhook-ca");
    let (crt, key) = install(dir.path(), &certs);
    let kubeconfig = webhook_kubeconfig(&cluster, dir.path());
    let hook = start(
        &crt,
        &key,
        "127.0.0.1:0",
        &[
            "--kubeconfig",
            &kubeconfig,
            "--vbackup-namespace",
            NS,
            "--backup-metrics-interval",
            "1s",
        ],
    );
    let http = client(&certs.ca_pem);
    let nightly = r#"{location="dir",schedule="nightly"}"#;
    let m = scrape_until(&http, &hook.addr, "the backup metrics", |m| {
        m.contains_key("vbackup_backup_total")
    });
    let get = |name: &str| *m.get(name).unwrap_or_else(|| panic!("no {name} in {m:#?}"));
    assert_eq!(get("vbackup_backup_total"), 1.0);
    assert_eq!(get(&format!("vbackup_backup_success_total{nightly}")), 1.0);
    assert_eq!(get(&format!("vbackup_backup_failure_total{nightly}")), 0.0);
    assert_eq!(
        get(&format!("vbackup_backup_partial_failure_total{nightly}")),
        0.0
    );
    assert_eq!(get(&format!("vbackup_backup_last_status{nightly}")), 1.0);
    let last = get(&format!(
        "vbackup_backup_last_successful_timestamp{nightly}"
    ));
    assert!(
        (before as f64..=after as f64).contains(&last),
        "{last} not between {before} and {after}"
    );
    assert_eq!(
        get(&format!("vbackup_backup_duration_seconds_count{nightly}")),
        1.0
    );
    assert_eq!(get("vbackup_restore_total"), 0.0);
    assert_eq!(get("vbackup_backup_metrics_refresh_errors_total"), 0.0);
    // Unprotected: the claim no schedule reaches, and the one the pod excludes; not the
    // claim the schedule copies.
    let unprotected: Vec<&str> = m
        .keys()
        .filter(|k| k.starts_with("vbackup_volume_unprotected"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        unprotected,
        [
            r#"vbackup_volume_unprotected{namespace="scratch",pvc="tmp",reason="no_schedule"}"#,
            r#"vbackup_volume_unprotected{namespace="shop",pvc="cache",reason="excluded"}"#,
        ]
    );
    // The webhook's own request metrics are still there.
    assert!(m.contains_key(r#"vbackup_webhook_requests_total{result="patched"}"#));

    // A location the webhook cannot open (its credentials Secret does not exist): refreshes
    // fail, are counted, and the last good values stay; the webhook keeps serving.
    kubectl(
        &cluster,
        &["create"],
        Some(&json!({
            "apiVersion": "vbackup.io/v1alpha1", "kind": "BackupStorageLocation",
            "metadata": {"name": "broken", "namespace": NS},
            "spec": {"provider": "s3", "s3": {"bucket": "nowhere", "endpoint": "http://127.0.0.1:9",
                     "credentialsSecret": {"name": "missing"}}}
        })),
    );
    let m = scrape_until(&http, &hook.addr, "a failed refresh counted", |m| {
        m.get("vbackup_backup_metrics_refresh_errors_total")
            .is_some_and(|n| *n >= 1.0)
    });
    assert_eq!(m[&format!("vbackup_backup_success_total{nightly}")], 1.0);
}
