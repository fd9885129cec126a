//! The `resources.tar.gz` format: one JSON file per object under
//! `resources/<resource.group>/namespaces/<ns>/<name>.json` (cluster-scoped objects under
//! `resources/<resource.group>/cluster/<name>.json`), after a small header file.
//!
//! The writer compresses into a small buffer that is handed to an async sink after every
//! object, so memory stays flat however big the cluster is.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::types::ObjectRef;
use crate::{Error, Result};

/// The first entry of every archive.
pub const HEADER_PATH: &str = "vbackup-archive.json";
/// Archive format written by this version.
pub const FORMAT_VERSION: u32 = 1;
const ROOT: &str = "resources/";

/// Contents of the header entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveHeader {
    /// Format version; readers refuse versions they do not know.
    pub format_version: u32,
    /// The backup this archive belongs to.
    pub backup: String,
}

/// The archive path of an object.
pub fn object_path(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{ROOT}{}/namespaces/{ns}/{}.json", r.resource, r.name),
        None => format!("{ROOT}{}/cluster/{}.json", r.resource, r.name),
    }
}

/// The object an archive path names, or `None` when the path is not an object's.
pub fn parse_object_path(path: &str) -> Option<ObjectRef> {
    let rest = path.strip_prefix(ROOT)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let valid = |s: &str| !s.is_empty() && s != "." && s != "..";
    match parts[..] {
        [resource, "namespaces", ns, file] if valid(resource) && valid(ns) => {
            let name = file.strip_suffix(".json").filter(|n| valid(n))?;
            Some(ObjectRef::namespaced(resource, ns, name))
        }
        [resource, "cluster", file] if valid(resource) => {
            let name = file.strip_suffix(".json").filter(|n| valid(n))?;
            Some(ObjectRef::cluster(resource, name))
        }
        _ => None,
    }
}

/// Streams a tar.gz archive into an async sink, one object at a time.
pub struct ArchiveWriter<W> {
    builder: tar::Builder<GzEncoder<Vec<u8>>>,
    sink: W,
    mtime: u64,
    entries: u64,
    sink_failed: bool,
}

impl<W: AsyncWrite + Unpin> ArchiveWriter<W> {
    /// Starts an archive for `backup`, writing its header entry.
    pub async fn new(sink: W, backup: &str, mtime: u64) -> Result<Self> {
        let encoder = GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::default());
        let mut writer = ArchiveWriter {
            builder: tar::Builder::new(encoder),
            sink,
            mtime,
            entries: 0,
            sink_failed: false,
        };
        let header = ArchiveHeader {
            format_version: FORMAT_VERSION,
            backup: backup.to_string(),
        };
        let bytes = serde_json::to_vec(&header).map_err(|e| Error::Internal(e.to_string()))?;
        writer.append(HEADER_PATH, &bytes).await?;
        writer.entries = 0;
        Ok(writer)
    }

    /// Adds one object's JSON.
    pub async fn add(&mut self, object: &ObjectRef, json: &[u8]) -> Result<()> {
        self.append(&object_path(object), json).await?;
        Ok(())
    }

    /// True when writing to the sink failed (the upload behind it stopped).
    pub fn sink_failed(&self) -> bool {
        self.sink_failed
    }

    /// Objects added so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    async fn append(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, path, data)
            .map_err(archive_write_error)?;
        self.entries += 1;
        self.drain().await
    }

    async fn drain(&mut self) -> Result<()> {
        let buffered = std::mem::take(self.builder.get_mut().get_mut());
        if !buffered.is_empty()
            && let Err(e) = self.sink.write_all(&buffered).await
        {
            self.sink_failed = true;
            return Err(sink_error(e));
        }
        Ok(())
    }

    /// Writes the end of the archive and closes the sink.
    pub async fn finish(self) -> Result<()> {
        let encoder = self.builder.into_inner().map_err(archive_write_error)?;
        let tail = encoder.finish().map_err(archive_write_error)?;
        let mut sink = self.sink;
        sink.write_all(&tail).await.map_err(sink_error)?;
        sink.shutdown().await.map_err(sink_error)
    }
}

fn archive_write_error(e: std::io::Error) -> Error {
    Error::Internal(format!("cannot build the archive: {e}"))
}

