//! Volume data round trips through a namespace repository, on a directory location and on S3.

mod repo_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use repo_support::{
    assert_same_tree, fs_store, make_tree, restore_all, s3_store, volume, write_random,
};
use tokio::io::AsyncRead;
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{
    EntryKind, ProgressUpdate, ReadData, RepoOptions, RestoreSummary, StreamBackup, VolumeRepo,
    VolumeRestore,
};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::{AccessMode, ObjectBackend, ObjectMeta, ObjectReader, Store};

/// Backs a generated tree up twice and restores it; shared by both location kinds.
async fn round_trip(store: &Store, work: &std::path::Path) {
    let source = work.join("source");
    let tree = make_tree(&source, 100 << 20);
    let key = LocationKey::generate().unwrap();
    let (repo, created) = VolumeRepo::open_or_init(store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    assert!(created);

    let updates = Arc::new(Mutex::new(Vec::<ProgressUpdate>::new()));
    let seen = updates.clone();
    let mut first = volume(&source, "nightly-1");
    first.progress = Some(Arc::new(move |u| seen.lock().unwrap().push(u)));
    let first = repo.backup_dir(first).await.unwrap();
    assert_eq!(first.parent_id, None);
    assert_eq!(first.files_new as usize, tree.non_dir_count);
    assert_eq!(first.files_read as usize, tree.file_count);
    let last = *updates.lock().unwrap().last().unwrap();
    assert!(last.bytes_done >= 100 << 20, "progress reported {last:?}");
    assert!(last.files_done as usize >= tree.file_count);

    // Unchanged tree: everything comes from the parent, no file is opened.
    let (repo, created) = VolumeRepo::open_or_init(store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    assert!(!created);
    let second = repo.backup_dir(volume(&source, "nightly-2")).await.unwrap();
    assert_eq!(
        second.parent_id.as_deref(),
        Some(first.snapshot_id.as_str())
    );
    assert_eq!(second.files_read, 0);
    assert_eq!(second.files_unmodified as usize, tree.non_dir_count);
    assert_eq!(second.files_new + second.files_changed, 0);
    assert_eq!(second.data_added_stored, 0);

    let snapshots = repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 2);
    assert_eq!(snapshots[0].backup.as_deref(), Some("nightly-1"));
    assert_eq!(snapshots[1].volume, "pvc/data");
    assert!(snapshots[1].tags.contains(&"namespace=prod".to_string()));

    let target = work.join("restored");
    let restored = repo
        .restore(restore_all(&second.snapshot_id, &target))
        .await
        .unwrap();
    // The second name of the hard-linked file is linked, not written.
    assert_eq!(restored.files_restored as usize, tree.file_count - 1);
    assert_same_tree(&source, &target);
    // Holes stay holes: the 16 MiB sparse file holds one small extent on disk.
    use std::os::unix::fs::MetadataExt;
    let sparse = std::fs::metadata(target.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), 16 << 20);
    assert!(
        sparse.blocks() * 512 < 4 << 20,
        "{} blocks",
        sparse.blocks()
    );

    // A re-run (as after an interrupted restore) rewrites nothing.
    let again = repo
        .restore(restore_all(&second.snapshot_id, &target))
        .await
        .unwrap();
    assert_eq!(again.files_restored, 0);
    assert_eq!(again.files_unchanged as usize, tree.file_count - 1);
    assert_same_tree(&source, &target);

    // ls shows sizes and mtimes, relative to the volume root.
    let listing = repo.ls("latest", "", false).await.unwrap();
    let big = listing.iter().find(|e| e.path == "big.bin").unwrap();
    assert_eq!((big.kind, big.size), (EntryKind::File, 100 << 20));
    assert_eq!(big.mtime.unwrap().as_second(), 1_500_000_000);
    let link = listing.iter().find(|e| e.path == "link-relative").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("small/file-002.txt"));
    let deep = repo.ls("latest", "données", true).await.unwrap();
    assert!(
        deep.iter()
            .any(|e| e.path == "données/日本語/Ελληνικά/emoji 🎉 with spaces.txt")
    );

    // One file restored on its own, and dumped.
    let single = work.join("single");
    repo.restore(VolumeRestore {
        path: Some("small/file-007.txt".into()),
        ..restore_all(&first.snapshot_id, &single)
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(single.join("file-007.txt")).unwrap(),
        std::fs::read(source.join("small/file-007.txt")).unwrap()
    );
    let dumped = Arc::new(Mutex::new(Vec::new()));
    let n = repo
        .dump(
            "latest",
            "données/naïve façade.md",
            SharedWriter(dumped.clone()),
        )
        .await
        .unwrap();
    assert_eq!(n, "# ünïcödé\n".len() as u64);
    assert_eq!(dumped.lock().unwrap().as_slice(), "# ünïcödé\n".as_bytes());

    assert!(repo.check(ReadData::All).await.unwrap().is_ok());
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_location_round_trips_a_tree_byte_for_byte_with_metadata() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(&work.path().join("location"));
    round_trip(&store, work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_location_round_trips_a_tree_byte_for_byte_with_metadata() {
    let store = s3_store("roundtrip", "cluster-a").await;
    let work = tempfile::tempdir().unwrap();
    round_trip(&store, work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_dump_is_stored_as_one_file_and_dumped_back() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(&work.path().join("location"));
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "db", &key, RepoOptions::default())
        .await
        .unwrap();
    let dump: Vec<u8> = (0..3_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let summary = repo
        .backup_stream(
            StreamBackup {
                file_name: "postgres.sql".into(),
                volume: "dump/postgres-0".into(),
                backup: "nightly".into(),
                progress: None,
                stall_after: Some(Duration::from_secs(60)),
            },
            std::io::Cursor::new(dump.clone()),
        )
        .await
        .unwrap();
    assert_eq!(summary.bytes_total, dump.len() as u64);
    let out = Arc::new(Mutex::new(Vec::new()));
    let snapshot = summary.snapshot_id.clone();
    let n = repo
        .dump(&snapshot, "postgres.sql", SharedWriter(out.clone()))
        .await
        .unwrap();
    assert_eq!(n, dump.len() as u64);
    assert!(*out.lock().unwrap() == dump);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rustic_cache_goes_only_where_it_is_told() {
    let work = tempfile::tempdir().unwrap();
    let store = fs_store(&work.path().join("location"));
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("a.txt"), "cached\n").unwrap();
    let key = LocationKey::generate().unwrap();
    let cache = work.path().join("cache");
    let options = RepoOptions {
        cache_dir: Some(cache.clone()),
        ..RepoOptions::default()
    };
    let (repo, _) = VolumeRepo::open_or_init(&store, "cached", &key, options)
        .await
        .unwrap();
    repo.backup_dir(volume(&source, "b1")).await.unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    let cached: Vec<_> = walkdir(&cache);
    assert!(
        cached
            .iter()
            .any(|p| p.to_string_lossy().contains("snapshots")),
        "snapshots are cached in the given directory: {cached:?}"
    );

    // Without a cache directory, rustic's default cache (~/.cache/rustic) is left alone.
    let default_cache = std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/rustic");
    let before = walkdir(&default_cache);
    let (repo, _) = VolumeRepo::open_or_init(&store, "uncached", &key, RepoOptions::default())
        .await
        .unwrap();
    repo.backup_dir(volume(&source, "b1")).await.unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    assert_eq!(walkdir(&default_cache), before);
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            }
            out.push(path);
        }
    }
    out
}

