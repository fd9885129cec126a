//! Pod-volume features beyond the plain round trip: `explain`, single files, migration into
//! another namespace and storage class over S3, CSI snapshots with data move, bounded snapshot
//! waits, policy errors before anything is copied, and a mover killed mid-copy.

mod volumes;

use serde_json::Value;
use volumes::{VolumeEnv, bytes, tree, write_file};

fn volume(env: &VolumeEnv, backup: &str, claim: &str) -> Value {
    let out = env.ok(&["backup", "describe", backup, "-o", "json"]);
    let record: Value = serde_json::from_str(&out).unwrap();
    record["status"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["name"] == claim).cloned())
        .unwrap_or_else(|| panic!("no volume {claim} in {backup}: {record:#}"))
}

#[test]
fn explain_and_single_files_and_policy_errors() {
    let env = VolumeEnv::start();
    env.deploy_app("notes", None, "ReadWriteOnce");
    let data = env.claim_dir("notes", "data");
    write_file(
        &data.join("docs/a.txt"),
        b"alpha",
        0o640,
        Some((1001, 1001)),
        1_700_000_000,
    );
    write_file(
        &data.join("docs/b.txt"),
        &bytes(3, 5000),
        0o644,
        None,
        1_700_000_001,
    );

    // explain gives the policy's answer per volume, and why.
    let pod = env.kubectl(&[
        "-n",
        "notes",
        "get",
        "pods",
        "-l",
        "app=app",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let out = env.ok(&["explain", &format!("pod/{pod}"), "-n", "notes"]);
    assert!(
        out.contains("yes, file copy")
            && out.contains("claim-backed volumes are copied by default"),
        "{out}"
    );
    assert!(out.contains("emptyDir is pod-local scratch space"), "{out}");
    env.kubectl(&[
        "-n",
        "notes",
        "annotate",
        "pod",
        &pod,
        "backup.velero.io/backup-volumes-excludes=data",
    ]);
    let out = env.ok(&["explain", "pvc/data", "-n", "notes"]);
    assert!(
        out.contains("listed in the pod's backup.velero.io/backup-volumes-excludes"),
        "{out}"
    );
    env.kubectl(&[
        "-n",
        "notes",
        "annotate",
        "pod",
        &pod,
        "backup.velero.io/backup-volumes-excludes-",
    ]);
    let (_, err) = env.fails(&["explain", "deployment/app", "-n", "notes"]);
    assert!(err.contains("pod/NAME"), "{err}");

    // Bad policy YAML is refused before anything is copied, naming the line.
    let policy = env.dir.path().join("policy.yaml");
    std::fs::write(&policy, "version: v1\nvolumePolicies:\n- conditions:\n    capacity: \"10Gi\"\n  action:\n    type: skip\n").unwrap();
    env.kubectl(&[
        "create",
        "configmap",
        "bad-policy",
        "-n",
        "vbackup-system",
        &format!("--from-file=policy.yaml={}", policy.display()),
    ]);
    let (_, err) = env.fails(&[
        "backup",
        "create",
        "refused",
        "-n",
        "notes",
        "--resource-policies-configmap",
        "bad-policy",
    ]);
    assert!(
        err.contains("line 4") && err.contains("LOWER,UPPER"),
        "{err}"
    );
    let (_, err) = env.fails(&["backup", "describe", "refused"]);
    assert!(err.contains("not found"), "nothing was written: {err}");

    env.ok(&["backup", "create", "notes-1", "-n", "notes"]);
    let v = volume(&env, "notes-1", "data");
    assert_eq!(v["phase"], "Completed");
    assert!(
        v["bytesAdded"].as_u64().unwrap() > 0,
        "a first backup stores data: {v:#}"
    );

    // A person deletes a file; it comes back from the location, with no pod.
    let before = tree(&data);
    std::fs::remove_file(data.join("docs/a.txt")).unwrap();
    let out = env.ok(&[
        "snapshot", "ls", "--backup", "notes-1", "-n", "notes", "--pvc", "data", "docs",
    ]);
    assert!(
        out.contains("/docs/a.txt") && out.contains("-0640"),
        "{out}"
    );
    let local = env.dir.path().join("restored");
    env.ok(&[
        "snapshot",
        "restore",
        "--backup",
        "notes-1",
        "-n",
        "notes",
        "--pvc",
        "data",
        "--path",
        "docs/a.txt",
        "--to",
        local.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(local.join("a.txt")).unwrap(), b"alpha");
    // ... and back into the claim, in place, through a mover.
    env.ok(&[
        "snapshot",
        "restore",
        "--backup",
        "notes-1",
        "-n",
        "notes",
        "--pvc",
        "data",
        "--path",
        "docs/a.txt",
        "--into-pvc",
    ]);
    let data = env.claim_dir("notes", "data");
    assert_eq!(
        tree(&data)["docs/a.txt"],
        before["docs/a.txt"],
        "bytes, mode, owner and mtime are back"
    );
    let (_, err) = env.fails(&[
        "snapshot", "ls", "--backup", "notes-1", "-n", "notes", "--pvc", "nope",
    ]);
    assert!(
        err.contains("no volume for claim notes/nope") && err.contains("notes/data"),
        "{err}"
    );
    assert_eq!(env.movers("notes").trim(), "");
}

#[test]
fn migration_into_another_namespace_and_storage_class_over_s3() {
    let env = VolumeEnv::start();
    env.create_s3_location("s3");
    env.deploy_app("prod", Some("local"), "ReadWriteOnce");
    let data = env.claim_dir("prod", "data");
    for i in 0..50u64 {
        write_file(
            &data.join(format!("f{i}")),
            &bytes(i, 20_000),
            0o600,
            Some((999, 999)),
            1_700_000_000 + i as i64,
        );
    }
    let expected = tree(&data);
    env.ok(&[
        "backup",
        "create",
        "prod-1",
        "-n",
        "prod",
        "--storage-location",
        "s3",
    ]);
    assert_eq!(volume(&env, "prod-1", "data")["phase"], "Completed");
    env.ok(&[
        "restore",
        "create",
        "staging",
        "--from-backup",
        "prod-1",
        "--namespace-mappings",
        "prod:staging",
        "--storage-class-mappings",
        "local:local-fast",
    ]);
    env.wait_for("staging", "deployment/app", "{.status.readyReplicas}", "1");
    env.wait_for(
        "staging",
        "pvc/data",
        "{.spec.storageClassName}",
        "local-fast",
    );
    assert_eq!(tree(&env.claim_dir("staging", "data")), expected);
    assert_eq!(tree(&data), expected, "the source is untouched");
}

#[test]
fn snapshots_move_data_and_never_ready_classes_fail_in_bounded_time() {
    let env = VolumeEnv::start();
    env.deploy_app("db", None, "ReadWriteOnce");
    let data = env.claim_dir("db", "data");
    write_file(
        &data.join("pgdata/base"),
        &bytes(1, 100_000),
        0o600,
        Some((999, 999)),
        1_700_000_000,
    );
    let expected = tree(&data);
    env.ok(&[
        "backup",
        "create",
        "snap-1",
        "-n",
        "db",
        "--snapshot-volumes",
        "--snapshot-move-data",
    ]);
    let v = volume(&env, "snap-1", "data");
    assert_eq!(
        (v["phase"].as_str(), v["method"].as_str()),
        (Some("Completed"), Some("snapshot-move-data")),
        "{v:#}"
    );
    let left = env.kubectl(&["-n", "db", "get", "volumesnapshots,pvc", "-o", "name"]);
    assert_eq!(
        left.trim(),
        "persistentvolumeclaim/data",
        "temporary snapshot and claim are deleted"
    );

    env.apply(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: stuck}\ndriver: local.csi.vbackup.io\ndeletionPolicy: Delete\nparameters: {testnode.vbackup.io/never-ready: \"true\"}\n",
    );
    let started = std::time::Instant::now();
    let (out, err) = env.fails(&[
        "backup",
        "create",
        "snap-2",
        "-n",
        "db",
        "--snapshot-volumes",
        "--snapshot-move-data",
        "--snapshot-class",
        "stuck",
        "--snapshot-timeout",
        "5s",
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "bounded, not hung"
    );
    assert!(out.contains("PartiallyFailed"), "{out}\n{err}");
    let v = volume(&env, "snap-2", "data");
    assert_eq!(v["phase"], "Failed");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("made no progress for 5s"),
        "{v:#}"
    );

    env.delete_namespace("db");
    env.ok(&["restore", "create", "--from-backup", "snap-1"]);
    env.wait_for("db", "deployment/app", "{.status.readyReplicas}", "1");
    assert_eq!(tree(&env.claim_dir("db", "data")), expected);
}

#[test]
fn a_mover_killed_mid_copy_fails_clearly_and_a_rerun_succeeds() {
    let env = VolumeEnv::start();
    env.deploy_app("big", None, "ReadWriteOnce");
    let data = env.claim_dir("big", "data");
    for i in 0..8u64 {
        write_file(
            &data.join(format!("chunk-{i}")),
            &bytes(100 + i, 64 << 20),
            0o644,
            None,
            1_700_000_000,
        );
    }
    let kubeconfig = env.cluster.kubeconfig().to_path_buf();
    let killer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            let out = std::process::Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    kubeconfig.to_str().unwrap(),
                    "-n",
                    "big",
                    "get",
                    "pods",
                    "-l",
                    "vbackup.io/mover=true",
                    "-o",
                    "jsonpath={.items[?(@.status.phase==\"Running\")].metadata.name}",
                ])
                .output()
                .unwrap();
            let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !name.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let _ = std::process::Command::new("kubectl")
                    .args([
                        "--kubeconfig",
                        kubeconfig.to_str().unwrap(),
                        "-n",
                        "big",
                        "delete",
                        "pod",
                        &name,
                        "--grace-period=0",
                        "--force",
                    ])
                    .output();
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    });
    let (out, err) = env.fails(&["backup", "create", "big-1", "-n", "big"]);
    assert!(
        killer.join().unwrap(),
        "the mover was seen running and killed"
    );
    assert!(out.contains("PartiallyFailed"), "{out}\n{err}");
    let v = volume(&env, "big-1", "data");
    assert_eq!(v["phase"], "Failed");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("mover of claim big/data")
            && (message.contains("deleted") || message.contains("exit code")),
        "{message}"
    );
    assert_eq!(env.movers("big").trim(), "");

    env.ok(&["backup", "create", "big-2", "-n", "big"]);
    assert_eq!(volume(&env, "big-2", "data")["phase"], "Completed");
    assert_eq!(volume(&env, "big-2", "data")["files"], 8);
}
