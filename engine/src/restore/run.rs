//! Runs one restore.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::actions::{self, ActionContext, Outcome};
use super::compare;
use super::order;
use super::records::RestoreRecords;
use super::request::{ExistingResourcePolicy, RestoreRequest};
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{
    API_VERSION, BackupRecord, Phase, RestoreRecord, RestoreStatus, Tally, add_skipped, now_rfc3339,
};
use crate::backups::volume_step::{RestoreVolumeContext, VolumeStep};
use crate::backups::{Catalog, SkippedSummary, VolumeRecord};
use crate::resources::Progress;
use crate::resources::archive::UnpackedArchive;
use crate::resources::backup::record_volume_failures;
use crate::resources::deps::{kinds, string_map};
use crate::resources::discovery::{DiscoveredTypes, discover};
use crate::resources::selector::LabelSelector;
use crate::resources::types::{ObjectRef, ResourceType, group_of};
use crate::store::Store;
use crate::{Error, Result};

const FIELD_MANAGER: &str = "kubectl-vbackup";
/// Objects applied at the same time within one batch.
const PARALLEL_APPLIES: usize = 8;
/// Objects read and transformed at once; bounds the memory a restore needs.
const BATCH: usize = 64;
/// The first type that runs pods: volume data must be back before it is created.
const WORKLOADS_FROM: &str = "deployments.apps";
/// How long a restored CRD may take to become Established before its objects are tried.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Checks a restore before anything is applied: the request, an unused name, and a
/// backup that exists and did not fail. `restore create --wait=false` runs it before
/// returning. Returns the parsed selector and the backup's record.
pub async fn preflight(
    store: &Store,
    records: &RestoreRecords,
    request: &RestoreRequest,
) -> Result<(LabelSelector, BackupRecord)> {
    let selector = request.validate()?;
    if records.exists(&request.name).await? {
        return Err(Error::BadInput(format!(
            "restore {} already exists: pick another name or delete its record with `kubectl vbackup restore delete {}`",
            request.name, request.name
        )));
    }
    let backup = Catalog::new(store.clone()).backup(&request.backup).await?;
    if backup.status.phase == Phase::Failed {
        return Err(Error::BadInput(format!(
            "backup {} failed ({}): it cannot be restored; pick another backup",
            request.backup,
            backup
                .status
                .failure
                .as_deref()
                .unwrap_or("no reason recorded")
        )));
    }
    Ok((selector, backup))
}

