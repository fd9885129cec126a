//! The archiver against rustic_core's, on the same files: identical root trees mean identical
//! chunk boundaries, content ids, node metadata and tree JSON.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustic_core::{
    BackupOptions, Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions,
    ParentOptions, TreeId,
};

use super::super::backup::snapshot_template;
use super::super::session::State;
use crate::keys::LocationKey;
use crate::repo::{RepoOptions, SnapshotSummary, VolumeBackup, VolumeRepo};
use crate::store::fs::FsBackend;
use crate::store::{AccessMode, Store};
use vbackup_test_support::noise;

fn make_source(root: &Path) {
    fs::create_dir_all(root.join("db/pages")).unwrap();
    fs::create_dir_all(root.join("données/日本語")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    // Several content-defined chunks, some repeated (deduplicated within the backup).
    let mut big = noise(1, 9 << 20);
    big.extend_from_slice(&noise(2, 3 << 20).repeat(2));
    big.extend(std::iter::repeat_n(0u8, 10 << 20));
    fs::write(root.join("db/ibdata1"), &big).unwrap();
    fs::write(root.join("db/copy-of-ibdata1"), &big).unwrap();
    for i in 0..300u64 {
        let dir = root.join(format!("db/pages/{:02}", i % 7));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("page-{i}")),
            noise(i, 100 + (i as usize * 37) % 5000),
        )
        .unwrap();
    }
    fs::write(root.join("données/日本語/naïve façade.md"), "# ünïcödé\n").unwrap();
    fs::File::create(root.join("empty")).unwrap();
    let mut f = fs::File::create(root.join("a\nnewline and \\ backslash")).unwrap();
    f.write_all(b"odd name").unwrap();
    std::os::unix::fs::symlink("db/ibdata1", root.join("link")).unwrap();
    fs::hard_link(root.join("empty"), root.join("hard-link")).unwrap();
}

fn store(dir: &Path) -> Store {
    Store::new(
        "test-fs",
        Arc::new(FsBackend::new(dir)),
        AccessMode::ReadWrite,
    )
}

fn request(source: &Path) -> VolumeBackup {
    VolumeBackup {
        source: source.to_path_buf(),
        volume: "pvc/data".into(),
        backup: "b".into(),
        excludes: Vec::new(),
        progress: None,
        stall_after: Some(Duration::from_secs(300)),
    }
}

/// The root tree of snapshot `id`.
async fn tree_of(repo: &VolumeRepo, id: &str) -> TreeId {
    let id = id.to_string();
    repo.run("read snapshot", None, None, move |state, _| {
        let r = state.into_open();
        let snap = r.get_snapshot_from_str(&id, |_| true)?;
        Ok((snap.tree, State::Open(r)))
    })
    .await
    .unwrap()
}

/// rustic_core's own archiver backing `source` up as `/data`, without a parent.
async fn rustic_backup(repo: &VolumeRepo, source: PathBuf) -> TreeId {
    repo.run("rustic backup", None, None, move |state, _| {
        let r = state.into_open().to_indexed_ids()?;
        let mut parent = ParentOptions::default();
        parent.force = true;
        let opts = BackupOptions::default()
            .as_path(PathBuf::from("/data"))
            .parent_opts(parent);
        let src = LocalSource::new(
            LocalSourceSaveOptions::default(),
            &Excludes::default(),
            &LocalSourceFilterOptions::default(),
            &[&source],
        )?;
        let snap = r.archive(
            &opts,
            &src,
            snapshot_template("ns", "pvc/data", "r")?,
            std::slice::from_ref(&source),
        )?;
        Ok((snap.tree, State::Open(r.drop_index())))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_are_identical_to_rustic_cores_and_unchanged_files_are_not_read() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    make_source(&source);
    let location = store(&work.path().join("location"));
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&location, "ns", &key, RepoOptions::default())
        .await
        .unwrap();

    let first: SnapshotSummary = repo.backup_dir(request(&source)).await.unwrap();
    assert_eq!(first.parent_id, None);
    assert_eq!(first.files_new, 307, "{first:?}");
    assert_eq!(first.warning_count, 0, "{first:?}");
    // ibdata1 (25 MiB) and its copy are stored once; its 10 MiB of zeros are twenty
    // identical 512 KiB chunks (a zero hash cuts at the minimum size): one blob, compressed.
    assert!(first.data_added < 17 << 20, "{first:?}");
    assert!(
        first.data_added_stored < first.data_added - (500 << 10),
        "{first:?}"
    );
    let ours = tree_of(&repo, &first.snapshot_id).await;
    let theirs = rustic_backup(&repo, source.clone()).await;
    assert_eq!(ours, theirs, "rustic_core's archiver built another tree");

    // rustic's snapshot (another backup name, same group) is now the latest: the parent.
    let second = repo.backup_dir(request(&source)).await.unwrap();
    assert!(second.parent_id.is_some());
    assert_eq!(second.files_unmodified, 307, "{second:?}");
    assert_eq!(second.files_read, 0, "{second:?}");
    assert_eq!(second.data_added, 0, "{second:?}");
    assert_eq!(tree_of(&repo, &second.snapshot_id).await, ours);

    fs::write(source.join("db/pages/03/page-3"), b"changed").unwrap();
    let third = repo.backup_dir(request(&source)).await.unwrap();
    assert_eq!(
        (
            third.files_changed,
            third.files_unmodified,
            third.files_read
        ),
        (1, 306, 1),
        "{third:?}"
    );
    let theirs = rustic_backup(&repo, source.clone()).await;
    assert_eq!(tree_of(&repo, &third.snapshot_id).await, theirs);
}