fn sink_error(e: std::io::Error) -> Error {
    Error::Internal(format!("the upload of the archive stopped: {e}"))
}

/// An archive unpacked on local disk: every object checked to be JSON before anything is
/// restored, so a truncated or corrupt archive is refused as a whole.
#[derive(Debug)]
pub struct UnpackedArchive {
    dir: tempfile::TempDir,
    /// The header entry.
    pub header: ArchiveHeader,
    /// Every object, in archive order.
    pub objects: Vec<ObjectRef>,
}

impl UnpackedArchive {
    /// Reads one object back.
    pub fn read(&self, object: &ObjectRef) -> Result<serde_json::Value> {
        let path = self.local_path(object);
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&object_path(object), e))
    }

    fn local_path(&self, object: &ObjectRef) -> PathBuf {
        local_path(self.dir.path(), object)
    }
}

fn local_path(dir: &Path, object: &ObjectRef) -> PathBuf {
    let mut p = dir.join(&object.resource);
    p.push(
        object
            .namespace
            .as_deref()
            .map_or("_cluster".to_string(), |ns| format!("ns_{ns}")),
    );
    p.push(format!("{}.json", object.name));
    p
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!(
        "the backup archive is corrupt or truncated ({what}: {e}); nothing was restored — \
         check the location, or restore from another backup"
    ))
}

/// Unpacks an archive stream into a private temporary directory.
pub async fn unpack(reader: impl AsyncRead + Send + Unpin + 'static) -> Result<UnpackedArchive> {
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || unpack_sync(bridge))
        .await
        .map_err(|e| Error::Internal(format!("archive reader failed: {e}")))?
}

/// Unpacks from a synchronous reader (the blocking half of [`unpack`]).
pub fn unpack_sync(reader: impl Read) -> Result<UnpackedArchive> {
    let dir = tempfile::Builder::new()
        .prefix("vbackup-restore-")
        .tempdir()
        .map_err(Error::io(
            "create temporary directory",
            std::env::temp_dir(),
        ))?;
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let mut header = None;
    let mut objects = Vec::new();
    let entries = archive.entries().map_err(|e| corrupt("reading", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt("reading", e))?;
        let path = entry
            .path()
            .map_err(|e| corrupt("entry name", e))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| corrupt(&path, e))?;
        if header.is_none() {
            if path != HEADER_PATH {
                return Err(Error::Corrupt(format!(
                    "this is not a vbackup archive (first entry is {path:?}, expected {HEADER_PATH})"
                )));
            }
            let h: ArchiveHeader = serde_json::from_slice(&data).map_err(|e| corrupt(&path, e))?;
            if h.format_version > FORMAT_VERSION {
                return Err(Error::BadInput(format!(
                    "the archive uses format {} but this vbackup reads up to {FORMAT_VERSION}: \
                     upgrade kubectl-vbackup",
                    h.format_version
                )));
            }
            header = Some(h);
            continue;
        }
        let object =
            parse_object_path(&path).ok_or_else(|| corrupt(&path, "unexpected entry name"))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&data).map_err(|e| corrupt(&path, e))?;
        let local = local_path(dir.path(), &object);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
        }
        std::fs::File::create(&local)
            .and_then(|mut f| f.write_all(&data))
            .map_err(Error::io("write", &local))?;
        objects.push(object);
    }
    // Read to the very end so the gzip trailer (length and CRC) is verified too.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| corrupt("end of archive", e))?;
    let header = header.ok_or_else(|| corrupt("archive", "it is empty"))?;
    Ok(UnpackedArchive {
        dir,
        header,
        objects,
    })
}

/// The largest object entry a foreign archive may hold: the API server stores objects of
/// at most ~1.5 MiB, so anything far larger is damage or a crafted archive.
const MAX_FOREIGN_OBJECT_BYTES: u64 = 8 << 20;

