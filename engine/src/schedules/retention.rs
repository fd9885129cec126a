//! Which backups gc deletes: the expired ones (`expires = created + ttl`), and a schedule's
//! successful backups that none of its `--keep-*` rules keeps. Pure: it decides, gc acts.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::spec::Retention;
use crate::backups::Phase;

/// A backup as gc sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Backup name.
    pub name: String,
    /// When it started.
    pub started: Timestamp,
    /// When it expires (`None`: never, TTL 0).
    pub expires: Option<Timestamp>,
    /// How it ended.
    pub phase: Phase,
    /// The schedule that made it.
    pub schedule: Option<String>,
}

/// Why a backup is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// Its TTL ran out at this time.
    Expired(Timestamp),
    /// Newer backups of its schedule fill every `--keep-*` rule.
    NotRetained {
        /// The schedule.
        schedule: String,
    },
}

impl std::fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteReason::Expired(at) => write!(f, "expired at {at}"),
            DeleteReason::NotRetained { schedule } => {
                write!(f, "not kept by the retention of schedule {schedule}")
            }
        }
    }
}

/// The backups to delete at `now`, oldest first. `retention` gives each schedule's rules and
/// the time zone its days, weeks and months are counted in. Failed and incomplete backups are
/// never counted as kept copies, and retention deletes only successful ones (a failed backup
/// goes when it expires), so a run of failures never pushes out the last good backup.
pub fn select(
    backups: &[Candidate],
    now: Timestamp,
    retention: &BTreeMap<String, (Retention, TimeZone)>,
) -> Vec<(String, DeleteReason)> {
    let mut out: Vec<(Timestamp, String, DeleteReason)> = Vec::new();
    let mut expired = BTreeSet::new();
    for b in backups {
        if let Some(at) = b.expires
            && at <= now
        {
            expired.insert(b.name.as_str());
            out.push((b.started, b.name.clone(), DeleteReason::Expired(at)));
        }
    }
    for (schedule, (rules, zone)) in retention {
        if rules.is_empty() {
            continue;
        }
        let mut good: Vec<&Candidate> = backups
            .iter()
            .filter(|b| b.schedule.as_deref() == Some(schedule.as_str()))
            .filter(|b| matches!(b.phase, Phase::Completed | Phase::PartiallyFailed))
            .collect();
        good.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.name.cmp(&a.name)));
        let kept = kept(&good, rules, zone);
        for b in good {
            if !kept.contains(b.name.as_str()) && !expired.contains(b.name.as_str()) {
                let reason = DeleteReason::NotRetained {
                    schedule: schedule.clone(),
                };
                out.push((b.started, b.name.clone(), reason));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    out.into_iter().map(|(_, n, r)| (n, r)).collect()
}

/// restic's `forget --keep-*`: walking newest first, each rule keeps a backup whose period
/// (itself for keep-last; day, ISO week, month) differs from the last one that rule kept,
/// until its count is used up.
fn kept<'a>(
    newest_first: &[&'a Candidate],
    rules: &Retention,
    zone: &TimeZone,
) -> BTreeSet<&'a str> {
    type Period = fn(usize, &jiff::Zoned) -> (i64, i64, i64);
    let periods: [(Option<u32>, Period); 4] = [
        (rules.keep_last, |i, _| (i as i64, 0, 0)),
        (rules.keep_daily, |_, z| {
            (z.year().into(), z.month().into(), z.day().into())
        }),
        (rules.keep_weekly, |_, z| {
            let w = z.date().iso_week_date();
            (w.year().into(), w.week().into(), 0)
        }),
        (rules.keep_monthly, |_, z| {
            (z.year().into(), z.month().into(), 0)
        }),
    ];
    let mut kept = BTreeSet::new();
    for (count, period) in periods {
        let Some(mut left) = count else { continue };
        let mut last = None;
        for (i, b) in newest_first.iter().enumerate() {
            if left == 0 {
                break;
            }
            let p = period(i, &b.started.to_zoned(zone.clone()));
            if last != Some(p) {
                kept.insert(b.name.as_str());
                last = Some(p);
                left -= 1;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, started: &str, phase: Phase) -> Candidate {
        Candidate {
            name: name.into(),
            started: started.parse().unwrap(),
            expires: None,
            phase,
            schedule: Some("nightly".into()),
        }
    }

    fn rules(r: Retention) -> BTreeMap<String, (Retention, TimeZone)> {
        BTreeMap::from([("nightly".to_string(), (r, TimeZone::UTC))])
    }

    fn names(v: Vec<(String, DeleteReason)>) -> Vec<String> {
        v.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn expired_backups_go_and_ttl_zero_never_expires() {
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let mut old = backup("old", "2026-11-01T00:00:00Z", Phase::Completed);
        old.expires = Some("2026-12-01T00:00:00Z".parse().unwrap());
        let mut fresh = backup("fresh", "2026-12-01T00:00:00Z", Phase::Failed);
        fresh.expires = Some("2026-12-31T00:00:00Z".parse().unwrap());
        let forever = backup("forever", "2020-01-01T00:00:00Z", Phase::Completed);
        let out = select(&[old, fresh, forever], now, &BTreeMap::new());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "old");
        assert_eq!(out[0].1.to_string(), "expired at 2026-12-01T00:00:00Z");
    }

    #[test]
    fn keep_last_keeps_the_newest_successful_backups_only() {
        let now: Timestamp = "2026-12-10T00:00:00Z".parse().unwrap();
        let list = [
            backup("n1", "2026-12-01T02:00:00Z", Phase::Completed),
            backup("n2", "2026-12-02T02:00:00Z", Phase::PartiallyFailed),
            backup("n3", "2026-12-03T02:00:00Z", Phase::Completed),
            backup("n4", "2026-12-04T02:00:00Z", Phase::Failed),
        ];
        let r = Retention {
            keep_last: Some(2),
            ..Default::default()
        };
        // The failed n4 neither counts as a kept copy nor is deleted by retention.
        assert_eq!(names(select(&list, now, &rules(r))), ["n1"]);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day_and_weekly_reaches_further() {
        let now: Timestamp = "2026-12-31T00:00:00Z".parse().unwrap();
        let list = [
            backup("nov-30", "2026-11-30T02:00:00Z", Phase::Completed), // ISO week 49
            backup("dec-05", "2026-12-05T02:00:00Z", Phase::Completed), // week 49
            backup("dec-06", "2026-12-06T02:00:00Z", Phase::Completed), // week 49
            backup("dec-07-a", "2026-12-07T02:00:00Z", Phase::Completed), // week 50
            backup("dec-07-b", "2026-12-07T14:00:00Z", Phase::Completed),
            backup("dec-08", "2026-12-08T02:00:00Z", Phase::Completed),
        ];
        let daily = Retention {
            keep_daily: Some(2),
            ..Default::default()
        };
        assert_eq!(
            names(select(&list, now, &rules(daily))),
            ["nov-30", "dec-05", "dec-06", "dec-07-a"]
        );
        let weekly = Retention {
            keep_daily: Some(2),
            keep_weekly: Some(2),
            ..Default::default()
        };
        // Week 50's newest is dec-08 (kept daily too); week 49's newest is dec-06.
        assert_eq!(
            names(select(&list, now, &rules(weekly))),
            ["nov-30", "dec-05", "dec-07-a"]
        );
    }

    #[test]
    fn days_are_counted_in_the_schedule_time_zone() {
        let now: Timestamp = "2026-12-31T00:00:00Z".parse().unwrap();
        // 23:30 and 00:30 UTC on two UTC days are the same day (Dec 3) in Tokyo.
        let list = [
            backup("a", "2026-12-02T23:30:00Z", Phase::Completed),
            backup("b", "2026-12-03T00:30:00Z", Phase::Completed),
        ];
        let r = Retention {
            keep_daily: Some(5),
            ..Default::default()
        };
        let tokyo = BTreeMap::from([(
            "nightly".to_string(),
            (r, TimeZone::get("Asia/Tokyo").unwrap()),
        )]);
        assert_eq!(names(select(&list, now, &tokyo)), ["a"]);
        assert!(select(&list, now, &rules(r)).is_empty());
    }

    #[test]
    fn backups_of_other_schedules_and_manual_ones_are_left_to_their_ttl() {
        let now: Timestamp = "2026-12-10T00:00:00Z".parse().unwrap();
        let mut manual = backup("manual", "2026-12-01T00:00:00Z", Phase::Completed);
        manual.schedule = None;
        let mut other = backup("other", "2026-12-01T00:00:00Z", Phase::Completed);
        other.schedule = Some("weekly".into());
        let mine = backup("mine", "2026-12-02T00:00:00Z", Phase::Completed);
        let r = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        assert!(select(&[manual, other, mine], now, &rules(r)).is_empty());
    }
}
