//! The volume step of backups and restores: every selected claim copied once by a mover pod
//! (or through a CSI snapshot), `--parallel-volumes` at a time; on restore, each restored
//! claim filled by a mover before the workloads that mount it are created.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Volume};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::job::{MoverJob, MoverResult, StoreAccess, Work};
use super::launch::{Timeouts, run_mover};
use super::mover_pod::{
    AppSecurity, Direction, MoverPod, PodSecurityLevel, VOLUME_MOUNT, identity, mover_name,
};
use super::plan::{self, BackupPlan, ClaimWork, NotCopied};
use super::snapshots;
use crate::backups::VolumeRecord;
use crate::backups::volume_step::{BackupVolumeContext, RestoreVolumeContext, VolumeStep};
use crate::keys::{LocationKey, RepoSecrets};
use crate::policy::{Method, PolicyOptions, ResourcePolicies};
use crate::repo::{ProgressFn, RepoOptions, VolumeRepo};
use crate::restore::actions::common::RESTORE_LABEL;
use crate::store::location::BackupStorageLocation;
use crate::store::s3::S3Credentials;
use crate::{Error, Result};

/// Phase of a copied volume.
pub const COMPLETED: &str = "Completed";
/// Phase of a volume that was not copied on purpose (the message says why).
pub const SKIPPED: &str = "Skipped";
pub use crate::backups::volume_step::FAILED;

/// How movers run: the knobs of `backup create` and `restore create`.
#[derive(Debug, Clone)]
pub struct MoverSettings {
    /// The mover image (`ghcr.io/vbackup/vbackup:<version>`).
    pub image: String,
    /// Movers at once (at most one per claim).
    pub parallel: usize,
    /// Start and stall bounds of mover pods.
    pub timeouts: Timeouts,
    /// Bound of each stage of a CSI snapshot.
    pub snapshot_timeout: Duration,
    /// Policy switches.
    pub policy: PolicyOptions,
    /// Velero-style volume policies, from `--resource-policies-configmap`.
    pub policies: Option<ResourcePolicies>,
    /// `--snapshot-class`: the class for every snapshot (default: the one fitting the driver).
    pub snapshot_class: Option<String>,
}

/// The image tag matching this build.
pub fn default_image() -> String {
    format!("ghcr.io/vbackup/vbackup:{}", env!("CARGO_PKG_VERSION"))
}

impl Default for MoverSettings {
    fn default() -> Self {
        MoverSettings {
            image: default_image(),
            parallel: 4,
            timeouts: Timeouts {
                start: Duration::from_secs(300),
                stall: crate::repo::DEFAULT_STALL_PERIOD + Duration::from_secs(60),
            },
            snapshot_timeout: Duration::from_secs(600),
            policy: PolicyOptions::default(),
            policies: None,
            snapshot_class: None,
        }
    }
}

/// Hears about each volume copy, for progress bars.
pub trait VolumeObserver: Send + Sync {
    /// A copy starts; the returned callback receives its progress.
    fn started(&self, namespace: &str, claim: &str, method: Method) -> Option<ProgressFn>;
    /// A copy ended (in any phase).
    fn finished(&self, record: &VolumeRecord);
}

/// Observes nothing.
pub struct Quiet;

impl VolumeObserver for Quiet {
    fn started(&self, _: &str, _: &str, _: Method) -> Option<ProgressFn> {
        None
    }
    fn finished(&self, _: &VolumeRecord) {}
}

/// Volume data through mover pods: the [`VolumeStep`] the plugin gives the object engine.
pub struct MoverStep {
    /// How movers run.
    pub settings: MoverSettings,
    /// The location backups go to (or are read from).
    pub location: BackupStorageLocation,
    /// Its S3 credentials (S3 locations).
    pub credentials: Option<S3Credentials>,
    /// Its key, which unseals the namespaces' repository passwords (`None` for a Velero
    /// bucket, whose repositories have their own password).
    pub key: Option<LocationKey>,
    /// Progress and outcomes.
    pub observer: Arc<dyn VolumeObserver>,
    /// Cancelled on Ctrl-C: running movers are stopped and deleted.
    pub cancel: CancellationToken,
}

