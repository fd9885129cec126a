//! Restores the archived objects in order, batch by batch: CRDs first (waited for until
//! Established), volume data before the first workload, each object applied through
//! [`Target`] and its outcome recorded in the [`Report`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::Value;

use super::actions::{self, ActionContext, ActionOutcome};
use super::apply::{Applied, Target, api_error};
use super::order;
use super::plan::{self, Selection};
use super::report::Report;
use super::request::RestoreRequest;
use crate::Result;
use crate::backups::record::{BackupRecord, Phase};
use crate::backups::volume_step::{RestoreVolumeContext, VolumeStep};
use crate::backups::{Catalog, VolumeRecord};
use crate::cluster::crds::wait_established;
use crate::hooks::{DumpCounts, HookCounts};
use crate::resources::Progress;
use crate::resources::archive::UnpackedArchive;
use crate::resources::backup::record_volume_failures;
use crate::resources::deps::kinds;
use crate::resources::discovery::{DiscoveredTypes, discover};
use crate::resources::selector::LabelSelector;
use crate::resources::types::{ObjectRef, ResourceType};
use crate::store::Store;

/// Objects applied at the same time within one batch.
const PARALLEL_APPLIES: usize = 8;
/// Objects read and transformed at once; bounds the memory a restore needs.
const BATCH: usize = 64;
/// The first type that runs pods: volume data must be back before it is created.
const WORKLOADS_FROM: &str = "deployments.apps";
/// How long a restored CRD may take to become Established before its objects are tried.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the object restore did, before it is recorded.
pub(super) struct Done {
    pub(super) report: Report,
    pub(super) volumes: Vec<VolumeRecord>,
    pub(super) hooks: HookCounts,
    pub(super) dumps: DumpCounts,
}

