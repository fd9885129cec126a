//! Hooks around a backup's volume copies, in Velero's (≥ 1.15) order: pods that share a claim
//! form a group; all pre hooks of the group run, then each of its claims is copied once (and
//! its streaming dumps are taken), then all its post hooks run — always, also when a copy
//! failed. A pre hook that fails with `on-error: Fail` stops the copies of that pod's claims
//! and makes the backup PartiallyFailed; `Continue` records the failure and goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::annotations::{PodAnnotations, When};
use super::dump::{self, DumpRecord, DumpRequest};
use super::exec;
use super::spec::HookFile;
use super::{ExecHook, OnError};
use crate::backups::VolumeRecord;
use crate::backups::volume_step::FAILED;
use crate::repo::VolumeRepo;
use crate::resources::types::ObjectRef;
use crate::volumes::plan::ClaimWork;

/// Hooks run and failed, for the backup's or restore's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookCounts {
    /// Hooks attempted.
    pub attempted: u64,
    /// Hooks that failed (whatever their on-error).
    pub failed: u64,
}

/// Streaming dumps a restore fed back, for its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpCounts {
    /// Dumps their restore command took in full (exit 0).
    pub restored: u64,
    /// Dumps that could not be restored (each an item error).
    pub failed: u64,
}

/// One hook's run, for the backup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The pod.
    pub pod: ObjectRef,
    /// `pre`, `post` or `post-restore`.
    pub when: &'static str,
    /// Where the hook was written.
    pub origin: String,
    /// The container it ran in (empty when it could not be resolved).
    pub container: String,
    /// Exit code, when the command ran to its end.
    pub exit_code: Option<i32>,
    /// How long it took.
    pub duration: Duration,
    /// Its output (truncated).
    pub output: String,
    /// Why it failed.
    pub error: Option<String>,
    /// What its failure does.
    pub on_error: OnError,
}

impl HookRun {
    /// The line the backup log keeps.
    pub fn log_line(&self) -> String {
        let mut line = format!(
            "{} hook ({}) in container {}",
            self.when,
            self.origin,
            if self.container.is_empty() {
                "?"
            } else {
                &self.container
            }
        );
        if let Some(code) = self.exit_code {
            line.push_str(&format!(": exit {code}"));
        }
        line.push_str(&format!(" after {:.1}s", self.duration.as_secs_f64()));
        if let Some(e) = &self.error {
            line.push_str(&format!("; failed (on-error {:?}): {e}", self.on_error));
        }
        if !self.output.is_empty() {
            line.push_str(&format!("; output: {}", self.output));
        }
        line
    }
}

/// What the hooks of a backup did.
#[derive(Debug, Clone, Default)]
pub struct HookReport {
    /// Counts for the status.
    pub counts: HookCounts,
    /// Every hook run, for the log.
    pub runs: Vec<HookRun>,
    /// Item errors: hooks failing with `Fail`, dumps that failed.
    pub errors: Vec<(ObjectRef, String)>,
    /// Warnings: malformed settings, hooks failing with `Continue`.
    pub warnings: Vec<String>,
    /// Streaming dumps taken.
    pub dumps: Vec<DumpRecord>,
    /// Streaming dumps restored.
    pub restored_dumps: DumpCounts,
    /// Other lines for the log: object, action, text.
    pub log: Vec<(ObjectRef, &'static str, String)>,
}

impl HookReport {
    fn merge(&mut self, other: HookReport) {
        self.counts.attempted += other.counts.attempted;
        self.counts.failed += other.counts.failed;
        self.runs.extend(other.runs);
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
        self.dumps.extend(other.dumps);
        self.restored_dumps.restored += other.restored_dumps.restored;
        self.restored_dumps.failed += other.restored_dumps.failed;
        self.log.extend(other.log);
    }
}

/// What the hook runner needs from the volume machinery.
#[async_trait]
pub trait Copier: Send + Sync {
    /// Copies one claim.
    async fn copy(&self, work: &ClaimWork) -> VolumeRecord;
    /// A session on a namespace's repository, for a dump.
    async fn repo(&self, namespace: &str) -> crate::Result<VolumeRepo>;
}

/// A pod's backup hooks and dump.
#[derive(Debug, Clone, Default)]
struct PodPlan {
    pre: Vec<ExecHook>,
    post: Vec<ExecHook>,
    dump: Option<DumpRequest>,
    problems: Vec<String>,
}

fn pod_plan(pod: &Pod, file: &HookFile) -> PodPlan {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let map = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let a = PodAnnotations {
        pod: format!("{ns}/{name}"),
        map,
    };
    let mut plan = PodPlan::default();
    // Velero: a pod's own annotations replace the backup's hooks for that pod.
    let (file_pre, file_post) = file.backup_hooks(pod);
    for (when, from_file, into) in [
        (When::Pre, file_pre, &mut plan.pre),
        (When::Post, file_post, &mut plan.post),
    ] {
        let (hook, problems) = a.backup_hook(when);
        plan.problems
            .extend(problems.iter().map(ToString::to_string));
        match hook {
            Some(h) => into.push(h),
            None => *into = from_file,
        }
    }
    plan.dump = dump::dump_request(map);
    plan
}

/// Whether the pod's Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The workload a pod belongs to: its controller, with a ReplicaSet named by its
/// Deployment (the pod-template-hash suffix taken off).
pub fn workload_of(pod: &Pod) -> Option<String> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    match (owner.kind.as_str(), hash) {
        ("ReplicaSet", Some(h)) => match owner.name.strip_suffix(&format!("-{h}")) {
            Some(d) => Some(format!("Deployment/{d}")),
            None => Some(format!("ReplicaSet/{}", owner.name)),
        },
        (kind, _) => Some(format!("{kind}/{}", owner.name)),
    }
}

