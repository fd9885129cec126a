//! The backup metrics (`vbackup_backup_*`, `vbackup_restore_*`, `vbackup_volume_unprotected`),
//! recomputed in the background from the locations' metadata by the engine's collector and
//! appended to `/metrics`. Admission never waits on them; a refresh that fails keeps the last
//! good text, is logged and counted, and the next one tries again.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::time::MissedTickBehavior;
use vbackup_engine::schedules::metrics::collect;

/// A refresh that takes longer is abandoned (a hung bucket must not stop the next ones).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(300);

/// The last rendered backup metrics and how refreshing them goes.
#[derive(Debug, Default)]
pub struct BackupMetrics {
    text: Mutex<String>,
    errors: AtomicU64,
    /// Unix seconds of the last successful refresh; 0 before the first.
    last_success: AtomicU64,
    last_duration_millis: AtomicU64,
}

impl BackupMetrics {
    /// Refreshes every `interval` (the first right away) for as long as the process runs.
    pub fn start(client: kube::Client, namespace: String, interval: Duration) -> Arc<Self> {
        let metrics = Arc::new(BackupMetrics::default());
        let shared = metrics.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                shared.refresh(&client, &namespace).await;
            }
        });
        metrics
    }

    async fn refresh(&self, client: &kube::Client, namespace: &str) {
        let started = Instant::now();
        // Its own task: a panic in the collector is a failed refresh, not a dead loop.
        let (client, ns) = (client.clone(), namespace.to_string());
        let task = tokio::spawn(async move { collect(&client, &ns).await });
        let abort = task.abort_handle();
        let outcome = match tokio::time::timeout(REFRESH_TIMEOUT, task).await {
            Ok(Ok(Ok(text))) => Ok(text),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!("the collector stopped: {e}")),
            Err(_) => {
                abort.abort();
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(REFRESH_TIMEOUT)
                ))
            }
        };
        let took = started.elapsed();
        self.last_duration_millis
            .store(took.as_millis() as u64, Ordering::Relaxed);
        match outcome {
            Ok(text) => {
                *self.text.lock().unwrap_or_else(|p| p.into_inner()) = text;
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                self.last_success.store(now.as_secs(), Ordering::Relaxed);
                tracing::debug!(?took, "backup metrics refreshed");
            }
            Err(why) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "cannot refresh the backup metrics (serving the previous values): {why}"
                );
            }
        }
    }

    /// Appends the refresh's own metrics and the last backup metrics to `out`.
    pub fn render(&self, out: &mut String) {
        let name = "vbackup_backup_metrics_refresh_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Refreshes of the backup metrics that failed (the previous values stayed).\n\
             # TYPE {name} counter\n{name} {}",
            self.errors.load(Ordering::Relaxed)
        );
        let last = self.last_success.load(Ordering::Relaxed);
        if last > 0 {
            let name = "vbackup_backup_metrics_last_refresh_timestamp_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} When the backup metrics were last recomputed, Unix seconds.\n\
                 # TYPE {name} gauge\n{name} {last}"
            );
        }
        let name = "vbackup_backup_metrics_refresh_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long the last refresh of the backup metrics took.\n\
             # TYPE {name} gauge\n{name} {}",
            self.last_duration_millis.load(Ordering::Relaxed) as f64 / 1000.0
        );
        out.push_str(&self.text.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
