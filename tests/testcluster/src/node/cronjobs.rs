//! The CronJob controller: at each scheduled minute (UTC) a Job named
//! `CRONJOB-<minutes since the epoch>` from the job template, honouring `suspend`,
//! `concurrencyPolicy` and the history limits, with `lastScheduleTime`/`lastSuccessfulTime`.

use super::Node;
use super::objects::{self, controller_ref, controller_uid, s};
use jiff::civil::DateTime;
use serde_json::{Value, json};

/// A parsed five-field schedule (minute hour day-of-month month day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    fields: [Vec<u32>; 5],
    dom_any: bool,
    dow_any: bool,
}

const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

fn field(text: &str, (lo, hi): (u32, u32)) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let p = |x: &str| {
                x.parse::<u32>()
                    .map_err(|_| format!("bad value in {part:?}"))
            };
            (p(a)?, p(b)?)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("bad value in {part:?}"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b || step == 0 {
            return Err(format!("{part:?} is out of range {lo}-{hi}"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Ok(out)
}

impl Schedule {
    /// Parses `spec.schedule` (five fields or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t => t,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("expected 5 fields, found {}", parts.len()));
        }
        let mut fields: [Vec<u32>; 5] = Default::default();
        for (i, p) in parts.iter().enumerate() {
            fields[i] = field(p, RANGES[i])?;
        }
        // Sunday is 0 or 7.
        if fields[4].contains(&7) {
            fields[4].push(0);
        }
        Ok(Schedule {
            fields,
            dom_any: parts[2] == "*",
            dow_any: parts[4] == "*",
        })
    }

    /// Whether the schedule fires at this minute.
    pub fn matches(&self, t: DateTime) -> bool {
        let has = |i: usize, v: u32| self.fields[i].contains(&v);
        let dom = has(2, t.day() as u32);
        let dow = has(4, t.weekday().to_sunday_zero_offset() as u32);
        // As cron: when both day fields are restricted, either may match.
        let day = match (self.dom_any, self.dow_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        has(0, t.minute() as u32) && has(1, t.hour() as u32) && has(3, t.month() as u32) && day
    }
}

fn finished(job: &Value) -> Option<&str> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| matches!(s(c, "/type"), "Complete" | "Failed") && s(c, "/status") == "True")
        .map(|c| s(c, "/type"))
}

/// Runs due CronJobs for the minute `now` falls in.
pub fn tick(node: &Node, now: jiff::Timestamp) {
    let minute = now.as_second().div_euclid(60);
    let Ok(at) = jiff::Timestamp::from_second(minute * 60) else {
        return;
    };
    let civil = at.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    for cj in objects::list(&node.api, "batch", "cronjobs", None) {
        if objects::deleting(&cj) {
            continue;
        }
        reconcile(node, &cj, minute, at, civil);
    }
}

fn reconcile(node: &Node, cj: &Value, minute: i64, at: jiff::Timestamp, civil: DateTime) {
    let api = &node.api;
    let ns = objects::namespace(cj);
    let name = objects::name(cj);
    let jobs: Vec<Value> = objects::list(api, "batch", "jobs", Some(ns))
        .into_iter()
        .filter(|j| controller_uid(j) == Some(objects::uid(cj)))
        .collect();
    let mut status = cj.get("status").cloned().unwrap_or(json!({}));
    let active: Vec<&Value> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    let job_name = format!("{name}-{minute}");
    let suspended = cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let due = Schedule::parse(s(cj, "/spec/schedule")).is_ok_and(|sch| sch.matches(civil))
        && !jobs.iter().any(|j| objects::name(j) == job_name)
        && s(cj, "/metadata/creationTimestamp") <= at.to_string().as_str();
    if due && !suspended {
        let policy = s(cj, "/spec/concurrencyPolicy");
        let blocked = policy == "Forbid" && !active.is_empty();
        if policy == "Replace" {
            for j in &active {
                objects::delete(api, "batch", "jobs", ns, objects::name(j));
            }
        }
        if !blocked {
            let template = cj
                .pointer("/spec/jobTemplate")
                .cloned()
                .unwrap_or(json!({}));
            let mut job = json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": job_name, "namespace": ns,
                    "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                    "ownerReferences": [controller_ref(cj, "batch/v1", "CronJob")]},
                "spec": template.get("spec").cloned().unwrap_or(json!({})),
            });
            job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
                json!(at.to_string());
            if objects::create(api, "batch", "jobs", job, "cronjob-controller").is_ok() {
                status["lastScheduleTime"] = json!(at.to_string());
            }
        }
    }
    let refs: Vec<Value> = objects::list(api, "batch", "jobs", Some(ns))
        .into_iter()
        .filter(|j| controller_uid(j) == Some(objects::uid(cj)) && finished(j).is_none())
        .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": objects::name(&j), "namespace": ns, "uid": objects::uid(&j), "resourceVersion": s(&j, "/metadata/resourceVersion")}))
        .collect();
    if refs.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("active");
        }
    } else {
        status["active"] = json!(refs);
    }
    if let Some(t) = jobs
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.pointer("/status/completionTime").and_then(Value::as_str))
        .max()
    {
        status["lastSuccessfulTime"] = json!(t);
    }
    // History limits: the oldest finished Jobs beyond the limit go.
    for (kind, key, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let limit = cj
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(default) as usize;
        let mut done: Vec<&Value> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        done.sort_by_key(|j| s(j, "/metadata/creationTimestamp").to_string());
        let excess = done.len().saturating_sub(limit);
        for j in done.into_iter().take(excess) {
            objects::delete(api, "batch", "jobs", ns, objects::name(j));
        }
    }
    if cj.get("status") != Some(&status) {
        let mut o = cj.clone();
        o["status"] = status;
        let _ = objects::update_status(api, "batch", "cronjobs", o, "cronjob-controller");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime {
        text.parse().unwrap()
    }

    #[test]
    fn schedules_match_minutes_like_cron() {
        let every_5 = Schedule::parse("*/5 * * * *").unwrap();
        assert!(every_5.matches(at("2026-11-28T10:15:00")));
        assert!(!every_5.matches(at("2026-11-28T10:16:00")));
        let nightly = Schedule::parse("@daily").unwrap();
        assert!(nightly.matches(at("2026-11-29T00:00:00")));
        assert!(!nightly.matches(at("2026-11-29T01:00:00")));
        // 2026-11-29 is a Sunday: day-of-month or day-of-week may match.
        let either = Schedule::parse("30 2 1 * 7").unwrap();
        assert!(either.matches(at("2026-11-29T02:30:00")));
        assert!(either.matches(at("2026-12-01T02:30:00")));
        assert!(!either.matches(at("2026-12-02T02:30:00")));
        let ranges = Schedule::parse("0 9-17/4,20 * * 1-5").unwrap();
        assert!(ranges.matches(at("2026-11-30T13:00:00")));
        assert!(ranges.matches(at("2026-11-30T20:00:00")));
        assert!(!ranges.matches(at("2026-11-30T11:00:00")));
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* * *").is_err());
    }
}
