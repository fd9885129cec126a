//! Many first backups of one location at once each need the location's archive key: they
//! must all end up with the one stored, also on stores whose conditional writes are not
//! atomic, and while the winner's write is still in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;
use vbackup_engine::keys::LocationKey;
use vbackup_engine::keys::stream::{self, ArchiveKey};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::layout;
use vbackup_engine::store::location::AccessMode;
use vbackup_engine::store::{ObjectBackend, ObjectMeta, ObjectReader, Store};

const WRITERS: usize = 8;

/// How a test store creates objects "only if absent".
#[derive(Clone, Copy)]
enum Creation {
    /// Checks, then writes a moment later: racing writers all write (an S3-compatible
    /// store without `If-None-Match`).
    CheckThenWrite,
    /// Atomic, but the winner's write takes a while to land, and meanwhile a loser is
    /// told "taken" (S3's 409 for a conditional write in flight).
    SlowWinner,
}

/// A directory store with the given creation behaviour.
struct Racy {
    inner: FsBackend,
    creation: Creation,
    in_flight: AtomicBool,
}

#[async_trait]
impl ObjectBackend for Racy {
    async fn put(&self, key: &str, body: Bytes) -> vbackup_engine::Result<()> {
        self.inner.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes) -> vbackup_engine::Result<bool> {
        match self.creation {
            Creation::CheckThenWrite => {
                if self.inner.head(key).await?.is_some() {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.inner.put(key, body).await?;
                Ok(true)
            }
            Creation::SlowWinner => {
                if self.in_flight.swap(true, Ordering::SeqCst) {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.inner.put_if_absent(key, body).await
            }
        }
    }
    fn writes_conditionally(&self) -> bool {
        matches!(self.creation, Creation::SlowWinner)
    }
    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> vbackup_engine::Result<u64> {
        self.inner.put_stream(key, body).await
    }
    async fn get(&self, key: &str) -> vbackup_engine::Result<ObjectReader> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> vbackup_engine::Result<Bytes> {
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

/// Asks for the archive key through `WRITERS` stores at once (each with its own cache, as
/// separate processes have) and checks they all got the key that stays stored.
async fn concurrent_first_archive_keys(creation: Creation) {
    let work = tempfile::tempdir().unwrap();
    let backend: Arc<dyn ObjectBackend> = Arc::new(Racy {
        inner: FsBackend::new(work.path()),
        creation,
        in_flight: AtomicBool::new(false),
    });
    let key = LocationKey::generate().unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store =
                Store::new("racy", backend.clone(), AccessMode::ReadWrite).with_key(key.clone());
            tokio::spawn(async move { store.archive_key().await })
        })
        .collect();
    let mut keys: Vec<ArchiveKey> = Vec::new();
    for task in tasks {
        let got = task.await.unwrap().expect("the archive key").expect("made");
        keys.push(got);
    }

    // The oracle: the object stored at the end, opened with the location key.
    let sealed = backend.get(layout::ARCHIVE_KEY).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut { sealed }, &mut bytes)
        .await
        .unwrap();
    let stored = stream::unseal_archive_key(&key, &bytes).expect("the stored key opens");
    for (i, k) in keys.iter().enumerate() {
        assert!(
            *k == stored,
            "writer {i} encrypts with a key that is not the stored one: its backup would be \
             unreadable"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_backups_agree_on_the_archive_key_without_conditional_writes() {
    concurrent_first_archive_keys(Creation::CheckThenWrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loser_waits_for_the_winners_archive_key_still_in_flight() {
    concurrent_first_archive_keys(Creation::SlowWinner).await;
}