/// Restores the objects `request` selects from `backup`, with `volumes` bringing volume
/// data back once the claims exist and before any workload is created.
pub(super) async fn restore_objects(
    client: &Client,
    store: &Store,
    request: &RestoreRequest,
    selector: &LabelSelector,
    backup: &BackupRecord,
    volumes: Option<&dyn VolumeStep>,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<Done> {
    let mut unpacked = Catalog::new(store.clone()).archive(&request.backup).await?;
    // Velero names pod volumes, not claims: the backed-up pods say which claim each was.
    let mut resolved;
    let backup = if store.format() == crate::store::Format::Velero {
        resolved = backup.clone();
        crate::velero::catalog::resolve_claims(&mut resolved.status.volumes, &unpacked).await;
        &resolved
    } else {
        backup
    };
    let discovered = discover(client).await?;
    let known = known_types(&discovered, &unpacked).await?;
    let unknown_excludes = request
        .resources
        .validate_includes(&known, "restore's --include-resources")?;

    let mut run = Run {
        client,
        request,
        selection: Selection {
            request,
            known: &known,
            selector,
        },
        discovered,
        report: Report::default(),
        ensured_namespaces: HashSet::new(),
        unchecked_namespaces: HashSet::new(),
        unchecked_types: HashSet::new(),
        items: 0,
    };
    if request.dry_run && request.restore_volumes && volumes.is_some() {
        run.report
            .tally
            .warn("dry run: volume data is not part of it; nothing was copied".to_string());
    }
    for entry in unknown_excludes {
        run.report.tally.warn(format!(
            "--exclude-resources {entry}: neither the cluster nor the backup has such a type; it \
             excludes nothing"
        ));
    }
    if backup.status.phase == Phase::PartiallyFailed {
        run.report.tally.warn(format!(
            "backup {} is PartiallyFailed: objects that failed then are not in it",
            request.backup
        ));
    }
    let mut objects = std::mem::take(&mut unpacked.objects);
    objects.sort_by(order::compare);
    let mut crds_restored: Vec<String> = Vec::new();
    let mut after_crds = false;
    let mut volume_records = Vec::new();
    let mut volumes_pending = volumes;
    let mut start = 0;
    while start < objects.len() {
        let first = &objects[start];
        if order::rank(&first.resource) >= order::rank(WORKLOADS_FROM)
            && let Some(step) = volumes_pending.take()
        {
            volume_records = run.restore_volumes(step, store, backup).await;
        }
        if !after_crds && first.resource != kinds::CRDS {
            after_crds = true;
            if request.dry_run {
                // Types whose CRD only the restore would create are not served yet.
                let not_served = crds_restored
                    .drain(..)
                    .filter(|name| run.discovered.by_group_resource(name).is_none());
                run.unchecked_types.extend(not_served);
            } else if !crds_restored.is_empty() {
                run.wait_for_crds(&crds_restored).await;
                run.discovered = discover(client).await?;
            }
        }
        let range = plan::batch(&objects, start, BATCH);
        start = range.end;
        let applied = run
            .restore_batch(&unpacked, &objects[range], progress)
            .await;
        crds_restored.extend(
            applied
                .into_iter()
                .filter(|(r, _)| r.resource == kinds::CRDS)
                .map(|(_, name)| name),
        );
    }
    if let Some(step) = volumes_pending {
        volume_records = run.restore_volumes(step, store, backup).await;
    }
    let mut counts = (HookCounts::default(), DumpCounts::default());
    if let Some(step) = volumes {
        let ctx = RestoreVolumeContext {
            client,
            store,
            request,
            backup,
        };
        let hooks = step.after_workloads(ctx).await;
        counts = (hooks.counts, hooks.restored_dumps);
        let report = &mut run.report;
        crate::hooks::backup::record_report(&mut report.tally, &mut report.log, hooks);
    }
    Ok(Done {
        report: run.report,
        volumes: volume_records,
        hooks: counts.0,
        dumps: counts.1,
    })
}

/// The cluster's types, plus the archive's types the cluster does not serve (so filters
/// may name them, e.g. to leave out a CRD's objects).
async fn known_types(
    discovered: &DiscoveredTypes,
    unpacked: &UnpackedArchive,
) -> Result<Vec<ResourceType>> {
    let mut known = discovered.types.clone();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for r in &unpacked.objects {
        if discovered.by_group_resource(&r.resource).is_some() || !seen.insert(&r.resource) {
            continue;
        }
        let object = unpacked.read(r).await?;
        known.push(plan::archived_type(r, &object));
    }
    Ok(known)
}

struct Run<'a> {
    client: &'a Client,
    request: &'a RestoreRequest,
    selection: Selection<'a>,
    discovered: DiscoveredTypes,
    report: Report,
    ensured_namespaces: HashSet<String>,
    /// Dry run: namespaces that do not exist yet, so the server cannot check objects in them.
    unchecked_namespaces: HashSet<String>,
    /// Dry run: types whose CRD would be created by this restore, so not served yet.
    unchecked_types: HashSet<String>,
    items: u64,
}

