//! Snapshot trees: built directory by directory as the walk leaves them, stored as tree blobs
//! (restic's JSON, as rustic_core serialises it) unless the repository has them already.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rustic_core::repofile::{Node, SnapshotSummary, Tree};
use rustic_core::{Id, TreeId};
use sha2::{Digest, Sha256};
use tracing::debug;

use super::known::KnownBlobs;
use super::packer::Packer;
use super::parent::Matched;
use crate::{Error, Result};

/// The directories being built, innermost last, and the summary's counts.
pub(crate) struct TreeBuilder<'a> {
    known: &'a KnownBlobs,
    packer: Packer,
    tree: Tree,
    open: Vec<(PathBuf, Node, Matched<TreeId>, Tree)>,
    stored: HashSet<Id>,
    pub(crate) summary: SnapshotSummary,
}

impl<'a> TreeBuilder<'a> {
    /// A builder storing new trees with `packer`, counting into `summary`.
    pub(crate) fn new(known: &'a KnownBlobs, packer: Packer, summary: SnapshotSummary) -> Self {
        TreeBuilder {
            known,
            packer,
            tree: Tree { nodes: Vec::new() },
            open: Vec::new(),
            stored: HashSet::new(),
            summary,
        }
    }

    /// Starts directory `node` at `path`.
    pub(crate) fn enter(&mut self, path: PathBuf, node: Node, parent: Matched<TreeId>) {
        let outer = std::mem::replace(&mut self.tree, Tree { nodes: Vec::new() });
        self.open.push((path, node, parent, outer));
    }

    /// Completes the current directory: stores its tree and adds it to the one above.
    pub(crate) fn leave(&mut self) -> Result<()> {
        let (path, mut node, parent, outer) = self
            .open
            .pop()
            .ok_or_else(|| Error::Internal("left more directories than entered".into()))?;
        node.subtree = Some(self.store(&path, parent)?);
        self.tree = outer;
        self.tree.nodes.push(node);
        Ok(())
    }

    /// Adds a file (or link, device…) to the current directory.
    pub(crate) fn file(&mut self, node: Node, parent: Matched<()>, size: u64) {
        match parent {
            Matched::Yes(()) => self.summary.files_unmodified += 1,
            Matched::Changed => self.summary.files_changed += 1,
            Matched::NotFound => self.summary.files_new += 1,
        }
        self.summary.total_files_processed += 1;
        self.summary.total_bytes_processed += size;
        self.tree.nodes.push(node);
    }

    /// Stores the root tree; gives its id, the summary and the tree packer's counts.
    pub(crate) fn finish(
        mut self,
        parent: Option<TreeId>,
    ) -> Result<(TreeId, SnapshotSummary, super::packer::PackStats)> {
        let parent = parent.map_or(Matched::NotFound, Matched::Yes);
        let id = self.store(Path::new(""), parent)?;
        self.packer.finish()?;
        Ok((id, self.summary, self.packer.stats))
    }

    fn store(&mut self, path: &Path, parent: Matched<TreeId>) -> Result<TreeId> {
        let tree = std::mem::replace(&mut self.tree, Tree { nodes: Vec::new() });
        // As rustic_core's `Tree::serialize`: restic's JSON and a newline, named by its hash.
        let mut json = serde_json::to_vec(&tree)
            .map_err(|e| Error::Internal(format!("tree of {}: {e}", path.display())))?;
        json.push(b'\n');
        let raw: [u8; 32] = Sha256::digest(&json).into();
        let id = TreeId::from(Id::new(raw));
        self.summary.total_dirs_processed += 1;
        self.summary.total_dirsize_processed += json.len() as u64;
        match parent {
            Matched::Yes(p) if p == id => {
                self.summary.dirs_unmodified += 1;
                return Ok(id);
            }
            Matched::NotFound => self.summary.dirs_new += 1,
            _ => self.summary.dirs_changed += 1,
        }
        debug!(path = %path.display(), "new or changed tree");
        if !self.known.has_tree(&id) && self.stored.insert(*id) {
            self.packer.add(raw, &json)?;
        }
        Ok(id)
    }
}
