//! Velero-style exec hooks in a real test cluster: for two pods sharing an RWX claim, both
//! pre hooks run, the claim is copied once, then both post hooks run (timestamps in a file on
//! the claim, and the copy holds only the pre lines); each malformed hook annotation gives
//! its named message, a failing `Fail` hook stops its pod's copy, and a hook that outruns its
//! timeout is killed inside the container. Sidecars are hook and dump targets, a workload
//! dumps once whatever its replicas, and a dump whose command dies with its container or
//! whose exec stream is cut fails its item and leaves nothing in the repository.

mod volumes;

use std::time::Duration;

use serde_json::Value;
use volumes::{VolumeEnv, eventually};

/// Pods of this image run `/bin/sh` with the container's command[1..].
const SHELL_IMAGE: &str = "example.org/shell";

fn start() -> VolumeEnv {
    VolumeEnv::start_with_images(&[&format!("{SHELL_IMAGE}=/bin/sh")])
}

fn pod(ns: &str, name: &str, annotations: &[(&str, &str)], claim: Option<&str>) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    let (mounts, volumes) = match claim {
        Some(c) => (
            "    volumeMounts: [{name: data, mountPath: /shared}]\n".to_string(),
            format!("  volumes: [{{name: data, persistentVolumeClaim: {{claimName: {c}}}}}]\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n{annotations}spec:\n  containers:\n  - name: main\n    image: {SHELL_IMAGE}:1\n    command: [sh, -c, 'exec sleep 100000']\n{mounts}{volumes}"
    )
}

fn record(env: &VolumeEnv, backup: &str) -> Value {
    serde_json::from_str(&env.ok(&["backup", "describe", backup, "-o", "json"])).unwrap()
}

fn wait_running(env: &VolumeEnv, ns: &str, pods: &[&str]) {
    for p in pods {
        env.wait_for(ns, &format!("pod/{p}"), "{.status.phase}", "Running");
    }
}

#[test]
fn hooks_of_pods_sharing_a_claim_run_before_and_after_its_one_copy() {
    let env = start();
    let line = |when: &str| {
        format!(
            r#"["/bin/sh", "-c", "echo {when} $(hostname) $(date +%s%N) >> /shared/hooks.log; sleep 0.2"]"#
        )
    };
    let (pre, post) = (line("pre"), line("post"));
    let hooks = [
        ("pre.hook.backup.velero.io/command", pre.as_str()),
        ("post.hook.backup.velero.io/command", post.as_str()),
    ];
    // One in Velero's spelling, one in vbackup's.
    let twin_pre = pre.clone();
    let twin_post = post.clone();
    let twins = [
        ("pre.hook.backup.vbackup.io/command", twin_pre.as_str()),
        ("post.hook.backup.vbackup.io/command", twin_post.as_str()),
    ];
    env.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: rwx}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: shared, namespace: rwx}}\nspec:\n  accessModes: [ReadWriteMany]\n  resources: {{requests: {{storage: 1Gi}}}}\n{}{}{}",
        pod("rwx", "left", &hooks, Some("shared")),
        pod("rwx", "right", &twins, Some("shared")),
        pod("rwx", "lone", &[], None),
    ));
    wait_running(&env, "rwx", &["left", "right", "lone"]);
    // A hooks file for the whole namespace: the annotated pods keep their own hooks.
    let hooks_file = env.dir.path().join("hooks.yaml");
    std::fs::write(
        &hooks_file,
        "spec:\n  hooks:\n    resources:\n    - name: from-file\n      includedNamespaces: [rwx]\n      pre:\n      - exec: {command: [/bin/sh, -c, echo file-hook], timeout: 5s}\n",
    )
    .unwrap();
    env.ok(&[
        "backup",
        "create",
        "order",
        "--include-namespaces",
        "rwx",
        "--hooks-file",
        hooks_file.to_str().unwrap(),
    ]);

    let r = record(&env, "order");
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    assert_eq!(
        r["status"]["hooks"],
        serde_json::json!({"attempted": 5, "failed": 0})
    );
    let copies: Vec<&Value> = r["status"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == "shared")
        .collect();
    assert_eq!(copies.len(), 1, "the claim is copied once: {r:#}");

    // Every pre line is older than every post line.
    let log = std::fs::read_to_string(env.claim_dir("rwx", "shared").join("hooks.log")).unwrap();
    let entries: Vec<(String, String, u128)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect();
    let mut pods: Vec<(&str, &str)> = entries
        .iter()
        .map(|(w, p, _)| (w.as_str(), p.as_str()))
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        [
            ("post", "left"),
            ("post", "right"),
            ("pre", "left"),
            ("pre", "right")
        ],
        "{log}"
    );
    let last_pre = entries
        .iter()
        .filter(|e| e.0 == "pre")
        .map(|e| e.2)
        .max()
        .unwrap();
    let first_post = entries
        .iter()
        .filter(|e| e.0 == "post")
        .map(|e| e.2)
        .min()
        .unwrap();
    assert!(
        last_pre < first_post,
        "a post hook ran before all pre hooks: {log}"
    );

    // The copy was taken between them: it holds both pre lines and no post line.
    let out = env.dir.path().join("copied");
    env.ok(&[
        "snapshot",
        "restore",
        "-n",
        "rwx",
        "--backup",
        "order",
        "--pvc",
        "shared",
        "--path",
        "hooks.log",
        "--to",
        out.to_str().unwrap(),
    ]);
    let copied = std::fs::read_to_string(out.join("hooks.log")).unwrap();
    let whens: Vec<&str> = copied
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(whens, ["pre", "pre"], "{copied}");

    let log = env.ok(&["backup", "logs", "order"]);
    assert!(
        log.contains(
            "pre hook (annotation pre.hook.backup.vbackup.io/command) in container main: exit 0"
        ),
        "{log}"
    );
    assert!(
        log.contains("pre hook (hooks file resource from-file) in container main: exit 0")
            && log.contains("output: file-hook"),
        "{log}"
    );
}

