//! Every namespace repository of one location, each opened once for a whole operation:
//! `gc` forgets the snapshots of many backups and then prunes, and each repository's
//! config, key and session are read once for all of it, not once per backup.

use std::collections::BTreeMap;

use super::{PruneSummary, RepoOptions, VolumeRepo};
use crate::Result;
use crate::keys::LocationKey;
use crate::store::Store;

/// The namespace repositories of a location, opened on first use and kept.
pub struct LocationRepos {
    store: Store,
    /// `None` when the location has no repository (so its key is not needed).
    key: Option<LocationKey>,
    namespaces: Vec<String>,
    opened: BTreeMap<String, VolumeRepo>,
}

impl LocationRepos {
    /// The repositories of `namespaces` in `store`, opened with the location key `key`
    /// (`None` only when there are none).
    pub(crate) fn new(
        store: &Store,
        namespaces: Vec<String>,
        key: Option<LocationKey>,
    ) -> LocationRepos {
        LocationRepos {
            store: store.clone(),
            key,
            namespaces,
            opened: BTreeMap::new(),
        }
    }

    /// The repository of `namespace`, opened the first time it is asked for.
    async fn repo(&mut self, namespace: &str) -> Result<VolumeRepo> {
        if let Some(repo) = self.opened.get(namespace) {
            return Ok(repo.clone());
        }
        let Some(key) = &self.key else {
            return Err(crate::Error::Internal(format!(
                "no location key for the repository of namespace {namespace}"
            )));
        };
        let repo = VolumeRepo::open(&self.store, namespace, key, RepoOptions::default()).await?;
        self.opened.insert(namespace.to_string(), repo.clone());
        Ok(repo)
    }

    /// Forgets the volume snapshots that `backup` made, in every repository; returns each
    /// namespace with the forgotten snapshot ids. The data they alone used is freed by the
    /// next prune.
    pub async fn forget_backup(&mut self, backup: &str) -> Result<Vec<(String, Vec<String>)>> {
        let mut forgotten = Vec::new();
        for namespace in self.namespaces.clone() {
            let ids = self.repo(&namespace).await?.forget_backup(backup).await?;
            if !ids.is_empty() {
                forgotten.push((namespace, ids));
            }
        }
        Ok(forgotten)
    }

    /// Prunes every repository (see [`VolumeRepo::prune_keeping_marked`]); one result per
    /// namespace, so one damaged repository does not keep the others from being pruned.
    pub async fn prune(&mut self, keep_marked: jiff::Span) -> Vec<(String, Result<PruneSummary>)> {
        let mut out = Vec::with_capacity(self.namespaces.len());
        for namespace in self.namespaces.clone() {
            let result = match self.repo(&namespace).await {
                Ok(repo) => repo.prune_keeping_marked(keep_marked).await,
                Err(e) => Err(e),
            };
            out.push((namespace, result));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;
    use tokio::io::AsyncRead;

    use super::*;
    use crate::repo::VolumeBackup;
    use crate::store::fs::FsBackend;
    use crate::store::location::AccessMode;
    use crate::store::{ObjectBackend, ObjectMeta, ObjectReader};

    /// A directory store that counts the reads of sealed repository passwords (one per
    /// opening of a repository).
    struct CountingOpens {
        inner: FsBackend,
        sealed_reads: AtomicUsize,
    }

    #[async_trait]
    impl ObjectBackend for CountingOpens {
        async fn put(&self, key: &str, body: Bytes) -> Result<()> {
            self.inner.put(key, body).await
        }
        async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
            self.inner.put_if_absent(key, body).await
        }
        fn writes_conditionally(&self) -> bool {
            true
        }
        async fn put_stream(
            &self,
            key: &str,
            body: &mut (dyn AsyncRead + Send + Unpin),
        ) -> Result<u64> {
            self.inner.put_stream(key, body).await
        }
        async fn get(&self, key: &str) -> Result<ObjectReader> {
            if key.ends_with("/vbackup-key.sealed") {
                self.sealed_reads.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
            self.inner.get_range(key, offset, len).await
        }
        async fn head(&self, key: &str) -> Result<Option<u64>> {
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key).await
        }
        async fn check_reachable(&self) -> Result<()> {
            self.inner.check_reachable().await
        }
        fn url(&self) -> String {
            self.inner.url()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_repository_is_opened_once_for_every_forget_and_the_prune() {
        let work = tempfile::tempdir().unwrap();
        let backend = Arc::new(CountingOpens {
            inner: FsBackend::new(work.path().join("location")),
            sealed_reads: AtomicUsize::new(0),
        });
        let store = Store::new("counting", backend.clone(), AccessMode::ReadWrite);
        let key = LocationKey::generate().unwrap();
        let namespaces = ["shop", "blog"];
        for ns in namespaces {
            for backup in ["b1", "b2"] {
                let source = work.path().join(format!("{ns}-{backup}"));
                std::fs::create_dir_all(&source).unwrap();
                std::fs::write(source.join("f.txt"), format!("{ns} {backup}\n")).unwrap();
                let (repo, _) = VolumeRepo::open_or_init(&store, ns, &key, RepoOptions::default())
                    .await
                    .unwrap();
                repo.backup_dir(VolumeBackup {
                    source,
                    volume: "pvc/data".into(),
                    backup: backup.into(),
                    excludes: Vec::new(),
                    progress: None,
                    stall_after: Some(Duration::from_secs(120)),
                })
                .await
                .unwrap();
            }
        }
        backend.sealed_reads.store(0, Ordering::SeqCst);

        let mut repos = LocationRepos::new(
            &store,
            namespaces.iter().map(|n| n.to_string()).collect(),
            Some(key.clone()),
        );
        for backup in ["b1", "b2"] {
            let forgotten = repos.forget_backup(backup).await.unwrap();
            assert_eq!(forgotten.len(), 2, "{backup}: {forgotten:?}");
            assert!(
                forgotten.iter().all(|(_, ids)| ids.len() == 1),
                "{forgotten:?}"
            );
        }
        for (ns, pruned) in repos.prune(jiff::Span::new()).await {
            pruned.unwrap_or_else(|e| panic!("prune of {ns}: {e}"));
        }
        assert_eq!(
            backend.sealed_reads.load(Ordering::SeqCst),
            namespaces.len(),
            "each repository is opened once for the whole operation"
        );

        // The oracle: a fresh opening finds no snapshot left.
        for ns in namespaces {
            let repo = VolumeRepo::open(&store, ns, &key, RepoOptions::default())
                .await
                .unwrap();
            assert!(repo.snapshots().await.unwrap().is_empty(), "{ns}");
        }
    }
}
