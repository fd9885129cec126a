//! The backup metrics, in Prometheus' text format: Velero's metric names and labels with the
//! `vbackup_` prefix where the meaning is the same, plus [`UNPROTECTED`]. Everything is
//! computed from the [`Inventory`] with the functions `status` and `coverage` use, so the
//! metrics say what those commands say.
//!
//! The `_total` families count the backups (restores) present in the locations, grouped by
//! location and schedule: they are recomputed at every refresh rather than incremented by the
//! process, so they survive restarts and replicas agree, and they fall when gc deletes
//! backups (Prometheus' `rate()` and `increase()` read a fall as a counter reset).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use kube::Client;

use super::coverage::VolumeCoverage;
use super::inventory::{Inventory, namespaces_except};
use super::spec::SCHEDULE_LABEL;
use super::status;
use crate::backups::{BackupRecord, Phase};

/// Backups in the locations.
pub const BACKUP_TOTAL: &str = "vbackup_backup_total";
/// Backups per schedule, whatever their outcome.
pub const BACKUP_ATTEMPT_TOTAL: &str = "vbackup_backup_attempt_total";
/// Backups that completed.
pub const BACKUP_SUCCESS_TOTAL: &str = "vbackup_backup_success_total";
/// Backups that partially failed.
pub const BACKUP_PARTIAL_FAILURE_TOTAL: &str = "vbackup_backup_partial_failure_total";
/// Backups that failed.
pub const BACKUP_FAILURE_TOTAL: &str = "vbackup_backup_failure_total";
/// Start of the newest usable backup.
pub const BACKUP_LAST_SUCCESSFUL_TIMESTAMP: &str = "vbackup_backup_last_successful_timestamp";
/// 1 when the newest backup completed, 0 otherwise.
pub const BACKUP_LAST_STATUS: &str = "vbackup_backup_last_status";
/// How long the backups took.
pub const BACKUP_DURATION_SECONDS: &str = "vbackup_backup_duration_seconds";
/// Restore records in the locations.
pub const RESTORE_TOTAL: &str = "vbackup_restore_total";
/// Restores per schedule of the backup restored, whatever their outcome.
pub const RESTORE_ATTEMPT_TOTAL: &str = "vbackup_restore_attempt_total";
/// Restores that completed.
pub const RESTORE_SUCCESS_TOTAL: &str = "vbackup_restore_success_total";
/// Restores that partially failed.
pub const RESTORE_PARTIAL_FAILURE_TOTAL: &str = "vbackup_restore_partial_failure_total";
/// Restores that failed.
pub const RESTORE_FAILED_TOTAL: &str = "vbackup_restore_failed_total";
/// Claims that are not protected (vbackup's own: Velero has no equivalent).
pub const UNPROTECTED: &str = "vbackup_volume_unprotected";

/// Upper bounds (seconds) of the duration histogram: Velero's, 1 minute to 4 hours.
const DURATION_BUCKETS: [f64; 9] = [
    60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0,
];

/// Outcome counts of one group of backups or restores.
#[derive(Debug, Default)]
struct Outcomes {
    attempts: u64,
    completed: u64,
    partially_failed: u64,
    failed: u64,
}

impl Outcomes {
    fn add(&mut self, phase: Phase) {
        self.attempts += 1;
        match phase {
            Phase::Completed => self.completed += 1,
            Phase::PartiallyFailed => self.partially_failed += 1,
            Phase::Failed => self.failed += 1,
            Phase::Incomplete => {}
        }
    }
}

/// Reads the schedules, every record of every location of vbackup's `namespace` and the
/// coverage of every other namespace, and renders the metrics: what the webhook serves.
pub async fn collect(client: &Client, namespace: &str) -> crate::Result<String> {
    let inventory = Inventory::read(client, namespace, true).await?;
    let namespaces = namespaces_except(client, namespace).await?;
    let now = Timestamp::now();
    let coverage = inventory
        .coverage(client, namespace, &namespaces, now)
        .await?;
    Ok(render(&inventory, &coverage, now))
}

