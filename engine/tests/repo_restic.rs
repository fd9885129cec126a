//! The stock `restic` tool reads a vbackup repository given its password (Debian's restic;
//! CI installs it with `apt-get install -y restic`).

mod repo_support;

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;
use std::time::Duration;

use repo_support::{assert_same_tree, fs_store, make_tree, volume, write_random};
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

/// vbackup chunks with the project's own Rabin hash (patches/rustic_cdc, tables shared per
/// polynomial). If a single cut point differed from restic's, restic backing up the same files
/// into the same repository would store the chunks around it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_finds_every_chunk_of_a_vbackup_backup_already_stored() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let source = work.path().join("source");
    std::fs::create_dir_all(source.join("db")).unwrap();
    // Incompressible and half-repetitive data, several content-defined chunks each
    // (restic's chunker: 512 KiB minimum, 1 MiB average, 8 MiB maximum).
    write_random(&source.join("media.bin"), 12 << 20, 7);
    // A database file: random megabytes alternating with megabytes of one repeated page.
    let db = source.join("db/ibdata1");
    write_random(&db, 12 << 20, 8);
    let page: Vec<u8> = (0u8..=255).cycle().take(16 << 10).collect();
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    for segment in (1..12u64).step_by(2) {
        file.seek(SeekFrom::Start(segment << 20)).unwrap();
        for _ in 0..64 {
            file.write_all(&page).unwrap();
        }
    }
    drop(file);
    for i in 0..20u64 {
        write_random(&source.join(format!("small-{i}")), 1000 + i * 997, 100 + i);
    }

    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let snap = repo.backup_dir(volume(&source, "nightly")).await.unwrap();
    assert!(snap.data_added > 12 << 20, "{snap:?}");

    let password = repo::reveal_password(&store, "prod", &key).await.unwrap();
    let repo_dir = location.join("repos/prod");
    let output = restic(
        &repo_dir,
        password.reveal(),
        &["backup", "--json", source.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary from restic backup --json: {stdout}"));
    assert_eq!(summary["files_new"], 22, "{summary}");
    assert_eq!(
        summary["data_blobs"], 0,
        "restic stored new chunks: {summary}"
    );
    restic(&repo_dir, password.reveal(), &["check"]);
}