#[test]
fn each_malformed_hook_gives_its_named_message() {
    let env = start();
    let ok = r#"["/bin/true"]"#;
    let manifests = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bad}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: keep, namespace: bad}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n".to_string(),
        pod("bad", "unit", &[("pre.hook.backup.velero.io/command", ok), ("pre.hook.backup.velero.io/timeout", "30")], None),
        pod("bad", "mode", &[("pre.hook.backup.velero.io/command", ok), ("pre.hook.backup.velero.io/on-error", "Ignore")], None),
        pod("bad", "nocontainer", &[("pre.hook.backup.velero.io/command", ok), ("pre.hook.backup.velero.io/container", "nope")], None),
        pod("bad", "json", &[("pre.hook.backup.velero.io/command", r#"["/bin/sh", "-c""#)], None),
        pod("bad", "missing", &[("pre.hook.backup.velero.io/command", r#"["/no/such/tool"]"#)], Some("keep")),
        pod(
            "bad",
            "slow",
            &[
                ("pre.hook.backup.velero.io/command", r#"["/bin/sh", "-c", "sleep 60 & echo $! > /tmp/child.pid; wait"]"#),
                ("pre.hook.backup.velero.io/timeout", "1s"),
                ("pre.hook.backup.velero.io/on-error", "Continue"),
            ],
            None,
        ),
        pod("bad", "lonely", &[("post.hook.backup.velero.io/container", "main")], None),
        pod("bad", "dumpfails", &[("vbackup.io/backup-command", "echo partial; exit 3")], None),
        pod("bad", "dumpempty", &[("k8up.io/backupcommand", "true")], None),
    ];
    env.apply(&manifests.concat());
    wait_running(
        &env,
        "bad",
        &[
            "unit",
            "mode",
            "nocontainer",
            "json",
            "missing",
            "slow",
            "lonely",
            "dumpfails",
            "dumpempty",
        ],
    );
    let (_, _) = env.fails(&["backup", "create", "bad-1", "--include-namespaces", "bad"]);

    let r = record(&env, "bad-1");
    assert_eq!(r["status"]["phase"], "PartiallyFailed", "{r:#}");
    // unit, mode, nocontainer, json, missing, slow attempted; the last four failed.
    assert_eq!(
        r["status"]["hooks"],
        serde_json::json!({"attempted": 6, "failed": 4}),
        "{r:#}"
    );
    let errors: Vec<String> = r["status"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["name"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let warnings: Vec<String> = r["status"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let has =
        |list: &[String], want: &[&str]| list.iter().any(|e| want.iter().all(|w| e.contains(w)));
    let expect_error = [
        &[
            "nocontainer",
            "container nope does not exist in the pod (its containers: main)",
        ][..],
        &[
            "json",
            "annotation pre.hook.backup.velero.io/command is not a JSON array",
        ],
        &["missing", "command not found in container main"],
        &[
            "keep",
            "not copied: the pre hook of pod missing failed and its on-error is Fail",
        ],
        &[
            "dumpfails",
            "dump of container main: the dump command exited with code 3 after 8 bytes; the dump is not usable",
        ],
        &[
            "dumpempty",
            "the dump command wrote nothing to stdout: an empty dump is not a backup",
        ],
    ];
    for want in expect_error {
        assert!(has(&errors, want), "no error with {want:?}: {errors:#?}");
    }
    let expect_warning = [
        &[
            "pod bad/unit, annotation pre.hook.backup.velero.io/timeout \"30\" has no unit",
            "using 30s",
        ][..],
        &[
            "pod bad/mode, annotation pre.hook.backup.velero.io/on-error \"Ignore\" is not an on-error mode",
            "write Fail or Continue",
        ],
        &[
            "pod bad/slow",
            "timed out after 1s; the command was killed in container main",
            "on-error Continue",
        ],
        &[
            "pod bad/lonely, annotation post.hook.backup.velero.io/container is set but post.hook.backup.velero.io/command is not",
        ],
    ];
    for want in expect_warning {
        assert!(
            has(&warnings, want),
            "no warning with {want:?}: {warnings:#?}"
        );
    }
    // The timed-out command's child was killed inside the container.
    eventually(
        "the slow hook's child is gone",
        Duration::from_secs(20),
        || {
            let out = env.cluster.kubectl(&[
                "-n",
                "bad",
                "exec",
                "slow",
                "--",
                "sh",
                "-c",
                "kill -0 $(cat /tmp/child.pid)",
            ]);
            (!out.status.success()).then_some(())
        },
    );
}

const SLEEPER: &str = "command: [sh, -c, 'exec sleep 100000']";

#[test]
fn sidecars_run_hooks_and_a_workload_dumps_once() {
    let env = start();
    let web = serde_json::json!({
        "pre.hook.backup.velero.io/container": "log-agent",
        "pre.hook.backup.velero.io/command": r#"["/bin/sh", "-c", "echo pre hook in $ROLE"]"#,
        "post.hook.backup.velero.io/container": "log-agent",
        "post.hook.backup.velero.io/command": r#"["/bin/sh", "-c", "echo post hook in $ROLE"]"#,
        "vbackup.io/backup-command": "echo \"dump by $ROLE of $(hostname)\"; echo dump-note >&2",
        "vbackup.io/backup-command-container": "log-agent",
        "vbackup.io/file-extension": ".txt",
        "vbackup.io/restore-command": "cat > /tmp/restored.txt",
    });
    let batch = serde_json::json!({
        // An init container that is not a sidecar is no hook target.
        "pre.hook.backup.velero.io/container": "setup",
        "pre.hook.backup.velero.io/command": r#"["/bin/true"]"#,
        "post.hook.restore.velero.io/container": "log-agent",
        "post.hook.restore.velero.io/command": r#"["/bin/sh", "-c", "echo restore hook in $ROLE; exit 5"]"#,
        "post.hook.restore.velero.io/wait-for-ready": "true",
    });
    let sidecar = format!(
        "- {{name: log-agent, image: {SHELL_IMAGE}:1, restartPolicy: Always, {SLEEPER}, env: [{{name: ROLE, value: sidecar}}]}}"
    );
    let main = format!(
        "- {{name: main, image: {SHELL_IMAGE}:1, {SLEEPER}, env: [{{name: ROLE, value: main}}]}}"
    );
    env.apply(&format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: side}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: side}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {web}
    spec:
      initContainers:
      {sidecar}
      containers:
      {main}
---
apiVersion: v1
kind: Pod
metadata: {{name: batch, namespace: side, annotations: {batch}}}
spec:
  initContainers:
  - {{name: setup, image: {SHELL_IMAGE}:1, command: [sh, -c, 'true']}}
  {sidecar}
  containers:
  {main}
"#
    ));
    env.wait_for("side", "deployment/web", "{.status.readyReplicas}", "2");
    env.wait_for("side", "pod/batch", "{.status.phase}", "Running");
    let (_, _) = env.fails(&["backup", "create", "side-1", "--include-namespaces", "side"]);

    let r = record(&env, "side-1");
    assert_eq!(r["status"]["phase"], "PartiallyFailed", "{r:#}");
    // Pre and post in each of web's two pods; batch's pre hook cannot run.
    assert_eq!(
        r["status"]["hooks"],
        serde_json::json!({"attempted": 5, "failed": 1}),
        "{r:#}"
    );
    let errors = r["status"]["errors"].to_string();
    assert!(
        errors.contains(
            "container setup does not exist in the pod (its containers: main, log-agent)"
        ),
        "{errors}"
    );
    // One dump for the Deployment, not one per replica, taken in the sidecar.
    let dumps = r["status"]["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 1, "{r:#}");
    let dump = &dumps[0];
    let dumped_pod = dump["pod"].as_str().unwrap();
    assert!(dumped_pod.starts_with("web-"), "{dump:#}");
    assert_eq!(
        (&dump["phase"], &dump["container"], &dump["file"]),
        (
            &Value::from("Completed"),
            &Value::from("log-agent"),
            &Value::from(format!("{dumped_pod}-log-agent.txt"))
        ),
        "{dump:#}"
    );
    let log = env.ok(&["backup", "logs", "side-1"]);
    for (want, times) in [
        (
            "pre hook (annotation pre.hook.backup.velero.io/command) in container log-agent: exit 0",
            2,
        ),
        ("output: pre hook in sidecar", 2),
        (
            "post hook (annotation post.hook.backup.velero.io/command) in container log-agent: exit 0",
            2,
        ),
        ("output: post hook in sidecar", 2),
        ("stderr: dump-note", 1),
    ] {
        assert_eq!(log.matches(want).count(), times, "{want}: {log}");
    }

    env.delete_namespace("side");
    let _ = env
        .cluster
        .vbackup(&["restore", "create", "side-back", "--from-backup", "side-1"]);
    let restore: Value =
        serde_json::from_str(&env.ok(&["restore", "describe", "side-back", "-o", "json"])).unwrap();
    assert_eq!(restore["status"]["phase"], "PartiallyFailed", "{restore:#}");
    assert_eq!(
        restore["status"]["hooks"],
        serde_json::json!({"attempted": 1, "failed": 1}),
        "{restore:#}"
    );
    assert_eq!(
        restore["status"]["dumps"],
        serde_json::json!({"restored": 1, "failed": 0}),
        "{restore:#}"
    );
    let described = env.ok(&["restore", "describe", "side-back"]);
    assert!(
        described.contains("Post-restore hooks: 1 attempted, 1 failed")
            && described.contains("Database dumps: 1 restored, 0 failed"),
        "{described}"
    );
    let log = env.ok(&["restore", "logs", "side-back"]);
    assert!(
        log.contains("post-restore hook (annotation post.hook.restore.velero.io/command) in container log-agent: exit 5")
            && log.contains("restore hook in sidecar"),
        "{log}"
    );
    // The dump went back into the sidecar of one of web's new pods, byte for byte.
    let pods = env.kubectl(&[
        "-n",
        "side",
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let restored: Vec<String> = pods
        .split_whitespace()
        .filter_map(|p| {
            let out = env.cluster.kubectl(&[
                "-n",
                "side",
                "exec",
                p,
                "-c",
                "log-agent",
                "--",
                "cat",
                "/tmp/restored.txt",
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .collect();
    assert_eq!(restored, [format!("dump by sidecar of {dumped_pod}\n")]);
}

/// A TCP relay to `upstream` that cuts each connection once it has carried `limit` bytes to
/// the client, as a restarted API server or a broken network cuts an exec stream.
fn cutting_relay(upstream: String, limit: u64) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut client, mut server) = (client, server);
                let (mut buf, mut sent) = (vec![0u8; 64 * 1024], 0u64);
                while sent < limit {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n as u64;
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    addr
}

#[test]
fn a_dump_cut_short_fails_its_item_and_leaves_no_snapshot() {
    let env = start();
    let pod = |name: &str, command: &str, dump: &str| {
        let annotations = serde_json::json!({"vbackup.io/backup-command": dump});
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: cut, annotations: {annotations}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - {{name: main, image: {SHELL_IMAGE}:1, command: [sh, -c, {}]}}\n",
            serde_json::to_string(command).unwrap()
        )
    };
    env.apply(&[
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: cut}\n".to_string(),
        // The container exits while its dump is running: the dump dies with it.
        pod(
            "stops",
            "while [ ! -e /tmp/stop ]; do sleep 0.1; done",
            "echo dumping orders >&2; head -c 1048576 /dev/zero; touch /tmp/stop; sleep 60; echo never",
        ),
        // The exec stream is cut (by the relay below) long before the dump's end.
        pod(
            "cutoff",
            "exec sleep 100000",
            "echo dumping everything >&2; yes 'row row row row row row row' | head -c 400000000",
        ),
        pod("fine", "exec sleep 100000", "echo fine-dump"),
    ]
    .concat());
    wait_running(&env, "cut", &["stops", "cutoff", "fine"]);

    let url = env.cluster.cluster.url();
    let authority = url.split("://").nth(1).unwrap().trim_end_matches('/');
    let relay = cutting_relay(authority.to_string(), 32 << 20);
    let kubeconfig = env.dir.path().join("relayed-kubeconfig");
    std::fs::write(
        &kubeconfig,
        env.cluster
            .cluster
            .kubeconfig_yaml()
            .replace(authority, &relay.to_string()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-vbackup"))
        .args(["backup", "create", "cut-1", "--include-namespaces", "cut"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");

    let r = record(&env, "cut-1");
    assert_eq!(r["status"]["phase"], "PartiallyFailed", "{r:#}");
    let dump = |pod: &str| {
        r["status"]["dumps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["pod"] == pod)
            .unwrap_or_else(|| panic!("no dump of {pod}: {r:#}"))
            .clone()
    };
    let (stops, cutoff, fine) = (dump("stops"), dump("cutoff"), dump("fine"));
    assert_eq!(fine["phase"], "Completed", "{fine:#}");
    for (d, message, stderr) in [
        (
            &stops,
            "the dump command was killed (exit 137, SIGKILL: its container stopped",
            "dumping orders",
        ),
        (
            &cutoff,
            "the exec stream of container main ended before the command's exit was reported",
            "dumping everything",
        ),
    ] {
        assert_eq!(d["phase"], "Failed", "{d:#}");
        assert!(d["message"].as_str().unwrap().starts_with(message), "{d:#}");
        assert_eq!(d["stderr"], stderr, "{d:#}");
        assert!(d.get("snapshot").is_none(), "{d:#}");
    }
    let errors = r["status"]["errors"].to_string();
    assert!(
        errors.contains("dump of container main: the exec stream of container main ended")
            && errors.contains("the dump is incomplete")
            && errors.contains("dump of container main: the dump command was killed (exit 137"),
        "{errors}"
    );
    let log = env.ok(&["backup", "logs", "cut-1"]);
    assert!(
        log.contains("stderr: dumping everything") && log.contains("stderr: dumping orders"),
        "{log}"
    );

    // The stock restic sees the complete dump only: nothing torn is left to restore.
    let password = env.ok(&["repo", "password", "cut"]);
    let restic = std::process::Command::new("restic")
        .args(["-r", env.store_dir().join("repos/cut").to_str().unwrap()])
        .args(["snapshots", "--json", "--no-cache"])
        .env("RESTIC_PASSWORD", password.trim())
        .output()
        .expect("restic is installed by scripts/test.sh");
    assert!(restic.status.success(), "{restic:?}");
    let snapshots: Value = serde_json::from_slice(&restic.stdout).unwrap();
    let volumes: Vec<&str> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tags"].as_array().unwrap())
        .filter_map(|t| t.as_str()?.strip_prefix("volume="))
        .collect();
    assert_eq!(volumes, ["dump/fine"], "{snapshots:#}");
}
