//! Mover pods on a cluster as strict as a real one: movers that cannot start (image pull,
//! scheduling, Pod Security) fail their volume in bounded time with the cluster's own words,
//! and a `restricted` namespace gets a mover running as the application's own user, whose
//! unreadable files are named in `describe`.

mod volumes;

use std::time::{Duration, Instant};

use serde_json::Value;
use volumes::{VolumeEnv, bytes, write_file};

fn volume(env: &VolumeEnv, backup: &str, claim: &str) -> Value {
    let out = env.ok(&["backup", "describe", backup, "-o", "json"]);
    let record: Value = serde_json::from_str(&out).unwrap();
    record["status"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["name"] == claim).cloned())
        .unwrap_or_else(|| panic!("no volume {claim} in {backup}: {record:#}"))
}

/// A backup that must end PartiallyFailed, its volume Failed; returns the volume's message.
fn failed_volume(env: &VolumeEnv, name: &str, extra: &[&str]) -> String {
    let started = Instant::now();
    let mut args = vec!["backup", "create", name, "-n", "shop"];
    args.extend_from_slice(extra);
    let (out, err) = env.fails(&args);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "bounded, not a blind timeout"
    );
    assert!(out.contains("PartiallyFailed"), "{out}\n{err}");
    let v = volume(env, name, "data");
    assert_eq!(v["phase"], "Failed", "{v:#}");
    assert_eq!(env.movers("shop").trim(), "", "movers are cleaned up");
    v["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn movers_that_cannot_start_fail_their_volume_with_the_clusters_reason() {
    let env = VolumeEnv::start_with(|node| {
        node.nodes = 2;
        node.unpullable_images = vec!["registry.example/".into()];
    });
    env.deploy_app("shop", None, "ReadWriteOnce");
    write_file(
        &env.claim_dir("shop", "data").join("orders"),
        &bytes(1, 1000),
        0o644,
        None,
        1_700_000_000,
    );

    let message = failed_volume(
        &env,
        "pull",
        &["--mover-image", "registry.example/vbackup/vbackup:0.1"],
    );
    assert!(
        message.contains("ImagePullBackOff")
            && message.contains(
                "failed to pull and unpack image \"registry.example/vbackup/vbackup:0.1\""
            ),
        "{message}"
    );

    // The node of the application's pod is drained: its mover cannot be placed anywhere.
    let node = env.kubectl(&[
        "-n",
        "shop",
        "get",
        "pods",
        "-l",
        "app=app",
        "-o",
        "jsonpath={.items[0].spec.nodeName}",
    ]);
    env.kubectl(&["cordon", node.trim()]);
    let message = failed_volume(&env, "drained", &["--mover-start-timeout", "3s"]);
    assert!(
        message.contains("Unschedulable") && message.contains("0/2 nodes are available"),
        "{message}"
    );
    env.kubectl(&["uncordon", node.trim()]);

    // Baseline forbids both the read capability and hostPath: the app-user mover still
    // needs the filesystem location's hostPath, and Pod Security says no.
    env.kubectl(&[
        "label",
        "namespace",
        "shop",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let message = failed_volume(&env, "baseline", &[]);
    assert!(
        message.contains(
            "violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"location\")"
        ),
        "{message}"
    );
}

#[test]
fn a_restricted_namespace_gets_a_mover_running_as_the_apps_user() {
    let env = VolumeEnv::start();
    env.create_s3_location("s3");
    env.apply(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: vault
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: vault}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: vault}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: nginx:1.27
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#,
    );
    env.wait_for("vault", "deployment/app", "{.status.readyReplicas}", "1");
    let data = env.claim_dir("vault", "data");
    // Written after the kubelet applied fsGroup: one file the app's user owns, one shared
    // with its fsGroup, one only another user may read.
    write_file(
        &data.join("mine.txt"),
        b"the app's own",
        0o600,
        Some((1000, 1000)),
        1_700_000_000,
    );
    write_file(
        &data.join("shared/notes.txt"),
        &bytes(2, 5000),
        0o640,
        Some((3000, 2000)),
        1_700_000_000,
    );
    write_file(
        &data.join("other.key"),
        b"not for the app",
        0o600,
        Some((3000, 3000)),
        1_700_000_000,
    );
    env.ok(&[
        "backup",
        "create",
        "v1",
        "-n",
        "vault",
        "--storage-location",
        "s3",
    ]);
    let v = volume(&env, "v1", "data");
    assert_eq!(v["phase"], "Completed", "{v:#}");
    assert_eq!(v["files"], 2, "the two readable files: {v:#}");
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("run as uid 1000") && warnings.contains("other.key"),
        "{v:#}"
    );
    let described = env.ok(&["backup", "describe", "v1", "--details"]);
    assert!(described.contains("other.key"), "{described}");
    assert_eq!(env.movers("vault").trim(), "");
}
