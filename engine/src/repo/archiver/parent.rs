//! The parent snapshot, walked beside the source: a file whose type, size, mtime and ctime
//! match its parent node keeps the parent's content ids and is not read again (rustic_core's
//! rule, so unchanged files are recognised in snapshots either wrote).

use std::cmp::Ordering;
use std::ffi::OsStr;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::repofile::{Node, Tree};
use rustic_core::{DataId, TreeId};
use tracing::warn;

use super::super::backend::StoreBackend;
use super::known::KnownBlobs;

/// How an entry compares with the parent snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Matched<T> {
    Yes(T),
    NotFound,
    Changed,
}

/// The parent's tree at the walk's current directory, and those above it.
pub(crate) struct Parent<'a> {
    known: &'a KnownBlobs,
    backend: &'a StoreBackend,
    cipher: &'a Aes256CtrPoly1305Aes,
    root: Option<TreeId>,
    /// The current directory's parent tree and how far the walk got in it (both sorted).
    tree: Option<(Tree, usize)>,
    stack: Vec<Option<(Tree, usize)>>,
}

impl<'a> Parent<'a> {
    /// The parent snapshot with root tree `root` (none for a first backup). A tree that
    /// cannot be read is a warning: its files are read again.
    pub(crate) fn new(
        known: &'a KnownBlobs,
        backend: &'a StoreBackend,
        cipher: &'a Aes256CtrPoly1305Aes,
        root: Option<TreeId>,
    ) -> Self {
        let mut parent = Parent {
            known,
            backend,
            cipher,
            root,
            tree: None,
            stack: Vec::new(),
        };
        parent.tree = root.and_then(|id| parent.load(id));
        parent
    }

    /// The parent snapshot's root tree.
    pub(crate) fn root(&self) -> Option<TreeId> {
        self.root
    }

    fn load(&self, id: TreeId) -> Option<(Tree, usize)> {
        match self.known.read_tree(self.backend, self.cipher, &id) {
            Ok(tree) => Some((tree, 0)),
            Err(e) => {
                warn!(tree = %id, error = %e, "parent tree unreadable; its files are read again");
                None
            }
        }
    }

    /// The parent node named `name`, moving forward in the sorted parent tree.
    fn node(&mut self, name: &OsStr) -> Option<&Node> {
        let (tree, at) = self.tree.as_mut()?;
        while let Some(node) = tree.nodes.get(*at) {
            match (*node.name()).cmp(name) {
                Ordering::Less => *at += 1,
                Ordering::Equal => return tree.nodes.get(*at),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// How `node` compares with the parent node of the same name.
    fn compare(&mut self, node: &Node, name: &OsStr) -> Matched<&Node> {
        let Some(p) = self.node(name) else {
            return Matched::NotFound;
        };
        let (pm, m) = (&p.meta, &node.meta);
        let same_ctime = pm.ctime.zip(m.ctime).is_none_or(|(x, y)| x == y);
        if p.node_type == node.node_type && pm.size == m.size && pm.mtime == m.mtime && same_ctime {
            Matched::Yes(p)
        } else {
            Matched::Changed
        }
    }

    /// Enters directory `node` (named `name`): the parent's subtree of that name becomes the
    /// current one. Gives the subtree when the directory's own metadata matches.
    pub(crate) fn enter(&mut self, node: &Node, name: &OsStr) -> Matched<TreeId> {
        let matched = match self.compare(node, name) {
            Matched::Yes(p) => p.subtree.map_or(Matched::Changed, Matched::Yes),
            Matched::NotFound => Matched::NotFound,
            Matched::Changed => Matched::Changed,
        };
        let subtree = self.node(name).and_then(|p| p.subtree);
        let entered = subtree.and_then(|id| self.load(id));
        self.stack.push(std::mem::replace(&mut self.tree, entered));
        matched
    }

    /// Leaves the current directory.
    pub(crate) fn leave(&mut self) {
        self.tree = self.stack.pop().flatten();
    }

    /// Compares file `node`; when unchanged and every blob of its content is still in the
    /// repository, gives it the parent's content.
    pub(crate) fn file(&mut self, node: &mut Node) -> Matched<()> {
        let name = node.name().into_owned();
        let known = self.known;
        match self.compare(node, &name) {
            Matched::Yes(p) => {
                let content = p.content.clone();
                if content
                    .iter()
                    .flatten()
                    .all(|id: &DataId| known.has_data(id))
                {
                    node.content = content;
                    Matched::Yes(())
                } else {
                    warn!(file = ?name, "blobs of an unchanged file are missing; reading it again");
                    Matched::NotFound
                }
            }
            Matched::NotFound => Matched::NotFound,
            Matched::Changed => Matched::Changed,
        }
    }
}
