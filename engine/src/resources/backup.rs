//! Runs one object backup against a cluster and a location.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use tokio::io::DuplexStream;

use super::archive::ArchiveWriter;
use super::deps::{self, kinds};
use super::discovery::{DiscoveredTypes, discover};
use super::request::BackupRequest;
use super::sanitize::sanitize;
use super::selector::LabelSelector;
use super::skip;
use super::types::{ObjectRef, ResourceType};
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{
    API_VERSION, BackupRecord, BackupStatus, Phase, SkippedSummary, Tally, add_skipped, now_rfc3339,
};
use crate::backups::volume_step::{self, BackupVolumeContext, VolumeStep};
use crate::backups::{Catalog, VolumeRecord};
use crate::store::{Store, layout};
use crate::{Error, Result};

/// Objects per list call.
pub const PAGE_SIZE: u32 = 500;
const PIPE_BUFFER: usize = 256 * 1024;

/// Progress of a running backup or restore.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Objects done so far.
    pub items: u64,
    /// The type being processed.
    pub resource: String,
}

/// What a backup learns before it starts writing.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// The parsed label selector.
    pub selector: LabelSelector,
    /// The API server's version.
    pub cluster_version: String,
    /// Every type the cluster serves.
    pub discovered: DiscoveredTypes,
}

/// Checks everything a backup needs before anything is written: the request, a writable
/// location without a backup of that name, a reachable cluster, and resource filters that
/// name types the cluster serves. `backup create --wait=false` runs it before returning.
pub async fn preflight(
    client: &Client,
    store: &Store,
    request: &BackupRequest,
) -> Result<Preflight> {
    let selector = request.validate()?;
    store.ensure_writable()?;
    if Catalog::new(store.clone())
        .backup_exists(&request.name)
        .await?
    {
        return Err(Error::BadInput(format!(
            "backup {} already exists in location {}: pick another name or delete it first",
            request.name,
            store.name()
        )));
    }
    let cluster_version = client
        .apiserver_version()
        .await
        .map_err(Error::kube("cannot reach the Kubernetes API"))?
        .git_version;
    let discovered = discover(client).await?;
    request
        .resources
        .validate(&discovered.types, "--include-resources/--exclude-resources")?;
    Ok(Preflight {
        selector,
        cluster_version,
        discovered,
    })
}