/// The pods whose dump is taken: one per workload (a Ready one first), every pod that has
/// no workload.
fn dump_takers(pods: &[Pod], plans: &[PodPlan]) -> BTreeSet<usize> {
    let mut best: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut takers = BTreeSet::new();
    for (i, pod) in pods.iter().enumerate() {
        if plans[i].dump.is_none() {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(w) = workload_of(pod) else {
            takers.insert(i);
            continue;
        };
        let key = |j: usize| (!is_ready(&pods[j]), pods[j].metadata.name.clone());
        best.entry((ns, w))
            .and_modify(|b| {
                if key(i) < key(*b) {
                    *b = i
                }
            })
            .or_insert(i);
    }
    takers.extend(best.into_values());
    takers
}

/// Groups of pods (indexes) and claims (indexes into `work`) linked by shared claims.
fn groups(pods: &[Pod], work: &[ClaimWork]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let index: BTreeMap<(String, String), usize> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                ),
                i,
            )
        })
        .collect();
    let n = pods.len() + work.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (w, claim) in work.iter().enumerate() {
        for (pod, _) in &claim.pods {
            if let Some(&p) = index.get(&(claim.namespace.clone(), pod.clone())) {
                let (a, b) = (root(&mut parent, p), root(&mut parent, pods.len() + w));
                parent[a] = b;
            }
        }
    }
    let mut by_root: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for x in 0..n {
        let r = root(&mut parent, x);
        let g = by_root.entry(r).or_default();
        if x < pods.len() {
            g.0.push(x);
        } else {
            g.1.push(x - pods.len());
        }
    }
    by_root.into_values().collect()
}

/// Runs the hooks and dumps of `pods` around the copies of `work`; at most `parallel`
/// copies or dumps at once. Returns the volume records and what the hooks did.
pub async fn around_copies(
    client: &Client,
    backup: &str,
    pods: &[Pod],
    work: Vec<ClaimWork>,
    file: &HookFile,
    parallel: usize,
    copier: &dyn Copier,
) -> (Vec<VolumeRecord>, HookReport) {
    let plans: Vec<PodPlan> = pods.iter().map(|p| pod_plan(p, file)).collect();
    let takers = dump_takers(pods, &plans);
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let runs = groups(pods, &work).into_iter().map(|(members, claims)| {
        let (plans, takers, permits, work) = (&plans, &takers, permits.clone(), &work);
        async move {
            let mut report = HookReport::default();
            let mut stopped: BTreeMap<String, String> = BTreeMap::new();
            for &i in &members {
                report
                    .warnings
                    .extend(plans[i].problems.iter().cloned());
                for hook in &plans[i].pre {
                    let run = run_hook(client, &pods[i], hook, When::Pre.name()).await;
                    let failed_hard = run.error.is_some() && run.on_error == OnError::Fail;
                    if failed_hard {
                        stopped.insert(
                            run.pod.name.clone(),
                            run.error.clone().unwrap_or_default(),
                        );
                    }
                    record_run(&mut report, run);
                    if failed_hard {
                        break;
                    }
                }
            }
            let copies = claims.iter().map(|&c| {
                let (work, permits, stopped) = (&work[c], permits.clone(), &stopped);
                async move {
                    let blocked = work.pods.iter().find_map(|(p, _)| stopped.get(p).map(|e| (p, e)));
                    if let Some((pod, error)) = blocked {
                        return VolumeRecord {
                            method: Some(work.method),
                            pods: work.pods.iter().map(|(p, v)| format!("{p}/{v}")).collect(),
                            message: Some(format!(
                                "not copied: the pre hook of pod {pod} failed and its on-error is Fail ({error})"
                            )),
                            ..VolumeRecord::new(work.namespace.as_str(), work.claim.as_str(), FAILED)
                        };
                    }
                    let _permit = permits.acquire_owned().await;
                    copier.copy(work).await
                }
            });
            let dumps = members.iter().filter(|i| takers.contains(i)).map(|&i| {
                let (permits, stopped) = (permits.clone(), &stopped);
                async move {
                    let _permit = permits.acquire_owned().await;
                    take_dump(client, copier, backup, &pods[i], plans[i].dump.as_ref(), stopped).await
                }
            });
            let (records, dumps) =
                futures::join!(futures::future::join_all(copies), futures::future::join_all(dumps));
            for d in dumps.into_iter().flatten() {
                if d.phase == dump::FAILED {
                    report.errors.push((
                        ObjectRef::namespaced("pods", &d.namespace, &d.pod),
                        format!(
                            "dump of container {}: {}",
                            d.container,
                            d.message.as_deref().unwrap_or("failed")
                        ),
                    ));
                }
                report.dumps.push(d);
            }
            for &i in &members {
                for hook in &plans[i].post {
                    let run = run_hook(client, &pods[i], hook, When::Post.name()).await;
                    let failed_hard = run.error.is_some() && run.on_error == OnError::Fail;
                    record_run(&mut report, run);
                    if failed_hard {
                        break;
                    }
                }
            }
            (records, report)
        }
    });
    let mut records = Vec::new();
    let mut report = HookReport::default();
    for (r, h) in futures::future::join_all(runs).await {
        records.extend(r);
        report.merge(h);
    }
    (records, report)
}