/// Restores the objects `request` selects from its backup, then saves the restore record
/// (in the location, or in the cluster when the location is ReadOnly). Each failing object
/// is recorded and the restore goes on (`PartiallyFailed`). An `Err` means nothing was
/// applied (bad input, unknown backup, corrupt archive, cluster unreachable); once the
/// backup is found, such a failure is also saved as a `Failed` record.
pub async fn run_restore(
    client: &Client,
    store: &Store,
    records: &RestoreRecords,
    request: &RestoreRequest,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<RestoreRecord> {
    run_restore_with_volumes(client, store, records, request, None, progress).await
}

/// [`run_restore`], with volume data brought back by `volumes` once the claims exist and
/// before any workload is created (skipped without `--restore-volumes`).
pub async fn run_restore_with_volumes(
    client: &Client,
    store: &Store,
    records: &RestoreRecords,
    request: &RestoreRequest,
    volumes: Option<&dyn VolumeStep>,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<RestoreRecord> {
    let (selector, backup) = preflight(store, records, request).await?;
    let started = now_rfc3339();
    let volumes = volumes.filter(|_| request.restore_volumes);
    let restored = restore_objects(
        client, store, request, &selector, &backup, volumes, progress,
    );
    let done = match restored.await {
        Ok(done) => done,
        Err(e) => {
            let failed = RestoreRecord {
                api_version: API_VERSION.into(),
                kind: "Restore".into(),
                spec: request.clone(),
                status: RestoreStatus {
                    phase: Phase::Failed,
                    failure: Some(e.to_string()),
                    started,
                    completed: Some(now_rfc3339()),
                    tally: Tally::default(),
                    unchanged: 0,
                    updated: 0,
                    skipped: Vec::new(),
                    volumes: Vec::new(),
                },
            };
            // The error itself is what the caller must see; the record is best effort.
            if let Ok(log) = ItemLog::new() {
                let _ = records.save(&failed, log).await;
            }
            return Err(e);
        }
    };
    let record = RestoreRecord {
        api_version: API_VERSION.into(),
        kind: "Restore".into(),
        spec: request.clone(),
        status: RestoreStatus {
            phase: Phase::from_errors(done.tally.error_count),
            failure: None,
            started,
            completed: Some(now_rfc3339()),
            tally: done.tally,
            unchanged: done.unchanged,
            updated: done.updated,
            skipped: done.skipped,
            volumes: done.volumes,
        },
    };
    if let Err(e) = records.save(&record, done.log).await {
        let s = &record.status;
        return Err(Error::RecordNotSaved(format!(
            "restore {} {} ({} objects created or updated, {} item errors) but its record could \
             not be saved: {e}",
            request.name,
            s.phase,
            s.tally.total(),
            s.tally.error_count
        )));
    }
    Ok(record)
}

/// What the object restore did, before it is recorded.
struct Done {
    tally: Tally,
    skipped: Vec<SkippedSummary>,
    unchanged: u64,
    updated: u64,
    log: ItemLog,
    volumes: Vec<VolumeRecord>,
}

async fn restore_objects(
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
        crate::velero::catalog::resolve_claims(&mut resolved.status.volumes, &unpacked);
        &resolved
    } else {
        backup
    };
    let discovered = discover(client).await?;
    let known = known_types(&discovered, &unpacked)?;
    let unknown_excludes = request
        .resources
        .validate_includes(&known, "restore's --include-resources")?;

    let mut run = Run {
        client,
        request,
        selector,
        discovered,
        known,
        tally: Tally::default(),
        skipped: Vec::new(),
        log: ItemLog::new()?,
        unchanged: 0,
        updated: 0,
        ensured_namespaces: HashSet::new(),
        items: 0,
    };
    for entry in unknown_excludes {
        run.tally.warn(format!(
            "--exclude-resources {entry}: neither the cluster nor the backup has such a type; it \
             excludes nothing"
        ));
    }
    if backup.status.phase == Phase::PartiallyFailed {
        run.tally.warn(format!(
            "backup {} is PartiallyFailed: objects that failed then are not in it",
            request.backup
        ));
    }
    let mut objects = std::mem::take(&mut unpacked.objects);
    objects.sort_by(order::compare);
    let mut crds_restored = Vec::new();
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
            if !crds_restored.is_empty() {
                run.wait_for_crds(&crds_restored).await;
                run.discovered = discover(client).await?;
            }
        }
        // A batch holds objects of one rank only, so what a rank needs is in place before
        // the next one starts; its size bounds memory.
        let rank = order::rank(&first.resource);
        let end = (start..objects.len())
            .take(BATCH)
            .take_while(|&k| order::rank(&objects[k].resource) == rank)
            .last()
            .map_or(start + 1, |k| k + 1);
        let applied = run
            .restore_batch(&unpacked, &objects[start..end], progress)
            .await;
        crds_restored.extend(
            applied
                .into_iter()
                .filter(|(r, _)| r.resource == kinds::CRDS)
                .map(|(_, name)| name),
        );
        start = end;
    }
    if let Some(step) = volumes_pending {
        volume_records = run.restore_volumes(step, store, backup).await;
    }
    Ok(Done {
        tally: run.tally,
        skipped: run.skipped,
        unchanged: run.unchanged,
        updated: run.updated,
        log: run.log,
        volumes: volume_records,
    })
}

