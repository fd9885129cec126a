//! Paths excluded inside a volume (gitignore-style, relative to the volume root) are left out
//! of its snapshot, and a first backup reports the data it stored.

mod repo_support;

use std::collections::BTreeSet;

use repo_support::{fs_store, volume};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{EntryKind, RepoOptions, VolumeRepo};

fn touch(root: &std::path::Path, rel: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, rel.as_bytes()).unwrap();
}

#[tokio::test]
async fn gitignore_style_excludes_apply_below_the_volume_root_only() {
    let dir = tempfile::tempdir().unwrap();
    // The volume lives under a folder named like an excluded pattern: only paths below the
    // root may match, never the root's own path.
    let source = dir.path().join("cache/volume");
    for rel in [
        "keep.txt",
        "cache/thumb.png",
        "app/cache/x.bin",
        "logs/today.log",
        "app/logs/kept.log",
        "upload.tmp",
        "deep/er/upload.tmp",
        "notes/cache",
    ] {
        touch(&source, rel);
    }
    let store = fs_store(&dir.path().join("store"));
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "app", &key, RepoOptions::default())
        .await
        .unwrap();
    let mut req = volume(&source, "b1");
    // `cache/` folders at any depth, `/logs` only at the root, `*.tmp` anywhere.
    req.excludes = vec!["cache/".into(), "/logs".into(), "*.tmp".into()];
    let summary = repo.backup_dir(req).await.unwrap();
    assert!(
        summary.data_added_stored > 0,
        "a first backup stores data: {summary:?}"
    );
    let files: BTreeSet<String> = repo
        .ls(&summary.snapshot_id, "", true)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.path)
        .collect();
    let want: BTreeSet<String> = ["keep.txt", "app/logs/kept.log", "notes/cache"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(files, want, "a file named cache is not a cache/ folder");
}