/// Backs up the objects `request` selects into `store`, then writes the item log and the
/// metadata (last). Returns the record as written; its phase says whether every item made
/// it. An `Err` means nothing usable was written (bad input, cluster unreachable) or the
/// location failed so badly that not even the metadata could be written.
pub async fn run_backup(
    client: &Client,
    store: &Store,
    request: &BackupRequest,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<BackupRecord> {
    run_backup_with_volumes(client, store, request, None, progress).await
}

/// [`run_backup`], with volume data copied by `volumes` after the archive is stored and
/// before the metadata is written (skipped when the request turns volumes off).
pub async fn run_backup_with_volumes(
    client: &Client,
    store: &Store,
    request: &BackupRequest,
    volumes: Option<&dyn VolumeStep>,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<BackupRecord> {
    let Preflight {
        selector,
        cluster_version,
        discovered,
    } = preflight(client, store, request).await?;
    let started = now_rfc3339();
    let started_at = jiff::Timestamp::now();
    let namespaces = selected_namespaces(client, request).await?;

    let (pipe_writer, mut pipe_reader) = tokio::io::duplex(PIPE_BUFFER);
    let upload_store = store.clone();
    let key = layout::backup_resources(&request.name);
    let upload = tokio::spawn(async move { upload_store.put_stream(&key, &mut pipe_reader).await });

    let mtime = u64::try_from(started_at.as_second()).unwrap_or_default();
    let archive = ArchiveWriter::new(pipe_writer, &request.name, mtime).await;
    let mut walk = match archive {
        Ok(archive) => Walk::new(client, request, &selector, &discovered, archive)?,
        Err(e) => return Err(upload_error(upload, e).await),
    };
    for warning in &namespaces.missing {
        walk.tally
            .warn(format!("namespace {warning} does not exist"));
    }
    for group in &discovered.failed_groups {
        walk.tally.warn(format!(
            "API group {group} could not be read; its objects are not in the backup"
        ));
    }
    let walked = walk.run(&namespaces.selected, progress).await;
    let Walk {
        archive,
        log,
        tally,
        skipped,
        ..
    } = walk;
    let finished = match walked {
        Ok(()) => archive.finish().await,
        Err(e) => {
            // Stop the upload before the pipe closes, so a truncated archive is never
            // stored as if it were whole.
            let e = if archive.sink_failed() || upload.is_finished() {
                upload_error(upload, e).await
            } else {
                upload.abort();
                // Wait for the cancellation while the pipe is still open.
                let _ = upload.await;
                e
            };
            drop(archive);
            return finish_failed(
                store,
                request,
                started,
                cluster_version,
                tally,
                skipped,
                log,
                e,
            )
            .await;
        }
    };
    let mut tally = tally;
    let mut log = log;
    let mut volume_records = Vec::new();
    let mut hooks = crate::hooks::HookCounts::default();
    let mut dumps = Vec::new();
    let (phase, failure, archive_bytes) = match finished {
        Ok(()) => match upload.await {
            Ok(Ok(bytes)) => {
                if let Some(step) =
                    volumes.filter(|_| request.volumes.back_up_volumes != Some(false))
                {
                    let ctx = BackupVolumeContext {
                        client,
                        store,
                        request,
                        namespaces: &namespaces.selected,
                        selector: &selector,
                    };
                    let outcome = step.back_up_with_hooks(ctx).await;
                    volume_records = outcome.volumes;
                    record_volume_failures(&mut tally, &volume_records);
                    hooks = outcome.hooks.counts;
                    dumps =
                        crate::hooks::backup::record_report(&mut tally, &mut log, outcome.hooks);
                }
                (Phase::from_errors(tally.error_count), None, bytes)
            }
            Ok(Err(e)) => (Phase::Failed, Some(e.to_string()), 0),
            Err(e) => (
                Phase::Failed,
                Some(format!("the upload task failed: {e}")),
                0,
            ),
        },
        Err(e) => (
            Phase::Failed,
            Some(upload_error(upload, e).await.to_string()),
            0,
        ),
    };
    let record = BackupRecord {
        api_version: API_VERSION.into(),
        kind: "Backup".into(),
        spec: request.clone(),
        status: BackupStatus {
            phase,
            failure,
            started,
            completed: Some(now_rfc3339()),
            expires: expiry(started_at, request),
            location: store.name().to_string(),
            cluster_version,
            tally,
            skipped,
            archive_bytes,
            volumes: volume_records,
            hooks,
            dumps,
        },
    };
    save(store, record, log).await
}

/// Counts each failed volume as an item error, so the phase reflects it, and carries each
/// volume's warnings into the tally.
pub fn record_volume_failures(tally: &mut Tally, volumes: &[VolumeRecord]) {
    for v in volumes {
        if v.phase == volume_step::FAILED {
            tally.error(
                &ObjectRef::namespaced("persistentvolumeclaims", &v.namespace, &v.name),
                format!("volume data: {}", v.message.as_deref().unwrap_or("failed")),
            );
        }
        for w in &v.warnings {
            tally.warn(format!("volume {}/{}: {w}", v.namespace, v.name));
        }
    }
}

/// `started + ttl`; a TTL of 0 means the backup never expires.
fn expiry(started_at: jiff::Timestamp, request: &BackupRequest) -> String {
    if request.ttl.is_zero() {
        return "never".to_string();
    }
    jiff::SignedDuration::try_from(request.ttl)
        .ok()
        .and_then(|ttl| started_at.checked_add(ttl).ok())
        .map_or_else(
            || "never".to_string(),
            |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
        )
}

#[allow(clippy::too_many_arguments)]
async fn finish_failed(
    store: &Store,
    request: &BackupRequest,
    started: String,
    cluster_version: String,
    tally: Tally,
    skipped: Vec<SkippedSummary>,
    log: ItemLog,
    error: Error,
) -> Result<BackupRecord> {
    let started_at = started.parse().unwrap_or_else(|_| jiff::Timestamp::now());
    let record = BackupRecord {
        api_version: API_VERSION.into(),
        kind: "Backup".into(),
        spec: request.clone(),
        status: BackupStatus {
            phase: Phase::Failed,
            failure: Some(error.to_string()),
            started,
            completed: Some(now_rfc3339()),
            expires: expiry(started_at, request),
            location: store.name().to_string(),
            cluster_version,
            tally,
            skipped,
            archive_bytes: 0,
            volumes: Vec::new(),
            hooks: Default::default(),
            dumps: Vec::new(),
        },
    };
    save(store, record, log).await
}

/// Writes the record; when even that fails, the error says what happened to the backup.
async fn save(store: &Store, record: BackupRecord, log: ItemLog) -> Result<BackupRecord> {
    let Err(e) = write_record(store, &record, log).await else {
        return Ok(record);
    };
    let failure = record.status.failure.clone();
    let why = match &failure {
        Some(f) if *f == e.to_string() => "for the same reason".to_string(),
        _ => format!("({e})"),
    };
    Err(Error::RecordNotSaved(format!(
        "backup {} {}{}; its metadata could not be written to location {} either {why}, so it \
         is listed as Incomplete: delete it with `kubectl vbackup backup delete {}` once the \
         location is reachable",
        record.name(),
        record.status.phase,
        failure.map(|f| format!(": {f}")).unwrap_or_default(),
        store.name(),
        record.name(),
    )))
}

/// Uploads the item log, then the metadata: the metadata is always the last object.
pub async fn write_record(store: &Store, record: &BackupRecord, log: ItemLog) -> Result<()> {
    let name = record.name();
    let log_result = log.upload(store, &layout::backup_log(name)).await;
    let mut record = record.clone();
    if let Err(e) = log_result {
        record
            .status
            .tally
            .warn(format!("the item log could not be written: {e}"));
    }
    let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::Internal(e.to_string()))?;
    store.put(&layout::backup_metadata(name), json).await
}

/// When writing into the pipe fails, the upload's own error says why (unreachable, …).
async fn upload_error(upload: tokio::task::JoinHandle<Result<u64>>, fallback: Error) -> Error {
    match upload.await {
        Ok(Err(e)) => e,
        _ => fallback,
    }
}

struct Namespaces {
    selected: Vec<String>,
    missing: Vec<String>,
}

async fn selected_namespaces(client: &Client, request: &BackupRequest) -> Result<Namespaces> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = api
            .list_metadata(&lp)
            .await
            .map_err(Error::kube("cannot list namespaces"))?;
        names.extend(page.items.into_iter().filter_map(|n| n.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    let missing = request
        .namespaces
        .exact_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !names.iter().any(|x| x == n))
        .map(String::from)
        .collect();
    names.retain(|n| request.namespaces.matches(n));
    names.sort();
    Ok(Namespaces {
        selected: names,
        missing,
    })
}

struct Walk<'a> {
    client: &'a Client,
    request: &'a BackupRequest,
    selector: &'a LabelSelector,
    discovered: &'a DiscoveredTypes,
    archive: ArchiveWriter<DuplexStream>,
    log: ItemLog,
    tally: Tally,
    skipped: Vec<SkippedSummary>,
    /// Objects written that a dependency could name again (see `remembers`).
    seen: HashSet<ObjectRef>,
    pending: BTreeSet<ObjectRef>,
    pod_labels: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    service_accounts: BTreeSet<(String, String)>,
    crds: HashSet<String>,
    items: u64,
}

