//! Runs one restore.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
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
use crate::hooks::{DumpCounts, HookCounts};
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
    let volumes = volumes.filter(|_| request.restore_volumes && !request.dry_run);
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
                    hooks: HookCounts::default(),
                    dumps: DumpCounts::default(),
                },
            };
            // The error itself is what the caller must see; the record is best effort (and
            // a dry run writes none).
            if !request.dry_run {
                let _ = records.save(&failed, ItemLog::new()).await;
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
            hooks: done.hooks,
            dumps: done.dumps,
        },
    };
    if request.dry_run {
        return Ok(record);
    }
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
    hooks: HookCounts,
    dumps: DumpCounts,
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
        selector,
        discovered,
        known,
        tally: Tally::default(),
        skipped: Vec::new(),
        log: ItemLog::new(),
        unchanged: 0,
        updated: 0,
        ensured_namespaces: HashSet::new(),
        unchecked_namespaces: HashSet::new(),
        unchecked_types: HashSet::new(),
        items: 0,
    };
    if request.dry_run && request.restore_volumes && volumes.is_some() {
        run.tally
            .warn("dry run: volume data is not part of it; nothing was copied".to_string());
    }
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
    let (mut hooks, mut dumps) = (HookCounts::default(), DumpCounts::default());
    if let Some(step) = volumes {
        let ctx = RestoreVolumeContext {
            client,
            store,
            request,
            backup,
        };
        let report = step.after_workloads(ctx).await;
        (hooks, dumps) = (report.counts, report.restored_dumps);
        crate::hooks::backup::record_report(&mut run.tally, &mut run.log, report);
    }
    Ok(Done {
        tally: run.tally,
        skipped: run.skipped,
        unchanged: run.unchanged,
        updated: run.updated,
        log: run.log,
        volumes: volume_records,
        hooks,
        dumps,
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
            match result {
                Ok(Applied::Created(name)) => {
                    self.tally.count(&r.resource);
                    self.log.record(r, "created", None);
                    applied.push((r, name));
                }
                Ok(Applied::Unchecked) => {
                    self.tally.count(&r.resource);
                    self.log.record(
                        r,
                        "created",
                        Some("dry run: would be created once its namespace or type exists; not checked by the server"),
                    );
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
                         --existing-resource-policy=update to put it back as backed up)"
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
                        Some("existed and differed; updated to the backed-up state"),
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
    async fn prepare(&mut self, unpacked: &UnpackedArchive, r: &ObjectRef) -> Option<Value> {
        let mut object = match unpacked.read(r).await {
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
        tracing::warn!(object = %r, error = %message, "not restored; recorded as an item error");
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
            None if self.request.dry_run => {
                self.tally.warn(format!(
                    "dry run: namespace {ns} does not exist yet, so the server could not check                      the objects that would be created in it"
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
        record_volume_failures(&mut self.tally, &records);
        records
    }

    /// Waits (watching, at most [`CRD_ESTABLISH_TIMEOUT`]) until the restored CRDs are
    /// Established; the ones that are not are named in a warning.
    async fn wait_for_crds(&mut self, names: &[String]) {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let waits = names.iter().map(|name| {
            let established = await_condition(api.clone(), name, conditions::is_crd_established());
            async move {
                let outcome = tokio::time::timeout(CRD_ESTABLISH_TIMEOUT, established).await;
                (name, matches!(outcome, Ok(Ok(Some(_)))))
            }
        });
        for (name, established) in futures::future::join_all(waits).await {
            if !established {
                tracing::warn!(crd = %name, "not Established in time");
                self.tally.warn(format!(
                    "CustomResourceDefinition {name} was not Established after {}s; its objects may fail",
                    CRD_ESTABLISH_TIMEOUT.as_secs()
                ));
            }
        }
    }
}

/// What happened to one object.
enum Applied {
    /// Created under this name.
    Created(String),
    /// Dry run: would be created, but its namespace or type does not exist yet, so the
    /// server could not check it.
    Unchecked,
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
    dry_run: bool,
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
            dry_run: self.dry_run,
        };
        match api.create(&pp, &dynamic).await {
            Ok(_) => return Ok(Applied::Created(name)),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error(e)),
        }
        let existing = api.get(&name).await.map_err(api_error)?;
        // The backed-up object as an update of the live one: the server applies the same
        // defaults and admission to it as it did to the live object, so what it would make
        // of it is comparable field for field.
        let mut desired = dynamic;
        desired
            .metadata
            .resource_version
            .clone_from(&existing.metadata.resource_version);
        let dry_run = PostParams {
            dry_run: true,
            ..pp.clone()
        };
        let existing = serde_json::to_value(&existing).map_err(|e| e.to_string())?;
        let same = match api.replace(&name, &dry_run, &desired).await {
            Ok(would_be) => {
                let would_be = serde_json::to_value(&would_be).map_err(|e| e.to_string())?;
                compare::same_content(&would_be, &existing)
            }
            // The server cannot take the backed-up object over the live one (an immutable
            // field the backup leaves out): compare the backup's own fields.
            Err(_) => compare::matches(&object, &existing),
        };
        if same {
            return Ok(Applied::Unchanged);
        }
        match self.policy {
            ExistingResourcePolicy::None => Ok(Applied::Differs(match &namespace {
                Some(ns) => format!("{}/{ns}/{name}", rt.group_resource()),
                None => format!("{}/{name}", rt.group_resource()),
            })),
            ExistingResourcePolicy::Update => {
                // A full update, not a merge: what the live object added (a key, a label,
                // a list entry) goes, so the object is exactly as backed up.
                api.replace(&name, &pp, &desired).await.map_err(api_error)?;
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