#[async_trait]
impl VolumeStep for MoverStep {
    async fn back_up(&self, ctx: BackupVolumeContext<'_>) -> Vec<VolumeRecord> {
        let mut records = Vec::new();
        let mut plan = BackupPlan::default();
        for ns in ctx.namespaces {
            match plan::gather(ctx.client, ns, self.settings.snapshot_class.as_deref()).await {
                Ok(state) => {
                    let p = plan::assemble(
                        &state,
                        ctx.selector,
                        self.settings.policies.as_ref(),
                        self.settings.policy,
                    );
                    plan.work.extend(p.work);
                    plan.not_copied.extend(p.not_copied);
                }
                Err(e) => records.push(VolumeRecord {
                    message: Some(format!(
                        "the volumes of namespace {ns} could not be listed: {e}"
                    )),
                    ..VolumeRecord::new(ns.as_str(), "*", FAILED)
                }),
            }
        }
        records.extend(plan.not_copied.iter().map(skipped_record));
        let access = match self.mover_access() {
            Ok(access) => access,
            Err(e) => {
                records.extend(
                    plan.work
                        .iter()
                        .map(|w| failed(w, &e.to_string(), Duration::ZERO)),
                );
                return records;
            }
        };
        let mut secrets = Opened::new();
        for ns in plan.work.iter().map(|w| w.namespace.clone()) {
            if secrets.contains_key(&ns) {
                continue;
            }
            let opened = match &self.key {
                Some(key) => VolumeRepo::open_or_init(ctx.store, &ns, key, RepoOptions::default())
                    .await
                    .map(|(repo, _)| repo.secrets())
                    .map_err(|e| e.to_string()),
                None => Err(format!("location {} has no location key", ctx.store.name())),
            };
            secrets.insert(ns, opened);
        }
        let backup = ctx.request.name.as_str();
        let copies: Vec<_> = plan
            .work
            .iter()
            .map(|work| self.copy_one(ctx.client, work, &access, &secrets, backup))
            .collect();
        let copies: Vec<VolumeRecord> = futures::stream::iter(copies)
            .buffer_unordered(self.settings.parallel.max(1))
            .collect()
            .await;
        records.extend(copies);
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        records
    }

    async fn restore(&self, ctx: RestoreVolumeContext<'_>) -> Vec<VolumeRecord> {
        let access = self.mover_access();
        let wanted: Vec<&VolumeRecord> = ctx
            .backup
            .status
            .volumes
            .iter()
            .filter(|v| v.phase == COMPLETED && ctx.request.namespaces.matches(&v.namespace))
            .collect();
        let mut repos = Opened::new();
        for v in &wanted {
            if v.snapshot.is_some() && !repos.contains_key(&v.namespace) {
                let opened = VolumeRepo::open_existing(
                    ctx.store,
                    &v.namespace,
                    self.key.as_ref(),
                    RepoOptions::default(),
                )
                .await
                .map(|repo| repo.secrets())
                .map_err(|e| e.to_string());
                repos.insert(v.namespace.clone(), opened);
            }
        }
        let restores: Vec<_> = wanted
            .into_iter()
            .map(|v| self.restore_one(&ctx, v, &access, &repos))
            .collect();
        futures::stream::iter(restores)
            .buffer_unordered(self.settings.parallel.max(1))
            .collect()
            .await
    }
}

enum Restored {
    Filled(MoverResult),
    Skipped(String),
}

type Opened = BTreeMap<String, std::result::Result<RepoSecrets, String>>;

impl MoverStep {
    async fn copy_one(
        &self,
        client: &Client,
        work: &ClaimWork,
        access: &(StoreAccess, Option<Volume>),
        secrets: &Opened,
        backup: &str,
    ) -> VolumeRecord {
        let started = Instant::now();
        let record = match &secrets[&work.namespace] {
            Err(e) => failed(work, e, Duration::ZERO),
            Ok(s) => self
                .copy_claim(client, work, access, s, backup)
                .await
                .unwrap_or_else(|e| failed(work, &e.to_string(), started.elapsed())),
        };
        self.observer.finished(&record);
        record
    }

