//! Cron schedules as Kubernetes' CronJob controller reads them: five fields (robfig/cron's
//! standard parser, where day-of-month and day-of-week match when either does), the
//! `@daily`-style shorthands, evaluated in the schedule's time zone (UTC when none is given,
//! the zone of most controller managers).

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::{Error, Result};

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: TimeZone,
}

impl CronSchedule {
    /// Parses `expr` and loads `time_zone` (an IANA name such as `Europe/Paris`), refusing
    /// what the API server refuses (`TZ=`/`CRON_TZ=` prefixes, seconds, years).
    pub fn parse(expr: &str, time_zone: Option<&str>) -> Result<CronSchedule> {
        let trimmed = expr.trim();
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(Error::BadInput(format!(
                "schedule {expr:?}: give the time zone with --time-zone, not TZ= or CRON_TZ= \
                 (Kubernetes refuses them)"
            )));
        }
        if trimmed.starts_with("@every") {
            return Err(Error::BadInput(format!(
                "schedule {expr:?}: @every is not supported; use five cron fields, e.g. \"0 */6 * * *\""
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| {
                Error::BadInput(format!(
                    "schedule {expr:?} is not a cron expression ({e}): use five fields \
                     \"MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK\", e.g. \"0 2 * * *\" for 02:00 daily"
                ))
            })?;
        let zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                Error::BadInput(format!(
                    "unknown time zone {name:?} ({e}): use an IANA name such as Europe/Paris or UTC"
                ))
            })?,
        };
        Ok(CronSchedule { cron, zone })
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&t.to_zoned(self.zone.clone()), false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The last run strictly before `t`.
    pub fn previous_before(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&t.to_zoned(self.zone.clone()), false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The gap between the last two runs before `t`: how often a backup is expected right
    /// now (three days on a Monday for a weekdays-only schedule, one day on a Tuesday).
    pub fn interval_at(&self, t: Timestamp) -> Option<Duration> {
        let last = self.previous_before(t)?;
        let before = self.previous_before(last)?;
        Duration::try_from(last.duration_since(before)).ok()
    }

    /// The schedule's time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn nightly_schedule_runs_at_two_in_its_time_zone() {
        let s = CronSchedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
        // 02:00 in Paris in winter is 01:00 UTC.
        assert_eq!(
            s.next_after(ts("2026-12-02T12:00:00Z")),
            Some(ts("2026-12-03T01:00:00Z"))
        );
        let utc = CronSchedule::parse("0 2 * * *", None).unwrap();
        assert_eq!(
            utc.next_after(ts("2026-12-02T12:00:00Z")),
            Some(ts("2026-12-03T02:00:00Z"))
        );
        assert_eq!(
            utc.interval_at(ts("2026-12-02T12:00:00Z")),
            Some(Duration::from_secs(86400))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_kubernetes() {
        // robfig/cron: the 1st of the month OR a Monday.
        let s = CronSchedule::parse("0 0 1 * MON", None).unwrap();
        // 2026-12-02 is a Wednesday: next is Monday the 7th, not January 1st.
        assert_eq!(
            s.next_after(ts("2026-12-02T00:00:00Z")),
            Some(ts("2026-12-07T00:00:00Z"))
        );
    }

    #[test]
    fn weekday_schedules_expect_a_longer_gap_after_the_weekend() {
        let s = CronSchedule::parse("30 1 * * 1-5", None).unwrap();
        // Monday 2026-12-07 10:00: the last runs were Monday 01:30 and Friday 01:30.
        assert_eq!(
            s.interval_at(ts("2026-12-07T10:00:00Z")),
            Some(Duration::from_secs(3 * 86400))
        );
    }

    #[test]
    fn shorthands_are_accepted() {
        let s = CronSchedule::parse("@daily", None).unwrap();
        assert_eq!(
            s.previous_before(ts("2026-12-02T12:00:00Z")),
            Some(ts("2026-12-02T00:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_with_what_to_do() {
        for bad in [
            "",
            "0 2 * *",
            "61 * * * *",
            "0 0 2 * * *",
            "TZ=UTC 0 2 * * *",
            "@every 1h",
        ] {
            let e = CronSchedule::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains("schedule"), "{bad}: {e}");
        }
        let e = CronSchedule::parse("0 2 * * *", Some("Mars/Olympus"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown time zone"), "{e}");
    }
}
