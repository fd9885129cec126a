//! Scheduled backups run in the cluster: `schedule create` makes a CronJob running the image
//! as the `vbackup-backup` ServiceAccount; a run (here `run-now`, a Job from the CronJob's
//! template) backs the namespace up from inside a pod — in-cluster configuration, the
//! ServiceAccount's token, no kubeconfig — names the backup `<schedule>-<yyyyMMddHHmmss>` and
//! applies the schedule's retention afterwards.

mod volumes;

use std::time::Duration;

use serde_json::Value;
use vbackup_test_support::plugin::PluginCluster;
use vbackup_testcluster::ClusterOptions;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};
use volumes::{MOVER_IMAGE, VolumeEnv, bytes, eventually_or_explain};

const NS: &str = "vbackup-system";

/// A TLS cluster (in-cluster clients need https) whose node runs vbackup's image as the
/// plugin under test, with an S3 location `s3` the pods reach.
fn start() -> VolumeEnv {
    let plugin = env!("CARGO_BIN_EXE_kubectl-vbackup");
    let cluster = PluginCluster::start_with(
        plugin,
        ClusterOptions {
            tls: true,
            node: Some(NodeOptions {
                image_map: vec![ImageMapping::parse(&format!("{MOVER_IMAGE}={plugin}")).unwrap()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .expect("start the test cluster");
    cluster.install_crds();
    let env = VolumeEnv {
        cluster,
        dir: tempfile::tempdir().unwrap(),
    };
    env.kubectl(&["create", "namespace", NS]);
    env.create_s3_location("s3");
    env
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Backups of the location, by name (sorted).
fn backups(env: &VolumeEnv) -> Vec<Value> {
    let list = json(&env.ok(&["backup", "get", "--storage-location", "s3", "-o", "json"]));
    let mut v: Vec<Value> = list.as_array().unwrap().clone();
    v.sort_by_key(|b| b["spec"]["name"].as_str().unwrap_or_default().to_string());
    v
}

/// Runs the schedule now and waits for its Job to succeed; on failure, shows its logs.
fn run_now(env: &VolumeEnv, schedule: &str) -> String {
    let out = env.ok(&["schedule", "run-now", schedule]);
    let job = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no job name in {out:?}"))
        .to_string();
    assert!(job.starts_with(&format!("{schedule}-manual-")), "{out}");
    // A verifying run backs up, then restores into a scratch namespace and waits for it to be
    // Ready: with the other tests beside it on two cores, one once took over 4 minutes.
    let done = eventually_or_explain(
        &format!("job {job} finished"),
        Duration::from_secs(480),
        || {
            let out = env.kubectl(&["-n", NS, "get", "job", &job, "-o", "json"]);
            let j = json(&out);
            let count = |k: &str| j["status"][k].as_u64().unwrap_or(0);
            (count("succeeded") + count("failed") > 0).then(|| count("succeeded") == 1)
        },
        // Whether it hangs or is only slow, its log says where it is.
        || {
            let logs = env
                .cluster
                .kubectl(&["-n", NS, "logs", &format!("job/{job}")]);
            format!(
                "; its log so far:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            )
        },
    );
    let logs = env.kubectl(&["-n", NS, "logs", &format!("job/{job}")]);
    assert!(done, "scheduled run {job} failed:\n{logs}");
    logs
}

#[test]
fn scheduled_run_backs_up_in_cluster_with_the_backup_account_and_keeps_the_last() {
    let env = start();
    env.deploy_app("shop", None, "ReadWriteOnce");
    let data = env.claim_dir("shop", "data");
    std::fs::write(data.join("orders.db"), bytes(1, 64 * 1024)).unwrap();
    env.kubectl(&[
        "-n",
        "shop",
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);

    let out = env.ok(&[
        "schedule",
        "create",
        "nightly",
        "--schedule",
        "0 2 * * *",
        "--time-zone",
        "Europe/Paris",
        "--include-namespaces",
        "shop",
        "--storage-location",
        "s3",
        "--keep-last",
        "1",
    ]);
    assert!(out.contains("schedule nightly created; next run"), "{out}");

    // The CronJob as Kubernetes sees it.
    let cj = json(&env.kubectl(&["-n", NS, "get", "cronjob", "nightly", "-o", "json"]));
    assert_eq!(cj["spec"]["schedule"], "0 2 * * *");
    assert_eq!(cj["spec"]["timeZone"], "Europe/Paris");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "vbackup-backup");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!([
            "kubectl-vbackup",
            "backup",
            "create",
            "--from-schedule",
            "nightly"
        ])
    );
    assert!(pod["volumes"].to_string().contains("emptyDir"));
    // The account is bound to the backup role and nothing else.
    let bindings = json(&env.kubectl(&["get", "clusterrolebindings", "-o", "json"]));
    let bound: Vec<&str> = bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["subjects"].to_string().contains("\"vbackup-backup\""))
        .map(|b| b["roleRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(bound, ["vbackup-backup"]);
    let role = env.kubectl(&["get", "clusterrole", "vbackup-backup", "-o", "json"]);
    assert!(!json(&role)["rules"].to_string().contains("\"escalate\""));

    let table = env.ok(&["schedule", "get"]);
    assert!(
        table.contains("nightly") && table.contains("Enabled"),
        "{table}"
    );
    let describe = env.ok(&["schedule", "describe", "nightly"]);
    assert!(
        describe.contains("Europe/Paris") && describe.contains("last 1"),
        "{describe}"
    );

    // A run in the cluster: the pod has no kubeconfig, only its ServiceAccount.
    let logs = run_now(&env, "nightly");
    let first = backups(&env);
    assert_eq!(first.len(), 1, "{logs}");
    let b = &first[0];
    let name = b["spec"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("nightly-") && name.len() == "nightly-".len() + 14,
        "{name}"
    );
    assert_eq!(b["status"]["phase"], "Completed", "{logs}");
    assert_eq!(b["spec"]["labels"]["vbackup.io/schedule"], "nightly");
    // settings (kube-root-ca.crt is left out: the cluster publishes it).
    assert_eq!(b["status"]["counts"]["configmaps"], 1, "{b}");
    let volume = &b["status"]["volumes"][0];
    assert_eq!(volume["phase"], "Completed", "{b}");
    assert!(volume["bytes"].as_u64().unwrap() >= 64 * 1024, "{volume}");

    // A second run: --keep-last 1 lets the first backup go, in the run's own gc.
    std::thread::sleep(Duration::from_secs(1)); // names are per second
    let logs = run_now(&env, "nightly");
    assert!(logs.contains(&format!("deleted backup {name}")), "{logs}");
    let second = backups(&env);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0]["spec"]["name"], name.as_str());

    // Coverage: the claim is protected by the schedule; a claim nobody schedules is not,
    // and says why (exit 1).
    let out = env.ok(&["coverage", "-n", "shop"]);
    let row = out
        .lines()
        .find(|l| l.contains("pvc/data"))
        .unwrap_or_default();
    assert!(
        row.contains("yes") && row.contains("nightly") && row.contains("copied"),
        "{out}"
    );
    env.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: tmp, namespace: scratch}\nspec: {storageClassName: network, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    );
    let (out, _) = env.fails(&["coverage", "-A"]);
    let row = out
        .lines()
        .find(|l| l.contains("pvc/tmp"))
        .unwrap_or_default();
    assert!(
        row.contains("NO") && row.contains("no schedule backs up namespace scratch"),
        "{out}"
    );
    // Status: the schedule is keeping up.
    let out = env.ok(&["status"]);
    let row = out
        .lines()
        .find(|l| l.contains("nightly"))
        .unwrap_or_default();
    assert!(row.contains("Completed") && row.contains(" ok"), "{out}");

    // Pause, unpause, delete: the CronJob follows; the backups stay.
    env.ok(&["schedule", "pause", "nightly"]);
    let (out, _) = env.fails(&["status"]);
    assert!(out.contains("paused"), "{out}");
    let suspend = env.kubectl(&[
        "-n",
        NS,
        "get",
        "cronjob",
        "nightly",
        "-o",
        "jsonpath={.spec.suspend}",
    ]);
    assert_eq!(suspend, "true");
    assert!(env.ok(&["schedule", "get", "nightly"]).contains("Paused"));
    env.ok(&["schedule", "unpause", "nightly"]);
    let suspend = env.kubectl(&[
        "-n",
        NS,
        "get",
        "cronjob",
        "nightly",
        "-o",
        "jsonpath={.spec.suspend}",
    ]);
    assert_eq!(suspend, "false");
    env.ok(&["schedule", "delete", "nightly"]);
    assert!(
        !env.cluster
            .kubectl(&["-n", NS, "get", "cronjob", "nightly"])
            .status
            .success()
    );
    assert_eq!(backups(&env).len(), 1);
}

#[test]
fn scheduled_runs_verify_every_nth_backup_as_the_verify_account() {
    let env = start();
    env.deploy_app("shop", None, "ReadWriteOnce");
    let data = env.claim_dir("shop", "data");
    std::fs::write(data.join("orders.db"), bytes(2, 4096)).unwrap();
    env.ok(&[
        "schedule",
        "create",
        "checked",
        "--schedule",
        "0 3 * * *",
        "--include-namespaces",
        "shop",
        "--storage-location",
        "s3",
        "--verify-every",
        "2",
    ]);
    let cj = json(&env.kubectl(&["-n", NS, "get", "cronjob", "checked", "-o", "json"]));
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "vbackup-verify");
    // The verify account holds the backup role and the verify role, nothing else.
    let bindings = json(&env.kubectl(&["get", "clusterrolebindings", "-o", "json"]));
    let mut bound: Vec<&str> = bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["subjects"].to_string().contains("\"vbackup-verify\""))
        .map(|b| b["roleRef"]["name"].as_str().unwrap())
        .collect();
    bound.sort();
    assert_eq!(bound, ["vbackup-backup", "vbackup-verify"]);
    assert!(
        env.ok(&["schedule", "describe", "checked"])
            .contains("every 2 successful backups")
    );

    // The first successful backup is not verified, the second is: in the cluster, with
    // nothing but the verify account's rights.
    let logs = run_now(&env, "checked");
    assert!(!logs.contains("verifying backup"), "{logs}");
    std::thread::sleep(Duration::from_secs(1)); // names are per second
    let logs = run_now(&env, "checked");
    assert!(logs.contains("verifying backup checked-"), "{logs}");
    assert!(logs.contains(": PASS"), "{logs}");
    let left = env.kubectl(&["get", "namespaces", "-l", "vbackup.io/verify", "-o", "name"]);
    assert_eq!(left.trim(), "", "the run deleted its scratch namespace");
}

#[test]
fn bad_schedules_are_refused_before_anything_is_created() {
    let env = start();
    for (args, want) in [
        (vec!["--schedule", "0 2 * *"], "not a cron expression"),
        (
            vec!["--schedule", "0 2 * * *", "--time-zone", "Mars/Olympus"],
            "unknown time zone",
        ),
        (vec!["--schedule", "TZ=UTC 0 2 * * *"], "--time-zone"),
        (
            vec!["--schedule", "0 2 * * *", "--storage-location", "nowhere"],
            "nowhere",
        ),
    ] {
        let mut full = vec!["schedule", "create", "nightly"];
        full.extend(args);
        let (_, err) = env.fails(&full);
        assert!(err.contains(want), "{full:?}: {err}");
    }
    let (_, err) = env.fails(&[
        "schedule",
        "create",
        &"a".repeat(49),
        "--schedule",
        "@daily",
    ]);
    assert!(err.contains("longer than 48"), "{err}");
    assert!(
        !env.cluster
            .kubectl(&["-n", NS, "get", "cronjobs", "-o", "name"])
            .stdout
            .iter()
            .any(|_| true)
    );
    env.ok(&[
        "schedule",
        "create",
        "nightly",
        "--schedule",
        "@daily",
        "--storage-location",
        "s3",
    ]);
    let (_, err) = env.fails(&[
        "schedule",
        "create",
        "nightly",
        "--schedule",
        "@daily",
        "--storage-location",
        "s3",
    ]);
    assert!(err.contains("already exists"), "{err}");
    let (_, err) = env.fails(&["backup", "create", "--from-schedule", "nope"]);
    assert!(err.contains("schedule nope not found"), "{err}");
    let (_, err) = env.fails(&["backup", "create", "x", "--from-schedule", "nightly"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
