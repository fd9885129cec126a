//! Prometheus metrics, written by hand in the text exposition format: a few counters and one
//! histogram do not earn a metrics library.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vbackup_engine::webhook::Outcome;

use crate::tls::ReloadingCert;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
const RESULTS: [&str; 4] = ["patched", "unchanged", "error", "bad_request"];

/// The webhook's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; 4],
    patches: AtomicU64,
    patch_operations: AtomicU64,
    dry_runs: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    /// Records one `/mutate` request.
    pub fn record(&self, outcome: &Outcome, dry_run: bool, took: Duration) {
        let index = RESULTS
            .iter()
            .position(|r| *r == outcome.label())
            .unwrap_or(2);
        self.requests[index].fetch_add(1, Ordering::Relaxed);
        if dry_run {
            self.dry_runs.fetch_add(1, Ordering::Relaxed);
        } else if let Outcome::Patched(operations) = outcome {
            self.patches.fetch_add(1, Ordering::Relaxed);
            self.patch_operations
                .fetch_add(*operations as u64, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self, cert: &ReloadingCert) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vbackup_webhook_requests_total Admission requests by result (every one admitted).\n\
             # TYPE vbackup_webhook_requests_total counter"
        );
        for (result, count) in RESULTS.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "vbackup_webhook_requests_total{{result=\"{result}\"}} {}",
                load(count)
            );
        }
        let counters = [
            (
                "vbackup_webhook_patches_total",
                "Pods annotated (dry runs not counted).",
                load(&self.patches),
            ),
            (
                "vbackup_webhook_patch_operations_total",
                "JSON patch operations sent (dry runs not counted).",
                load(&self.patch_operations),
            ),
            (
                "vbackup_webhook_dry_run_requests_total",
                "Requests with dryRun set.",
                load(&self.dry_runs),
            ),
            (
                "vbackup_webhook_certificate_reloads_total",
                "Serving certificate reloads after a change on disk.",
                load(&cert.reloads),
            ),
            (
                "vbackup_webhook_certificate_reload_errors_total",
                "Reloads that failed; the previous certificate stayed in use.",
                load(&cert.reload_errors),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let name = "vbackup_webhook_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a /mutate request.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(count);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = load(&self.latency_count);
        let sum = load(&self.latency_sum_nanos) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}"
        );
        out
    }
}