/// The Prometheus text of the backup metrics at `now`; `coverage` is the inventory's coverage
/// of the namespaces to watch (only claims are reported: pod volumes have no claim name).
pub fn render(inventory: &Inventory, coverage: &[VolumeCoverage], now: Timestamp) -> String {
    let mut out = Text::default();
    let groups = status::groups(&inventory.schedules, &inventory.backups);
    let rows = status::rows(&inventory.schedules, &inventory.backups, now);
    // `rows` is `groups` row by row, in the same order.
    let per_schedule: Vec<(Labels, &Vec<&BackupRecord>, &status::Row)> = groups
        .iter()
        .zip(&rows)
        .map(|((key, records), row)| (schedule_labels(&key.0, key.1.as_deref()), records, row))
        .collect();

    out.family(
        BACKUP_TOTAL,
        "gauge",
        "Backups (with metadata) present in the locations.",
    );
    out.sample(BACKUP_TOTAL, &[], inventory.backups.len() as f64);
    let outcomes: Vec<(Labels, Outcomes)> = per_schedule
        .iter()
        .map(|(labels, records, _)| {
            let mut o = Outcomes::default();
            records.iter().for_each(|r| o.add(r.status.phase));
            (labels.clone(), o)
        })
        .collect();
    out.outcome_counters(
        "backups",
        [
            BACKUP_ATTEMPT_TOTAL,
            BACKUP_SUCCESS_TOTAL,
            BACKUP_PARTIAL_FAILURE_TOTAL,
            BACKUP_FAILURE_TOTAL,
        ],
        &outcomes,
    );

    out.family(
        BACKUP_LAST_SUCCESSFUL_TIMESTAMP,
        "gauge",
        "Start of the newest backup that completed or partially failed (as `kubectl vbackup status`), Unix seconds.",
    );
    for (labels, _, row) in &per_schedule {
        if let Some(t) = row.last_success {
            out.sample(
                BACKUP_LAST_SUCCESSFUL_TIMESTAMP,
                labels,
                t.as_second() as f64,
            );
        }
    }
    out.family(
        BACKUP_LAST_STATUS,
        "gauge",
        "Outcome of the newest backup: 1 completed, 0 partially failed or failed.",
    );
    for (labels, _, row) in &per_schedule {
        if let Some(phase) = row.phase {
            let ok = phase == Phase::Completed;
            out.sample(BACKUP_LAST_STATUS, labels, if ok { 1.0 } else { 0.0 });
        }
    }

    out.family(
        BACKUP_DURATION_SECONDS,
        "histogram",
        "Time the backups present in the locations took, start to finish, in seconds.",
    );
    for (labels, records, _) in &per_schedule {
        let seconds: Vec<f64> = records.iter().filter_map(|r| duration(r)).collect();
        out.histogram(BACKUP_DURATION_SECONDS, labels, &seconds);
    }

    render_restores(&mut out, inventory);

    out.family(
        UNPROTECTED,
        "gauge",
        "1 for each claim no schedule protects now (as `kubectl vbackup coverage`), by reason.",
    );
    for c in coverage {
        let (Some(cause), Some(pvc)) = (c.cause, c.volume.strip_prefix("pvc/")) else {
            continue;
        };
        let labels = vec![
            ("namespace", c.namespace.clone()),
            ("pvc", pvc.to_string()),
            ("reason", cause.as_str().to_string()),
        ];
        out.sample(UNPROTECTED, &labels, 1.0);
    }
    out.0
}

/// Restores by location and by the schedule of the backup they restored (Velero's label).
fn render_restores(out: &mut Text, inventory: &Inventory) {
    let schedule_of: BTreeMap<(&str, &str), &str> = inventory
        .backups
        .iter()
        .map(|(location, r)| {
            let schedule = r.spec.labels.get(SCHEDULE_LABEL).map_or("", String::as_str);
            ((location.as_str(), r.name()), schedule)
        })
        .collect();
    let mut groups: BTreeMap<(&str, &str), Outcomes> = BTreeMap::new();
    for (location, r) in &inventory.restores {
        let schedule = schedule_of
            .get(&(location.as_str(), r.spec.backup.as_str()))
            .copied()
            .unwrap_or("");
        groups
            .entry((location.as_str(), schedule))
            .or_default()
            .add(r.status.phase);
    }
    out.family(
        RESTORE_TOTAL,
        "gauge",
        "Restore records present in the locations.",
    );
    out.sample(RESTORE_TOTAL, &[], inventory.restores.len() as f64);
    let groups: Vec<(Labels, Outcomes)> = groups
        .into_iter()
        .map(|((location, schedule), o)| (schedule_labels(location, Some(schedule)), o))
        .collect();
    out.outcome_counters(
        "restores",
        [
            RESTORE_ATTEMPT_TOTAL,
            RESTORE_SUCCESS_TOTAL,
            RESTORE_PARTIAL_FAILURE_TOTAL,
            RESTORE_FAILED_TOTAL,
        ],
        &groups,
    );
}

