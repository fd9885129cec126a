//! What a schedule is: when, what to back up, how long to keep it. Kept as JSON in the
//! CronJob's [`SPEC_ANNOTATION`], so the CronJob is the one object that holds a schedule.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cron::CronSchedule;
use crate::resources::BackupRequest;
use crate::resources::request::{humantime_serde_secs, validate_name};
use crate::{Error, Result};

/// The CronJob annotation holding the [`ScheduleSpec`] as JSON.
pub const SPEC_ANNOTATION: &str = "vbackup.io/schedule";
/// The label a scheduled backup carries: the schedule's name (as Velero's
/// `velero.io/schedule-name`).
pub const SCHEDULE_LABEL: &str = "vbackup.io/schedule";
/// Longest schedule name: backups are named `<schedule>-<yyyyMMddHHmmss>` (63 characters at
/// most) and the CronJob controller needs 11 characters for its Job names.
pub const MAX_NAME_LEN: usize = 63 - 15;

/// How many backups of a schedule to keep beyond their TTL, restic's way: a backup stays
/// when any rule keeps it. Nothing set: backups go when their TTL runs out, nothing more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// The newest N successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// The newest successful backup of each of the last N days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// The same per ISO week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// The same per calendar month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
}

impl Retention {
    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// How the scheduled run's mover pods run (the mover flags of `backup create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoverOptions {
    /// Volumes copied at once.
    pub parallel_volumes: usize,
    /// The image mover pods run.
    pub mover_image: String,
    /// How long a mover pod may take to start.
    #[serde(with = "humantime_serde_secs")]
    pub mover_start_timeout: Duration,
    /// A copy that moves no byte for this long fails.
    #[serde(with = "humantime_serde_secs")]
    pub stall_timeout: Duration,
    /// A snapshot that moves to no next stage for this long fails its volume.
    #[serde(with = "humantime_serde_secs")]
    pub snapshot_timeout: Duration,
}

/// A schedule: when it runs, the backup it makes, and what it keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron expression (five fields), read in [`ScheduleSpec::time_zone`].
    pub schedule: String,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The backup each run makes; its name is replaced by `<schedule>-<yyyyMMddHHmmss>`.
    pub template: BackupRequest,
    /// Which of the schedule's backups gc keeps beyond their TTL.
    #[serde(default, skip_serializing_if = "Retention::is_empty")]
    pub retention: Retention,
    /// How mover pods run.
    pub movers: MoverOptions,
    /// Verify the new backup after every Nth successful one (`kubectl vbackup verify`);
    /// 0 = never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub verify_every: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ScheduleSpec {
    /// Checks the name, the cron expression, the time zone and the backup template.
    pub fn validate(&self, name: &str) -> Result<CronSchedule> {
        validate_name(name, "schedule")?;
        if name.len() > MAX_NAME_LEN {
            return Err(Error::BadInput(format!(
                "schedule name {name:?} is longer than {MAX_NAME_LEN} characters: its backups are \
                 named {name}-<yyyyMMddHHmmss>, at most 63 characters"
            )));
        }
        let cron = self.cron()?;
        let mut template = self.template.clone();
        template.name = name.to_string();
        template.validate()?;
        Ok(cron)
    }

    /// The parsed cron expression in its time zone.
    pub fn cron(&self) -> Result<CronSchedule> {
        CronSchedule::parse(&self.schedule, self.time_zone.as_deref())
    }

    /// Whether a run verifies its backup, the schedule having made `successful` successful
    /// backups so far (this run's included).
    pub fn verify_due(&self, successful: usize) -> bool {
        self.verify_every > 0
            && successful > 0
            && successful.is_multiple_of(self.verify_every as usize)
    }

    /// The request of the run at `at`: the template, named `<schedule>-<yyyyMMddHHmmss>` (UTC)
    /// and labelled with the schedule.
    pub fn backup_request(&self, schedule: &str, at: jiff::Timestamp) -> BackupRequest {
        let mut request = self.template.clone();
        request.name = backup_name(schedule, at);
        request
            .labels
            .insert(SCHEDULE_LABEL.to_string(), schedule.to_string());
        request
    }
}

/// `<schedule>-<yyyyMMddHHmmss>`, in UTC so names sort by time whatever the zone.
pub fn backup_name(schedule: &str, at: jiff::Timestamp) -> String {
    format!("{schedule}-{}", at.strftime("%Y%m%d%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScheduleSpec {
        ScheduleSpec {
            schedule: "0 2 * * *".into(),
            time_zone: Some("Europe/Paris".into()),
            template: BackupRequest::new("ignored"),
            retention: Retention {
                keep_daily: Some(7),
                ..Default::default()
            },
            movers: MoverOptions {
                parallel_volumes: 4,
                mover_image: "img".into(),
                mover_start_timeout: Duration::from_secs(300),
                stall_timeout: Duration::from_secs(300),
                snapshot_timeout: Duration::from_secs(600),
            },
            verify_every: 0,
        }
    }

    #[test]
    fn every_nth_successful_backup_is_verified() {
        let mut s = spec();
        assert!(!(1..10).any(|n| s.verify_due(n)), "0 = never");
        s.verify_every = 3;
        let due: Vec<usize> = (0..10).filter(|n| s.verify_due(*n)).collect();
        assert_eq!(due, [3, 6, 9]);
        s.verify_every = 1;
        assert!(s.verify_due(1) && s.verify_due(2));
    }

    #[test]
    fn scheduled_backups_are_named_by_utc_time_and_labelled() {
        let r = spec().backup_request("nightly", "2026-12-03T01:00:07Z".parse().unwrap());
        assert_eq!(r.name, "nightly-20261203010007");
        assert_eq!(
            r.labels.get(SCHEDULE_LABEL).map(String::as_str),
            Some("nightly")
        );
        assert!(r.validate().is_ok());
    }

    #[test]
    fn spec_round_trips_through_the_annotation_json() {
        let s = spec();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"keepDaily\":7"), "{text}");
        assert_eq!(serde_json::from_str::<ScheduleSpec>(&text).unwrap(), s);
    }

    #[test]
    fn names_too_long_for_their_backups_are_refused() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let e = spec().validate(&long).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        assert!(spec().validate(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(spec().validate("Nightly").is_err());
    }
}
