//! `kubectl vbackup verify`: a backup is restored into scratch namespaces, its workloads
//! must become Ready and the pods' `vbackup.io/verify-command` must succeed; the scratch
//! namespaces go afterwards, whatever the verdict, and the source is never touched.

mod volumes;

use serde_json::Value;
use volumes::{AppManifest, VolumeEnv, app_manifest, write_file};

/// Pods of this image run `/bin/sh` with the container's command[1..].
const SHELL_IMAGE: &str = "example.org/shell";

/// The verify command: the restored claim holds the greeting the application wrote.
const CHECK_GREETING: &str =
    r#"["/bin/sh", "-c", "cat /data/greeting; test \"$(cat /data/greeting)\" = hello"]"#;

/// Namespace `ns`: a Deployment mounting claim `data`, with `verify_command` on its pods.
fn app(ns: &str, verify_command: &str) -> String {
    let annotations = format!(
        "{{vbackup.io/verify-command: {}}}",
        serde_json::to_string(verify_command).unwrap()
    );
    app_manifest(&AppManifest {
        ns,
        image: &format!("{SHELL_IMAGE}:1"),
        command: "[sh, -c, 'exec sleep 100000']",
        annotations: &annotations,
        ..Default::default()
    })
}

/// `kubectl vbackup -o json verify ARGS`: the exit code and the report.
fn verify(env: &VolumeEnv, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = env
        .cluster
        .kubectl(&[&["vbackup", "-o", "json", "verify"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON report ({e}):\n{stdout}\n{stderr}"));
    (out.status.code(), report, stderr)
}

fn verdict<'a>(report: &'a Value, ns: &str) -> &'a Value {
    report["namespaces"]
        .as_array()
        .and_then(|all| all.iter().find(|v| v["namespace"] == ns))
        .unwrap_or_else(|| panic!("no verdict for {ns}: {report:#}"))
}

/// The namespace exists.
fn exists(env: &VolumeEnv, ns: &str) -> bool {
    env.cluster
        .kubectl(&["get", "namespace", ns])
        .status
        .success()
}

fn write_greeting(env: &VolumeEnv, ns: &str, text: &str) {
    let dir = env.claim_dir(ns, "data");
    write_file(
        &dir.join("greeting"),
        text.as_bytes(),
        0o644,
        None,
        1_700_000_000,
    );
}

/// What identifies the source namespace's objects: a restore into it would change them.
fn identity(env: &VolumeEnv, ns: &str) -> String {
    env.kubectl(&[
        "-n",
        ns,
        "get",
        "deployments,replicasets,pods,persistentvolumeclaims",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.uid} {end}",
    ])
}

#[test]
fn verify_passes_a_restorable_backup_and_leaves_nothing_behind() {
    let env = VolumeEnv::start_with_images(&[&format!("{SHELL_IMAGE}=/bin/sh")]);
    env.apply(&app("shop", CHECK_GREETING));
    env.wait_for("shop", "deployment/app", "{.status.readyReplicas}", "1");
    write_greeting(&env, "shop", "hello");
    env.ok(&["backup", "create", "shop-1", "--include-namespaces", "shop"]);
    let before = identity(&env, "shop");
    assert!(before.contains("Pod/app-"), "{before}");

    let (code, report, stderr) = verify(&env, &["--backup", "shop-1", "--timeout", "3m"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let shop = verdict(&report, "shop");
    assert_eq!(shop["failures"], Value::Null, "{report:#}");
    assert_eq!(shop["repositoryChecked"], true, "{report:#}");
    let scratch = shop["scratch"].as_str().unwrap();
    assert!(scratch.starts_with("vbackup-verify-shop-"), "{scratch}");
    let commands = shop["commands"].as_array().expect("the verify command ran");
    assert_eq!(commands.len(), 1, "{report:#}");
    assert_eq!(commands[0]["exitCode"], 0, "{report:#}");
    assert_eq!(
        commands[0]["output"], "hello",
        "the restored claim's data was read"
    );
    assert!(
        !exists(&env, scratch),
        "scratch namespace {scratch} deleted"
    );
    assert_eq!(shop["kept"], false);

    // The source is left as it was: same objects, same data.
    assert_eq!(identity(&env, "shop"), before);
    let data = std::fs::read(env.claim_dir("shop", "data").join("greeting")).unwrap();
    assert_eq!(data, b"hello");

    // --keep leaves the scratch namespace, labelled with the backup so it can be found.
    let (code, report, stderr) = verify(&env, &["--backup", "shop-1", "--keep", "--timeout", "3m"]);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    let kept = verdict(&report, "shop")["scratch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(kept, scratch, "each verify has its own scratch namespace");
    let labelled = env.kubectl(&[
        "get",
        "namespaces",
        "-l",
        "vbackup.io/verify=shop-1",
        "-o",
        "name",
    ]);
    assert_eq!(labelled.trim(), format!("namespace/{kept}"));
    env.delete_namespace(&kept);
}

#[test]
fn verify_fails_on_wrong_data_and_on_a_malformed_command_and_still_cleans_up() {
    let env = VolumeEnv::start_with_images(&[&format!("{SHELL_IMAGE}=/bin/sh")]);
    // The data is not what the check expects (as after a bad copy).
    env.apply(&app("broken", CHECK_GREETING));
    env.apply(&app("typo", r#"["/bin/sh", "-c""#));
    env.wait_for("broken", "deployment/app", "{.status.readyReplicas}", "1");
    env.wait_for("typo", "deployment/app", "{.status.readyReplicas}", "1");
    write_greeting(&env, "broken", "goodbye");
    write_greeting(&env, "typo", "hello");
    env.ok(&[
        "backup",
        "create",
        "two",
        "--include-namespaces",
        "broken,typo",
    ]);

    let (code, report, stderr) = verify(&env, &["--backup", "two", "--timeout", "3m"]);
    assert_eq!(
        code,
        Some(1),
        "a failed verify exits 1:\n{report:#}\n{stderr}"
    );
    let broken = verdict(&report, "broken");
    let failures = broken["failures"].to_string();
    assert!(
        failures.contains("verify command of pod app-") && failures.contains("exited with code 1"),
        "{report:#}"
    );
    assert_eq!(broken["commands"][0]["output"], "goodbye", "{report:#}");
    let typo = verdict(&report, "typo");
    let failures = typo["failures"].to_string();
    assert!(
        failures.contains("annotation vbackup.io/verify-command of pod app-")
            && failures.contains("is not a JSON array"),
        "{report:#}"
    );
    for v in [broken, typo] {
        let scratch = v["scratch"].as_str().unwrap();
        assert!(
            !exists(&env, scratch),
            "scratch namespace {scratch} deleted after a failure"
        );
    }
    let left = env.kubectl(&["get", "namespaces", "-l", "vbackup.io/verify", "-o", "name"]);
    assert_eq!(left.trim(), "", "no scratch namespace left");

    // The table names each namespace's verdict.
    let (_, out, _) = env
        .cluster
        .vbackup(&["verify", "--backup", "two", "--timeout", "3m"]);
    assert!(
        out.contains("FAIL") && out.contains("backup two: FAIL"),
        "{out}"
    );
}
