//! Where volume data plugs into backups and restores: the object engine calls a
//! [`VolumeStep`] at the right moment and records what it reports, so the volume work needs
//! no change to the object loops.

use async_trait::async_trait;
use kube::Client;

use super::record::{BackupRecord, VolumeRecord};
use crate::hooks::HookReport;
use crate::resources::request::BackupRequest;
use crate::resources::selector::LabelSelector;
use crate::restore::request::RestoreRequest;
use crate::store::Store;

/// What the volume step of a backup gets.
pub struct BackupVolumeContext<'a> {
    /// The cluster.
    pub client: &'a Client,
    /// The location the backup is written to.
    pub store: &'a Store,
    /// The backup being run.
    pub request: &'a BackupRequest,
    /// The namespaces it covers.
    pub namespaces: &'a [String],
    /// Its label selector.
    pub selector: &'a LabelSelector,
}

/// What the volume step of a restore gets.
pub struct RestoreVolumeContext<'a> {
    /// The cluster.
    pub client: &'a Client,
    /// The location the backup is read from.
    pub store: &'a Store,
    /// The restore being run (namespace and storage-class mappings included).
    pub request: &'a RestoreRequest,
    /// The backup's record, with the volume results of the backup.
    pub backup: &'a BackupRecord,
}

/// What the volume step of a backup did: the volumes, and the hooks and dumps around them.
#[derive(Debug, Default)]
pub struct BackupVolumeOutcome {
    /// One record per volume.
    pub volumes: Vec<VolumeRecord>,
    /// The pods' hooks and streaming dumps.
    pub hooks: HookReport,
}

/// Volume data, for the object engine.
#[async_trait]
pub trait VolumeStep: Send + Sync {
    /// Copies volume data; called once the object archive is stored, before the metadata
    /// is written. A `Failed` record makes the backup `PartiallyFailed`.
    async fn back_up(&self, ctx: BackupVolumeContext<'_>) -> Vec<VolumeRecord>;

    /// [`VolumeStep::back_up`] with the pods' hooks and dumps around the copies; the
    /// default runs none.
    async fn back_up_with_hooks(&self, ctx: BackupVolumeContext<'_>) -> BackupVolumeOutcome {
        BackupVolumeOutcome {
            volumes: self.back_up(ctx).await,
            hooks: HookReport::default(),
        }
    }

    /// Brings volume data back; called once the claims are created and before any
    /// workload is. A `Failed` record makes the restore `PartiallyFailed`.
    async fn restore(&self, ctx: RestoreVolumeContext<'_>) -> Vec<VolumeRecord>;

    /// Runs post-restore hooks and loads streaming dumps; called once every object is
    /// restored. The default does nothing.
    async fn after_workloads(&self, _ctx: RestoreVolumeContext<'_>) -> HookReport {
        HookReport::default()
    }
}

/// The phase a volume record has when its data could not be copied.
pub const FAILED: &str = "Failed";
