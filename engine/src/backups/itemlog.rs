//! `log.jsonl.gz`: one JSON line per item decision, compressed into a temporary file as
//! the run goes (memory stays flat) and uploaded at the end.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::resources::types::ObjectRef;
use crate::store::Store;
use crate::{Error, Result};

/// One decision about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// `backed-up`, `skipped`, `excluded`, `failed`, `created`, `updated`, `unchanged`…
    pub action: String,
    /// Why, when it is not the obvious outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The log being written.
pub struct ItemLog {
    encoder: GzEncoder<BufWriter<std::fs::File>>,
    failed: Option<std::io::Error>,
}

impl ItemLog {
    /// Starts a log in an anonymous temporary file.
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile()
            .map_err(Error::io("create temporary file", std::env::temp_dir()))?;
        Ok(ItemLog {
            encoder: GzEncoder::new(BufWriter::new(file), Compression::default()),
            failed: None,
        })
    }

    /// Records one decision. A full disk is reported when the log is finished, not here,
    /// so one bad write does not stop a backup.
    pub fn record(&mut self, object: &ObjectRef, action: &str, reason: Option<&str>) {
        if self.failed.is_some() {
            return;
        }
        let entry = LogEntry {
            object: object.clone(),
            action: action.into(),
            reason: reason.map(String::from),
        };
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.encoder.write_all(&line) {
            self.failed = Some(e);
        }
    }

    /// Finishes the log and uploads it to `key`.
    pub async fn upload(self, store: &Store, key: &str) -> Result<u64> {
        if let Some(e) = self.failed {
            return Err(Error::io("write the item log in", std::env::temp_dir())(e));
        }
        let finish = || -> std::io::Result<std::fs::File> {
            let mut file = self
                .encoder
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?;
            file.seek(SeekFrom::Start(0))?;
            Ok(file)
        };
        let file = finish().map_err(Error::io("finish", "item log"))?;
        let mut file = tokio::fs::File::from_std(file);
        store.put_stream(key, &mut file).await
    }
}

impl ItemLog {
    /// Finishes the log and returns its compressed bytes (for small in-cluster records).
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        if let Some(e) = self.failed {
            return Err(Error::io("write the item log in", std::env::temp_dir())(e));
        }
        let read = || -> std::io::Result<Vec<u8>> {
            let mut file = self
                .encoder
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?;
            file.seek(SeekFrom::Start(0))?;
            let mut out = Vec::new();
            file.read_to_end(&mut out)?;
            Ok(out)
        };
        read().map_err(Error::io("read back", "item log"))
    }
}

/// Decompresses a stored log and writes its lines to `out`.
pub async fn copy_log(
    store: &Store,
    key: &str,
    mut out: impl Write + Send + 'static,
) -> Result<()> {
    let reader = store.get(key).await?;
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut gz = GzDecoder::new(bridge);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = gz
                .read(&mut buf)
                .map_err(|e| Error::Corrupt(format!("the log is corrupt: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])
                .map_err(Error::io("write", "standard output"))?;
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("log reader failed: {e}")))?
}

/// A reader that decompresses an in-memory gzip log.
pub fn gunzip(gz: &[u8]) -> impl Read + '_ {
    GzDecoder::new(gz)
}
