//! Runs one object backup against a cluster and a location: checks it, streams the
//! archive the walk (see `walk`) fills, copies volume data, and writes the record last.

use kube::Client;

use super::archive::ArchiveWriter;
use super::discovery::{DiscoveredTypes, discover};
use super::request::BackupRequest;
use super::selector::LabelSelector;
use super::types::ObjectRef;
use super::walk::{Walk, selected_namespaces};
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{
    API_VERSION, BackupRecord, BackupStatus, Phase, SkippedSummary, Tally, now_rfc3339,
};
use crate::backups::volume_step::{self, BackupVolumeContext, VolumeStep};
use crate::backups::{Catalog, VolumeRecord};
use crate::keys::stream::Sealer;
use crate::store::{Store, layout};
use crate::{Error, Result};

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

    let sealer = match store.archive_key().await? {
        Some(key) => Some(Sealer::new(&key, &layout::backup_resources(&request.name))?),
        None => None,
    };
    let unencrypted = sealer.is_none();
    let (pipe_writer, mut pipe_reader) = tokio::io::duplex(PIPE_BUFFER);
    let upload_store = store.clone();
    let key = layout::backup_resources(&request.name);
    let upload = tokio::spawn(async move { upload_store.put_stream(&key, &mut pipe_reader).await });

    let mtime = u64::try_from(started_at.as_second()).unwrap_or_default();
    let archive = ArchiveWriter::new(pipe_writer, &request.name, mtime, sealer).await;
    let mut walk = match archive {
        Ok(archive) => Walk::new(client, request, &selector, &discovered, archive),
        Err(e) => return Err(upload_error(upload, e).await),
    };
    if unencrypted {
        walk.tally.warn(format!(
            "location {} has no key: the object archive and item log are not encrypted",
            store.name()
        ));
    }
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
