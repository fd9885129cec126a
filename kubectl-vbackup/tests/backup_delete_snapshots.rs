//! `backup delete` removes the backup's volume snapshots from every namespace repository,
//! and leaves other backups' snapshots alone.

use std::sync::Arc;

use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{RepoOptions, VolumeBackup, VolumeRepo};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::{AccessMode, Store};
use vbackup_test_support::PluginCluster;

async fn snapshot(repo: &VolumeRepo, source: &std::path::Path, backup: &str) {
    repo.backup_dir(VolumeBackup {
        source: source.to_path_buf(),
        volume: "pvc/data".into(),
        backup: backup.into(),
        excludes: Vec::new(),
        progress: None,
        stall_after: None,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_backup_forgets_its_volume_snapshots_only() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("store");
    let cluster = PluginCluster::start(env!("CARGO_BIN_EXE_kubectl-vbackup")).unwrap();
    cluster.install_crds();
    let (ok, stdout, stderr) = cluster.vbackup(&[
        "location",
        "create",
        "local",
        "--provider",
        "filesystem",
        "--path",
        location.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let key_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vbk1_"))
        .unwrap();
    let key = LocationKey::parse(key_line).unwrap();

    for backup in ["b1", "b2"] {
        let (ok, _, stderr) = cluster.vbackup(&[
            "backup",
            "create",
            backup,
            "--include-namespaces",
            "default",
        ]);
        assert!(ok, "{stderr}");
    }
    let store = Store::new(
        "local",
        Arc::new(FsBackend::new(&location)),
        AccessMode::ReadWrite,
    );
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"volume data").unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "default", &key, RepoOptions::default())
        .await
        .unwrap();
    snapshot(&repo, &data, "b1").await;
    snapshot(&repo, &data, "b2").await;

    let (ok, stdout, stderr) = cluster.vbackup(&["backup", "delete", "b1"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 volume snapshots"), "{stdout}");
    let left: Vec<_> = repo
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.backup)
        .collect();
    assert_eq!(left, vec![Some("b2".to_string())]);
    let (_, stdout, _) = cluster.vbackup(&["backup", "get", "-o", "json"]);
    assert!(
        !stdout.contains("\"b1\"") && stdout.contains("\"b2\""),
        "{stdout}"
    );
}
