//! The source's entries as a walk of directories: each directory entered, its entries, each
//! directory left (rustic_core's tree iterator, so snapshot trees come out the same).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use rustic_core::repofile::{Metadata, Node, NodeType};

/// A source entry: where it goes in the snapshot (its directory, or itself for a directory),
/// its node, how to open it, and its path in the source (for messages).
pub(crate) struct Entry<O> {
    pub(crate) at: PathBuf,
    pub(crate) node: Node,
    pub(crate) open: Option<O>,
    pub(crate) source: PathBuf,
}

/// One step of the walk.
pub(crate) enum Step<O> {
    /// A directory entered: its snapshot path, node and name.
    Enter(PathBuf, Node, OsString),
    /// The current directory is complete.
    Leave,
    /// An entry of the current directory.
    Entry(Entry<O>),
}

/// Turns entries sorted by path into [`Step`]s, entering the directories above an entry that
/// the source did not list (the snapshot path's own components) with a plain node.
pub(crate) struct DirWalk<I, O> {
    entries: I,
    path: PathBuf,
    next: Option<Entry<O>>,
}

impl<I: Iterator<Item = Entry<O>>, O> DirWalk<I, O> {
    /// The walk of `entries`.
    pub(crate) fn new(mut entries: I) -> Self {
        let next = entries.next();
        DirWalk {
            entries,
            path: PathBuf::new(),
            next,
        }
    }

    /// Leaves the innermost directory; false at the top.
    fn pop(&mut self) -> bool {
        let mut comps = self.path.components();
        while let Some(comp) = comps.next_back() {
            if matches!(comp, Component::Normal(_) | Component::Prefix(_)) {
                self.path = comps.collect();
                return true;
            }
        }
        false
    }
}

impl<I: Iterator<Item = Entry<O>>, O> Iterator for DirWalk<I, O> {
    type Item = Step<O>;

    fn next(&mut self) -> Option<Step<O>> {
        let Some(entry) = &self.next else {
            return self.pop().then_some(Step::Leave);
        };
        let Ok(missing) = entry.at.strip_prefix(&self.path) else {
            self.pop();
            return Some(Step::Leave);
        };
        let missing: PathBuf = missing.to_path_buf();
        for comp in missing.components() {
            self.path.push(comp);
            let Component::Normal(name) = comp else {
                continue;
            };
            if entry.node.is_dir() && entry.at == self.path {
                let entry = self.take();
                let name = entry.node.name().into_owned();
                return Some(Step::Enter(entry.at, entry.node, name));
            }
            let meta = Metadata {
                mode: Some(0o755),
                ..Metadata::default()
            };
            let node = Node::new_node(name, NodeType::Dir, meta);
            return Some(Step::Enter(self.path.clone(), node, name.to_os_string()));
        }
        Some(Step::Entry(self.take()))
    }
}

impl<I: Iterator<Item = Entry<O>>, O> DirWalk<I, O> {
    fn take(&mut self) -> Entry<O> {
        let next = self.entries.next();
        std::mem::replace(&mut self.next, next).expect("take follows a peeked entry")
    }
}

/// Where an entry at `path` of the source goes: `as_path` replaces `backup_path`, and a
/// non-directory goes to its directory.
pub(crate) fn snapshot_dir(
    path: &Path,
    is_dir: bool,
    backup_path: &Path,
    as_path: Option<&Path>,
) -> PathBuf {
    let at = match as_path {
        Some(as_path) => match path.strip_prefix(backup_path) {
            Ok(rest) if rest.as_os_str().is_empty() => as_path.to_path_buf(),
            Ok(rest) => as_path.join(rest),
            Err(_) => path.to_path_buf(),
        },
        None => path.to_path_buf(),
    };
    if is_dir {
        at
    } else {
        at.parent().map(Path::to_path_buf).unwrap_or(at)
    }
}
