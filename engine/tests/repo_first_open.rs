//! Many first backups of one namespace at once (movers on several nodes, two clusters on one
//! location): they must all end up in one repository that opens with the one sealed
//! password, on both kinds of location.

mod repo_support;

use repo_support::{fs_store, s3_stores, volume};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{self, ReadData, RepoOptions, VolumeRepo};
use vbackup_engine::store::Store;

const WRITERS: usize = 8;

/// Runs a first backup of namespace `race` through each of `stores` at once (each store has
/// its own client, as separate processes do), then opens the repository as a newcomer.
///
/// `atomic`: the store's conditional writes are atomic, so exactly one writer creates the
/// repository. moto checks `If-None-Match` and then writes, so two writers may both "create"
/// it there; what matters holds anyway: one repository, every snapshot in it.
async fn concurrent_first_backups(mut stores: Vec<Store>, work: &std::path::Path, atomic: bool) {
    let key = LocationKey::generate().unwrap();
    let newcomer = stores.pop().unwrap();
    let mut tasks = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let source = work.join(format!("source-{i}"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("writer.txt"), format!("writer {i}\n")).unwrap();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let (repo, created) =
                VolumeRepo::open_or_init(&store, "race", &key, RepoOptions::default()).await?;
            let summary = repo.backup_dir(volume(&source, &format!("b{i}"))).await?;
            Ok::<_, vbackup_engine::Error>((created, summary.snapshot_id))
        }));
    }
    let mut creators = 0;
    let mut written = Vec::new();
    for task in tasks {
        let (created, id) = task
            .await
            .unwrap()
            .expect("a concurrent first backup failed");
        creators += usize::from(created);
        written.push(id);
    }
    if atomic {
        assert_eq!(creators, 1, "exactly one writer creates the repository");
    } else {
        assert!(creators >= 1, "nobody created the repository");
    }
    written.sort();

    let repo = VolumeRepo::open(&newcomer, "race", &key, RepoOptions::default())
        .await
        .expect("the repository opens after concurrent first backups");
    let mut found: Vec<String> = repo
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    found.sort();
    assert_eq!(
        found, written,
        "every writer's snapshot is in the one repository"
    );
    let report = repo.check(ReadData::All).await.unwrap();
    assert!(report.is_ok(), "{report:?}");

    // The password the stock tools get opens it too (restic proves this in repo_restic).
    let password = repo::reveal_password(&newcomer, "race", &key)
        .await
        .unwrap();
    assert_eq!(repo.password(), &password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_backups_share_one_repository_on_disk() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("location");
    let stores = (0..=WRITERS).map(|_| fs_store(&location)).collect();
    concurrent_first_backups(stores, work.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_backups_share_one_repository_on_s3() {
    let work = tempfile::tempdir().unwrap();
    let stores = s3_stores("race", "p", WRITERS + 1).await;
    concurrent_first_backups(stores, work.path(), false).await;
}