impl Run<'_> {
    /// Restores a batch of objects of one rank, several at a time; returns the objects
    /// created or updated, with their new names.
    async fn restore_batch<'o>(
        &mut self,
        unpacked: &UnpackedArchive,
        batch: &'o [ObjectRef],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Vec<(&'o ObjectRef, String)> {
        if let Some(first) = batch.first() {
            tracing::debug!(resource = %first.resource, objects = batch.len(), dry_run = self.request.dry_run, "restoring a batch");
        }
        let mut prepared = Vec::with_capacity(batch.len());
        for r in batch {
            if let Some(object) = self.prepare(unpacked, r).await {
                prepared.push((r, object));
            }
        }
        let mut namespace_errors = HashMap::new();
        let namespaces: BTreeSet<String> = prepared
            .iter()
            .filter(|(r, _)| r.namespace.is_some())
            .filter_map(|(_, o)| o["metadata"]["namespace"].as_str().map(String::from))
            .collect();
        for ns in namespaces {
            if let Err(e) = self.ensure_namespace(&ns).await {
                namespace_errors.insert(ns, e);
            }
        }
        let target = Target {
            client: self.client,
            discovered: &self.discovered,
            policy: self.request.existing_resource_policy,
            dry_run: self.request.dry_run,
        };
        let results: Vec<_> = futures::stream::iter(prepared.into_iter().map(|(r, object)| {
            let namespace = object["metadata"]["namespace"].as_str();
            let blocked = namespace.and_then(|ns| namespace_errors.get(ns).cloned());
            let unchecked = namespace.is_some_and(|ns| self.unchecked_namespaces.contains(ns))
                || self.unchecked_types.contains(&r.resource);
            let target = &target;
            async move {
                let result = match (blocked, unchecked) {
                    (Some(e), _) => Err(e),
                    (None, true) => Ok(Applied::Unchecked),
                    (None, false) => target.apply(object).await,
                };
                (r, result)
            }
        }))
        .buffered(PARALLEL_APPLIES)
        .collect()
        .await;
        let mut applied = Vec::new();
        for (r, result) in results {
            self.items += 1;
            progress(&Progress {
                items: self.items,
                resource: r.resource.clone(),
            });
            if let Some(name) = self.report.applied(r, result) {
                applied.push((r, name));
            }
        }
        applied
    }

    /// Reads, filters and transforms one object; `None` when it is not to be applied (the
    /// reason is recorded unless the filters simply do not select it).
    async fn prepare(&mut self, unpacked: &UnpackedArchive, r: &ObjectRef) -> Option<Value> {
        let mut object = match unpacked.read(r).await {
            Ok(o) => o,
            Err(e) => {
                self.report.fail(r, e.to_string());
                return None;
            }
        };
        if !self.selection.selects(r, &object) {
            return None;
        }
        let ctx = ActionContext {
            request: self.request,
        };
        match actions::transform(&r.resource, &mut object, &ctx) {
            Ok(ActionOutcome::Restore) => Some(object),
            Ok(ActionOutcome::Skip(reason)) => {
                self.report.skip(r, &reason);
                None
            }
            Err(e) => {
                self.report.fail(r, e);
                None
            }
        }
    }

    /// Namespaces not in the backup (or filtered out) are created bare, as Velero does.
    async fn ensure_namespace(&mut self, ns: &str) -> std::result::Result<(), String> {
        if self.ensured_namespaces.contains(ns) {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(ns).await.map_err(api_error)? {
            Some(existing)
                if existing.status.as_ref().and_then(|s| s.phase.as_deref())
                    == Some("Terminating") =>
            {
                return Err(format!(
                    "namespace {ns} is being deleted: wait until it is gone, then restore again"
                ));
            }
            Some(_) => {}
            None if self.request.dry_run => {
                self.report.tally.warn(format!(
                    "dry run: namespace {ns} does not exist yet, so the server could not check \
                     the objects that would be created in it"
                ));
                self.unchecked_namespaces.insert(ns.to_string());
            }
            None => {
                let namespace = Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.to_string()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &namespace).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(api_error(e)),
                }
            }
        }
        self.ensured_namespaces.insert(ns.to_string());
        Ok(())
    }

    /// Runs the volume step and counts its failures as item errors.
    async fn restore_volumes(
        &mut self,
        step: &dyn VolumeStep,
        store: &Store,
        backup: &BackupRecord,
    ) -> Vec<VolumeRecord> {
        let ctx = RestoreVolumeContext {
            client: self.client,
            store,
            request: self.request,
            backup,
        };
        let records = step.restore(ctx).await;
        record_volume_failures(&mut self.report.tally, &records);
        records
    }

    /// Waits (watching, at most [`CRD_ESTABLISH_TIMEOUT`]) until the restored CRDs are
    /// Established; the ones that are not are named in a warning.
    async fn wait_for_crds(&mut self, names: &[String]) {
        let client = self.client;
        let waits = names.iter().map(|name| async move {
            let established = wait_established(client, name, CRD_ESTABLISH_TIMEOUT).await;
            (name, established)
        });
        for (name, established) in futures::future::join_all(waits).await {
            if !established {
                tracing::warn!(crd = %name, "not Established in time");
                self.report.tally.warn(format!(
                    "CustomResourceDefinition {name} was not Established after {}s; its objects may fail",
                    CRD_ESTABLISH_TIMEOUT.as_secs()
                ));
            }
        }
    }
}
