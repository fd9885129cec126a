//! `kubectl vbackup coverage`: for every claim (and every pod volume that holds data of its
//! own) whether a schedule protects it, how, and its last good copy — or exactly why not.
//! The volume decisions are the backups' own ([`crate::volumes::plan::assemble`]), so
//! coverage never disagrees with what a scheduled run would copy. A claim whose files are
//! not copied but whose pod streams a database dump (`vbackup.io/backup-command`, taken by
//! the same runs) is protected by that dump.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use k8s_openapi::api::core::v1::Pod;

use super::Schedule;
use super::spec::SCHEDULE_LABEL;
use crate::backups::{BackupRecord, Phase};
use crate::hooks::backup::workload_of;
use crate::hooks::dump::{self, dump_request};
use crate::policy::{Method, ResourcePolicies};
use crate::resources::selector::LabelSelector;
use crate::volumes::plan::{NamespaceState, assemble, hook_pods};

/// A schedule as coverage weighs it.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The schedule.
    pub schedule: &'a Schedule,
    /// Its volume policies (from its `--resource-policies-configmap`).
    pub policies: Option<&'a ResourcePolicies>,
}

/// What a schedule's backups recorded of one claim, or of one workload's dump.
#[derive(Debug, Clone, Default)]
pub struct ClaimHistory {
    /// Start of the newest backup that copied it.
    pub last_success: Option<Timestamp>,
    /// The newest backup that tried, and its error when the copy failed.
    pub last_attempt: Option<(Timestamp, Option<String>)>,
}

impl ClaimHistory {
    /// Takes one backup's attempt (started at `started`) into account.
    fn note(&mut self, started: Timestamp, error: Option<String>) {
        if error.is_none() && self.last_success.is_none_or(|t| t < started) {
            self.last_success = Some(started);
        }
        if self.last_attempt.as_ref().is_none_or(|(t, _)| *t < started) {
            self.last_attempt = Some((started, error));
        }
    }
}

/// Per (schedule, namespace, claim or dump source), what the schedule's backups did.
#[derive(Debug, Clone, Default)]
pub struct History {
    claims: BTreeMap<(String, String, String), ClaimHistory>,
    dumps: BTreeMap<(String, String, String), ClaimHistory>,
}

/// Whose dump a dump record is: its workload (a Deployment's pods change names), else its pod.
fn dump_source(workload: Option<String>, pod: &str) -> String {
    workload.unwrap_or_else(|| format!("Pod/{pod}"))
}

/// Reads the per-claim and per-dump history of scheduled backups out of their records.
pub fn history<'a>(records: impl IntoIterator<Item = &'a BackupRecord>) -> History {
    let mut out = History::default();
    for r in records {
        let Some(schedule) = r.spec.labels.get(SCHEDULE_LABEL) else {
            continue;
        };
        let Ok(started) = r.status.started.parse::<Timestamp>() else {
            continue;
        };
        let usable = matches!(r.status.phase, Phase::Completed | Phase::PartiallyFailed);
        let failure = |ok: bool, message: &Option<String>| {
            (!ok).then(|| {
                message
                    .clone()
                    .unwrap_or_else(|| format!("backup {} {}", r.name(), r.status.phase))
            })
        };
        for v in &r.status.volumes {
            if v.phase == crate::volumes::step::SKIPPED {
                continue;
            }
            let ok = usable && v.phase == crate::volumes::step::COMPLETED;
            out.claims
                .entry((schedule.clone(), v.namespace.clone(), v.name.clone()))
                .or_default()
                .note(started, failure(ok, &v.message));
        }
        for d in &r.status.dumps {
            let ok = usable && d.phase == dump::COMPLETED;
            let source = dump_source(d.workload.clone(), &d.pod);
            out.dumps
                .entry((schedule.clone(), d.namespace.clone(), source))
                .or_default()
                .note(started, failure(ok, &d.message));
        }
    }
    out
}

