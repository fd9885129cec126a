//! `kubectl vbackup status`: per location and schedule, the last backup and whether the
//! schedule is keeping up. A schedule whose last success is older than twice its interval
//! (or that never succeeded once that long after its creation) is overdue.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::Schedule;
use super::spec::SCHEDULE_LABEL;
use crate::backups::{BackupRecord, Phase};

/// One row of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The location.
    pub location: String,
    /// The schedule (`None`: backups made by hand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The newest backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Its phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    /// Bytes it stored: the object archive and the new volume data.
    pub bytes: u64,
    /// The newest backup that completed (or partially failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Timestamp>,
    /// The schedule's next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Timestamp>,
    /// Why this row needs attention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The schedule is behind (see [`overdue`]): what alerting and the exit code look at.
    pub overdue: bool,
}

/// Backups by location and schedule (`None`: made by hand), plus an empty group for every
/// schedule without a backup yet (under its own location).
pub type Groups<'a> = BTreeMap<(String, Option<String>), Vec<&'a BackupRecord>>;

/// Sorts the backups of every location into [`Groups`]: one per row of `status`.
pub fn groups<'a>(schedules: &[Schedule], backups: &'a [(String, BackupRecord)]) -> Groups<'a> {
    let mut groups = Groups::new();
    for (location, r) in backups {
        let schedule = r.spec.labels.get(SCHEDULE_LABEL).cloned();
        groups
            .entry((location.clone(), schedule))
            .or_default()
            .push(r);
    }
    for s in schedules {
        let location = s
            .spec
            .template
            .storage_location
            .clone()
            .unwrap_or_else(|| "<default>".into());
        let known = groups
            .keys()
            .any(|(_, schedule)| schedule.as_deref() == Some(s.name.as_str()));
        if !known {
            groups.entry((location, Some(s.name.clone()))).or_default();
        }
    }
    groups
}

/// The rows at `now` for `schedules` and the backups of every location.
pub fn rows(
    schedules: &[Schedule],
    backups: &[(String, BackupRecord)],
    now: Timestamp,
) -> Vec<Row> {
    groups(schedules, backups)
        .into_iter()
        .map(|((location, schedule), records)| {
            let started = |r: &&BackupRecord| r.status.started.parse::<Timestamp>().ok();
            let newest = records.iter().max_by_key(|r| started(r));
            let last_success = records
                .iter()
                .filter(|r| matches!(r.status.phase, Phase::Completed | Phase::PartiallyFailed))
                .filter_map(started)
                .max();
            let sched = schedule
                .as_deref()
                .and_then(|n| schedules.iter().find(|s| s.name == n));
            let mut problem = newest
                .filter(|r| r.status.phase != Phase::Completed)
                .map(|r| format!("last backup {}", r.status.phase));
            let behind = sched.and_then(|s| overdue(s, last_success, now));
            let is_overdue = behind.is_some();
            problem = behind.or(problem);
            Row {
                location,
                schedule,
                last_backup: newest.map(|r| r.name().to_string()),
                phase: newest.map(|r| r.status.phase),
                started: newest.and_then(started),
                bytes: newest.map_or(0, |r| {
                    r.status.archive_bytes
                        + r.status.volumes.iter().map(|v| v.bytes_added).sum::<u64>()
                }),
                last_success,
                next_run: sched.and_then(|s| s.next_run(now)),
                problem,
                overdue: is_overdue,
            }
        })
        .collect()
}

