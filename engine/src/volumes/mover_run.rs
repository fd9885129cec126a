//! What runs inside a mover pod: the job from its Secret, against the mounted volume and the
//! location, with progress lines on stdout and the result as the termination message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::{RepoPassword, RepoSecrets};
use crate::repo::{
    ProgressFn, ProgressUpdate, RepoOptions, VolumeBackup, VolumeRepo, VolumeRestore,
};
use crate::store::fs::FsBackend;
use crate::store::s3::{S3Backend, S3Credentials};
use crate::store::{Format, ObjectBackend, Store};
use crate::{Error, Result};

use super::job::{MoverJob, MoverResult, ProgressLine, StoreAccess, Work};

/// Runs a mover job; `report` receives a progress line about once a second. Never fails:
/// failures are in the result, which is what the plugin reads.
pub async fn run(job: MoverJob, report: Arc<dyn Fn(ProgressLine) + Send + Sync>) -> MoverResult {
    let started = Instant::now();
    let progress: ProgressFn = Arc::new(move |u: ProgressUpdate| {
        report(ProgressLine {
            vbackup_progress: 1,
            bytes: u.bytes_done,
            total: u.bytes_total,
            files: u.files_done,
        })
    });
    let outcome = execute(&job, progress).await;
    tracing::info!(elapsed = ?started.elapsed(), ok = outcome.is_ok(), "mover job finished");
    outcome.unwrap_or_else(|e| MoverResult {
        error: Some(e.to_string()),
        ..Default::default()
    })
}

async fn execute(job: &MoverJob, progress: ProgressFn) -> Result<MoverResult> {
    let store = open_store(job)?;
    let stall = Some(Duration::from_secs(job.stall_seconds.max(1)));
    if job.work == Work::Probe {
        let report = store.check().await?;
        tracing::debug!(?report, "location reachable from the mover");
        return Ok(MoverResult::default());
    }
    let secrets = RepoSecrets {
        password: RepoPassword::from_text(job.repo_password.clone()),
        master_key: job.master_key.clone(),
    };
    let repo =
        VolumeRepo::from_secrets(&store, &job.namespace, &secrets, RepoOptions::default()).await?;
    match &job.work {
        Work::Backup {
            source,
            volume,
            backup,
            excludes,
        } => {
            let summary = repo
                .backup_dir(VolumeBackup {
                    source: source.into(),
                    volume: volume.clone(),
                    backup: backup.clone(),
                    excludes: excludes.clone(),
                    progress: Some(progress),
                    stall_after: stall,
                })
                .await?;
            Ok(MoverResult {
                error: None,
                snapshot: Some(summary.snapshot_id),
                files: summary.files_new + summary.files_changed + summary.files_unmodified,
                bytes: summary.bytes_total,
                bytes_added: summary.data_added_stored,
                warning_count: summary.warnings.len() as u64,
                warnings: summary.warnings,
            })
        }
        Work::Restore {
            snapshot,
            target,
            path,
        } => {
            let summary = repo
                .restore(VolumeRestore {
                    snapshot: snapshot.clone(),
                    path: path.clone(),
                    target: target.into(),
                    verify_existing: false,
                    progress: Some(progress),
                    stall_after: stall,
                })
                .await?;
            Ok(MoverResult {
                files: summary.files_restored + summary.files_unchanged,
                bytes: summary.bytes_restored,
                ..Default::default()
            })
        }
        Work::Probe => Ok(MoverResult::default()),
    }
}

fn open_store(job: &MoverJob) -> Result<Store> {
    let backend: Arc<dyn ObjectBackend> = match &job.store {
        StoreAccess::S3 {
            spec,
            access_key_id,
            secret_access_key,
            session_token,
        } => Arc::new(S3Backend::new(
            spec,
            S3Credentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: session_token.clone(),
            },
        )?),
        StoreAccess::Filesystem { path } => {
            if !std::path::Path::new(path).is_dir() {
                return Err(Error::BadInput(format!(
                    "location {} is not mounted at {path} in the mover: check the location's pod \
                     volume (hostPath or nfs)",
                    job.location
                )));
            }
            Arc::new(FsBackend::new(path))
        }
    };
    let store = Store::new(job.location.clone(), backend, job.access_mode);
    Ok(match job.format {
        Format::Vbackup => store,
        Format::Velero => store.into_velero(RepoPassword::from_text(job.repo_password.clone())),
    })
}
