//! Snapshots of another tool's restic repository (Velero's, written by the stock `restic`
//! with files at the snapshot's root) copied into a vbackup repository: re-rooted under
//! `/data`, restorable byte for byte, sound for the stock `restic`, and never copied twice.

mod repo_support;

use std::collections::BTreeMap;
use std::path::Path;

use repo_support::{assert_same_tree, files_under, fs_store, make_tree, restic_in, restore_all};
use vbackup_engine::keys::{LocationKey, RepoPassword};
use vbackup_engine::repo::{self, RepoOptions, VolumeRepo};

const VELERO_PASSWORD: &str = "static-passw0rd";

/// `restic backup .` in `source`, as Velero's node agent ran it; returns the snapshot id.
fn velero_backup(repo: &Path, source: &Path) -> String {
    let out = restic_in(
        repo,
        VELERO_PASSWORD,
        source,
        &["backup", ".", "--json", "--tag=ns=prod"],
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message_type"] == "summary")
        .and_then(|l| l["snapshot_id"].as_str().map(str::to_string))
        .expect("restic printed its snapshot id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velero_snapshots_are_copied_rerooted_and_never_twice() {
    let work = tempfile::tempdir().unwrap();
    let bucket = work.path().join("bucket");
    let velero_repo = bucket.join("restic/prod");
    std::fs::create_dir_all(&velero_repo).unwrap();
    restic_in(&velero_repo, VELERO_PASSWORD, work.path(), &["init"]);
    let source = work.path().join("source");
    make_tree(&source, 3 << 20);
    let velero_snapshot = velero_backup(&velero_repo, &source);

    let velero = fs_store(&bucket).into_velero(RepoPassword::from_text(VELERO_PASSWORD.into()));
    let from = VolumeRepo::open_existing(&velero, "prod", None, RepoOptions::default())
        .await
        .unwrap();
    let location = work.path().join("location");
    let store = fs_store(&location);
    let key = LocationKey::generate().unwrap();
    let (into, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();

    let import = async |backup: &str| {
        into.import_snapshot(
            &from,
            &velero_snapshot,
            "pvc/data",
            backup,
            "velero-snapshot",
        )
        .await
        .unwrap()
    };
    let copied = import("nightly").await;
    assert!(copied.copied);

    // Restored by vbackup: the volume's files, as the source had them.
    let target = work.path().join("restored");
    into.restore(restore_all(&copied.snapshot_id, &target))
        .await
        .unwrap();
    assert_same_tree(&source, &target);

    // The stock restic sees vbackup's layout and a sound repository.
    let password = repo::reveal_password(&store, "prod", &key).await.unwrap();
    let repo_dir = location.join("repos/prod");
    restic_in(
        &repo_dir,
        password.reveal(),
        work.path(),
        &["check", "--read-data"],
    );
    let listed = restic_in(
        &repo_dir,
        password.reveal(),
        work.path(),
        &["snapshots", "--json"],
    );
    let snapshots: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let [snap] = snapshots.as_array().unwrap().as_slice() else {
        panic!("one snapshot, the step copy removed: {snapshots}")
    };
    assert_eq!(snap["paths"], serde_json::json!(["/data"]));
    assert_eq!(snap["hostname"], "prod");
    let tags = snap["tags"].to_string();
    for tag in [
        "vbackup",
        "backup=nightly",
        "volume=pvc/data",
        "velero-snapshot=",
    ] {
        assert!(tags.contains(tag), "{tag} missing: {tags}");
    }

    // Again: the same snapshot, nothing written.
    let before = files_under(&location);
    let again = import("nightly").await;
    assert!(!again.copied);
    assert_eq!(again.snapshot_id, copied.snapshot_id);
    assert_eq!(files_under(&location), before);

    // For another backup: a new snapshot, no pack written.
    let packs = |all: &BTreeMap<String, u64>| {
        all.keys()
            .filter(|k| k.starts_with("repos/prod/data/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let other = import("weekly").await;
    assert!(other.copied);
    assert_ne!(other.snapshot_id, copied.snapshot_id);
    assert_eq!(packs(&files_under(&location)), packs(&before));
}
