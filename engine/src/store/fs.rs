//! A location in a local directory: the embedded default, and what tests use beside S3.

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{ObjectBackend, ObjectMeta, ObjectReader};
use crate::{Error, Result};

/// Marks files being written; they are renamed into place when complete and never listed.
const TEMP_MARKER: &str = ".vbackup-tmp-";

/// How a finished temporary file takes its key.
#[derive(Clone, Copy)]
enum Publish {
    Replace,
    IfAbsent,
}

/// Object store in a local directory; each key is a file below the root.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    /// A store rooted at `root` (which need not exist yet: writes create it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBackend { root: root.into() }
    }

    /// The directory this store writes to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(Error::BadInput(format!(
                "object key {key:?} is not a relative path inside the location"
            )));
        }
        Ok(self.root.join(relative))
    }

    /// Writes through a temporary file renamed into place, so readers never see half an object.
    async fn write_atomically<F>(&self, key: &str, write: F) -> Result<u64>
    where
        F: AsyncFnOnce(&mut tokio::fs::File) -> std::io::Result<u64>,
    {
        self.write_via_temp(key, Publish::Replace, write)
            .await
            .map(|written| written.unwrap_or_default())
    }

    /// Writes a temporary file, then publishes it under `key`: renamed over whatever is there
    /// (`Replace`), or hard-linked only if nothing is (`IfAbsent`: `link(2)` fails with
    /// `EEXIST` atomically, like `O_EXCL`, and readers still never see half an object).
    /// `None` when `IfAbsent` found the key taken.
    async fn write_via_temp<F>(&self, key: &str, publish: Publish, write: F) -> Result<Option<u64>>
    where
        F: AsyncFnOnce(&mut tokio::fs::File) -> std::io::Result<u64>,
    {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{file_name}{TEMP_MARKER}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = async {
            let mut file = create_temp(&dir, &temp).await?;
            let written = write(&mut file).await?;
            file.flush().await?;
            file.sync_all().await?;
            match publish {
                Publish::Replace => {
                    tokio::fs::rename(&temp, &path).await?;
                    Ok(Some(written))
                }
                Publish::IfAbsent => {
                    let linked = match tokio::fs::hard_link(&temp, &path).await {
                        Ok(()) => Some(written),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                        Err(e) => return Err(e),
                    };
                    tokio::fs::remove_file(&temp).await?;
                    Ok(linked)
                }
            }
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result.map_err(Error::io("write", path))
    }

    fn not_found(&self, key: &str) -> Error {
        Error::NotFound {
            location: self.url(),
            key: key.to_string(),
        }
    }
}

