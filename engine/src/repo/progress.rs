//! Progress of a running repository operation, and stall detection on top of it.
//!
//! rustic_core reports bytes through its `ProgressBars` hooks; the source wrapper counts
//! files; the storage backend marks every finished call. A supervisor on the async side
//! reports to the caller's callback about once a second and abandons the operation when
//! nothing moved for the stall period — a slow but moving copy never times out.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// A snapshot of an operation's progress, handed to the caller's callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// Bytes processed so far (read from the source, or restored).
    pub bytes_done: u64,
    /// Total bytes expected, once known (0 while unknown).
    pub bytes_total: u64,
    /// Files (and other entries) processed so far.
    pub files_done: u64,
    /// Files whose contents were actually read (unchanged files are not).
    pub files_read: u64,
}

/// Messages kept of entries that could not be read (all are counted).
pub const MAX_WARNINGS: usize = 20;

/// The caller's progress callback; called from a tokio task about once a second.
pub type ProgressFn = Arc<dyn Fn(ProgressUpdate) + Send + Sync>;

/// Shared counters of one operation; cheap to clone and to bump from any thread.
#[derive(Clone, Default)]
pub struct Activity(Arc<Counters>);

#[derive(Default)]
struct Counters {
    warnings: std::sync::Mutex<Vec<String>>,
    warning_count: AtomicU64,
    started: Option<Instant>,
    last_move_ms: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_read: AtomicU64,
}

impl fmt::Debug for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Activity").field(&self.update()).finish()
    }
}

impl Activity {
    /// Counters starting now.
    pub fn new() -> Self {
        Activity(Arc::new(Counters {
            started: Some(Instant::now()),
            ..Counters::default()
        }))
    }

    /// Starts counting a new operation of the same session: counts back to zero, and the
    /// stall clock restarts now.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.0.bytes_done,
            &self.0.bytes_total,
            &self.0.files_done,
            &self.0.files_read,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.touch();
    }

    /// Records that something moved (a store call finished, a chunk was read).
    pub fn touch(&self) {
        if let Some(started) = self.0.started {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.0.last_move_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Records an entry that could not be read, keeping the first [`MAX_WARNINGS`] messages.
    pub fn warn(&self, message: String) {
        self.0.warning_count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut w) = self.0.warnings.lock()
            && w.len() < MAX_WARNINGS
        {
            w.push(message);
        }
    }

    /// The entries that could not be read: their count and the first messages.
    pub fn warnings(&self) -> (u64, Vec<String>) {
        let kept = self
            .0
            .warnings
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        (self.0.warning_count.load(Ordering::Relaxed), kept)
    }

    /// Adds processed bytes.
    pub fn add_bytes(&self, n: u64) {
        self.0.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.touch();
    }

    /// Sets the expected total.
    pub fn set_total(&self, n: u64) {
        self.0.bytes_total.store(n, Ordering::Relaxed);
    }

    /// Counts one processed entry.
    pub fn add_file(&self) {
        self.0.files_done.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Counts one file whose contents are being read.
    pub fn add_file_read(&self) {
        self.0.files_read.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// The current counts.
    pub fn update(&self) -> ProgressUpdate {
        ProgressUpdate {
            bytes_done: self.0.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.0.bytes_total.load(Ordering::Relaxed),
            files_done: self.0.files_done.load(Ordering::Relaxed),
            files_read: self.0.files_read.load(Ordering::Relaxed),
        }
    }

    /// How long nothing has moved.
    fn idle_for(&self) -> Duration {
        let Some(started) = self.0.started else {
            return Duration::ZERO;
        };
        let last = Duration::from_millis(self.0.last_move_ms.load(Ordering::Relaxed));
        started.elapsed().saturating_sub(last)
    }
}

/// rustic's progress hooks, feeding an [`Activity`].
#[derive(Debug, Clone)]
pub(crate) struct ActivityBars(pub(crate) Activity);

impl ProgressBars for ActivityBars {
    fn progress(&self, progress_type: ProgressType, _prefix: &str) -> Progress {
        Progress::new(ActivityBar {
            activity: self.0.clone(),
            counts_bytes: matches!(progress_type, ProgressType::Bytes),
        })
    }
}

#[derive(Debug)]
struct ActivityBar {
    activity: Activity,
    counts_bytes: bool,
}

impl RusticProgress for ActivityBar {
    fn is_hidden(&self) -> bool {
        // "Not hidden" makes rustic compute totals (a parallel size scan of the source).
        !self.counts_bytes
    }
    fn set_length(&self, len: u64) {
        if self.counts_bytes {
            self.activity.set_total(len);
        }
    }
    fn set_title(&self, _title: &str) {}
    fn inc(&self, inc: u64) {
        if self.counts_bytes {
            self.activity.add_bytes(inc);
        } else {
            self.activity.touch();
        }
    }
    fn finish(&self) {}
}

/// Waits for a blocking repository job while reporting progress and watching for stalls.
///
/// On a stall, `cancel` is triggered (the storage backend then fails every further call, so the
/// abandoned job winds down without writing a snapshot) and [`Error::Stalled`] is returned.
pub(crate) async fn supervise<T: Send + 'static>(
    op: &'static str,
    namespace: &str,
    job: JoinHandle<Result<T>>,
    activity: &Activity,
    cancel: &CancellationToken,
    stall_after: Option<Duration>,
    on_progress: Option<&ProgressFn>,
) -> Result<T> {
    let tick = stall_after
        .map(|s| (s / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    tokio::pin!(job);
    loop {
        tokio::select! {
            joined = &mut job => {
                if let Some(report) = on_progress {
                    report(activity.update());
                }
                return joined.map_err(|e| join_error(op, namespace, e))?;
            }
            _ = tokio::time::sleep(tick) => {
                if let Some(report) = on_progress {
                    report(activity.update());
                }
                if let Some(limit) = stall_after {
                    let idle = activity.idle_for();
                    if idle >= limit {
                        cancel.cancel();
                        return Err(Error::Stalled {
                            what: format!("{op} in namespace {namespace}"),
                            stalled_for: idle,
                        });
                    }
                }
            }
        }
    }
}

/// rustic_core panics on some I/O failures inside its restore workers; turn that into an error.
fn join_error(op: &'static str, namespace: &str, err: tokio::task::JoinError) -> Error {
    let detail = match err.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the worker panicked".into()),
        Err(err) => err.to_string(),
    };
    // The panic text is a Debug dump of a rustic error; its `guidance` is the useful part.
    let cause = detail
        .split_once("guidance: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(guidance, _)| guidance.to_string())
        .unwrap_or(detail);
    Error::Repo {
        op,
        namespace: namespace.to_string(),
        detail: format!(
            "reading the repository failed ({cause}); it may be damaged: run a check that \
             reads all data to find the damaged packs"
        ),
    }
}