    async fn restore_one(
        &self,
        ctx: &RestoreVolumeContext<'_>,
        v: &VolumeRecord,
        access: &Result<(StoreAccess, Option<Volume>)>,
        repos: &Opened,
    ) -> VolumeRecord {
        let started = Instant::now();
        let target_ns = ctx.request.target_namespace(&v.namespace).to_string();
        let outcome = match (access, v.snapshot.as_ref().map(|_| &repos[&v.namespace])) {
            (Err(e), _) => Err(e.to_string()),
            (_, Some(Err(e))) => Err(e.clone()),
            (Ok(access), Some(Ok(secrets))) => self
                .restore_claim(
                    ctx.client,
                    ctx.request.name.as_str(),
                    &target_ns,
                    v,
                    access,
                    secrets,
                )
                .await
                .map_err(|e| e.to_string()),
            // A file copy without a snapshot: the backup says why it cannot come back
            // (a Velero kopia volume, a pod volume that was not a claim).
            (Ok(_), None) if v.method == Some(crate::policy::Method::FsBackup) => Err(v
                .message
                .clone()
                .unwrap_or_else(|| "the backup holds no snapshot of this volume".into())),
            (Ok(_), None) => Err(format!(
                "the backup kept claim {}/{} as a CSI snapshot in its cluster ({}); only data \
                 moved into the location can be restored: back up with --snapshot-move-data",
                v.namespace,
                v.name,
                v.volume_snapshot
                    .as_deref()
                    .unwrap_or("no snapshot recorded")
            )),
        };
        let mut record = VolumeRecord {
            method: v.method,
            pods: v.pods.clone(),
            snapshot: v.snapshot.clone(),
            duration_seconds: started.elapsed().as_secs(),
            ..VolumeRecord::new(target_ns, v.name.as_str(), COMPLETED)
        };
        match outcome {
            Ok(Restored::Filled(result)) => {
                record.files = result.files;
                record.bytes = result.bytes;
            }
            Ok(Restored::Skipped(why)) => {
                record.phase = SKIPPED.into();
                record.warnings.push(why.clone());
                record.message = Some(why);
            }
            Err(e) => {
                record.phase = FAILED.into();
                record.message = Some(e);
            }
        }
        self.observer.finished(&record);
        record
    }

    /// How movers reach the location: S3 as configured, a directory through its pod volume.
    fn mover_access(&self) -> Result<(StoreAccess, Option<Volume>)> {
        mover_access(&self.location, self.credentials.as_ref())
    }

