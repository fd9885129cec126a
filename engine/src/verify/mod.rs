//! `verify`: a backup is proven restorable before it is needed. Its volume repositories are
//! checked (with a sample of their data read back), it is restored into scratch namespaces
//! through the ordinary restore pipeline, its workloads must become Ready, the pods' own
//! verify commands must succeed, and the scratch namespaces are deleted again.

pub mod command;
pub mod names;
pub mod ready;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backups::Catalog;
use crate::backups::record::{BackupRecord, Phase, RestoreRecord};
use crate::backups::volume_step::VolumeStep;
use crate::keys::LocationKey;
use crate::repo::{ReadData, RepoOptions, VolumeRepo};
use crate::resources::Progress;
use crate::restore::{RestoreRecords, RestoreRequest, run_restore_with_volumes};
use crate::store::Store;
use crate::{Error, Result};
pub use command::{CommandRun, VERIFY_COMMAND, VERIFY_CONTAINER};

/// The label every scratch namespace carries: the backup it verifies, so leftovers (of a
/// `--keep` or of a killed run) are found with `kubectl get ns -l vbackup.io/verify`.
pub const VERIFY_LABEL: &str = "vbackup.io/verify";
/// Share of each repository's data read back and checked: enough to catch a damaged
/// store over a few verifies, little enough to run every night.
pub const READ_DATA_PERCENT: f64 = 10.0;
/// A verify command gets at least this long, even when the wait for Ready used up most
/// of `--timeout`.
const MIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the scratch namespaces may take to go.
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// How a verify runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long the workloads may take to become Ready and the verify commands to run.
    pub timeout: Duration,
    /// Leave the scratch namespaces in place (to look at them).
    pub keep: bool,
}

/// The verdict on one backed-up namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceVerdict {
    /// The namespace in the backup.
    pub namespace: String,
    /// The scratch namespace it was restored into.
    pub scratch: String,
    /// Why it failed; empty when it passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Whether its volume repository was checked (it has one when the backup copied
    /// volume data or dumps of it).
    pub repository_checked: bool,
    /// The verify commands that ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandRun>,
    /// Whether the scratch namespace is still there (`--keep`, or its deletion failed).
    pub kept: bool,
}

impl NamespaceVerdict {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What a verify found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The backup verified.
    pub backup: String,
    /// The test restore's record (its item log tells every object's fate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
    /// One verdict per backed-up namespace.
    pub namespaces: Vec<NamespaceVerdict>,
    /// Failures that belong to no one namespace (cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl VerifyReport {
    /// True when every namespace passed and nothing else failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.namespaces.iter().all(NamespaceVerdict::passed)
    }
}

/// What a verify works with: the cluster, the backup's location and its key, and the
/// restore's records and volume step (the plugin's mover pods).
pub struct VerifyTarget<'a> {
    /// The cluster restored into.
    pub client: &'a Client,
    /// The backup's location.
    pub store: &'a Store,
    /// The location key (`None` for a Velero bucket, whose repositories need none).
    pub key: Option<&'a LocationKey>,
    /// Where the test restore's record goes.
    pub records: &'a RestoreRecords,
    /// Brings volume data back (`None`: objects only).
    pub volumes: Option<&'a dyn VolumeStep>,
}