/// Why a schedule is behind, if it is.
pub fn overdue(s: &Schedule, last_success: Option<Timestamp>, now: Timestamp) -> Option<String> {
    if s.paused {
        return Some("paused".into());
    }
    let interval = s.spec.cron().ok()?.interval_at(now)?;
    let limit = interval * 2;
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    let words =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    match last_success {
        Some(t) if age(t) > limit => Some(format!(
            "last success {} ago, more than twice the interval ({})",
            words(age(t)),
            words(interval)
        )),
        Some(_) => None,
        None if s.created.is_none_or(|c| age(c) > limit) => Some("no successful backup yet".into()),
        None => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backups::record::{BackupStatus, Tally};
    use crate::backups::{VolumeRecord, record::API_VERSION};
    use crate::resources::BackupRequest;
    use crate::schedules::spec::{MoverOptions, Retention, ScheduleSpec};

    pub fn schedule(name: &str, cron: &str, created: &str) -> Schedule {
        let mut template = BackupRequest::new(name);
        template.namespaces.include = vec!["shop".into()];
        Schedule {
            name: name.into(),
            spec: ScheduleSpec {
                schedule: cron.into(),
                time_zone: None,
                template,
                retention: Retention::default(),
                movers: MoverOptions {
                    parallel_volumes: 1,
                    mover_image: "img".into(),
                    mover_start_timeout: Duration::from_secs(60),
                    stall_timeout: Duration::from_secs(60),
                    snapshot_timeout: Duration::from_secs(60),
                },
                verify_every: 0,
            },
            image: "img".into(),
            paused: false,
            created: Some(created.parse().unwrap()),
            last_schedule: None,
        }
    }

    pub fn record(
        name: &str,
        schedule: &str,
        started: &str,
        phase: Phase,
        volumes: Vec<VolumeRecord>,
    ) -> BackupRecord {
        let mut spec = BackupRequest::new(name);
        spec.labels.insert(SCHEDULE_LABEL.into(), schedule.into());
        BackupRecord {
            api_version: API_VERSION.into(),
            kind: "Backup".into(),
            spec,
            status: BackupStatus {
                phase,
                failure: None,
                started: started.into(),
                completed: None,
                expires: "never".into(),
                location: "s3".into(),
                cluster_version: String::new(),
                tally: Tally::default(),
                skipped: Vec::new(),
                archive_bytes: 1000,
                volumes,
                hooks: Default::default(),
                dumps: Vec::new(),
            },
        }
    }

    fn now() -> Timestamp {
        "2026-12-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_daily_schedule_is_overdue_after_two_days_without_success() {
        let s = schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z");
        assert_eq!(
            overdue(&s, Some("2026-12-09T02:00:00Z".parse().unwrap()), now()),
            None
        );
        let late = overdue(&s, Some("2026-12-08T01:00:00Z".parse().unwrap()), now()).unwrap();
        assert!(
            late.contains("more than twice the interval (1day)"),
            "{late}"
        );
        assert_eq!(
            overdue(&s, None, now()).as_deref(),
            Some("no successful backup yet")
        );
        // A schedule created an hour ago has not had the chance to run yet.
        let fresh = schedule("nightly", "0 2 * * *", "2026-12-10T11:00:00Z");
        assert_eq!(overdue(&fresh, None, now()), None);
        let mut paused = fresh;
        paused.paused = true;
        assert_eq!(overdue(&paused, None, now()).as_deref(), Some("paused"));
    }

    #[test]
    fn rows_show_the_newest_backup_and_flag_only_overdue_schedules() {
        let s = schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z");
        let mut v = VolumeRecord::new("shop", "data", "Completed");
        v.bytes_added = 500;
        let backups = vec![
            (
                "s3".to_string(),
                record(
                    "nightly-1",
                    "nightly",
                    "2026-12-09T02:00:00Z",
                    Phase::Completed,
                    vec![],
                ),
            ),
            (
                "s3".to_string(),
                record(
                    "nightly-2",
                    "nightly",
                    "2026-12-10T02:00:00Z",
                    Phase::PartiallyFailed,
                    vec![v],
                ),
            ),
        ];
        let rows = rows(&[s], &backups, now());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.last_backup.as_deref(), Some("nightly-2"));
        assert_eq!(r.bytes, 1500);
        assert_eq!(r.problem.as_deref(), Some("last backup PartiallyFailed"));
        assert!(!r.overdue);
        assert_eq!(r.next_run, Some("2026-12-11T02:00:00Z".parse().unwrap()));
        // A schedule without any backup yet, created long ago, is overdue.
        let lonely = schedule("weekly", "0 3 * * 0", "2026-10-01T00:00:00Z");
        let rows = super::rows(&[lonely], &[], now());
        assert!(rows[0].overdue && rows[0].last_backup.is_none());
    }
}