/// How a volume is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Its data is copied ([`Method`]).
    FsBackup,
    /// A CSI snapshot kept in the cluster.
    Snapshot,
    /// A CSI snapshot whose data is moved to the location.
    SnapshotMoveData,
    /// Its files are not copied; its pod's database dump is.
    DatabaseDump,
}

impl Protection {
    /// How users read it.
    pub fn describe(self) -> &'static str {
        match self {
            Protection::FsBackup => Method::FsBackup.describe(),
            Protection::Snapshot => Method::Snapshot.describe(),
            Protection::SnapshotMoveData => Method::SnapshotMoveData.describe(),
            Protection::DatabaseDump => "database dump",
        }
    }
}

impl From<Method> for Protection {
    fn from(m: Method) -> Self {
        match m {
            Method::FsBackup => Protection::FsBackup,
            Method::Snapshot => Protection::Snapshot,
            Method::SnapshotMoveData => Protection::SnapshotMoveData,
        }
    }
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
    /// How it is protected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Protection>,
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

/// The claims a pod mounts.
fn claims_of(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

/// The coverage of one namespace at `now`.
pub fn assess(
    ns: &NamespaceState,
    scopes: &[Scope<'_>],
    history: &History,
    now: Timestamp,
) -> Vec<VolumeCoverage> {
    let mut copied: BTreeMap<String, Vec<(&Schedule, Method)>> = BTreeMap::new();
    // Claims whose pod's dump a schedule takes: (schedule, whose dump).
    let mut dumped: BTreeMap<String, Vec<(&Schedule, String)>> = BTreeMap::new();
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
            // Dumps are taken around the volume copies: without them, neither.
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
        for pod in hook_pods(ns, &selector) {
            let wants_dump = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(dump_request)
                .is_some_and(|d| d.command.is_ok());
            if !wants_dump {
                continue;
            }
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let source = dump_source(workload_of(&pod), name);
            for claim in claims_of(&pod) {
                dumped
                    .entry(format!("pvc/{claim}"))
                    .or_default()
                    .push((s, source.clone()));
            }
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
                       method: Option<Protection>,
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
            let claim = volume.trim_start_matches("pvc/");
            // Per schedule that protects it: (schedule, how, its history, what its reason says).
            let verdicts: Vec<_> = if let Some(by) = copied.get(&volume) {
                by.iter()
                    .map(|(s, m)| {
                        let key = (s.name.clone(), ns.name.clone(), claim.to_string());
                        let h = history.claims.get(&key).cloned().unwrap_or_default();
                        (*s, Protection::from(*m), h, String::new())
                    })
                    .collect()
            } else if let Some(by) = dumped.get(&volume) {
                by.iter()
                    .map(|(s, source)| {
                        let key = (s.name.clone(), ns.name.clone(), source.clone());
                        let h = history.dumps.get(&key).cloned().unwrap_or_default();
                        let what = format!("files not copied; {source}'s database dump: ");
                        (*s, Protection::DatabaseDump, h, what)
                    })
                    .collect()
            } else {
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
            // The schedule with the freshest verdict wins.
            let judged: Vec<_> = verdicts
                .into_iter()
                .map(|(s, m, h, what)| {
                    let (cause, why) = judge(s, &h, now);
                    (s, m, cause, format!("{what}{why}"), h.last_success)
                })
                .collect();
            match judged
                .iter()
                .find(|v| v.2.is_none())
                .or_else(|| judged.first())
            {
                Some((s, m, cause, why, last)) => {
                    row(*cause, Some(*s), Some(*m), *last, why.clone())
                }
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

/// Whether a claim (or dump) a schedule copies is protected now (no cause), and why.
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
            &assess(&shop(), &scopes, &History::default(), now()),
            "pvc/data",
        );
        assert_eq!(data.reason, "no schedule backs up namespace shop");
        assert_eq!(data.cause.map(Unprotected::as_str), Some("no_schedule"));
    }

    fn database() -> NamespaceState {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": "orders-db-0", "namespace": "shop",
                "labels": {"app": "orders-db"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "orders-db", "uid": "u1", "controller": true}],
                "annotations": {
                    "vbackup.io/backup-command": "mariadb-dump --all-databases",
                    "backup.velero.io/backup-volumes-excludes": "data"}},
            "spec": {"containers": [{"name": "mariadb", "image": "mariadb"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-orders-db-0"}}
            ]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        NamespaceState {
            name: "shop".into(),
            labels: BTreeMap::new(),
            pods: vec![pod],
            claims: BTreeMap::from([("data-orders-db-0".into(), claim("data-orders-db-0"))]),
            policies: Vec::new(),
        }
    }

    fn dumped(name: &str, started: &str, phase: &str, pod: &str) -> BackupRecord {
        let mut r = record(
            name,
            "nightly",
            started,
            Phase::Completed,
            vec![VolumeRecord::new("shop", "data-orders-db-0", "Skipped")],
        );
        r.status.dumps.push(crate::hooks::dump::DumpRecord {
            namespace: "shop".into(),
            pod: pod.into(),
            workload: Some("StatefulSet/orders-db".into()),
            container: "mariadb".into(),
            file: format!("{pod}-mariadb.sql"),
            phase: phase.into(),
            message: (phase != "Completed").then(|| "mariadb-dump exited with 2".into()),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_claim_excluded_from_file_copy_is_protected_by_its_pods_database_dump() {
        let s = schedule("nightly", "0 2 * * *", "2026-11-01T00:00:00Z");
        let scopes = [Scope {
            schedule: &s,
            policies: None,
        }];
        // The dump of the StatefulSet is found whatever its pod was called then.
        let records = [dumped(
            "nightly-1",
            "2026-12-10T02:00:00Z",
            "Completed",
            "orders-db-1",
        )];
        let rows = assess(&database(), &scopes, &history(&records), now());
        let data = by_volume(&rows, "pvc/data-orders-db-0");
        assert!(data.protected, "{data:?}");
        assert_eq!(data.method, Some(Protection::DatabaseDump));
        assert_eq!(data.schedule.as_deref(), Some("nightly"));
        assert_eq!(
            data.last_copy,
            Some("2026-12-10T02:00:00Z".parse().unwrap())
        );
        assert!(
            data.reason
                .contains("StatefulSet/orders-db's database dump"),
            "{}",
            data.reason
        );
        assert_eq!(
            serde_json::to_value(&data).unwrap()["method"],
            "database-dump"
        );

        // A failed last dump, or a dump too old, leaves it unprotected and says why.
        let failed = [
            records[0].clone(),
            dumped("nightly-2", "2026-12-10T02:30:00Z", "Failed", "orders-db-0"),
        ];
        let data = by_volume(
            &assess(&database(), &scopes, &history(&failed), now()),
            "pvc/data-orders-db-0",
        );
        assert!(
            !data.protected && data.reason.contains("mariadb-dump exited with 2"),
            "{data:?}"
        );
        let old = [dumped(
            "nightly-0",
            "2026-12-01T02:00:00Z",
            "Completed",
            "orders-db-0",
        )];
        let data = by_volume(
            &assess(&database(), &scopes, &history(&old), now()),
            "pvc/data-orders-db-0",
        );
        assert!(
            !data.protected && data.reason.contains("more than twice"),
            "{data:?}"
        );

        // Without the dump annotation the excluded claim is simply not protected.
        let mut plain = database();
        plain.pods[0]
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove("vbackup.io/backup-command");
        let data = by_volume(
            &assess(&plain, &scopes, &history(&records), now()),
            "pvc/data-orders-db-0",
        );
        assert!(
            !data.protected && data.method.is_none() && data.reason.contains("excludes"),
            "{data:?}"
        );
    }
}