/// A directory store that counts the reads (whole or ranged) of pack files (`data/`).
struct CountingPackReads {
    inner: FsBackend,
    pack_reads: Arc<AtomicUsize>,
}

#[async_trait]
impl ObjectBackend for CountingPackReads {
    async fn put(&self, key: &str, body: Bytes) -> vbackup_engine::Result<()> {
        self.inner.put(key, body).await
    }
    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> vbackup_engine::Result<u64> {
        self.inner.put_stream(key, body).await
    }
    async fn get(&self, key: &str) -> vbackup_engine::Result<ObjectReader> {
        if key.contains("/data/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> vbackup_engine::Result<Bytes> {
        if key.contains("/data/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> vbackup_engine::Result<Option<u64>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> vbackup_engine::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> vbackup_engine::Result<()> {
        self.inner.delete(key).await
    }
    async fn check_reachable(&self) -> vbackup_engine::Result<()> {
        self.inner.check_reachable().await
    }
    fn url(&self) -> String {
        self.inner.url()
    }
}

/// A directory location below `dir` whose pack reads are counted.
fn counting_store(dir: &std::path::Path) -> (Store, Arc<AtomicUsize>) {
    let pack_reads = Arc::new(AtomicUsize::new(0));
    let store = Store::new(
        "counting",
        Arc::new(CountingPackReads {
            inner: FsBackend::new(dir.join("location")),
            pack_reads: pack_reads.clone(),
        }),
        AccessMode::ReadWrite,
    );
    (store, pack_reads)
}

/// Backs `source` up and restores it into `target`; returns the repository, the snapshot,
/// the restore's summary and the pack reads the restore made.
async fn backup_and_restore(
    store: &Store,
    pack_reads: &AtomicUsize,
    source: &std::path::Path,
    target: &std::path::Path,
) -> (VolumeRepo, String, RestoreSummary, usize) {
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    let snap = repo.backup_dir(volume(source, "nightly")).await.unwrap();
    pack_reads.store(0, Ordering::SeqCst);
    let restored = repo
        .restore(restore_all(&snap.snapshot_id, target))
        .await
        .unwrap();
    let reads = pack_reads.load(Ordering::SeqCst);
    (repo, snap.snapshot_id, restored, reads)
}

/// An unchanged backup reads the parent snapshot's trees, one per directory: from whole tree
/// packs, not one request per directory (on S3, 2,000 directories took minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_trees_are_read_pack_by_pack() {
    let work = tempfile::tempdir().unwrap();
    let (store, pack_reads) = counting_store(work.path());
    let source = work.path().join("source");
    let dirs = 400;
    for d in 0..dirs {
        let dir = source.join(format!("user-{d:03}/files"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), format!("notes of user {d}\n")).unwrap();
    }
    let key = LocationKey::generate().unwrap();
    let (repo, _) = VolumeRepo::open_or_init(&store, "prod", &key, RepoOptions::default())
        .await
        .unwrap();
    repo.backup_dir(volume(&source, "first")).await.unwrap();

    pack_reads.store(0, Ordering::SeqCst);
    let second = repo.backup_dir(volume(&source, "second")).await.unwrap();
    let reads = pack_reads.load(Ordering::SeqCst);
    assert_eq!(second.files_unmodified, dirs);
    assert!(
        reads <= 5,
        "{reads} pack reads for the parent's {} trees",
        2 * dirs + 2
    );
}

/// A mail or upload volume: thousands of files of one blob each. They are written from one
/// read per pack range, not one read per file, and come back byte for byte, including files
/// sharing contents (one blob), all-zero files (holes) and modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_restored_from_one_read_per_pack_range() {
    let work = tempfile::tempdir().unwrap();
    let (store, pack_reads) = counting_store(work.path());
    let source = work.path().join("source");
    let mut files = 0;
    for d in 0..4u64 {
        let dir = source.join(format!("maildir-{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..500u64 {
            let path = dir.join(format!("{i:04}.eml"));
            if i % 2 == 0 {
                write_random(&path, 1024 + i, d * 1000 + i + 1);
            } else {
                std::fs::write(&path, format!("Subject: message {i}\n\nsame body\n")).unwrap();
            }
            files += 1;
        }
    }
    std::fs::write(source.join("zeros.bin"), vec![0u8; 64 << 10]).unwrap();
    std::fs::write(source.join("empty"), b"").unwrap();
    let read_only = source.join("maildir-0/0000.eml");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
    files += 2;

    let target = work.path().join("restored");
    let (repo, snap, restored, reads) =
        backup_and_restore(&store, &pack_reads, &source, &target).await;
    assert_eq!(restored.files_restored, files);
    assert_same_tree(&source, &target);
    // Tree blobs and a handful of data ranges, where one read per file would be 2,000+.
    assert!(reads <= 20, "{reads} pack reads to restore {files} files");

    // Restored over itself after a change: only the changed file is written again.
    std::fs::write(target.join("maildir-1/0001.eml"), "changed").unwrap();
    let again = repo.restore(restore_all(&snap, &target)).await.unwrap();
    assert_eq!(again.files_restored, 1);
    assert_same_tree(&source, &target);
}

/// Big files (database files, images) are written by several workers segment by segment,
/// each run of a file's blobs stored one after the other in a pack read at once: a 48 MiB
/// file of ~48 chunks takes a handful of reads, not one per chunk, and comes back byte for
/// byte with its holes and mtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_files_are_restored_from_a_few_reads_with_their_holes() {
    let work = tempfile::tempdir().unwrap();
    let (store, pack_reads) = counting_store(work.path());
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_random(&source.join("ibdata1"), 48 << 20, 7);
    // A disk image: data, 24 MiB of hole, data, and a hole at the end.
    let image = source.join("disk.img");
    write_random(&image, 3 << 20, 8);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&image)
        .unwrap();
    f.set_len(27 << 20).unwrap();
    use std::io::Write;
    let mut tail = vec![0u8; 2 << 20];
    tail.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 251) as u8);
    f.write_all(&tail).unwrap();
    f.set_len(40 << 20).unwrap();
    drop(f);

    let target = work.path().join("restored");
    let (_, _, restored, reads) = backup_and_restore(&store, &pack_reads, &source, &target).await;
    assert_eq!(restored.files_restored, 2);
    assert_same_tree(&source, &target);
    assert!(reads <= 24, "{reads} pack reads for ~100 chunks");
    use std::os::unix::fs::MetadataExt;
    let restored_image = std::fs::metadata(target.join("disk.img")).unwrap();
    assert_eq!(restored_image.len(), 40 << 20);
    assert!(
        restored_image.blocks() * 512 < 12 << 20,
        "holes filled: {} blocks",
        restored_image.blocks()
    );
}