#[async_trait]
impl ObjectBackend for FsBackend {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.write_atomically(key, async |file| {
            file.write_all(&body).await?;
            Ok(body.len() as u64)
        })
        .await
        .map(drop)
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let written = self
            .write_via_temp(key, Publish::IfAbsent, async |file| {
                file.write_all(&body).await?;
                Ok(body.len() as u64)
            })
            .await?;
        Ok(written.is_some())
    }

    fn writes_conditionally(&self) -> bool {
        // Published with an exclusive link: exactly one writer wins.
        true
    }

    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64> {
        self.write_atomically(key, async |file| tokio::io::copy(body, file).await)
            .await
    }

    async fn get(&self, key: &str) -> Result<ObjectReader> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(key)),
            Err(e) => Err(Error::io("open", path)(e)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        let mut buf = Vec::new();
        self.get_range_into(key, offset, len, &mut buf).await?;
        Ok(buf.into())
    }

    async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let path = self.path(key)?;
        let reading = path.clone();
        let mut data = std::mem::take(buf);
        // One trip to the blocking pool per range: tokio's file reads go through it in
        // 2 MiB steps, each copied once more, and a zeroed buffer cost a memset per range.
        let (result, data) = tokio::task::spawn_blocking(move || {
            let result = read_range(&reading, offset, len, &mut data);
            (result, data)
        })
        .await
        .map_err(|e| Error::Internal(format!("reading a range of {key}: {e}")))?;
        *buf = data;
        result.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.not_found(key),
            _ => Error::io("read range of", path)(e),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the deepest directory the prefix names fully.
        let start_key = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let start = if start_key.is_empty() {
            self.root.clone()
        } else {
            self.path(start_key)?
        };
        let mut out = Vec::new();
        let mut pending = vec![(start, start_key.to_string())];
        while let Some((dir, dir_key)) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", dir)(e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(Error::io("list", &dir))?
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = if dir_key.is_empty() {
                    name.clone()
                } else {
                    format!("{dir_key}/{name}")
                };
                let file_type = entry
                    .file_type()
                    .await
                    .map_err(Error::io("stat", entry.path()))?;
                if file_type.is_dir() {
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        pending.push((entry.path(), key));
                    }
                } else if file_type.is_file()
                    && !name.contains(TEMP_MARKER)
                    && key.starts_with(prefix)
                {
                    let size = entry
                        .metadata()
                        .await
                        .map_err(Error::io("stat", entry.path()))?
                        .len();
                    out.push(ObjectMeta { key, size });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("delete", path)(e)),
        }
        // Empty folders left behind would otherwise look like backups with no files.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    async fn check_reachable(&self) -> Result<()> {
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(Error::BadInput(format!(
                "{} is not a directory: fix the location's --path",
                self.root.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BadInput(format!(
                "directory {} does not exist: create it or fix the location's --path",
                self.root.display()
            ))),
            Err(e) => Err(Error::io("stat", &self.root)(e)),
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// Makes `dir` and creates the temporary file `temp` in it. Deleting a folder's last object
/// prunes the emptied folders, so a concurrent delete may remove `dir` while it is being
/// made (`mkdir` says it exists, then it is gone) or before the file is created in it (seen
/// in CI: a dump's snapshot write failed with ENOENT while a failed dump of the same
/// repository was being cleaned up); make it again and retry.
async fn create_temp(dir: &Path, temp: &Path) -> std::io::Result<tokio::fs::File> {
    use std::io::ErrorKind::{AlreadyExists, NotFound};
    const RETRIES: u32 = 10;
    let mut retries = 0;
    loop {
        match tokio::fs::create_dir_all(dir).await {
            Err(e) if retries == RETRIES || !matches!(e.kind(), NotFound | AlreadyExists) => {
                // Say which step failed: the caller names only the file.
                let what = format!("create directory {}: {e}", dir.display());
                return Err(std::io::Error::new(e.kind(), what));
            }
            Err(_) => {}
            Ok(()) => match tokio::fs::File::create(temp).await {
                Err(e) if e.kind() == NotFound && retries < RETRIES => {}
                created => return created,
            },
        }
        retries += 1;
    }
}

/// Reads exactly `len` bytes at `offset` of the file at `path` into `buf`, replacing its
/// contents; a range past the end of the file is an error before anything is read.
fn read_range(path: &Path, offset: u64, len: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("asked for {len} bytes at {offset} of a {size}-byte file"),
        ));
    }
    file.seek(SeekFrom::Start(offset))?;
    buf.clear();
    // Within the file's size, checked above; read_to_end fills the spare capacity unzeroed.
    buf.reserve_exact(len as usize);
    file.take(len).read_to_end(buf)?;
    if buf.len() as u64 != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("read {} of {len} bytes at {offset}", buf.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBackend::new(dir.path());
        for key in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(
                matches!(store.put(key, Bytes::new()).await, Err(Error::BadInput(_))),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn list_skips_unfinished_writes_and_honours_partial_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBackend::new(dir.path());
        store
            .put("backups/a/x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store
            .put("backups/ab/y", Bytes::from_static(b"22"))
            .await
            .unwrap();
        store.put("repos/n/z", Bytes::new()).await.unwrap();
        std::fs::write(
            dir.path().join(format!("backups/a/.w{TEMP_MARKER}1")),
            b"half",
        )
        .unwrap();
        let keys: Vec<_> = store
            .list("backups/a")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["backups/a/x", "backups/ab/y"]);
        let keys: Vec<_> = store
            .list("backups/a/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["backups/a/x"]);
        assert_eq!(store.list("").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn delete_removes_emptied_folders_but_not_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBackend::new(dir.path());
        store
            .put("backups/a/x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store.delete("backups/a/x").await.unwrap();
        assert!(!dir.path().join("backups").exists());
        assert!(dir.path().exists());
        store.delete("backups/a/x").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_survive_a_concurrent_delete_pruning_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FsBackend::new(dir.path()));
        for i in 0..300 {
            store
                .put("repos/ns/snapshots/old", Bytes::from_static(b"1"))
                .await
                .unwrap();
            // Deleting the folder's only object prunes the folder the write is about to use.
            let deleter = store.clone();
            let delete =
                tokio::spawn(async move { deleter.delete("repos/ns/snapshots/old").await });
            let key = format!("repos/ns/snapshots/new-{i}");
            store
                .put(&key, Bytes::from_static(b"2"))
                .await
                .unwrap_or_else(|e| panic!("write {i} failed: {e}"));
            delete.await.unwrap().unwrap();
            assert_eq!(&store.get_range(&key, 0, 1).await.unwrap()[..], b"2");
            store.delete(&key).await.unwrap();
        }
    }
}
