//! `kubectl vbackup coverage`: for every claim (and every pod volume that holds data of its
//! own) whether a schedule protects it, how, and its last good copy — or exactly why not.
//! The volume decisions are the backups' own ([`crate::volumes::plan::assemble`]), so
//! coverage never disagrees with what a scheduled run would copy.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::Schedule;
use super::spec::SCHEDULE_LABEL;
use crate::backups::{BackupRecord, Phase};
use crate::policy::{Method, ResourcePolicies};
use crate::resources::selector::LabelSelector;
use crate::volumes::plan::{NamespaceState, assemble};

/// A schedule as coverage weighs it.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The schedule.
    pub schedule: &'a Schedule,
    /// Its volume policies (from its `--resource-policies-configmap`).
    pub policies: Option<&'a ResourcePolicies>,
}

/// What a schedule's backups recorded of one claim.
#[derive(Debug, Clone, Default)]
pub struct ClaimHistory {
    /// Start of the newest backup that copied it.
    pub last_success: Option<Timestamp>,
    /// The newest backup that tried, and its error when the copy failed.
    pub last_attempt: Option<(Timestamp, Option<String>)>,
}

/// Per (schedule, namespace, claim), what the schedule's backups did.
pub type History = BTreeMap<(String, String, String), ClaimHistory>;

/// Reads the per-claim history of scheduled backups out of their records.
pub fn history<'a>(records: impl IntoIterator<Item = &'a BackupRecord>) -> History {
    let mut out = History::new();
    for r in records {
        let Some(schedule) = r.spec.labels.get(SCHEDULE_LABEL) else {
            continue;
        };
        let Ok(started) = r.status.started.parse::<Timestamp>() else {
            continue;
        };
        let usable = matches!(r.status.phase, Phase::Completed | Phase::PartiallyFailed);
        for v in &r.status.volumes {
            let h = out
                .entry((schedule.clone(), v.namespace.clone(), v.name.clone()))
                .or_default();
            let ok = usable && v.phase == crate::volumes::step::COMPLETED;
            if ok && h.last_success.is_none_or(|t| t < started) {
                h.last_success = Some(started);
            }
            if v.phase == crate::volumes::step::SKIPPED {
                continue;
            }
            if h.last_attempt.as_ref().is_none_or(|(t, _)| *t < started) {
                let error = (!ok).then(|| {
                    v.message
                        .clone()
                        .unwrap_or_else(|| format!("backup {} {}", r.name(), r.status.phase))
                });
                h.last_attempt = Some((started, error));
            }
        }
    }
    out
}

/// One volume's protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCoverage {
    /// Namespace.
    pub namespace: String,
    /// `pvc/NAME`, or `pod/POD/VOLUME` for a volume without a claim.
    pub volume: String,
    /// True when a schedule copies it and its last copy is recent enough.
    pub protected: bool,
    /// The schedule that protects it (or would).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How it is copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Start of the backup holding its last good copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_copy: Option<Timestamp>,
    /// Why it is or is not protected.
    pub reason: String,
    /// Why it is not protected, in one stable word (none when it is protected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Unprotected>,
}

/// Why a volume is not protected, as a stable word: the `reason` label of the
/// `vbackup_volume_unprotected` metric ([`VolumeCoverage::reason`] is the sentence, which
/// changes with ages and names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unprotected {
    /// No schedule backs up its namespace.
    NoSchedule,
    /// A schedule backs up the namespace, but its label selector leaves the volume out.
    NotSelected,
    /// Left out on purpose or by its type: an annotation, a volume policy,
    /// `--backup-volumes=false`, emptyDir/hostPath, a claim no pod uses...
    Excluded,
    /// The schedule copying it is paused, or has no success in twice its interval.
    ScheduleOverdue,
    /// Its last copy failed.
    LastCopyFailed,
    /// Not copied for another reason (an unreadable selector): `coverage` says which.
    NotCopied,
}

impl Unprotected {
    /// The word, as in the metric label and `coverage -o json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unprotected::NoSchedule => "no_schedule",
            Unprotected::NotSelected => "not_selected",
            Unprotected::Excluded => "excluded",
            Unprotected::ScheduleOverdue => "schedule_overdue",
            Unprotected::LastCopyFailed => "last_copy_failed",
            Unprotected::NotCopied => "not_copied",
        }
    }
}