/// The cluster's types, plus the archive's types the cluster does not serve (so filters
/// may name them, e.g. to leave out a CRD's objects).
fn known_types(
    discovered: &DiscoveredTypes,
    unpacked: &UnpackedArchive,
) -> Result<Vec<ResourceType>> {
    let mut known = discovered.types.clone();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for r in &unpacked.objects {
        if discovered.by_group_resource(&r.resource).is_some() || !seen.insert(&r.resource) {
            continue;
        }
        let object = unpacked.read(r)?;
        known.push(archived_type(r, &object));
    }
    Ok(known)
}

fn archived_type(r: &ObjectRef, object: &Value) -> ResourceType {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let plural = r
        .resource
        .split_once('.')
        .map_or(r.resource.as_str(), |(p, _)| p);
    ResourceType {
        group: group_of(api_version).to_string(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: object["kind"].as_str().unwrap_or_default().to_string(),
        plural: plural.to_string(),
        singular: String::new(),
        short_names: Vec::new(),
        namespaced: r.namespace.is_some(),
        verbs: Vec::new(),
        has_status_subresource: false,
    }
}

struct Run<'a> {
    client: &'a Client,
    request: &'a RestoreRequest,
    selector: &'a LabelSelector,
    discovered: DiscoveredTypes,
    known: Vec<ResourceType>,
    tally: Tally,
    skipped: Vec<SkippedSummary>,
    log: ItemLog,
    unchanged: u64,
    updated: u64,
    ensured_namespaces: HashSet<String>,
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
        let mut prepared = Vec::with_capacity(batch.len());
        for r in batch {
            if let Some(object) = self.prepare(unpacked, r) {
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
        };
        let results: Vec<_> = futures::stream::iter(prepared.into_iter().map(|(r, object)| {
            let blocked = object["metadata"]["namespace"]
                .as_str()
                .and_then(|ns| namespace_errors.get(ns).cloned());
            let target = &target;
            async move {
                let result = match blocked {
                    Some(e) => Err(e),
                    None => target.apply(object).await,
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
            match result {
                Ok(Applied::Created(name)) => {
                    self.tally.count(&r.resource);
                    self.log.record(r, "created", None);
                    applied.push((r, name));
                }
                Ok(Applied::Unchanged) => {
                    self.unchanged += 1;
                    self.log
                        .record(r, "unchanged", Some("exists already, as in the backup"));
                }
                Ok(Applied::Differs(shown)) => {
                    self.unchanged += 1;
                    self.tally.warn(format!(
                        "{shown} exists and differs from the backup; left as it is (use \
                         --existing-resource-policy=update to patch it)"
                    ));
                    self.log
                        .record(r, "unchanged", Some("exists and differs from the backup"));
                }
                Ok(Applied::Updated(name)) => {
                    self.updated += 1;
                    self.tally.count(&r.resource);
                    self.log.record(
                        r,
                        "updated",
                        Some("existed and differed; patched to the backed-up state"),
                    );
                    applied.push((r, name));
                }
                Err(e) => self.fail(r, e),
            }
        }
        applied
    }

    /// Reads, filters and transforms one object; `None` when it is not to be applied (the
    /// reason is recorded unless the filters simply do not select it).
    fn prepare(&mut self, unpacked: &UnpackedArchive, r: &ObjectRef) -> Option<Value> {
        let mut object = match unpacked.read(r) {
            Ok(o) => o,
            Err(e) => {
                self.fail(r, e.to_string());
                return None;
            }
        };
        if !self.selected(r, &object) {
            return None;
        }
        let ctx = ActionContext {
            request: self.request,
        };
        match actions::transform(&r.resource, &mut object, &ctx) {
            Ok(Outcome::Restore) => Some(object),
            Ok(Outcome::Skip(reason)) => {
                add_skipped(&mut self.skipped, &r.resource, &reason);
                self.log.record(r, "skipped", Some(&reason));
                None
            }
            Err(e) => {
                self.fail(r, e);
                None
            }
        }
    }

    fn selected(&self, r: &ObjectRef, object: &Value) -> bool {
        let namespace_ok = match (&r.namespace, r.resource.as_str()) {
            (Some(ns), _) => self.request.namespaces.matches(ns),
            (None, kinds::NAMESPACES) => self.request.namespaces.matches(&r.name),
            (None, _) => true,
        };
        let type_ok = self
            .known
            .iter()
            .find(|t| t.group_resource() == r.resource)
            .is_none_or(|t| self.request.resources.matches(t));
        namespace_ok
            && type_ok
            && self
                .selector
                .matches(&string_map(&object["metadata"]["labels"]))
    }

    fn fail(&mut self, r: &ObjectRef, message: impl Into<String>) {
        let message = message.into();
        self.log.record(r, "failed", Some(&message));
        self.tally.error(r, message);
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
        record_volume_failures(&mut self.tally, &records);
        records
    }

    async fn wait_for_crds(&mut self, names: &[String]) {
        let Some(rt) = self.discovered.by_group_resource(kinds::CRDS).cloned() else {
            return;
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
        let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_TIMEOUT;
        let mut waiting: Vec<&String> = names.iter().collect();
        while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
            let mut still = Vec::new();
            for name in waiting {
                let established = match api.get_opt(name).await {
                    Ok(Some(crd)) => crd.data["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True"),
                    _ => false,
                };
                if !established {
                    still.push(name);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        for name in waiting {
            self.tally.warn(format!("CustomResourceDefinition {name} was not Established after {}s; its objects may fail", CRD_ESTABLISH_TIMEOUT.as_secs()));
        }
    }
}

/// What happened to one object.
enum Applied {
    /// Created under this name.
    Created(String),
    /// It existed already, as in the backup.
    Unchanged,
    /// It existed already and differs (shown as `resource/ns/name`); left as it is.
    Differs(String),
    /// It existed, differed, and was patched; its name.
    Updated(String),
}

/// What applying needs, shared by the objects applied at the same time.
struct Target<'a> {
    client: &'a Client,
    discovered: &'a DiscoveredTypes,
    policy: ExistingResourcePolicy,
}

impl Target<'_> {
    /// Creates the object, or handles it existing already.
    async fn apply(&self, object: Value) -> std::result::Result<Applied, String> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let group = group_of(&api_version).to_string();
        let rt = self.discovered.by_kind(&group, &kind).ok_or_else(|| {
            format!(
                "this cluster does not serve {kind} in group {group:?}: install its CRD or \
                 operator first, or exclude it"
            )
        })?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = object["metadata"]["namespace"].as_str().map(String::from);
        let ar = ApiResource {
            version: api_version
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            api_version: api_version.clone(),
            ..rt.api_resource()
        };
        let api: Api<DynamicObject> = match (&namespace, rt.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (None, false) => Api::all_with(self.client.clone(), &ar),
            _ => {
                return Err(format!(
                    "{kind} {name}: namespace scope in the backup differs from the cluster's"
                ));
            }
        };
        let dynamic: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.create(&pp, &dynamic).await {
            Ok(_) => return Ok(Applied::Created(name)),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error(e)),
        }
        let existing = api.get(&name).await.map_err(api_error)?;
        let existing = serde_json::to_value(&existing).map_err(|e| e.to_string())?;
        if compare::matches(&object, &existing) {
            return Ok(Applied::Unchanged);
        }
        match self.policy {
            ExistingResourcePolicy::None => Ok(Applied::Differs(match &namespace {
                Some(ns) => format!("{}/{ns}/{name}", rt.group_resource()),
                None => format!("{}/{name}", rt.group_resource()),
            })),
            ExistingResourcePolicy::Update => {
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                api.patch(&name, &pp, &Patch::Merge(&object))
                    .await
                    .map_err(api_error)?;
                Ok(Applied::Updated(name))
            }
        }
    }
}

fn api_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}