impl<'a> Walk<'a> {
    fn new(
        client: &'a Client,
        request: &'a BackupRequest,
        selector: &'a LabelSelector,
        discovered: &'a DiscoveredTypes,
        archive: ArchiveWriter<DuplexStream>,
    ) -> Result<Self> {
        Ok(Walk {
            client,
            request,
            selector,
            discovered,
            archive,
            log: ItemLog::new()?,
            tally: Tally::default(),
            skipped: Vec::new(),
            seen: HashSet::new(),
            pending: BTreeSet::new(),
            pod_labels: BTreeMap::new(),
            service_accounts: BTreeSet::new(),
            crds: HashSet::new(),
            items: 0,
        })
    }

    /// True when a written object must be remembered so a dependency does not write it
    /// twice: only objects a dependency can name, so memory follows the selection's
    /// dependencies, not the size of the namespaces.
    fn remembers(&self, r: &ObjectRef) -> bool {
        match r.namespace {
            None => self.tracks_dependencies(),
            Some(_) => self.request.adds_namespaced_dependencies(),
        }
    }

    fn tracks_dependencies(&self) -> bool {
        self.request.adds_namespaced_dependencies() || self.request.adds_cluster_dependencies()
    }

    async fn run(
        &mut self,
        namespaces: &[String],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        if self.request.adds_cluster_dependencies() {
            self.crds = self.list_crd_names().await?;
        }
        let types: Vec<&ResourceType> = self
            .discovered
            .types
            .iter()
            .filter(|t| self.request.resources.matches(t))
            .collect();
        for rt in types {
            let gr = rt.group_resource();
            if let Some(reason) = skip::skipped_type(&gr)
                && !self.request.resources.explicitly_includes(rt)
            {
                self.skipped.push(SkippedSummary {
                    resource: gr,
                    reason: reason.into(),
                    count: 0,
                });
                continue;
            }
            if rt.namespaced {
                match self.request.namespaces.exact_names() {
                    Some(_) => {
                        for ns in namespaces {
                            let api =
                                Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
                            self.list_type(rt, api, Some(ns.as_str()), progress).await?;
                        }
                    }
                    None => {
                        let api = Api::all_with(self.client.clone(), &rt.api_resource());
                        self.list_type(rt, api, None, progress).await?;
                    }
                }
            } else if gr == kinds::NAMESPACES {
                // With a selector, only the namespaces of taken objects (added in `take`).
                if self.selector.is_empty() {
                    for ns in namespaces {
                        self.pending
                            .insert(ObjectRef::cluster(kinds::NAMESPACES, ns));
                    }
                }
            } else if self.request.takes_all_cluster_resources() {
                let api = Api::all_with(self.client.clone(), &rt.api_resource());
                self.list_type(rt, api, None, progress).await?;
            }
        }
        if self.tracks_dependencies() {
            self.add_matching_services(progress).await?;
            self.add_bindings(progress).await?;
        }
        self.resolve_pending(progress).await
    }