/// Verifies `backup`: repository check, test restore into scratch namespaces, Ready
/// workloads, verify commands, clean-up. `Err` only when nothing could be tried (unknown
/// or failed backup, cluster unreachable); everything else is a verdict.
pub async fn verify_backup(
    target: &VerifyTarget<'_>,
    backup: &str,
    options: &VerifyOptions,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<VerifyReport> {
    let catalog = Catalog::new(target.store.clone());
    let record = catalog.backup(backup).await?;
    if record.status.phase == Phase::Failed {
        return Err(Error::BadInput(format!(
            "backup {backup} failed: there is nothing to verify; pick another backup"
        )));
    }
    let namespaces = backed_up_namespaces(&catalog, backup).await?;
    if namespaces.is_empty() {
        return Err(Error::BadInput(format!(
            "backup {backup} holds no namespaced object: there is nothing to restore and verify"
        )));
    }
    let mut verdicts = Vec::with_capacity(namespaces.len());
    for ns in &namespaces {
        verdicts.push(NamespaceVerdict {
            namespace: ns.clone(),
            scratch: names::scratch_namespace(ns)?,
            failures: Vec::new(),
            repository_checked: false,
            commands: Vec::new(),
            kept: false,
        });
    }
    for (ns, failure) in check_repositories(target, &record).await {
        if let Some(v) = verdicts.iter_mut().find(|v| v.namespace == ns) {
            v.repository_checked = true;
            v.failures.extend(failure);
        }
    }
    let mut report = VerifyReport {
        backup: backup.to_string(),
        restore: None,
        namespaces: verdicts,
        failures: Vec::new(),
    };
    let created = create_scratch(target.client, backup, &report.namespaces).await;
    if let Err(e) = created {
        delete_scratch(target.client, &mut report.namespaces).await;
        return Err(e);
    }
    restore_and_check(target, options, progress, &mut report).await;
    if options.keep {
        for v in &mut report.namespaces {
            v.kept = true;
        }
    } else {
        delete_scratch(target.client, &mut report.namespaces).await;
    }
    Ok(report)
}

/// The namespaces the backup's objects are in.
async fn backed_up_namespaces(catalog: &Catalog, backup: &str) -> Result<Vec<String>> {
    let archive = catalog.archive(backup).await?;
    let set: BTreeSet<String> = archive
        .objects
        .iter()
        .filter_map(|o| o.namespace.clone())
        .collect();
    Ok(set.into_iter().collect())
}

/// Checks the repository of each namespace the backup copied volume data or dumps into;
/// gives each checked namespace with why its check failed, if it did.
async fn check_repositories(
    target: &VerifyTarget<'_>,
    record: &BackupRecord,
) -> Vec<(String, Option<String>)> {
    let with_data: BTreeSet<&str> = record
        .status
        .volumes
        .iter()
        .filter(|v| v.snapshot.is_some())
        .map(|v| v.namespace.as_str())
        .chain(
            record
                .status
                .dumps
                .iter()
                .filter(|d| d.snapshot.is_some())
                .map(|d| d.namespace.as_str()),
        )
        .collect();
    let mut checked_namespaces = Vec::new();
    for ns in with_data {
        let checked = async {
            let repo =
                VolumeRepo::open_existing(target.store, ns, target.key, RepoOptions::default())
                    .await?;
            repo.check(ReadData::Percent(READ_DATA_PERCENT)).await
        };
        let failure = match checked.await {
            Ok(report) if report.errors.is_empty() => None,
            Ok(report) => Some(format!(
                "repository check: {} (the stored data is damaged: back the namespace up \
                 again, and check the location's storage)",
                report.errors.join("; ")
            )),
            Err(e) => Some(format!("repository check: {e}")),
        };
        checked_namespaces.push((ns.to_string(), failure));
    }
    checked_namespaces
}

/// Creates the scratch namespaces, labelled with the backup before anything is restored
/// into them, so a run that dies midway leaves findable leftovers.
async fn create_scratch(
    client: &Client,
    backup: &str,
    verdicts: &[NamespaceVerdict],
) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for v in verdicts {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(v.scratch.clone()),
                labels: Some(BTreeMap::from([(
                    VERIFY_LABEL.to_string(),
                    backup.to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(Error::kube(format!(
                "cannot create the scratch namespace {} for the test restore of {}",
                v.scratch, v.namespace
            )))?;
    }
    Ok(())
}

/// The test restore, the wait for Ready and the verify commands; every outcome lands in
/// `report`.
async fn restore_and_check(
    target: &VerifyTarget<'_>,
    options: &VerifyOptions,
    progress: &(dyn Fn(&Progress) + Send + Sync),
    report: &mut VerifyReport,
) {
    let restored = test_restore(target, &report.backup, &report.namespaces, progress).await;
    let record = match restored {
        Ok(record) => record,
        Err(e) => {
            for v in &mut report.namespaces {
                v.failures.push(format!("restore failed: {e}"));
            }
            return;
        }
    };
    report.restore = Some(record.spec.name.clone());
    for e in &record.status.tally.errors {
        let text = format!("restore error: {}: {}", e.object, e.message);
        let ns = e.object.namespace.as_deref();
        match report
            .namespaces
            .iter_mut()
            .find(|v| ns.is_some_and(|n| n == v.namespace || n == v.scratch))
        {
            Some(v) => v.failures.push(text),
            None => report.failures.push(text),
        }
    }
    let deadline = Instant::now() + options.timeout;
    for v in &mut report.namespaces {
        let workloads = match ready::wait_ready(target.client, &v.scratch, deadline).await {
            Ok(Ok(w)) => w,
            Ok(Err(missing)) => {
                v.failures.push(format!(
                    "not ready after {}: {}",
                    humantime::format_duration(options.timeout),
                    missing.join(", ")
                ));
                continue;
            }
            Err(e) => {
                v.failures.push(e.to_string());
                continue;
            }
        };
        run_commands(target.client, v, &workloads, deadline).await;
    }
}

/// Restores the whole backup, each namespace into its scratch namespace.
async fn test_restore(
    target: &VerifyTarget<'_>,
    backup: &str,
    verdicts: &[NamespaceVerdict],
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<RestoreRecord> {
    let base: String = format!("verify-{backup}").chars().take(56).collect();
    let name = target
        .records
        .unused_name(base.trim_end_matches('-'))
        .await?;
    let mut request = RestoreRequest::new(name, backup);
    request.namespace_mappings = verdicts
        .iter()
        .map(|v| (v.namespace.clone(), v.scratch.clone()))
        .collect();
    request.storage_location = Some(target.store.name().to_string());
    run_restore_with_volumes(
        target.client,
        target.store,
        target.records,
        &request,
        target.volumes,
        progress,
    )
    .await
}

/// Runs the verify command of each pod that has one.
async fn run_commands(
    client: &Client,
    verdict: &mut NamespaceVerdict,
    workloads: &ready::Workloads,
    deadline: Instant,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &verdict.scratch);
    for pod in workloads.running_pods() {
        let command = match command::verify_command(pod) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(why) => {
                verdict.failures.push(why);
                continue;
            }
        };
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_COMMAND_TIMEOUT);
        let run = command.run(&pods, timeout).await;
        if let Some(why) = &run.failure {
            verdict
                .failures
                .push(format!("verify command of pod {}: {why}", run.pod));
        }
        verdict.commands.push(run);
    }
}

/// Deletes the scratch namespaces and waits until they are gone; one that stays is a
/// failure of its namespace (and is marked kept).
async fn delete_scratch(client: &Client, verdicts: &mut [NamespaceVerdict]) {
    let api: Api<Namespace> = Api::all(client.clone());
    for v in verdicts.iter_mut() {
        let uid = match api.delete(&v.scratch, &DeleteParams::background()).await {
            Ok(either) => either.left().and_then(|ns| ns.metadata.uid),
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => {
                v.kept = true;
                v.failures.push(format!(
                    "scratch namespace {} could not be deleted ({e}): delete it with `kubectl \
                     delete namespace {}`",
                    v.scratch, v.scratch
                ));
                continue;
            }
        };
        let Some(uid) = uid else { continue };
        let gone = await_condition(api.clone(), &v.scratch, conditions::is_deleted(&uid));
        if !matches!(tokio::time::timeout(DELETE_TIMEOUT, gone).await, Ok(Ok(_))) {
            v.kept = true;
            v.failures.push(format!(
                "scratch namespace {} is still there after {}: see `kubectl describe namespace \
                 {}` for what holds it",
                v.scratch,
                humantime::format_duration(DELETE_TIMEOUT),
                v.scratch
            ));
        }
    }
}
