//! What a backup reads: a directory tree (rustic's `LocalSource`, counted) or one byte stream.

use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, LocalSource, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};

use super::progress::Activity;

type Entries<O> = Box<dyn Iterator<Item = RusticResult<ReadSourceEntry<O>>> + Send>;

/// A directory tree, with every entry and every opened file counted in an [`Activity`].
pub(crate) struct CountedSource {
    pub(crate) inner: LocalSource,
    pub(crate) activity: Activity,
}

/// Opens a file of a [`CountedSource`], counting it as read and recording why it could not
/// be opened (rustic skips such a file; the backup must say so).
pub(crate) struct CountedOpen<O> {
    inner: O,
    path: PathBuf,
    activity: Activity,
}

impl<O: ReadSourceOpen> ReadSourceOpen for CountedOpen<O> {
    type Reader = O::Reader;

    fn open(self) -> RusticResult<Self::Reader> {
        self.activity.add_file_read();
        self.inner.open().inspect_err(|e| {
            self.activity
                .warn(format!("{}: {}", self.path.display(), one_line(e)));
        })
    }
}

/// rustic's error without its advice lines.
fn one_line(e: &RusticError) -> String {
    e.display_log()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unreadable")
        .trim_start_matches("Error: ")
        .to_string()
}

impl ReadSource for CountedSource
where
    <LocalSource as ReadSource>::Iter: Send + 'static,
{
    type Open = CountedOpen<<LocalSource as ReadSource>::Open>;
    type Iter = Entries<Self::Open>;

    fn size(&self) -> RusticResult<Option<u64>> {
        self.inner.size()
    }

    fn entries(&self) -> Self::Iter {
        let activity = self.activity.clone();
        Box::new(self.inner.entries().map(move |entry| {
            let entry = entry.inspect_err(|e| activity.warn(one_line(e)))?;
            activity.add_file();
            Ok(ReadSourceEntry {
                open: entry.open.map(|inner| CountedOpen {
                    inner,
                    path: entry.path.clone(),
                    activity: activity.clone(),
                }),
                path: entry.path,
                node: entry.node,
            })
        }))
    }
}

/// A byte stream stored as one file (a database dump piped from a hook).
pub(crate) struct StreamSource<R> {
    path: PathBuf,
    reader: Mutex<Option<R>>,
}

impl<R: Read + Send + 'static> StreamSource<R> {
    /// The stream `reader`, stored at `path` in the snapshot.
    pub(crate) fn new(path: PathBuf, reader: R) -> Self {
        StreamSource {
            path,
            reader: Mutex::new(Some(reader)),
        }
    }
}

impl<R: Read + Send + 'static> ReadSource for StreamSource<R> {
    type Open = R;
    type Iter = std::iter::Once<RusticResult<ReadSourceEntry<R>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let reader = self.reader.lock().ok().and_then(|mut r| r.take());
        let entry = match (reader, self.path.file_name()) {
            (Some(reader), Some(name)) => Ok(ReadSourceEntry {
                path: self.path.clone(),
                node: stream_node(name),
                open: Some(reader),
            }),
            _ => Err(RusticError::new(
                ErrorKind::Internal,
                "a stream can be backed up only once",
            )),
        };
        std::iter::once(entry)
    }
}

fn stream_node(name: &OsStr) -> Node {
    let meta = Metadata {
        mode: Some(0o600),
        mtime: Some(jiff::Timestamp::now()),
        ..Metadata::default()
    };
    Node::new_node(name, NodeType::File, meta)
}