    async fn copy_claim(
        &self,
        client: &Client,
        work: &ClaimWork,
        access: &(StoreAccess, Option<Volume>),
        secrets: &RepoSecrets,
        backup: &str,
    ) -> Result<VolumeRecord> {
        let started = Instant::now();
        let progress = self
            .observer
            .started(&work.namespace, &work.claim, work.method);
        let mut record = VolumeRecord {
            method: Some(work.method),
            pods: work.pods.iter().map(|(p, v)| format!("{p}/{v}")).collect(),
            app: Some(work.app.clone()).filter(|a| *a != AppSecurity::default()),
            warnings: work.excludes.warnings.clone(),
            ..VolumeRecord::new(work.namespace.as_str(), work.claim.as_str(), COMPLETED)
        };
        record.warnings.extend(work.decision.notes.iter().cloned());
        let snapshot_name = mover_name()?.replacen("vbackup-mover-", "vbackup-snap-", 1);
        let labels = BTreeMap::from([(
            super::mover_pod::OPERATION_LABEL.to_string(),
            backup.to_string(),
        )]);
        let (claim, node, temp) = match work.method {
            Method::FsBackup => (work.claim.clone(), work.node.clone(), false),
            Method::Snapshot | Method::SnapshotMoveData => {
                let class = work.snapshot_class.as_deref().ok_or_else(|| {
                    Error::BadInput(format!(
                        "no VolumeSnapshotClass for claim {}/{}",
                        work.namespace, work.claim
                    ))
                })?;
                let snap = snapshots::take(
                    client,
                    &work.namespace,
                    &work.claim,
                    class,
                    &snapshot_name,
                    labels.clone(),
                    self.settings.snapshot_timeout,
                )
                .await;
                let snap = match snap {
                    Ok(s) => s,
                    Err(e) => {
                        snapshots::delete(client, &work.namespace, &snapshot_name).await;
                        return Err(e);
                    }
                };
                if work.method == Method::Snapshot {
                    record.volume_snapshot = Some(snap.name);
                    record.duration_seconds = started.elapsed().as_secs();
                    return Ok(record);
                }
                let pvcs: Api<PersistentVolumeClaim> =
                    Api::namespaced(client.clone(), &work.namespace);
                let like = pvcs.get(&work.claim).await.map_err(Error::kube(format!(
                    "cannot read claim {}/{}",
                    work.namespace, work.claim
                )))?;
                if let Err(e) =
                    snapshots::claim_from(client, &work.namespace, &snap, &like, &snapshot_name)
                        .await
                {
                    snapshots::delete(client, &work.namespace, &snapshot_name).await;
                    return Err(e);
                }
                (snapshot_name.clone(), None, true)
            }
        };
        let mover = MoverPod {
            name: mover_name()?,
            namespace: work.namespace.clone(),
            image: self.settings.image.clone(),
            claim: Some(claim),
            direction: Direction::Backup,
            node,
            tolerations: work.tolerations.clone(),
            identity: identity(Direction::Backup, work.level, &work.app),
            location_volume: access.1.clone(),
            operation: backup.to_string(),
        };
        let job = MoverJob {
            location: self.location.metadata.name.clone().unwrap_or_default(),
            store: access.0.clone(),
            access_mode: self.location.spec.access_mode,
            format: self.location.spec.format,
            namespace: work.namespace.clone(),
            repo_password: secrets.password.reveal().to_string(),
            master_key: secrets.master_key.clone(),
            work: Work::Backup {
                source: VOLUME_MOUNT.into(),
                volume: format!("pvc/{}", work.claim),
                backup: backup.to_string(),
                excludes: work.excludes.patterns.clone(),
            },
            stall_seconds: self
                .settings
                .timeouts
                .stall
                .as_secs()
                .saturating_sub(60)
                .max(30),
        };
        let outcome = run_mover(
            client,
            &mover,
            &job,
            progress,
            self.settings.timeouts,
            &self.cancel,
        )
        .await;
        if temp {
            snapshots::delete_claim(client, &work.namespace, &snapshot_name).await;
            snapshots::delete(client, &work.namespace, &snapshot_name).await;
        }
        let result = outcome?;
        record.duration_seconds = started.elapsed().as_secs();
        if let Some(error) = result.error {
            record.phase = FAILED.into();
            record.message = Some(error);
            return Ok(record);
        }
        record.snapshot = result.snapshot;
        record.files = result.files;
        record.bytes = result.bytes;
        record.bytes_added = result.bytes_added;
        if result.warning_count > 0 {
            record.warnings.push(format!(
                "{} entries could not be read (run as uid {}); first: {}",
                result.warning_count,
                match &mover.identity {
                    super::mover_pod::MoverIdentity::Root { .. } => 0,
                    super::mover_pod::MoverIdentity::AppUser { uid, .. } => *uid,
                },
                result.warnings.join("; ")
            ));
        }
        Ok(record)
    }