    async fn list_type(
        &mut self,
        rt: &ResourceType,
        api: Api<DynamicObject>,
        namespace: Option<&str>,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let gr = rt.group_resource();
        let mut lp = ListParams::default().limit(PAGE_SIZE);
        if !self.selector.is_empty() {
            lp = lp.labels(self.selector.as_str());
        }
        loop {
            let page = match api.list(&lp).await {
                Ok(page) => page,
                Err(e) => {
                    let at = ObjectRef {
                        resource: gr.clone(),
                        namespace: namespace.map(String::from),
                        name: "*".into(),
                    };
                    self.tally.error(&at, format!("cannot list {gr}: {e}"));
                    self.log.record(&at, "failed", Some(&e.to_string()));
                    return Ok(());
                }
            };
            for item in page.items {
                let mut object =
                    serde_json::to_value(&item).map_err(|e| Error::Internal(e.to_string()))?;
                object["apiVersion"] = Value::String(rt.api_version());
                object["kind"] = Value::String(rt.kind.clone());
                if let Some(ns) = item.metadata.namespace.as_deref()
                    && !self.request.namespaces.matches(ns)
                {
                    continue;
                }
                self.take(rt, object, progress).await?;
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
                _ => return Ok(()),
            }
        }
    }

    /// Decides about one object and writes it to the archive when it is kept.
    async fn take(
        &mut self,
        rt: &ResourceType,
        mut object: Value,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let gr = rt.group_resource();
        let meta = &object["metadata"];
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let r = match meta["namespace"].as_str().filter(|_| rt.namespaced) {
            Some(ns) => ObjectRef::namespaced(&gr, ns, &name),
            None => ObjectRef::cluster(&gr, &name),
        };
        if self.remembers(&r) && !self.seen.insert(r.clone()) {
            return Ok(());
        }
        if skip::excluded_by_label(&object) {
            self.log
                .record(&r, "excluded", Some("labelled exclude-from-backup=true"));
            return Ok(());
        }
        if let Some(reason) = skip::skipped_object(&gr, &object) {
            add_skipped(&mut self.skipped, &gr, reason);
            self.log.record(&r, "skipped", Some(reason));
            return Ok(());
        }
        if self.tracks_dependencies() {
            self.collect_dependencies(rt, &gr, &object);
        }
        sanitize(&mut object, rt.has_status_subresource);
        let json = serde_json::to_vec(&object).map_err(|e| Error::Internal(e.to_string()))?;
        self.archive.add(&r, &json).await?;
        self.tally.count(&gr);
        self.log.record(&r, "backed-up", None);
        if !self.selector.is_empty()
            && let Some(ns) = &r.namespace
        {
            let namespace = ObjectRef::cluster(kinds::NAMESPACES, ns);
            if !self.seen.contains(&namespace) {
                self.pending.insert(namespace);
            }
        }
        self.items += 1;
        progress(&Progress {
            items: self.items,
            resource: gr,
        });
        Ok(())
    }

