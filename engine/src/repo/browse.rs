//! Reading a repository: its snapshots, a snapshot's listing, one file's contents.

use std::io::Write;
use std::path::Path;

use rustic_core::LsOptions;
use rustic_core::repofile::{NodeType, SnapshotFile};

use super::session::{State, with_repo};
use super::{EntryKind, LsEntry, SnapshotInfo, VolumeRepo};
use crate::{Error, Result};

impl VolumeRepo {
    /// Every snapshot in the repository, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        self.run("list snapshots", None, None, |state, _| {
            let mut snaps = with_repo!(&state, repo => repo.get_all_snapshots())?;
            snaps.sort_by(|a, b| a.time.cmp(&b.time));
            Ok((snaps.iter().map(snapshot_info).collect(), state))
        })
        .await
    }

    /// Lists `path` (relative to the volume root; `""` for the root) in a snapshot, with
    /// everything below it when `recursive`.
    pub async fn ls(&self, snapshot: &str, path: &str, recursive: bool) -> Result<Vec<LsEntry>> {
        let (snapshot, inner) = (snapshot.to_string(), self.snapshot_path(path)?);
        let prefix = path.trim_matches('/').to_string();
        let listing = self.index_listing().await?;
        self.run("ls", None, None, move |state, _| {
            let (repo, listing) = state.full(listing)?;
            let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
            let node = repo.node_from_snapshot_and_path(&snap, &inner)?;
            let mut entries = vec![ls_entry(&prefix, &node)];
            if node.is_dir() {
                let opts = LsOptions::default().recursive(recursive);
                for item in repo.ls(&node, &opts)? {
                    let (rel, node) = item?;
                    let full = Path::new(&prefix).join(rel);
                    entries.push(ls_entry(&full.to_string_lossy(), &node));
                }
            }
            Ok((entries, State::Full(repo, listing)))
        })
        .await
    }

    /// Writes the contents of one file of a snapshot to `out`; returns the bytes written.
    pub async fn dump<W>(&self, snapshot: &str, path: &str, mut out: W) -> Result<u64>
    where
        W: Write + Send + 'static,
    {
        let (snapshot, inner) = (snapshot.to_string(), self.snapshot_path(path)?);
        let shown = path.to_string();
        let ns = self.namespace.clone();
        let listing = self.index_listing().await?;
        self.run("dump", None, None, move |state, _| {
            let (repo, listing) = state.full(listing)?;
            let snap = repo.get_snapshot_from_str(&snapshot, |_| true)?;
            let node = repo.node_from_snapshot_and_path(&snap, &inner)?;
            if node.node_type != NodeType::File {
                return Err(Error::BadInput(format!(
                    "{shown} in snapshot {snapshot} of namespace {ns} is not a regular file"
                )));
            }
            let mut counted = CountingWriter {
                inner: &mut out,
                n: 0,
            };
            repo.dump(&node, &mut counted)?;
            counted
                .flush()
                .map_err(Error::io("write dump of", &shown))?;
            Ok((counted.n, State::Full(repo, listing)))
        })
        .await
    }
}

fn snapshot_info(s: &SnapshotFile) -> SnapshotInfo {
    let tags: Vec<String> = s.tags.iter().cloned().collect();
    let summary = s.summary.clone().unwrap_or_default();
    SnapshotInfo {
        id: s.id.to_hex().to_string(),
        time: s.time.timestamp(),
        volume: s.label.clone(),
        backup: tags
            .iter()
            .find_map(|t| t.strip_prefix("backup=").map(str::to_string)),
        tags,
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
    }
}

fn ls_entry(path: &str, node: &rustic_core::repofile::Node) -> LsEntry {
    let (kind, link_target) = match &node.node_type {
        NodeType::File => (EntryKind::File, None),
        NodeType::Dir => (EntryKind::Dir, None),
        NodeType::Symlink { .. } => (
            EntryKind::Symlink,
            node.node_type.to_link().to_str().map(str::to_string),
        ),
        _ => (EntryKind::Special, None),
    };
    LsEntry {
        path: path.trim_matches('/').to_string(),
        kind,
        size: if kind == EntryKind::File {
            node.meta.size
        } else {
            0
        },
        mode: node.meta.mode.map(|m| m & 0o7777),
        mtime: node.meta.mtime,
        link_target,
    }
}

struct CountingWriter<'a, W> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
