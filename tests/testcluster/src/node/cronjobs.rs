//! The CronJob controller: at each scheduled minute (in `spec.timeZone`, else UTC, the
//! controller manager's zone on most clusters) a Job named
//! `CRONJOB-<minutes since the epoch>` from the job template, honouring `suspend`,
//! `concurrencyPolicy` and the history limits, with `lastScheduleTime`/`lastSuccessfulTime`.

use super::Node;
use super::objects::{self, controller_ref, controller_uid, s};
use crate::cron::{Schedule, load_location};
use serde_json::{Value, json};

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
    for cj in objects::list(&node.api, "batch", "cronjobs", None) {
        if objects::deleting(&cj) {
            continue;
        }
        reconcile(node, &cj, minute, at);
    }
}

/// Whether the CronJob's schedule fires at `at`, read in its time zone.
fn due_at(cj: &Value, at: jiff::Timestamp) -> bool {
    let Ok(schedule) = Schedule::parse(s(cj, "/spec/schedule")) else {
        return false;
    };
    let zone = match (s(cj, "/spec/timeZone"), schedule.zone.as_deref()) {
        ("", None) => Ok(jiff::tz::TimeZone::UTC),
        ("", Some(z)) | (z, _) => load_location(z),
    };
    zone.is_ok_and(|z| schedule.matches(at.to_zoned(z).datetime()))
}

fn reconcile(node: &Node, cj: &Value, minute: i64, at: jiff::Timestamp) {
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
    let due = due_at(cj, at)
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
            if objects::create_as(api, "batch", "jobs", job, "cronjob-controller", cj).is_ok() {
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