    fn collect_dependencies(&mut self, rt: &ResourceType, gr: &str, object: &Value) {
        let namespaced = self.request.adds_namespaced_dependencies();
        let cluster = self.request.adds_cluster_dependencies();
        for dep in deps::dependencies(gr, object) {
            if dep.resource == kinds::SERVICE_ACCOUNTS
                && let Some(ns) = &dep.namespace
            {
                self.service_accounts.insert((ns.clone(), dep.name.clone()));
            }
            let wanted = if dep.namespace.is_some() {
                namespaced
            } else {
                cluster
            };
            if wanted && !self.seen.contains(&dep) {
                self.pending.insert(dep);
            }
        }
        if namespaced
            && let (Some(labels), Some(ns)) = (
                deps::pod_labels(gr, object),
                object["metadata"]["namespace"].as_str(),
            )
        {
            self.pod_labels
                .entry(ns.to_string())
                .or_default()
                .push(labels);
        }
        if gr == kinds::SERVICE_ACCOUNTS
            && let Some(ns) = object["metadata"]["namespace"].as_str()
        {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            self.service_accounts
                .insert((ns.to_string(), name.to_string()));
        }
        if cluster && !rt.group.is_empty() {
            let crd = deps::crd_name(&rt.plural, &rt.group);
            if self.crds.contains(&crd) {
                self.pending.insert(ObjectRef::cluster(kinds::CRDS, &crd));
            }
        }
    }

    async fn list_crd_names(&self) -> Result<HashSet<String>> {
        let Some(rt) = self.discovered.by_group_resource(kinds::CRDS) else {
            return Ok(HashSet::new());
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
        let list = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(Error::kube("cannot list CustomResourceDefinitions"))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect())
    }

    /// With a selector, the Services whose selector picks the selected pods.
    async fn add_matching_services(
        &mut self,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let Some(rt) = self.discovered.by_group_resource(kinds::SERVICES).cloned() else {
            return Ok(());
        };
        if !self.request.adds_namespaced_dependencies() || !self.request.resources.matches(&rt) {
            return Ok(());
        }
        let pod_labels = std::mem::take(&mut self.pod_labels);
        for (ns, label_sets) in &pod_labels {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
            let services = self.list_all(&api, &rt).await?;
            for service in services {
                if label_sets
                    .iter()
                    .any(|l| deps::service_selects(&service, l))
                {
                    self.take(&rt, service, progress).await?;
                }
            }
        }
        Ok(())
    }