type Labels = Vec<(&'static str, String)>;

fn schedule_labels(location: &str, schedule: Option<&str>) -> Labels {
    vec![
        ("location", location.to_string()),
        ("schedule", schedule.unwrap_or_default().to_string()),
    ]
}

/// Start to finish, when the record has both.
fn duration(r: &BackupRecord) -> Option<f64> {
    let started: Timestamp = r.status.started.parse().ok()?;
    let completed: Timestamp = r.status.completed.as_deref()?.parse().ok()?;
    let d = completed.duration_since(started);
    (!d.is_negative()).then(|| d.as_secs_f64())
}

/// The text exposition format, written family by family.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// The four outcome counters (all, completed, partially failed, failed) of `what`,
    /// counted from the records present in the locations.
    fn outcome_counters(&mut self, what: &str, names: [&str; 4], groups: &[(Labels, Outcomes)]) {
        let outcomes = ["All ", "Completed ", "PartiallyFailed ", "Failed "];
        let values: [fn(&Outcomes) -> u64; 4] = [
            |o| o.attempts,
            |o| o.completed,
            |o| o.partially_failed,
            |o| o.failed,
        ];
        for ((name, outcome), value) in names.into_iter().zip(outcomes).zip(values) {
            self.family(
                name,
                "counter",
                &format!(
                    "{outcome}{what} present in the locations (recounted at each refresh, not \
                     incremented: gc's deletions lower it)."
                ),
            );
            for (labels, o) in groups {
                self.sample(name, labels, value(o) as f64);
            }
        }
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, String)], values: &[f64]) {
        let bucket = format!("{name}_bucket");
        for bound in DURATION_BUCKETS {
            let count = values.iter().filter(|v| **v <= bound).count();
            let mut with_le = labels.to_vec();
            with_le.push(("le", bound.to_string()));
            self.sample(&bucket, &with_le, count as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf".into()));
        self.sample(&bucket, &with_le, values.len() as f64);
        self.sample(&format!("{name}_sum"), labels, values.iter().sum());
        self.sample(&format!("{name}_count"), labels, values.len() as f64);
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::RestoreRecord;
    use crate::backups::record::{API_VERSION, RestoreStatus, Tally};
    use crate::restore::request::RestoreRequest;
    use crate::schedules::coverage::Unprotected;
    use crate::schedules::status::tests::{record, schedule};

    /// `name{labels}` → value, read line by line (an oracle apart from the writer).
    fn samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap())
            })
            .collect()
    }

    fn backup(name: &str, started: &str, completed: &str, phase: Phase) -> BackupRecord {
        let mut r = record(name, "nightly", started, phase, vec![]);
        r.status.completed = Some(completed.into());
        r
    }

    fn restore(name: &str, backup: &str, phase: Phase) -> (String, RestoreRecord) {
        let record = RestoreRecord {
            api_version: API_VERSION.into(),
            kind: "Restore".into(),
            spec: RestoreRequest::new(name, backup),
            status: RestoreStatus {
                phase,
                failure: None,
                started: "2026-12-10T09:00:00Z".into(),
                completed: None,
                tally: Tally::default(),
                unchanged: 0,
                updated: 0,
                skipped: Vec::new(),
                volumes: Vec::new(),
                hooks: Default::default(),
                dumps: Default::default(),
            },
        };
        ("s3".into(), record)
    }

    fn now() -> Timestamp {
        "2026-12-10T12:00:00Z".parse().unwrap()
    }

    fn inventory() -> Inventory {
        let mut manual = record(
            "by-hand",
            "x",
            "2026-12-05T10:00:00Z",
            Phase::Completed,
            vec![],
        );
        manual.spec.labels.clear();
        let s3 = |r: BackupRecord| ("s3".to_string(), r);
        Inventory {
            schedules: vec![
                schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z"),
                schedule("weekly", "0 3 * * 0", "2026-11-01T00:00:00Z"),
            ],
            backups: vec![
                // 90 s, 20 min and 2 h 30 min.
                s3(backup(
                    "nightly-1",
                    "2026-12-08T02:00:00Z",
                    "2026-12-08T02:01:30Z",
                    Phase::Completed,
                )),
                s3(backup(
                    "nightly-2",
                    "2026-12-09T02:00:00Z",
                    "2026-12-09T02:20:00Z",
                    Phase::PartiallyFailed,
                )),
                s3(backup(
                    "nightly-3",
                    "2026-12-10T02:00:00Z",
                    "2026-12-10T04:30:00Z",
                    Phase::Failed,
                )),
                s3(manual),
            ],
            restores: vec![
                restore("r1", "nightly-1", Phase::Completed),
                restore("r2", "nightly-2", Phase::PartiallyFailed),
                restore("r3", "gone", Phase::Failed),
            ],
        }
    }

    const NIGHTLY: &str = r#"{location="s3",schedule="nightly"}"#;

    #[test]
    fn backups_are_counted_by_schedule_with_the_last_success_and_status() {
        let text = render(&inventory(), &[], now());
        let m = samples(&text);
        let get = |name: &str, labels: &str| {
            *m.get(&format!("{name}{labels}"))
                .unwrap_or_else(|| panic!("no {name}{labels} in\n{text}"))
        };
        assert_eq!(get(BACKUP_TOTAL, ""), 4.0);
        assert_eq!(get(BACKUP_ATTEMPT_TOTAL, NIGHTLY), 3.0);
        assert_eq!(get(BACKUP_SUCCESS_TOTAL, NIGHTLY), 1.0);
        assert_eq!(get(BACKUP_PARTIAL_FAILURE_TOTAL, NIGHTLY), 1.0);
        assert_eq!(get(BACKUP_FAILURE_TOTAL, NIGHTLY), 1.0);
        // The partially failed backup of the 9th is the newest usable one, as in `status`.
        let ninth: Timestamp = "2026-12-09T02:00:00Z".parse().unwrap();
        assert_eq!(
            get(BACKUP_LAST_SUCCESSFUL_TIMESTAMP, NIGHTLY),
            ninth.as_second() as f64
        );
        assert_eq!(get(BACKUP_LAST_STATUS, NIGHTLY), 0.0);
        // The backup made by hand: its own series, schedule "".
        let manual = r#"{location="s3",schedule=""}"#;
        assert_eq!(get(BACKUP_SUCCESS_TOTAL, manual), 1.0);
        assert_eq!(get(BACKUP_LAST_STATUS, manual), 1.0);
        // A schedule that never ran: counters at 0 (as Velero initialises them), no timestamp.
        let weekly = r#"{location="<default>",schedule="weekly"}"#;
        assert_eq!(get(BACKUP_ATTEMPT_TOTAL, weekly), 0.0);
        assert!(!m.contains_key(&format!("{BACKUP_LAST_SUCCESSFUL_TIMESTAMP}{weekly}")));
        assert!(!m.contains_key(&format!("{BACKUP_LAST_STATUS}{weekly}")));
    }

    #[test]
    fn durations_fill_velero_s_buckets() {
        let text = render(&inventory(), &[], now());
        let m = samples(&text);
        let bucket = |le: &str| {
            m[&format!(
                r#"{BACKUP_DURATION_SECONDS}_bucket{{location="s3",schedule="nightly",le="{le}"}}"#
            )]
        };
        assert_eq!(bucket("60"), 0.0);
        assert_eq!(bucket("300"), 1.0);
        assert_eq!(bucket("1800"), 2.0);
        assert_eq!(bucket("7200"), 2.0);
        assert_eq!(bucket("10800"), 3.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(m[&format!("{BACKUP_DURATION_SECONDS}_count{NIGHTLY}")], 3.0);
        assert_eq!(
            m[&format!("{BACKUP_DURATION_SECONDS}_sum{NIGHTLY}")],
            90.0 + 1200.0 + 9000.0
        );
    }

    #[test]
    fn restores_carry_the_schedule_of_the_backup_they_restored() {
        let m = samples(&render(&inventory(), &[], now()));
        assert_eq!(m[RESTORE_TOTAL], 3.0);
        assert_eq!(m[&format!("{RESTORE_SUCCESS_TOTAL}{NIGHTLY}")], 1.0);
        assert_eq!(m[&format!("{RESTORE_PARTIAL_FAILURE_TOTAL}{NIGHTLY}")], 1.0);
        assert_eq!(m[&format!("{RESTORE_ATTEMPT_TOTAL}{NIGHTLY}")], 2.0);
        // Its backup is gone: no schedule to name.
        let gone = r#"{location="s3",schedule=""}"#;
        assert_eq!(m[&format!("{RESTORE_FAILED_TOTAL}{gone}")], 1.0);
    }

    #[test]
    fn unprotected_claims_are_reported_with_a_stable_reason() {
        let row = |volume: &str, cause: Option<Unprotected>| VolumeCoverage {
            namespace: "shop".into(),
            volume: volume.into(),
            protected: cause.is_none(),
            schedule: None,
            method: None,
            last_copy: None,
            reason: "a sentence that changes with \"ages\"".into(),
            cause,
        };
        let coverage = [
            row("pvc/data", None),
            row("pvc/scratch", Some(Unprotected::LastCopyFailed)),
            row("pod/web/logs", Some(Unprotected::Excluded)),
        ];
        let text = render(&Inventory::default(), &coverage, now());
        let m = samples(&text);
        let unprotected: Vec<_> = m.keys().filter(|k| k.starts_with(UNPROTECTED)).collect();
        assert_eq!(
            unprotected,
            [
                r#"vbackup_volume_unprotected{namespace="shop",pvc="scratch",reason="last_copy_failed"}"#
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let r = record(
            "odd",
            "a\"b\\c\nd",
            "2026-12-10T02:00:00Z",
            Phase::Completed,
            vec![],
        );
        let inventory = Inventory {
            backups: vec![("s3".into(), r)],
            ..Default::default()
        };
        let text = render(&inventory, &[], now());
        assert!(
            text.contains(r#"vbackup_backup_success_total{location="s3",schedule="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }

    fn monitoring(file: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/monitoring")
            .join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn alert_rules_use_only_metrics_the_collector_emits() {
        let coverage = [VolumeCoverage {
            namespace: "shop".into(),
            volume: "pvc/data".into(),
            protected: false,
            schedule: None,
            method: None,
            last_copy: None,
            reason: String::new(),
            cause: Some(Unprotected::NoSchedule),
        }];
        let text = render(&inventory(), &coverage, now());
        let emitted: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let rule = monitoring("prometheusrule.yaml");
        assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(rule["kind"], "PrometheusRule");
        let rules: Vec<&serde_json::Value> = rule["spec"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        let alerts: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
        assert_eq!(
            alerts,
            [
                "VbackupNoRecentSuccess",
                "VbackupLastBackupFailed",
                "VbackupVolumeUnprotected"
            ]
        );
        for r in rules {
            let expr = r["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|t| t.starts_with("vbackup_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(
                    emitted.contains(name),
                    "{name} (in {expr}) is not emitted:\n{text}"
                );
            }
        }
        // "No success in 26 hours": a daily schedule, with two hours of slack.
        assert!(rule["spec"].to_string().contains("> 26 * 3600"));
    }

    #[test]
    fn service_monitor_scrapes_the_webhook_service_over_its_tls() {
        use crate::install::webhook;
        let ns = crate::store::SYSTEM_NAMESPACE;
        let monitor = monitoring("servicemonitor.yaml");
        assert_eq!(monitor["kind"], "ServiceMonitor");
        assert_eq!(monitor["metadata"]["namespace"], ns);
        let service = webhook::service(ns);
        let labels = service.metadata.labels.clone().unwrap_or_default();
        let selector: BTreeMap<String, String> =
            serde_json::from_value(monitor["spec"]["selector"]["matchLabels"].clone()).unwrap();
        assert!(
            !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{selector:?} does not select the Service labelled {labels:?}"
        );
        let endpoint = &monitor["spec"]["endpoints"][0];
        let ports: Vec<String> = service
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.name)
            .collect();
        assert!(
            ports.iter().any(|p| endpoint["port"] == p.as_str()),
            "{ports:?}"
        );
        assert_eq!(endpoint["scheme"], "https");
        assert_eq!(endpoint["path"], "/metrics");
        let tls = &endpoint["tlsConfig"];
        assert_eq!(tls["ca"]["secret"]["name"], webhook::TLS_SECRET);
        assert_eq!(tls["ca"]["secret"]["key"], "ca.crt");
        let server = tls["serverName"].as_str().unwrap().to_string();
        assert!(webhook::dns_names(ns).contains(&server), "{server}");
    }

    #[test]
    fn monitoring_is_its_own_kustomization_outside_the_default_one() {
        let k = monitoring("kustomization.yaml");
        let resources: Vec<&str> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        assert_eq!(resources, ["servicemonitor.yaml", "prometheusrule.yaml"]);
        for r in resources {
            monitoring(r);
        }
        // The Prometheus Operator's CRDs may be absent: `kubectl apply -k manifests/` must not
        // need them.
        let default = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../manifests/kustomization.yaml"),
        )
        .unwrap();
        assert!(!default.contains("monitoring"), "{default}");
    }
}