async fn take_dump(
    client: &Client,
    copier: &dyn Copier,
    backup: &str,
    pod: &Pod,
    request: Option<&DumpRequest>,
    stopped: &BTreeMap<String, String>,
) -> Option<DumpRecord> {
    let request = request?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container = exec::resolve_container(&spec, request.container.as_deref());
    let mut record = DumpRecord {
        namespace: ns.clone(),
        pod: name.clone(),
        workload: workload_of(pod),
        container: container.clone().unwrap_or_default(),
        phase: dump::FAILED.into(),
        ..Default::default()
    };
    let extension = if request.extension.is_empty() {
        let c = spec
            .containers
            .iter()
            .find(|c| Ok(&c.name) == container.as_ref());
        c.and_then(super::databases::detect_container)
            .map(|d| d.file_extension().to_string())
            .unwrap_or_default()
    } else {
        request.extension.clone()
    };
    record.file = format!("{name}-{}{extension}", record.container);
    let fail = |mut record: DumpRecord, m: String| {
        record.message = Some(m);
        Some(record)
    };
    if let Some(e) = stopped.get(&name) {
        return fail(
            record,
            format!("not taken: the pre hook failed and its on-error is Fail ({e})"),
        );
    }
    let container = match container {
        Ok(c) => c,
        Err(e) => return fail(record, format!("annotation {}: {e}", request.origin)),
    };
    let command = match &request.command {
        Ok(c) => c.clone(),
        Err(e) => return fail(record, e.clone()),
    };
    record.container = container;
    let repo = match copier.repo(&ns).await {
        Ok(r) => r,
        Err(e) => {
            return fail(
                record,
                format!("the repository of namespace {ns} cannot be opened: {e}"),
            );
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    Some(dump::stream_dump(&pods, &repo, backup, &command, record).await)
}

/// Puts a report where the backup keeps it: errors and warnings in the tally, every hook
/// run and dump in the log; returns the dumps for the status.
pub fn record_report(
    tally: &mut crate::backups::record::Tally,
    log: &mut crate::backups::ItemLog,
    report: HookReport,
) -> Vec<DumpRecord> {
    for (object, message) in &report.errors {
        tally.error(object, message.clone());
    }
    for w in report.warnings {
        tally.warn(w);
    }
    for run in &report.runs {
        let action = if run.error.is_some() {
            "hook-failed"
        } else {
            "hook"
        };
        log.record(&run.pod, action, Some(&run.log_line()));
    }
    for d in &report.dumps {
        let pod = ObjectRef::namespaced("pods", &d.namespace, &d.pod);
        let mut line = format!(
            "dump of container {} into {}: {} bytes",
            d.container, d.file, d.bytes
        );
        if let Some(m) = &d.message {
            line.push_str(&format!("; failed: {m}"));
        }
        if !d.stderr.is_empty() {
            line.push_str(&format!("; stderr: {}", d.stderr));
        }
        let action = if d.phase == dump::COMPLETED {
            "dumped"
        } else {
            "dump-failed"
        };
        log.record(&pod, action, Some(&line));
    }
    for (object, action, line) in &report.log {
        log.record(object, action, Some(line));
    }
    report.dumps
}

/// Counts a hook run and files its failure as an error (`Fail`) or a warning (`Continue`).
pub(super) fn record_run(report: &mut HookReport, run: HookRun) {
    report.counts.attempted += 1;
    if let Some(e) = &run.error {
        report.counts.failed += 1;
        let message = format!("{} hook ({}) failed: {e}", run.when, run.origin);
        match run.on_error {
            OnError::Fail => report.errors.push((run.pod.clone(), message)),
            OnError::Continue => report.warnings.push(format!(
                "pod {}/{}: {message} (on-error Continue)",
                run.pod.namespace.as_deref().unwrap_or_default(),
                run.pod.name
            )),
        }
    }
    report.runs.push(run);
}

/// Runs one hook in its pod and says how it went.
pub async fn run_hook(client: &Client, pod: &Pod, hook: &ExecHook, when: &'static str) -> HookRun {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut run = HookRun {
        pod: ObjectRef::namespaced("pods", &ns, &name),
        when,
        origin: hook.origin.clone(),
        container: String::new(),
        exit_code: None,
        duration: Duration::ZERO,
        output: String::new(),
        error: None,
        on_error: hook.on_error,
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let container = match exec::resolve_container(&spec, hook.container.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    run.container = container.clone();
    let command = match &hook.command {
        Ok(c) => c,
        Err(e) => {
            run.error = Some(e.clone());
            return run;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let outcome = exec::run(&pods, &name, &container, command, hook.timeout).await;
    run.duration = outcome.duration;
    if let exec::Exit::Code(c) = outcome.exit {
        run.exit_code = Some(c);
    }
    run.output = [outcome.stdout.text(), outcome.stderr.text()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    run.error = outcome.failure(&container);
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, owner: Option<(&str, &str)>, hash: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: hash
                    .map(|h| BTreeMap::from([("pod-template-hash".to_string(), h.to_string())])),
                owner_references: owner.map(|(kind, n)| {
                    vec![OwnerReference {
                        kind: kind.into(),
                        name: n.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn workloads_are_named_by_their_controller() {
        assert_eq!(
            workload_of(&pod(
                "web-7d9f-abc",
                Some(("ReplicaSet", "web-7d9f")),
                Some("7d9f")
            ))
            .as_deref(),
            Some("Deployment/web")
        );
        assert_eq!(
            workload_of(&pod("db-0", Some(("StatefulSet", "db")), None)).as_deref(),
            Some("StatefulSet/db")
        );
        assert_eq!(workload_of(&pod("solo", None, None)), None);
    }

    fn work(claim: &str, pods: &[&str]) -> ClaimWork {
        ClaimWork {
            namespace: "shop".into(),
            claim: claim.into(),
            method: crate::policy::Method::FsBackup,
            pods: pods
                .iter()
                .map(|p| (p.to_string(), "v".to_string()))
                .collect(),
            node: None,
            tolerations: Vec::new(),
            app: Default::default(),
            level: crate::volumes::mover_pod::PodSecurityLevel::Privileged,
            excludes: Default::default(),
            snapshot_class: None,
            decision: crate::policy::VolumeDecision {
                volume: "v".into(),
                claim: Some(claim.into()),
                action: crate::policy::Action::Skip,
                reason: crate::policy::Reason::Default,
                notes: Vec::new(),
                warn: false,
            },
        }
    }

    #[test]
    fn pods_sharing_a_claim_form_one_group() {
        let pods = [
            pod("a", None, None),
            pod("b", None, None),
            pod("c", None, None),
            pod("d", None, None),
        ];
        // a and b share "shared"; b also has "own"; c has its own claim; d has none.
        let work = [
            work("shared", &["a", "b"]),
            work("own", &["b"]),
            work("solo", &["c"]),
        ];
        let mut g = groups(&pods, &work);
        g.sort();
        assert_eq!(
            g,
            vec![
                (vec![0, 1], vec![0, 1]),
                (vec![2], vec![2]),
                (vec![3], vec![])
            ]
        );
    }

    #[test]
    fn one_dump_per_workload_from_a_ready_pod() {
        let annotated = |mut p: Pod| {
            p.metadata.annotations = Some(BTreeMap::from([(
                super::super::annotations::BACKUP_COMMAND.to_string(),
                "pg_dumpall".to_string(),
            )]));
            p
        };
        let mut ready = annotated(pod("db-1", Some(("StatefulSet", "db")), None));
        ready.status = Some(k8s_openapi::api::core::v1::PodStatus {
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let pods = vec![
            annotated(pod("db-0", Some(("StatefulSet", "db")), None)),
            ready,
            annotated(pod("solo", None, None)),
            pod("plain", None, None),
        ];
        let plans: Vec<PodPlan> = pods
            .iter()
            .map(|p| pod_plan(p, &HookFile::default()))
            .collect();
        assert_eq!(dump_takers(&pods, &plans), BTreeSet::from([1, 2]));
    }
}