/// A restore into a target that is not empty puts the snapshot's entries in place of what
/// stands in their way and never writes through a symlink it finds there: a symlink where a
/// directory goes, a file where a directory goes, a symlink where a file goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_replaces_what_stands_in_its_way_and_follows_no_symlink() {
    let work = tempfile::tempdir().unwrap();
    let (store, pack_reads) = counting_store(work.path());
    let source = work.path().join("source");
    for dir in ["uploads", "cache", "config"] {
        std::fs::create_dir_all(source.join(dir)).unwrap();
        std::fs::write(source.join(dir).join("a.txt"), format!("{dir} a\n")).unwrap();
        write_random(&source.join(dir).join("big.bin"), 3 << 20, dir.len() as u64);
    }
    std::fs::write(source.join("top.txt"), "top\n").unwrap();

    let target = work.path().join("restored");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("top.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, target.join("uploads")).unwrap();
    std::fs::write(target.join("cache"), "a file where a directory goes").unwrap();
    std::os::unix::fs::symlink(outside.join("top.txt"), target.join("top.txt")).unwrap();
    std::fs::create_dir_all(target.join("config")).unwrap();
    std::fs::write(target.join("config/a.txt"), "stale").unwrap();

    let (_, _, restored, _) = backup_and_restore(&store, &pack_reads, &source, &target).await;
    assert_eq!(restored.files_restored, 7);
    assert_same_tree(&source, &target);
    let outside_now: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside_now,
        ["top.txt"],
        "the restore wrote outside its target"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("top.txt")).unwrap(),
        "outside\n"
    );
}
