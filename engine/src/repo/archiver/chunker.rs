//! Content-defined chunking with rustic_core's exact boundaries, over one reused buffer.
//!
//! rustic_core's loop pushes every byte into a new `Vec` per chunk and zeroes a read buffer
//! per file; here a worker's buffer is filled by large reads and chunks are slices of it.
//! The boundaries are rustic_core 0.13's (restic's parameters, checked before each byte is
//! taken, window prefilled with the 63 bytes before the last of the minimum size), so blobs
//! deduplicate with every snapshot rustic_core or this module wrote
//! (`tests.rs` compares the trees both write for the same files).

use std::io::{self, Read};
use std::ops::Range;

use rustic_cdc::{Polynom64, Rabin64, RollingHash64};
use rustic_core::repofile::{Chunker, ConfigFile};

use crate::{Error, Result};

/// How a repository cuts files, from its config.
#[derive(Debug, Clone)]
pub(crate) enum ChunkParams {
    /// Rabin fingerprints over a 64-byte window; a cut where the low bits are zero.
    Rabin {
        poly: Polynom64,
        mask: u64,
        min: usize,
        max: usize,
    },
    /// Fixed-size chunks.
    Fixed(usize),
}

impl ChunkParams {
    /// The repository's chunker, checked as rustic_core checks it.
    pub(crate) fn from_config(config: &ConfigFile) -> Result<ChunkParams> {
        let size = config.chunk_size();
        match config.chunker() {
            Chunker::FixedSize if size > 0 => Ok(ChunkParams::Fixed(size)),
            Chunker::Rabin => {
                let (min, max) = (config.chunk_min_size(), config.chunk_max_size());
                if !size.is_power_of_two() || min > size || max < size || min < 64 {
                    return Err(Error::Internal(format!(
                        "the repository's chunker sizes ({min}/{size}/{max}) are not usable"
                    )));
                }
                let poly = config
                    .poly()
                    .map_err(|e| Error::Internal(format!("chunker polynomial: {e}")))?;
                Ok(ChunkParams::Rabin {
                    poly,
                    mask: size as u64 - 1,
                    min,
                    max,
                })
            }
            Chunker::FixedSize => Err(Error::Internal("fixed chunk size is 0".into())),
        }
    }

    /// The largest chunk.
    fn max(&self) -> usize {
        match self {
            ChunkParams::Rabin { max, .. } => *max,
            ChunkParams::Fixed(size) => *size,
        }
    }
}

/// A worker's chunking state: the hash and the buffer, kept from file to file.
pub(crate) struct ChunkBuffer {
    params: ChunkParams,
    rabin: Option<Rabin64>,
    buf: Vec<u8>,
}

/// Bytes asked of the reader at once beyond the largest chunk.
const READ_SIZE: usize = 1 << 20;

impl ChunkBuffer {
    /// A buffer for chunks of `params` (filled once, then reused).
    pub(crate) fn new(params: ChunkParams) -> ChunkBuffer {
        let rabin = match &params {
            ChunkParams::Rabin { poly, .. } => Some(Rabin64::new_with_polynom(6, poly)),
            ChunkParams::Fixed(_) => None,
        };
        ChunkBuffer {
            params,
            rabin,
            buf: Vec::new(),
        }
    }

    /// Starts splitting `reader`.
    pub(crate) fn split<R: Read>(&mut self, reader: R) -> Chunks<'_, R> {
        let want = self.params.max() + READ_SIZE;
        if self.buf.len() < want {
            // Zeroed by the allocator (fresh pages, untouched until read into): a worker that
            // only ever reads small files keeps the buffer's first pages only.
            self.buf = vec![0; want];
        }
        Chunks {
            params: &self.params,
            rabin: self.rabin.as_mut(),
            buf: &mut self.buf,
            reader,
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

/// The chunks of one reader.
pub(crate) struct Chunks<'a, R> {
    params: &'a ChunkParams,
    rabin: Option<&'a mut Rabin64>,
    buf: &'a mut Vec<u8>,
    reader: R,
    /// The data not yet cut is `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Chunks<'_, R> {
    /// The next chunk, or `None` at the end of the reader.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(range) = self.next_range()? else {
            return Ok(None);
        };
        Ok(Some(&self.buf[range]))
    }

    fn next_range(&mut self) -> io::Result<Option<Range<usize>>> {
        let (min, max, mask) = match *self.params {
            ChunkParams::Rabin { min, max, mask, .. } => (min, max, mask),
            ChunkParams::Fixed(size) => (size, size, 0),
        };
        while self.end - self.start < min && self.read_more()? {}
        let available = self.end - self.start;
        if available == 0 {
            return Ok(None);
        }
        let Some(rabin) = self.rabin.as_deref_mut() else {
            return Ok(Some(self.cut(available.min(min))));
        };
        if available < min {
            return Ok(Some(self.cut(available)));
        }
        // As rustic_core: the window takes 63 of the 64 bytes before `min`.
        let prefill = self.start + min - 64..self.start + min;
        rabin.reset_and_prefill_window(&mut self.buf[prefill].iter().copied());
        let mut len = min;
        while let Some(rabin) = self.rabin.as_deref_mut() {
            let stop = (self.start + max).min(self.end);
            let (taken, found) = scan(rabin, &self.buf[self.start + len..stop], mask);
            len += taken;
            if found || len >= max || !self.read_more()? {
                break;
            }
        }
        Ok(Some(self.cut(len)))
    }

    /// Takes the next `len` bytes as a chunk.
    fn cut(&mut self, len: usize) -> Range<usize> {
        let range = self.start..self.start + len;
        self.start += len;
        range
    }

    /// Reads more of the file after `end`, moving the uncut data to the buffer's start
    /// first when the buffer is full. False at the end of the reader.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Slides `data` through the hash until its low bits are zero, checked before each byte
/// (rustic_core's order); the bytes taken, and whether a cut point was found.
#[inline]
fn scan(rabin: &mut Rabin64, data: &[u8], mask: u64) -> (usize, bool) {
    for (i, &byte) in data.iter().enumerate() {
        if rabin.hash & mask == 0 {
            return (i, true);
        }
        rabin.slide(byte);
    }
    (data.len(), rabin.hash & mask == 0)
}
