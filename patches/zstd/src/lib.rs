//! zstd compression for rustic_core with one reused context per thread.
//!
//! rustic_core compresses every blob with `zstd::encode_all` and decompresses every tree with
//! `zstd::decode_all`; upstream, each call creates (and frees) a streaming context, whose
//! set-up runs `cpuid` three times and allocates the context's tables. Here each thread keeps
//! one context of each kind: a context is reset between uses, so results do not depend on what
//! the thread compressed before. Output is a standard zstd frame (with its content size, as
//! the one-shot API writes it), which restic and upstream zstd read; input may be any sequence
//! of frames, with or without content sizes, as restic's Go encoder writes them.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::RangeInclusive;

use zstd_safe::{CCtx, DCtx, InBuffer, OutBuffer, ResetDirective};

pub use stream::{decode_all, encode_all};
/// The bindings underneath, as upstream re-exports them (`zstd_safe::compress_bound`).
pub use zstd_safe;

/// The compression levels zstd accepts.
pub fn compression_level_range() -> RangeInclusive<i32> {
    zstd_safe::min_c_level()..=zstd_safe::max_c_level()
}

thread_local! {
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Compression and decompression of whole buffers (upstream's `zstd::stream` functions).
pub mod stream {
    use super::*;

    /// Compresses all of `source` at `level` into one frame.
    pub fn encode_all<R: Read>(source: R, level: i32) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        copy_encode(source, &mut out, level)?;
        Ok(out)
    }

    /// Compresses all of `source` at `level` into one frame written to `destination`.
    pub fn copy_encode<R: Read, W: Write>(
        mut source: R,
        mut destination: W,
        level: i32,
    ) -> io::Result<()> {
        let mut input = Vec::new();
        source.read_to_end(&mut input)?;
        destination.write_all(&compress(&input, level)?)
    }

    /// Decompresses every frame of `source`, one after the other.
    pub fn decode_all<R: Read>(mut source: R) -> io::Result<Vec<u8>> {
        let mut input = Vec::new();
        source.read_to_end(&mut input)?;
        decompress(&input)
    }
}

/// Decompression into a caller's buffer (upstream's `zstd::bulk`).
pub mod bulk {
    use super::*;

    /// A decompression context of the caller's own, for a thread that decodes many blobs.
    pub struct Decompressor<'a>(DCtx<'a>);

    impl Decompressor<'static> {
        /// A new context.
        pub fn new() -> io::Result<Self> {
            DCtx::try_create()
                .map(Decompressor)
                .ok_or_else(|| io::Error::other("zstd: cannot allocate a decompression context"))
        }
    }

    /// Compresses `data` at `level` into one frame, with the thread's context.
    pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
        super::compress(data, level)
    }

    /// Compresses `source` at `level` into one frame at the start of `destination`, with
    /// the thread's context; returns the frame's length (an error when it does not fit).
    pub fn compress_to_buffer(
        source: &[u8],
        destination: &mut [u8],
        level: i32,
    ) -> io::Result<usize> {
        with_context(&COMPRESSOR, CCtx::try_create, |cctx| {
            cctx.compress(destination, source, level).map_err(error)
        })
    }

    impl Decompressor<'_> {
        /// Decompresses the single frame `source` into `destination`'s capacity (its content
        /// is replaced); returns the bytes written.
        pub fn decompress_to_buffer(
            &mut self,
            source: &[u8],
            destination: &mut Vec<u8>,
        ) -> io::Result<usize> {
            destination.clear();
            self.0.decompress(destination, source).map_err(error)
        }
    }
}

fn compress(input: &[u8], level: i32) -> io::Result<Vec<u8>> {
    with_context(&COMPRESSOR, CCtx::try_create, |cctx| {
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(input.len()));
        // ZSTD_compressCCtx: the level alone decides the parameters, the session is reset.
        cctx.compress(&mut out, input, level).map_err(error)?;
        Ok(out)
    })
}

fn decompress(input: &[u8]) -> io::Result<Vec<u8>> {
    with_context(&DECOMPRESSOR, DCtx::try_create, |dctx| {
        // A content size is a claim of the input: reserve at most 64 MiB on its word.
        let size = zstd_safe::get_frame_content_size(input)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= 64 << 20);
        if let Some(size) = size {
            // One frame of known size (what rustic and restic write) decodes straight into
            // its buffer, without the streaming window. More frames, or a damaged one, do
            // not fit or fail: the streaming path below decides.
            let mut out = Vec::with_capacity(size);
            if dctx.decompress(&mut out, input).is_ok() {
                return Ok(out);
            }
        }
        // A context left mid-frame by an earlier error must not carry into this input.
        dctx.reset(ResetDirective::SessionOnly).map_err(error)?;
        let mut out =
            Vec::with_capacity(size.unwrap_or(input.len().saturating_mul(4).min(64 << 20)));
        let mut source = InBuffer::around(input);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64 << 10));
            }
            let written = out.len();
            let more = {
                let mut sink = OutBuffer::around_pos(&mut out, written);
                dctx.decompress_stream(&mut sink, &mut source)
                    .map_err(error)?
            };
            let consumed = source.pos() == input.len();
            if consumed && more == 0 {
                // Every frame ended where the input did.
                return Ok(out);
            }
            if consumed && out.len() < out.capacity() {
                // Room to write, yet nothing left to read: the last frame was cut short.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "zstd: incomplete frame",
                ));
            }
        }
    })
}

/// Runs `f` with this thread's context from `slot`, creating it on first use.
fn with_context<C, T>(
    slot: &'static std::thread::LocalKey<RefCell<Option<C>>>,
    create: fn() -> Option<C>,
    f: impl FnOnce(&mut C) -> io::Result<T>,
) -> io::Result<T> {
    slot.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = create();
        }
        match slot.as_mut() {
            Some(context) => f(context),
            None => Err(io::Error::other("zstd: cannot allocate a context")),
        }
    })
}

fn error(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}
