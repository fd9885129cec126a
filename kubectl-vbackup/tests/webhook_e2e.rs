//! The admission webhook end to end, with no annotation written by hand: `kubectl vbackup
//! install` runs it in the test cluster as a Deployment (vbackup's image mapped to this
//! build), and the API server calls it through its Service. A MariaDB StatefulSet (bitnami's
//! image name, started as Debian's real `mariadbd` by `fixtures/dbserver.sh`) and a Nextcloud
//! Deployment are created with `kubectl create -f`; the pods their controllers make carry the
//! webhook's annotations, a backup copies the claims (not the emptyDir) and dumps the database,
//! and after `kubectl delete namespace`, with the webhook scaled to zero (pods are still
//! created), the restore brings every file and row back.

mod volumes;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use volumes::{VolumeEnv, bytes, eventually, tree, write_file};

const DBSERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dbserver.sh");
const NS: &str = "cloud";

/// What a user creates: nothing in it mentions vbackup. MariaDB as bitnami's chart lays it out
/// (data claim at /bitnami/mariadb, an emptyDir for the socket); the socket variables stand
/// for what bitnami's image sets in its own environment.
const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: cloud}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: nextcloud-config, namespace: cloud}
data: {config.php: "<?php $CONFIG = array('trusted_domains' => array('cloud.example.com'));"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nextcloud-data, namespace: cloud}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nextcloud, namespace: cloud}
spec:
  replicas: 1
  selector: {matchLabels: {app: nextcloud}}
  template:
    metadata: {labels: {app: nextcloud}}
    spec:
      containers:
      - name: nextcloud
        image: nextcloud:29-apache
        volumeMounts:
        - {name: nextcloud-main, mountPath: /var/www/html}
        - {name: cache, mountPath: /var/cache/nextcloud}
        - {name: config, mountPath: /etc/nextcloud}
      volumes:
      - {name: nextcloud-main, persistentVolumeClaim: {claimName: nextcloud-data}}
      - {name: cache, emptyDir: {}}
      - {name: config, configMap: {name: nextcloud-config}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: mariadb, namespace: cloud}
spec:
  serviceName: mariadb
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: mariadb}}
  template:
    metadata: {labels: {app.kubernetes.io/name: mariadb}}
    spec:
      containers:
      - name: mariadb
        image: docker.io/bitnami/mariadb:11.4.3-debian-12-r0
        args: [mariadb, /bitnami/mariadb/data]
        env:
        - {name: MARIADB_ROOT_PASSWORD, value: "n0t in 'annotations'"}
        - {name: MYSQL_UNIX_PORT, value: /opt/bitnami/mariadb/tmp/mysqld.sock}
        - {name: MYSQL_HOME, value: /opt/bitnami/mariadb/conf}
        volumeMounts:
        - {name: data, mountPath: /bitnami/mariadb}
        - {name: empty-dir, mountPath: /opt/bitnami/mariadb/tmp}
      volumes:
      - {name: empty-dir, emptyDir: {}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

const SQL: &str = r#"MYSQL_PWD="$MARIADB_ROOT_PASSWORD" mariadb -uroot -N"#;

/// The webhook runs from vbackup's image, which the test cluster maps to the build's output
/// directory (where the plugin under test lives). Cargo builds only this package's binaries
/// for its tests, so the webhook's binary is built here, into that same directory.
fn build_webhook() {
    let plugin = Path::new(env!("CARGO_BIN_EXE_kubectl-vbackup"));
    let profile_dir = plugin.parent().expect("the plugin's directory");
    let target_dir = profile_dir.parent().expect("the target directory");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--locked", "-p", "vbackup-webhook"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
    }
    let status = cargo.status().expect("run cargo build -p vbackup-webhook");
    assert!(status.success(), "cargo build -p vbackup-webhook failed");
    assert!(profile_dir.join("vbackup-webhook").exists());
}

fn pod(env: &VolumeEnv, selector: &str) -> Value {
    eventually(
        &format!("a running pod {selector}"),
        Duration::from_secs(60),
        || {
            let out = env.kubectl(&[
                "-n",
                NS,
                "get",
                "pods",
                "-l",
                selector,
                "--field-selector=status.phase=Running",
                "-o",
                "json",
            ]);
            let list: Value = serde_json::from_str(&out).ok()?;
            list["items"].as_array()?.first().cloned()
        },
    )
}

fn annotation<'a>(pod: &'a Value, key: &str) -> &'a str {
    pod["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no annotation {key}: {:#}", pod["metadata"]))
}

/// A JSON-array annotation as its words.
fn argv(pod: &Value, key: &str) -> Vec<String> {
    serde_json::from_str(annotation(pod, key))
        .unwrap_or_else(|e| panic!("{key} is not a JSON array of strings ({e})"))
}