    async fn restore_claim(
        &self,
        client: &Client,
        restore: &str,
        namespace: &str,
        v: &VolumeRecord,
        access: &(StoreAccess, Option<Volume>),
        secrets: &RepoSecrets,
    ) -> Result<Restored> {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let claim = pvcs.get_opt(&v.name).await.map_err(Error::kube(format!(
            "cannot read claim {namespace}/{}",
            v.name
        )))?;
        let Some(claim) = claim else {
            return Ok(Restored::Skipped(format!(
                "claim {namespace}/{} was not restored (filtered out, or it failed): its data was not restored",
                v.name
            )));
        };
        let restored_now = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(RESTORE_LABEL))
            .is_some_and(|r| r == restore);
        if !restored_now {
            return Ok(Restored::Skipped(format!(
                "claim {namespace}/{} existed before this restore: its data was left as it is",
                v.name
            )));
        }
        let ns_labels = super::plan::namespace_labels(client, namespace).await?;
        let level = PodSecurityLevel::of_namespace(&ns_labels);
        let app = v.app.clone().unwrap_or_default();
        let snapshot = v.snapshot.clone().unwrap_or_default();
        let mover = MoverPod {
            name: mover_name()?,
            namespace: namespace.into(),
            image: self.settings.image.clone(),
            claim: Some(v.name.clone()),
            direction: Direction::Restore,
            node: None,
            tolerations: Vec::new(),
            identity: identity(Direction::Restore, level, &app),
            location_volume: access.1.clone(),
            operation: restore.to_string(),
        };
        let job = MoverJob {
            location: self.location.metadata.name.clone().unwrap_or_default(),
            store: access.0.clone(),
            access_mode: self.location.spec.access_mode,
            format: self.location.spec.format,
            namespace: v.namespace.clone(),
            repo_password: secrets.password.reveal().to_string(),
            master_key: secrets.master_key.clone(),
            work: Work::Restore {
                snapshot,
                target: VOLUME_MOUNT.into(),
                path: None,
            },
            stall_seconds: self
                .settings
                .timeouts
                .stall
                .as_secs()
                .saturating_sub(60)
                .max(30),
        };
        let progress =
            self.observer
                .started(namespace, &v.name, v.method.unwrap_or(Method::FsBackup));
        let result = run_mover(
            client,
            &mover,
            &job,
            progress,
            self.settings.timeouts,
            &self.cancel,
        )
        .await?;
        match result.error {
            Some(e) => Err(Error::Repo {
                op: "restore",
                namespace: v.namespace.clone(),
                detail: e,
            }),
            None => Ok(Restored::Filled(result)),
        }
    }
}

/// How mover pods reach a location: an S3 location as configured (movers need the same
/// endpoint the plugin uses), a directory through the pod volume the location declares.
pub fn mover_access(
    location: &BackupStorageLocation,
    credentials: Option<&S3Credentials>,
) -> Result<(StoreAccess, Option<Volume>)> {
    let name = location.metadata.name.clone().unwrap_or_default();
    let spec = &location.spec;
    if let Some(s3) = &spec.s3 {
        let c = credentials.ok_or_else(|| {
            Error::BadInput(format!("location {name} has no credentials for its movers"))
        })?;
        return Ok((
            StoreAccess::S3 {
                spec: s3.clone(),
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
                session_token: c.session_token.clone(),
            },
            None,
        ));
    }
    let fs = spec
        .filesystem
        .as_ref()
        .ok_or_else(|| Error::BadInput(format!("location {name} is incomplete: recreate it")))?;
    let volume = fs.pod_volume().ok_or_else(|| {
        Error::BadInput(format!(
            "location {name} is a directory ({}) that pods cannot reach, so volume data cannot \
             be copied to it: recreate it with --pod-access hostPath (one-node clusters) or \
             --nfs SERVER:/PATH, or use an S3 location",
            fs.path
        ))
    })?;
    Ok((
        StoreAccess::Filesystem {
            path: super::mover_pod::LOCATION_MOUNT.into(),
        },
        Some(volume),
    ))
}

fn skipped_record(n: &NotCopied) -> VolumeRecord {
    let (name, pod) = match n.volume.strip_prefix("pvc/") {
        Some(claim) => (claim.to_string(), None),
        None => (n.volume.clone(), None::<String>),
    };
    let mut record = VolumeRecord {
        message: Some(n.reason.clone()),
        pods: pod.into_iter().collect(),
        ..VolumeRecord::new(n.namespace.as_str(), name, SKIPPED)
    };
    if n.warn {
        record
            .warnings
            .push(format!("{} not copied: {}", n.volume, n.reason));
    }
    record
}

fn failed(work: &ClaimWork, message: &str, took: Duration) -> VolumeRecord {
    VolumeRecord {
        method: Some(work.method),
        pods: work.pods.iter().map(|(p, v)| format!("{p}/{v}")).collect(),
        message: Some(message.to_string()),
        duration_seconds: took.as_secs(),
        ..VolumeRecord::new(work.namespace.as_str(), work.claim.as_str(), FAILED)
    }
}
