//! Velero-style exec hooks in a real test cluster: for two pods sharing an RWX claim, both
//! pre hooks run, the claim is copied once, then both post hooks run (timestamps in a file on
//! the claim, and the copy holds only the pre lines); each malformed hook annotation gives
//! its named message, a failing `Fail` hook stops its pod's copy, and a hook that outruns its
//! timeout is killed inside the container.

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
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: rwx}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: shared, namespace: rwx}}\nspec:\n  accessModes: [ReadWriteMany]\n  resources: {{requests: {{storage: 1Gi}}}}\n{}{}",
        pod("rwx", "left", &hooks, Some("shared")),
        pod("rwx", "right", &twins, Some("shared")),
    ));
    wait_running(&env, "rwx", &["left", "right"]);
    env.ok(&["backup", "create", "order", "--include-namespaces", "rwx"]);

    let r = record(&env, "order");
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    assert_eq!(
        r["status"]["hooks"],
        serde_json::json!({"attempted": 4, "failed": 0})
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