/// A shell script in container `mariadb` of `mariadb-0`, retried until it succeeds.
fn sql(env: &VolumeEnv, script: &str) -> String {
    eventually(
        &format!("mariadb-0: {script}"),
        Duration::from_secs(60),
        || {
            let out = env.cluster.kubectl(&[
                "-n",
                NS,
                "exec",
                "mariadb-0",
                "-c",
                "mariadb",
                "--",
                "sh",
                "-c",
                script,
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        },
    )
}

fn restic(repo: &Path, password: &str, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .expect("restic is installed by scripts/test.sh");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_the_controllers_create_are_protected_without_a_hand_written_annotation() {
    build_webhook();
    let env = VolumeEnv::start_tls_with(|node| {
        node.image_map.push(
            vbackup_testcluster::node::ImageMapping::parse(&format!(
                "docker.io/bitnami/mariadb={DBSERVER}"
            ))
            .unwrap(),
        )
    });
    let out = env.ok(&["install", "--timeout", "90s"]);
    assert!(out.contains("the webhook answers the API server"), "{out}");

    let manifest = env.dir.path().join("app.yaml");
    std::fs::write(&manifest, APP).unwrap();
    env.kubectl(&["create", "-f", manifest.to_str().unwrap()]);

    // The pods the StatefulSet and Deployment controllers created carry the annotations.
    let db = pod(&env, "app.kubernetes.io/name=mariadb");
    assert_eq!(db["metadata"]["name"], "mariadb-0");
    assert_eq!(annotation(&db, "vbackup.io/policy"), "default");
    // The socket's emptyDir is named; the claim (copied) and the token volume are not.
    assert_eq!(
        annotation(&db, "vbackup.io/backup-volumes-excludes"),
        "empty-dir"
    );
    assert_eq!(
        annotation(&db, "vbackup.io/backup-command-container"),
        "mariadb"
    );
    assert_eq!(annotation(&db, "vbackup.io/file-extension"), ".sql");
    let dump = argv(&db, "vbackup.io/backup-command").join(" ");
    for word in ["mariadb-dump", "--single-transaction", "--all-databases"] {
        assert!(dump.contains(word), "{word} missing from the dump: {dump}");
    }
    assert!(
        argv(&db, "vbackup.io/restore-command")
            .join(" ")
            .contains("mariadb")
    );
    let annotations = db["metadata"]["annotations"].to_string();
    assert!(
        !annotations.contains("n0t in"),
        "the root password leaked into an annotation: {annotations}"
    );
    let app = pod(&env, "app=nextcloud");
    assert_eq!(annotation(&app, "vbackup.io/policy"), "default");
    // The cache emptyDir is named; the configMap and token volumes come back with the API
    // objects and are left out.
    assert_eq!(
        annotation(&app, "vbackup.io/backup-volumes-excludes"),
        "cache"
    );
    assert!(
        app["metadata"]["annotations"]
            .get("vbackup.io/backup-command")
            .is_none(),
        "{:#}",
        app["metadata"]
    );
    let app_name = app["metadata"]["name"].as_str().unwrap().to_string();

    // Data the oracle knows: rows in MariaDB, files in Nextcloud's claim and its cache.
    let rows: Vec<String> = (1..=30)
        .map(|i| format!("file-{i:02}-{}", i * 11))
        .collect();
    let values: Vec<String> = rows.iter().map(|r| format!("('{r}')")).collect();
    sql(
        &env,
        &format!(
            "{SQL} -e \"CREATE DATABASE nextcloud; CREATE TABLE nextcloud.oc_files (path VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB; INSERT INTO nextcloud.oc_files VALUES {};\"",
            values.join(",")
        ),
    );
    let files = env.claim_dir(NS, "nextcloud-data");
    for i in 0..40u64 {
        write_file(
            &files.join(format!("data/admin/files/photo-{i:02}.jpg")),
            &bytes(i, 3000 + i as usize * 101),
            0o640,
            Some((33, 33)),
            1_700_000_000 + i as i64,
        );
    }
    write_file(
        &files.join("config/config.php"),
        b"<?php $CONFIG = array('instanceid' => 'oc1x2y3z');",
        0o640,
        Some((33, 33)),
        1_700_100_000,
    );
    let expected = tree(&files);
    env.kubectl(&[
        "-n",
        NS,
        "exec",
        &app_name,
        "--",
        "sh",
        "-c",
        "echo scratch > /var/cache/nextcloud/thumbnail.tmp",
    ]);

    env.ok(&["backup", "create", "cloud-1", "--include-namespaces", NS]);
    let record: Value =
        serde_json::from_str(&env.ok(&["backup", "describe", "cloud-1", "-o", "json"])).unwrap();
    assert_eq!(record["status"]["phase"], "Completed", "{record:#}");
    // Both claims copied (MariaDB's too: the default policy copies every claim, the dump
    // being the consistent copy); no record for the emptyDirs or the configMap.
    let volumes = record["status"]["volumes"].as_array().unwrap();
    let mut copied: Vec<&str> = volumes
        .iter()
        .map(|v| {
            assert_eq!(v["phase"], "Completed", "{v:#}");
            v["name"].as_str().unwrap()
        })
        .collect();
    copied.sort();
    assert_eq!(copied, ["data-mariadb-0", "nextcloud-data"], "{volumes:#?}");
    let dumps = record["status"]["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 1, "{dumps:#?}");
    assert_eq!(dumps[0]["file"], "mariadb-0-mariadb.sql");
    assert_eq!(dumps[0]["phase"], "Completed", "{:#}", dumps[0]);
    let log = env.ok(&["backup", "logs", "cloud-1"]);
    assert!(
        log.contains("\"dumped\"") && log.contains("mariadb-0-mariadb.sql"),
        "{log}"
    );

    // The repository, read by the product and by the stock restic.
    let listed = env.ok(&[
        "snapshot",
        "ls",
        "--backup",
        "cloud-1",
        "-n",
        NS,
        "--pvc",
        "nextcloud-data",
        "-R",
        "data/admin/files",
    ]);
    assert_eq!(
        listed.matches("/data/admin/files/photo-").count(),
        40,
        "{listed}"
    );
    let repo = env.store_dir().join("repos").join(NS);
    let password = env.ok(&["repo", "password", NS]);
    let snapshot = dumps[0]["snapshot"].as_str().expect("the dump's snapshot");
    let files_in_dump = restic(&repo, password.trim(), &["ls", snapshot]);
    let path = files_in_dump
        .lines()
        .find(|l| l.ends_with("/mariadb-0-mariadb.sql"))
        .unwrap_or_else(|| panic!("no dump file in snapshot {snapshot}: {files_in_dump}"));
    let dumped = restic(&repo, password.trim(), &["dump", snapshot, path]);
    for row in &rows {
        assert!(
            dumped.contains(&format!("'{row}'")),
            "{row} not in the dump"
        );
    }
    assert!(
        !dumped.contains("n0t in"),
        "the dump holds the root password"
    );

    env.delete_namespace(NS);

    // The webhook scaled to zero: its Service has no endpoint, the API server's call fails and
    // failurePolicy Ignore admits the pods the controllers recreate, unannotated. The restore
    // still feeds the dump: it applies the policy the webhook would have applied.
    env.kubectl(&[
        "-n",
        "vbackup-system",
        "scale",
        "deployment/vbackup-webhook",
        "--replicas=0",
    ]);
    eventually("the webhook's pods gone", Duration::from_secs(60), || {
        let out = env.kubectl(&[
            "-n",
            "vbackup-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=vbackup-webhook",
            "-o",
            "name",
        ]);
        out.trim().is_empty().then_some(())
    });
    env.ok(&[
        "restore",
        "create",
        "cloud-back",
        "--from-backup",
        "cloud-1",
    ]);
    let restore: Value =
        serde_json::from_str(&env.ok(&["restore", "describe", "cloud-back", "-o", "json"]))
            .unwrap();
    assert_eq!(restore["status"]["phase"], "Completed", "{restore:#}");
    let log = env.ok(&["restore", "logs", "cloud-back"]);
    assert!(
        log.contains("\"dump-restored\"") && log.contains("dump mariadb-0-mariadb.sql ("),
        "{log}"
    );
    env.wait_for(NS, "deployment/nextcloud", "{.status.readyReplicas}", "1");
    env.wait_for(NS, "statefulset/mariadb", "{.status.readyReplicas}", "1");
    for selector in ["app=nextcloud", "app.kubernetes.io/name=mariadb"] {
        let p = pod(&env, selector);
        assert!(
            p["metadata"]["annotations"]
                .get("vbackup.io/policy")
                .is_none(),
            "created while the webhook was down, yet annotated: {:#}",
            p["metadata"]
        );
    }
    assert_eq!(
        tree(&env.claim_dir(NS, "nextcloud-data")),
        expected,
        "Nextcloud's files differ after the restore"
    );
    let got = sql(
        &env,
        &format!("{SQL} -e 'SELECT path FROM nextcloud.oc_files ORDER BY path'"),
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), rows);
    let app = pod(&env, "app=nextcloud");
    let cache = env.cluster.kubectl(&[
        "-n",
        NS,
        "exec",
        app["metadata"]["name"].as_str().unwrap(),
        "--",
        "test",
        "-e",
        "/var/cache/nextcloud/thumbnail.tmp",
    ]);
    assert!(!cache.status.success(), "the emptyDir's file came back");
}
