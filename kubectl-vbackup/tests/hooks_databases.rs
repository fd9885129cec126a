//! Database dumps against real servers (Debian's MariaDB, PostgreSQL and Redis, started by
//! `fixtures/dbserver.sh` on each pod's volume): the commands vbackup generates for each
//! recognised image stream a dump through pods/exec into the namespace's repository; the
//! namespace is deleted, the restore starts empty servers (volume data is not copied) and
//! feeds the dumps to their restore commands — every row and key comes back. A dump taken
//! while a client keeps committing ten-row transactions restores to a committed point.

mod volumes;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use serde_json::Value;
use vbackup_engine::hooks::databases;
use volumes::{VolumeEnv, eventually};

const DBSERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dbserver.sh");

/// The annotations the webhook would add for a container of `image` with `env`.
fn dump_annotations(image: &str, env: &[(&str, &str)], extra: &[(&str, &str)]) -> String {
    let spec = PodSpec {
        containers: vec![Container {
            name: "db".into(),
            image: Some(image.into()),
            env: Some(
                env.iter()
                    .map(|(k, v)| EnvVar {
                        name: k.to_string(),
                        value: Some(v.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }],
        ..Default::default()
    };
    let found = databases::detect(&spec);
    assert_eq!(found.len(), 1, "{image} is recognised");
    let db = &found[0];
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    // A JSON object is a YAML flow mapping: no indentation to get wrong.
    let mut map = serde_json::json!({
        "vbackup.io/backup-command": json(db.backup_command()),
        "vbackup.io/restore-command": json(db.restore_command()),
        "vbackup.io/file-extension": db.file_extension(),
        "backup.velero.io/backup-volumes-excludes": "data",
    });
    for (k, v) in extra {
        map[*k] = Value::String(v.to_string());
    }
    map.to_string()
}

fn env_yaml(env: &[(&str, &str)]) -> String {
    env.iter()
        .map(|(k, v)| {
            format!(
                "{{name: {k}, value: {}}}",
                serde_json::to_string(v).unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const MARIADB_ENV: &[(&str, &str)] = &[
    ("MARIADB_ROOT_PASSWORD", "r00t 'pw\""),
    ("MYSQL_UNIX_PORT", "/tmp/mysqld/mysqld.sock"),
    ("MYSQL_HOME", "/tmp/mysqld"),
];
const POSTGRES_ENV: &[(&str, &str)] = &[("POSTGRES_PASSWORD", "pg-secret"), ("PGHOST", "/tmp/pg")];

/// Restore hooks of the bare `cache` pod (restored from the backup, unlike workloads' pods).
const RESTORE_HOOKS: &[(&str, &str)] = &[
    (
        "post.hook.restore.velero.io/command",
        r#"["/bin/sh", "-c", "date > /data/post-restore-ran"]"#,
    ),
    ("post.hook.restore.velero.io/wait-for-ready", "true"),
    (
        "init.hook.restore.velero.io/container-image",
        "example.org/shell:1",
    ),
    ("init.hook.restore.velero.io/container-name", "restore-seed"),
    (
        "init.hook.restore.velero.io/command",
        r#"["sh", "-c", "true"]"#,
    ),
];

fn redis_env(port: u16) -> Vec<(&'static str, String)> {
    vec![("REDIS_PORT_NUMBER", port.to_string())]
}

fn manifests(redis_port: u16) -> String {
    let redis_env: Vec<(&str, String)> = redis_env(redis_port);
    let redis_env: Vec<(&str, &str)> = redis_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: dbs}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: maria, namespace: dbs}}
spec:
  serviceName: maria
  replicas: 1
  selector: {{matchLabels: {{app: maria}}}}
  template:
    metadata:
      labels: {{app: maria}}
      annotations: {maria}
    spec:
      containers:
      - name: db
        image: mariadb:10.11
        command: [entrypoint, mariadb, /var/lib/mysql]
        env: [{maria_env}]
        volumeMounts: [{{name: data, mountPath: /var/lib/mysql}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: pg, namespace: dbs}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: pg, namespace: dbs}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: pg}}}}
  template:
    metadata:
      labels: {{app: pg}}
      annotations: {pg}
    spec:
      containers:
      - name: db
        image: postgres:15
        command: [entrypoint, postgres, /var/lib/postgresql/data]
        env: [{pg_env}]
        volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]
      volumes:
      - {{name: data, persistentVolumeClaim: {{claimName: pg}}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: cache
  namespace: dbs
  annotations: {redis}
spec:
  containers:
  - name: db
    image: bitnami/redis:7.0
    command: [entrypoint, redis, /data]
    env: [{redis_env_yaml}]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - {{name: data, emptyDir: {{}}}}
"#,
        maria = dump_annotations("mariadb:10.11", MARIADB_ENV, &[]),
        maria_env = env_yaml(MARIADB_ENV),
        pg = dump_annotations("postgres:15", POSTGRES_ENV, &[]),
        pg_env = env_yaml(POSTGRES_ENV),
        redis = dump_annotations("bitnami/redis:7.0", &redis_env, RESTORE_HOOKS),
        redis_env_yaml = env_yaml(&redis_env),
    )
}

/// `kubectl exec` of a shell command in container `db` of `pod`; its stdout, or None when it
/// failed.
fn sh(env: &VolumeEnv, pod: &str, script: &str) -> Option<String> {
    let out = env.cluster.kubectl(&[
        "-n", "dbs", "exec", pod, "-c", "db", "--", "sh", "-c", script,
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sh_ok(env: &VolumeEnv, pod: &str, script: &str) -> String {
    eventually(&format!("{pod}: {script}"), Duration::from_secs(60), || {
        sh(env, pod, script)
    })
}

const MARIA: &str = r#"MYSQL_PWD="$MARIADB_ROOT_PASSWORD" mariadb -uroot -N"#;
const PSQL: &str = "psql -U postgres -At";

fn pod_of(env: &VolumeEnv, label: &str) -> String {
    eventually(
        &format!("a running pod {label}"),
        Duration::from_secs(120),
        || {
            let out = env.kubectl(&[
                "-n",
                "dbs",
                "get",
                "pods",
                "-l",
                label,
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]);
            out.split_whitespace().next().map(str::to_string)
        },
    )
}

/// A client committing ten-row transactions of consecutive ids until it is killed.
fn start_writer(env: &VolumeEnv) -> Child {
    let script = format!(
        "i=0; while :; do echo \"BEGIN;\"; for j in 1 2 3 4 5 6 7 8 9 10; do i=$((i+1)); echo \"INSERT INTO shop.ticks VALUES ($i);\"; done; echo \"COMMIT;\"; done | {MARIA}"
    );
    let kubeconfig = env.cluster.cluster.kubeconfig_path().to_path_buf();
    Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "-n", "dbs", "exec", "maria-0", "-c", "db", "--", "sh", "-c", &script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn database_dumps_stream_into_the_repository_and_restore_every_row() {
    let redis_port = 20000 + (std::process::id() % 20000) as u16;
    let env = VolumeEnv::start_with_images(&[
        &format!("mariadb={DBSERVER}"),
        &format!("postgres={DBSERVER}"),
        &format!("bitnami/redis={DBSERVER}"),
        "example.org/shell=/bin/sh",
    ]);
    env.apply(&manifests(redis_port));
    let pg = pod_of(&env, "app=pg");
    for (pod, probe) in [
        ("maria-0", format!("{MARIA} -e 'SELECT 1'")),
        (pg.as_str(), format!("{PSQL} -c 'SELECT 1'")),
        ("cache", format!("redis-cli -p {redis_port} ping")),
    ] {
        sh_ok(&env, pod, &probe);
    }

    // Rows the oracle knows, in every server.
    let orders: Vec<String> = (1..=40).map(|i| format!("order-{i}-{}", i * 7)).collect();
    let values = orders
        .iter()
        .map(|o| format!("('{o}')"))
        .collect::<Vec<_>>()
        .join(",");
    sh_ok(
        &env,
        "maria-0",
        &format!(
            "{MARIA} -e \"CREATE DATABASE shop; CREATE TABLE shop.orders (ref VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE shop.ticks (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO shop.orders VALUES {values};\""
        ),
    );
    sh_ok(
        &env,
        &pg,
        &format!(
            "{PSQL} -c 'CREATE DATABASE shop' && {PSQL} -d shop -c \"CREATE TABLE orders (ref text PRIMARY KEY); INSERT INTO orders VALUES {values};\""
        ),
    );
    let keys: Vec<(String, String)> = (1..=25)
        .map(|i| (format!("cart:{i}"), format!("items {}", i * 3)))
        .collect();
    for (k, v) in &keys {
        sh_ok(
            &env,
            "cache",
            &format!("redis-cli -p {redis_port} set '{k}' '{v}'"),
        );
    }

    // A client keeps committing while the dump runs.
    let mut writer = start_writer(&env);
    eventually("the writer committed", Duration::from_secs(30), || {
        sh(
            &env,
            "maria-0",
            &format!("{MARIA} -e 'SELECT COUNT(*) FROM shop.ticks'"),
        )
        .filter(|n| n.parse::<u64>().unwrap_or(0) >= 100)
    });
    env.ok(&["backup", "create", "dbs-1", "--include-namespaces", "dbs"]);
    let during = writer.try_wait().unwrap().is_none();
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(
        during,
        "the writer was still committing when the backup ended"
    );

    let record: Value =
        serde_json::from_str(&env.ok(&["backup", "describe", "dbs-1", "-o", "json"])).unwrap();
    assert_eq!(record["status"]["phase"], "Completed", "{record:#}");
    let dumps = record["status"]["dumps"].as_array().unwrap();
    let mut files: Vec<&str> = dumps.iter().map(|d| d["file"].as_str().unwrap()).collect();
    files.sort();
    assert_eq!(
        files,
        [
            "cache-db.rdb",
            "maria-0-db.sql",
            format!("{pg}-db.sql").as_str()
        ]
    );
    for d in dumps {
        assert_eq!(d["phase"], "Completed", "{d:#}");
        assert!(d["bytes"].as_u64().unwrap() > 0);
    }
    // The volumes themselves were not copied: what comes back comes from the dumps.
    assert!(
        record["status"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["phase"] != "Completed"),
        "{record:#}"
    );
    let log = env.ok(&["backup", "logs", "dbs-1"]);
    assert!(
        log.contains("\"dumped\"") && log.contains("maria-0-db.sql"),
        "{log}"
    );

    env.delete_namespace("dbs");
    env.ok(&["restore", "create", "back", "--from-backup", "dbs-1"]);
    let restore: Value =
        serde_json::from_str(&env.ok(&["restore", "describe", "back", "-o", "json"])).unwrap();
    assert_eq!(restore["status"]["phase"], "Completed", "{restore:#}");
    // The cache pod's post-restore hook; the three dumps.
    assert_eq!(
        restore["status"]["hooks"],
        serde_json::json!({"attempted": 1, "failed": 0}),
        "{restore:#}"
    );
    assert_eq!(
        restore["status"]["dumps"],
        serde_json::json!({"restored": 3, "failed": 0}),
        "{restore:#}"
    );
    let described = env.ok(&["restore", "describe", "back"]);
    assert!(
        described.contains("Post-restore hooks: 1 attempted, 0 failed")
            && described.contains("Database dumps: 3 restored, 0 failed"),
        "{described}"
    );

    let pg = pod_of(&env, "app=pg");
    let mut want = orders.clone();
    want.sort();
    let got = sh_ok(
        &env,
        "maria-0",
        &format!("{MARIA} -e 'SELECT ref FROM shop.orders ORDER BY ref'"),
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
    let got = sh_ok(
        &env,
        &pg,
        &format!("{PSQL} -d shop -c 'SELECT ref FROM orders ORDER BY ref'"),
    );
    let mut got: Vec<&str> = got.lines().collect();
    got.sort();
    assert_eq!(got, want);
    for (k, v) in &keys {
        assert_eq!(
            sh_ok(
                &env,
                "cache",
                &format!("redis-cli -p {redis_port} get '{k}'")
            ),
            *v
        );
    }
    // The restored bare pod got its init hook's container and ran its post-restore hook.
    let inits = env.kubectl(&[
        "-n",
        "dbs",
        "get",
        "pod",
        "cache",
        "-o",
        "jsonpath={.spec.initContainers[*].name}",
    ]);
    assert_eq!(inits.trim(), "restore-seed");
    assert!(
        sh(&env, "cache", "test -s /data/post-restore-ran").is_some(),
        "the post-restore hook did not run"
    );
    let log = env.ok(&["restore", "logs", "back"]);
    assert!(log.contains("post-restore hook (annotation post.hook.restore.velero.io/command) in container db: exit 0"), "{log}");
    assert!(log.contains("\"dump-restored\""), "{log}");
    // A committed point: whole ten-row transactions with consecutive ids, none torn.
    let ticks = sh_ok(
        &env,
        "maria-0",
        &format!(
            "{MARIA} -e 'SELECT COUNT(*), COALESCE(MIN(id),0), COALESCE(MAX(id),0) FROM shop.ticks'"
        ),
    );
    let n: Vec<u64> = ticks
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        n[0] >= 100 && n[0].is_multiple_of(10),
        "torn transaction: {ticks}"
    );
    assert_eq!(
        (n[1], n[2]),
        (1, n[0]),
        "gaps in the committed rows: {ticks}"
    );
}
