//! `log.jsonl.gz`: one JSON line per item decision, compressed as the run goes and spilled
//! to an anonymous temporary file in chunks (memory stays flat), uploaded at the end.
//!
//! Every file operation goes through tokio's file type, so a busy log never blocks the
//! runtime that drives the backup.

use std::io::{Read, SeekFrom, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::keys::stream::{self, Sealer};
use crate::resources::types::ObjectRef;
use crate::store::Store;
use crate::{Error, Result};

/// Compressed bytes kept in memory before they are spilled to the temporary file.
const SPILL_BYTES: usize = 64 * 1024;

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
    encoder: GzEncoder<Vec<u8>>,
    /// Started at the first spill; small logs never touch the disk.
    writer: Option<Writer>,
    failed: Option<std::io::Error>,
}

/// The task that appends spilled chunks to the temporary file and hands it back at the end.
struct Writer {
    chunks: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<std::io::Result<tokio::fs::File>>,
}

impl Writer {
    /// Starts the writer on the current runtime (`record` runs inside it).
    fn start() -> Self {
        let (chunks, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let task = tokio::spawn(async move {
            let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
                .await
                .map_err(std::io::Error::other)??;
            let mut file = tokio::fs::File::from_std(std_file);
            while let Some(chunk) = rx.recv().await {
                file.write_all(&chunk).await?;
            }
            Ok(file)
        });
        Writer { chunks, task }
    }
}

/// A finished log: still in memory, or in its temporary file (rewound).
enum Finished {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

impl Default for ItemLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ItemLog {
    /// Starts an empty log.
    pub fn new() -> Self {
        ItemLog {
            encoder: GzEncoder::new(Vec::with_capacity(SPILL_BYTES), Compression::default()),
            writer: None,
            failed: None,
        }
    }

    /// Records one decision. A full disk is reported when the log is finished, not here,
    /// so one bad write does not stop a backup. Never blocks: compression goes to memory and
    /// full chunks to a writer task.
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
            return;
        }
        if self.encoder.get_ref().len() >= SPILL_BYTES {
            let chunk = std::mem::replace(self.encoder.get_mut(), Vec::with_capacity(SPILL_BYTES));
            let writer = self.writer.get_or_insert_with(Writer::start);
            // A closed channel means the writer stopped on an error, reported at the end.
            let _ = writer.chunks.send(chunk);
        }
    }

    async fn finish(mut self) -> Result<Finished> {
        let temp = || Error::io("write the item log in", std::env::temp_dir());
        if let Some(e) = self.failed.take() {
            return Err(temp()(e));
        }
        let tail = self.encoder.finish().map_err(temp())?;
        let Some(Writer { chunks, task }) = self.writer else {
            return Ok(Finished::Memory(tail));
        };
        drop(chunks);
        let mut file = task
            .await
            .map_err(std::io::Error::other)
            .flatten()
            .map_err(temp())?;
        let rewound = async {
            file.write_all(&tail).await?;
            file.flush().await?;
            file.seek(SeekFrom::Start(0)).await?;
            Ok(file)
        };
        rewound.await.map(Finished::File).map_err(temp())
    }

    /// Finishes the log and uploads it to `key`, encrypted when the store has its location
    /// key.
    pub async fn upload(self, store: &Store, key: &str) -> Result<u64> {
        let archive_key = store.archive_key().await?;
        match (self.finish().await?, archive_key.as_ref()) {
            (Finished::Memory(bytes), None) => {
                let len = bytes.len() as u64;
                store.put(key, bytes).await.map(|()| len)
            }
            (Finished::Memory(bytes), Some(archive_key)) => {
                let sealed = stream::seal_all(archive_key, key, &bytes)?;
                let len = sealed.len() as u64;
                store.put(key, sealed).await.map(|()| len)
            }
            (Finished::File(mut file), None) => store.put_stream(key, &mut file).await,
            (Finished::File(file), Some(archive_key)) => {
                let sealer = Sealer::new(archive_key, key)?;
                let (writer, mut reader) = tokio::io::duplex(4 * stream::CHUNK);
                let (fed, put) = tokio::join!(
                    seal_file(file, sealer, writer),
                    store.put_stream(key, &mut reader)
                );
                // A feed that stopped left a log without its last chunk: it reads as damaged.
                fed?;
                put
            }
        }
    }

    /// Finishes the log and returns its compressed bytes (for small in-cluster records).
    pub async fn into_bytes(self) -> Result<Vec<u8>> {
        match self.finish().await? {
            Finished::Memory(bytes) => Ok(bytes),
            Finished::File(mut file) => {
                let mut out = Vec::new();
                file.read_to_end(&mut out)
                    .await
                    .map_err(Error::io("read back", "item log"))?;
                Ok(out)
            }
        }
    }
}

/// Encrypts the log's file into `sink`, closing it at the end.
async fn seal_file(
    mut file: tokio::fs::File,
    mut sealer: Sealer,
    mut sink: tokio::io::DuplexStream,
) -> Result<()> {
    let io = || Error::io("encrypt", "item log");
    let mut buf = vec![0; stream::CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(io())?;
        if n == 0 {
            break;
        }
        sink.write_all(&sealer.push(&buf[..n])?)
            .await
            .map_err(io())?;
    }
    sink.write_all(&sealer.finish()?).await.map_err(io())?;
    sink.shutdown().await.map_err(io())
}

/// Decrypts (when encrypted) and decompresses a stored log and writes its lines to `out`.
pub async fn copy_log(
    store: &Store,
    key: &str,
    mut out: impl Write + Send + 'static,
) -> Result<()> {
    let reader = store.get(key).await?;
    let archive_key = store.archive_key().await?;
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let name = key.to_string();
    tokio::task::spawn_blocking(move || {
        let plain = stream::open(bridge, archive_key.as_ref(), &name)
            .map_err(|e| Error::Corrupt(format!("the log is damaged: {e}")))?;
        let mut gz = GzDecoder::new(plain);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = gz
                .read(&mut buf)
                .map_err(|e| Error::Corrupt(format!("the log is damaged: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(gz: &[u8]) -> Vec<LogEntry> {
        let mut text = String::new();
        gunzip(gz).read_to_string(&mut text).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_log_stays_in_memory_and_reads_back() {
        let mut log = ItemLog::new();
        log.record(
            &ObjectRef::namespaced("configmaps", "a", "c"),
            "backed-up",
            None,
        );
        assert!(log.writer.is_none());
        let entries = lines(&log.into_bytes().await.unwrap());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].action, "backed-up");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_log_spills_to_its_file_in_order() {
        let mut log = ItemLog::new();
        // Names that do not compress away, so the log passes the spill threshold often.
        let n = 20_000;
        for i in 0..n {
            let name = format!("c{:x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            log.record(
                &ObjectRef::namespaced("configmaps", "a", &name),
                "backed-up",
                None,
            );
        }
        assert!(log.writer.is_some(), "the log spilled to its file");
        let entries = lines(&log.into_bytes().await.unwrap());
        assert_eq!(entries.len(), n);
        assert_eq!(
            entries[n - 1].object.name,
            format!(
                "c{:x}",
                ((n - 1) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        );
    }
}