/// The coverage of one namespace at `now`.
pub fn assess(
    ns: &NamespaceState,
    scopes: &[Scope<'_>],
    history: &History,
    now: Timestamp,
) -> Vec<VolumeCoverage> {
    let mut copied: BTreeMap<String, Vec<(&Schedule, Method)>> = BTreeMap::new();
    let mut skipped: BTreeMap<String, (String, Unprotected)> = BTreeMap::new();
    let mut covering = Vec::new();
    for scope in scopes {
        let s = scope.schedule;
        let t = &s.spec.template;
        if !t.namespaces.matches(&ns.name) {
            continue;
        }
        covering.push(s.name.as_str());
        if t.volumes.back_up_volumes == Some(false) {
            for claim in ns.claims.keys() {
                skipped.entry(format!("pvc/{claim}")).or_insert_with(|| {
                    (
                        format!(
                            "schedule {} does not copy volume data (--backup-volumes=false)",
                            s.name
                        ),
                        Unprotected::Excluded,
                    )
                });
            }
            continue;
        }
        let Ok(selector) = LabelSelector::parse(&t.selector) else {
            continue;
        };
        let plan = assemble(ns, &selector, scope.policies, t.volumes.policy());
        for w in plan.work {
            copied
                .entry(format!("pvc/{}", w.claim))
                .or_default()
                .push((s, w.method));
        }
        for n in plan.not_copied {
            if n.warn || n.volume.starts_with("pvc/") {
                skipped.entry(n.volume).or_insert_with(|| {
                    (
                        format!("schedule {}: {}", s.name, n.reason),
                        Unprotected::Excluded,
                    )
                });
            }
        }
        for claim in ns.claims.keys() {
            skipped.entry(format!("pvc/{claim}")).or_insert_with(|| {
                (
                    format!(
                        "not selected by schedule {}'s selector {}",
                        s.name, t.selector
                    ),
                    Unprotected::NotSelected,
                )
            });
        }
    }
    let mut volumes: Vec<String> = ns.claims.keys().map(|c| format!("pvc/{c}")).collect();
    volumes.extend(skipped.keys().filter(|v| v.starts_with("pod/")).cloned());
    volumes.sort();
    volumes.dedup();
    volumes
        .into_iter()
        .map(|volume| {
            let row = |cause: Option<Unprotected>,
                       schedule: Option<&Schedule>,
                       method,
                       last_copy,
                       reason: String| VolumeCoverage {
                namespace: ns.name.clone(),
                volume: volume.clone(),
                protected: cause.is_none(),
                schedule: schedule.map(|s| s.name.clone()),
                method,
                last_copy,
                reason,
                cause,
            };
            let Some(by) = copied.get(&volume) else {
                let (reason, cause) = if covering.is_empty() {
                    (
                        format!("no schedule backs up namespace {}", ns.name),
                        Unprotected::NoSchedule,
                    )
                } else {
                    skipped
                        .get(&volume)
                        .cloned()
                        .unwrap_or_else(|| ("not copied".into(), Unprotected::NotCopied))
                };
                return row(Some(cause), None, None, None, reason);
            };
            let claim = volume.trim_start_matches("pvc/");
            // The schedule with the freshest verdict wins.
            let verdicts: Vec<_> = by
                .iter()
                .map(|(s, m)| {
                    let h = history
                        .get(&(s.name.clone(), ns.name.clone(), claim.to_string()))
                        .cloned()
                        .unwrap_or_default();
                    (s, *m, judge(s, &h, now), h.last_success)
                })
                .collect();
            let best = verdicts
                .iter()
                .find(|v| v.2.0.is_none())
                .or_else(|| verdicts.first())
                .cloned();
            match best {
                Some((s, m, (cause, why), last)) => row(cause, Some(s), Some(m), last, why),
                None => row(
                    Some(Unprotected::NotCopied),
                    None,
                    None,
                    None,
                    "not copied".into(),
                ),
            }
        })
        .collect()
}

/// Whether a claim a schedule copies is protected now (no cause), and why.
fn judge(s: &Schedule, h: &ClaimHistory, now: Timestamp) -> (Option<Unprotected>, String) {
    if let Some(problem) = super::status::overdue(s, h.last_success, now) {
        return (
            Some(Unprotected::ScheduleOverdue),
            format!("schedule {}: {problem}", s.name),
        );
    }
    if let Some((_, Some(error))) = &h.last_attempt {
        return (
            Some(Unprotected::LastCopyFailed),
            format!("last copy failed: {error}"),
        );
    }
    match h.last_success {
        Some(t) => {
            let age = Duration::try_from(now.duration_since(t)).unwrap_or_default();
            let age = humantime::format_duration(Duration::from_secs(age.as_secs()));
            (None, format!("copied {age} ago"))
        }
        None => (
            None,
            "no copy yet: the schedule is new and has not run".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::VolumeRecord;
    use crate::policy::ClaimFacts;
    use crate::schedules::status::tests::{record, schedule};
    use serde_json::json;

    fn claim(name: &str) -> ClaimFacts {
        ClaimFacts {
            pvc: serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                         "volumeName": format!("pvc-{name}")},
                "status": {"phase": "Bound"}
            }))
            .unwrap(),
            pv: Some(
                serde_json::from_value(json!({
                    "metadata": {"name": format!("pvc-{name}")},
                    "spec": {"capacity": {"storage": "1Gi"}, "storageClassName": "local",
                             "csi": {"driver": "local.csi.vbackup.io", "volumeHandle": name}}
                }))
                .unwrap(),
            ),
            snapshot_class: None,
        }
    }

    fn shop() -> NamespaceState {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop",
                "annotations": {"backup.velero.io/backup-volumes-excludes": "scratch"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch"}},
                {"name": "logs", "hostPath": {"path": "/var/log"}}
            ]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        NamespaceState {
            name: "shop".into(),
            labels: BTreeMap::new(),
            pods: vec![pod],
            claims: BTreeMap::from([
                ("data".into(), claim("data")),
                ("scratch".into(), claim("scratch")),
            ]),
            policies: Vec::new(),
        }
    }

    fn now() -> Timestamp {
        "2026-12-10T12:00:00Z".parse().unwrap()
    }

    fn by_volume(rows: &[VolumeCoverage], v: &str) -> VolumeCoverage {
        rows.iter().find(|r| r.volume == v).cloned().unwrap()
    }

    #[test]
    fn a_copied_claim_is_protected_and_exclusions_say_why_not() {
        let s = schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z");
        let records = [record(
            "nightly-1",
            "nightly",
            "2026-12-10T02:00:00Z",
            Phase::Completed,
            vec![VolumeRecord::new("shop", "data", "Completed")],
        )];
        let scopes = [Scope {
            schedule: &s,
            policies: None,
        }];
        let rows = assess(&shop(), &scopes, &history(&records), now());
        let data = by_volume(&rows, "pvc/data");
        assert!(data.protected && data.cause.is_none(), "{data:?}");
        assert_eq!(data.schedule.as_deref(), Some("nightly"));
        assert_eq!(
            data.last_copy,
            Some("2026-12-10T02:00:00Z".parse().unwrap())
        );
        let scratch = by_volume(&rows, "pvc/scratch");
        assert!(!scratch.protected);
        assert_eq!(scratch.cause, Some(Unprotected::Excluded));
        assert!(
            scratch.reason.contains("backup-volumes-excludes"),
            "{}",
            scratch.reason
        );
        let logs = by_volume(&rows, "pod/web/logs");
        assert!(
            !logs.protected && logs.reason.contains("hostPath"),
            "{logs:?}"
        );
    }

    #[test]
    fn stale_failed_and_unscheduled_claims_are_unprotected() {
        let s = schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z");
        let scopes = [Scope {
            schedule: &s,
            policies: None,
        }];
        let old = [record(
            "nightly-1",
            "nightly",
            "2026-12-01T02:00:00Z",
            Phase::Completed,
            vec![VolumeRecord::new("shop", "data", "Completed")],
        )];
        let data = by_volume(&assess(&shop(), &scopes, &history(&old), now()), "pvc/data");
        assert!(
            !data.protected && data.reason.contains("more than twice"),
            "{data:?}"
        );
        assert_eq!(data.cause, Some(Unprotected::ScheduleOverdue));

        let mut failed = VolumeRecord::new("shop", "data", "Failed");
        failed.message = Some("mover OOMKilled".into());
        // The copy before the failed one is recent: the failure is what makes it unprotected.
        let mut recent = old[0].clone();
        recent.status.started = "2026-12-09T02:00:00Z".into();
        let records = [
            recent,
            record(
                "nightly-2",
                "nightly",
                "2026-12-10T02:00:00Z",
                Phase::PartiallyFailed,
                vec![failed],
            ),
        ];
        let data = by_volume(
            &assess(&shop(), &scopes, &history(&records), now()),
            "pvc/data",
        );
        assert!(!data.protected, "{data:?}");
        assert_eq!(data.cause, Some(Unprotected::LastCopyFailed), "{data:?}");

        let mut elsewhere = schedule("other", "0 2 * * *", "2026-11-01T00:00:00Z");
        elsewhere.spec.template.namespaces.include = vec!["billing".into()];
        let scopes = [Scope {
            schedule: &elsewhere,
            policies: None,
        }];
        let data = by_volume(
            &assess(&shop(), &scopes, &History::new(), now()),
            "pvc/data",
        );
        assert_eq!(data.reason, "no schedule backs up namespace shop");
        assert_eq!(data.cause.map(Unprotected::as_str), Some("no_schedule"));
    }
}
