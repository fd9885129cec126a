//! The stock `restic` tool reads a vbackup repository given its password (Debian's restic;
//! CI installs it with `apt-get install -y restic`).

mod repo_support;

use std::process::Command;
use std::time::Duration;

use repo_support::{assert_same_tree, fs_store, make_tree};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{self, RepoOptions, VolumeBackup, VolumeRepo};

fn restic(repo_dir: &std::path::Path, password: &str, args: &[&str]) -> std::process::Output {
    let output = Command::new("restic")
        .arg("-r")
        .arg(repo_dir)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .expect("restic is installed (apt-get install -y restic)");
    assert!(
        output.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_restic_lists_checks_and_restores_a_directory_location_repository() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let source = work.path().join("source");
    make_tree(&source, 8 << 20);
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let snap = repo
        .backup_dir(VolumeBackup {
            source: source.clone(),
            volume: "pvc/data".into(),
            backup: "nightly".into(),
            excludes: Vec::new(),
            progress: None,
            stall_after: Some(Duration::from_secs(120)),
        })
        .await
        .unwrap();

    // What `kubectl vbackup repo password prod` prints.
    let password = repo::reveal_password(&store, "prod", &key).await.unwrap();
    let repo_dir = location.join("repos/prod");

    let listed = restic(&repo_dir, password.reveal(), &["snapshots", "--json"]);
    let snapshots: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(snapshots[0]["id"], snap.snapshot_id.as_str());
    assert_eq!(snapshots[0]["hostname"], "prod");
    let tags: Vec<&str> = snapshots[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"backup=nightly"), "{tags:?}");

    restic(&repo_dir, password.reveal(), &["check", "--read-data"]);

    let target = work.path().join("restic-restored");
    restic(
        &repo_dir,
        password.reveal(),
        &[
            "restore",
            &snap.snapshot_id,
            "--target",
            target.to_str().unwrap(),
        ],
    );
    // restic restores the snapshot's paths: the volume is under /data.
    assert_same_tree(&source, &target.join("data"));

    let wrong = Command::new("restic")
        .arg("-r")
        .arg(&repo_dir)
        .args(["--no-cache", "snapshots"])
        .env("RESTIC_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
}