/// Unpacks another tool's archive that uses the same object paths (Velero's): there is no
/// vbackup header, entries that are not objects (Velero's `metadata/version`, its per-API-
/// version folders) are skipped, and `fix` runs on each object before it is kept.
pub(crate) fn unpack_foreign(
    reader: impl Read,
    backup: &str,
    fix: &dyn Fn(&mut serde_json::Value),
) -> Result<UnpackedArchive> {
    let dir = tempfile::Builder::new()
        .prefix("vbackup-restore-")
        .tempdir()
        .map_err(Error::io(
            "create temporary directory",
            std::env::temp_dir(),
        ))?;
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let mut objects = Vec::new();
    let entries = archive.entries().map_err(|e| corrupt("reading", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| corrupt("reading", e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| corrupt("entry name", e))?
            .to_string_lossy()
            .into_owned();
        let Some(object) = parse_object_path(path.trim_start_matches("./")) else {
            continue;
        };
        let mut data = Vec::new();
        entry
            .take(MAX_FOREIGN_OBJECT_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| corrupt(&path, e))?;
        if data.len() as u64 > MAX_FOREIGN_OBJECT_BYTES {
            return Err(corrupt(
                &path,
                format!("the entry is larger than {MAX_FOREIGN_OBJECT_BYTES} bytes"),
            ));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&data).map_err(|e| corrupt(&path, e))?;
        fix(&mut value);
        let local = local_path(dir.path(), &object);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
        }
        let bytes = serde_json::to_vec(&value).map_err(|e| corrupt(&path, e))?;
        std::fs::write(&local, bytes).map_err(Error::io("write", &local))?;
        objects.push(object);
    }
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| corrupt("end of archive", e))?;
    Ok(UnpackedArchive {
        dir,
        header: ArchiveHeader {
            format_version: FORMAT_VERSION,
            backup: backup.to_string(),
        },
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn build(objects: &[(ObjectRef, &str)]) -> Vec<u8> {
        let (mut w, mut r) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut r, &mut out)
                .await
                .unwrap();
            out
        });
        let mut archive = ArchiveWriter::new(&mut w, "b1", 0).await.unwrap();
        for (o, json) in objects {
            archive.add(o, json.as_bytes()).await.unwrap();
        }
        assert_eq!(archive.entries(), objects.len() as u64);
        archive.finish().await.unwrap();
        drop(w);
        reader.await.unwrap()
    }

    fn sample() -> Vec<(ObjectRef, &'static str)> {
        vec![
            (
                ObjectRef::namespaced("configmaps", "nc", "conf"),
                r#"{"kind":"ConfigMap"}"#,
            ),
            (
                ObjectRef::cluster("clusterroles.rbac.authorization.k8s.io", "system:a"),
                r#"{"kind":"ClusterRole"}"#,
            ),
        ]
    }

    #[test]
    fn object_paths_round_trip() {
        for (o, _) in sample() {
            assert_eq!(parse_object_path(&object_path(&o)), Some(o));
        }
        assert_eq!(
            object_path(&ObjectRef::namespaced("deployments.apps", "nc", "web")),
            "resources/deployments.apps/namespaces/nc/web.json"
        );
        assert_eq!(parse_object_path("resources/x/namespaces/../y.json"), None);
        assert_eq!(parse_object_path("etc/passwd"), None);
    }

    #[tokio::test]
    async fn archive_written_in_a_stream_unpacks_to_the_same_objects() {
        let bytes = build(&sample()).await;
        let unpacked = unpack_sync(&bytes[..]).unwrap();
        assert_eq!(unpacked.header.backup, "b1");
        let names: Vec<_> = unpacked.objects.clone();
        assert_eq!(
            names,
            sample().into_iter().map(|(o, _)| o).collect::<Vec<_>>()
        );
        assert_eq!(unpacked.read(&names[0]).unwrap()["kind"], "ConfigMap");
    }

    #[tokio::test]
    async fn truncated_archive_is_refused_as_corrupt() {
        let bytes = build(&sample()).await;
        let err = unpack_sync(&bytes[..bytes.len() - 12])
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupt or truncated"), "{err}");
    }

    #[tokio::test]
    async fn flipped_byte_is_refused_as_corrupt() {
        let mut bytes = build(&sample()).await;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        assert!(unpack_sync(&bytes[..]).is_err());
    }

    #[test]
    fn a_tarball_that_is_not_ours_is_named_as_such() {
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        b.append_data(&mut h, "etc/hosts", &b"hi"[..]).unwrap();
        let bytes = b.into_inner().unwrap().finish().unwrap();
        let err = unpack_sync(&bytes[..]).unwrap_err().to_string();
        assert!(err.contains("not a vbackup archive"), "{err}");
    }
}
