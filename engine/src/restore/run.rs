//! Runs one restore: checks it, restores the objects (see `objects`), and saves its record.

use kube::Client;

use super::objects::{Done, restore_objects};
use super::records::RestoreRecords;
use super::request::RestoreRequest;
use crate::backups::Catalog;
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{
    API_VERSION, BackupRecord, Phase, RestoreRecord, RestoreStatus, Tally, now_rfc3339,
};
use crate::backups::volume_step::VolumeStep;
use crate::hooks::{DumpCounts, HookCounts};
use crate::resources::Progress;
use crate::resources::selector::LabelSelector;
use crate::store::Store;
use crate::{Error, Result};

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
    let Done {
        report,
        volumes,
        hooks,
        dumps,
    } = done;
    let record = RestoreRecord {
        api_version: API_VERSION.into(),
        kind: "Restore".into(),
        spec: request.clone(),
        status: RestoreStatus {
            phase: Phase::from_errors(report.tally.error_count),
            failure: None,
            started,
            completed: Some(now_rfc3339()),
            tally: report.tally,
            unchanged: report.unchanged,
            updated: report.updated,
            skipped: report.skipped,
            volumes,
            hooks,
            dumps,
        },
    };
    if request.dry_run {
        return Ok(record);
    }
    if let Err(e) = records.save(&record, report.log).await {
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