    /// The RoleBindings (with a selector) and ClusterRoleBindings (`auto`) naming the
    /// selected service accounts.
    async fn add_bindings(&mut self, progress: &(dyn Fn(&Progress) + Send + Sync)) -> Result<()> {
        let accounts = self.service_accounts.clone();
        if accounts.is_empty() {
            return Ok(());
        }
        let names = |b: &Value| {
            accounts
                .iter()
                .any(|(ns, sa)| deps::binding_names_service_account(b, ns, sa))
        };
        if self.request.adds_namespaced_dependencies()
            && let Some(rt) = self
                .discovered
                .by_group_resource(kinds::ROLE_BINDINGS)
                .cloned()
            && self.request.resources.matches(&rt)
        {
            let namespaces: BTreeSet<&String> = accounts.iter().map(|(ns, _)| ns).collect();
            for ns in namespaces {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
                for binding in self.list_all(&api, &rt).await? {
                    if names(&binding) {
                        self.take(&rt, binding, progress).await?;
                    }
                }
            }
        }
        if self.request.adds_cluster_dependencies()
            && let Some(rt) = self
                .discovered
                .by_group_resource(kinds::CLUSTER_ROLE_BINDINGS)
                .cloned()
            && self.request.resources.matches(&rt)
        {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
            for binding in self.list_all(&api, &rt).await? {
                if names(&binding) {
                    self.take(&rt, binding, progress).await?;
                }
            }
        }
        Ok(())
    }

    /// Every object of a (small) type in one scope, paged, as JSON with its type set.
    async fn list_all(
        &mut self,
        api: &Api<DynamicObject>,
        rt: &ResourceType,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut lp = ListParams::default().limit(PAGE_SIZE);
        loop {
            let page = api
                .list(&lp)
                .await
                .map_err(Error::kube(format!("cannot list {}", rt.group_resource())))?;
            for item in page.items {
                let mut v =
                    serde_json::to_value(&item).map_err(|e| Error::Internal(e.to_string()))?;
                v["apiVersion"] = Value::String(rt.api_version());
                v["kind"] = Value::String(rt.kind.clone());
                out.push(v);
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
                _ => return Ok(out),
            }
        }
    }

    /// Fetches every referenced object not yet written, following chains (claim → volume
    /// → storage class, binding → role).
    async fn resolve_pending(
        &mut self,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        while let Some(r) = self.pending.pop_first() {
            if self.seen.contains(&r) {
                continue;
            }
            let Some(rt) = self.discovered.by_group_resource(&r.resource).cloned() else {
                continue;
            };
            if !self.request.resources.matches(&rt) {
                self.log.record(
                    &r,
                    "excluded",
                    Some("needed by a selected object, but its type is excluded"),
                );
                continue;
            }
            let api: Api<DynamicObject> = match &r.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &rt.api_resource()),
                None => Api::all_with(self.client.clone(), &rt.api_resource()),
            };
            match api.get_opt(&r.name).await {
                Ok(Some(item)) => {
                    let mut v =
                        serde_json::to_value(&item).map_err(|e| Error::Internal(e.to_string()))?;
                    v["apiVersion"] = Value::String(rt.api_version());
                    v["kind"] = Value::String(rt.kind.clone());
                    self.take(&rt, v, progress).await?;
                }
                Ok(None) if r.resource == kinds::NAMESPACES => {}
                Ok(None) => {
                    self.tally.warn(format!(
                        "{r} is referenced by a selected object but does not exist"
                    ));
                    self.log
                        .record(&r, "missing", Some("referenced by a selected object"));
                }
                Err(e) => {
                    self.tally.error(&r, format!("cannot read {r}: {e}"));
                    self.log.record(&r, "failed", Some(&e.to_string()));
                }
            }
        }
        Ok(())
    }
}
