//! The flags of `backup create` and `schedule create`.

use std::time::Duration;

use clap::Args;
use vbackup_engine::resources::request::parse_labels;
use vbackup_engine::resources::{BackupRequest, ClusterResources};

use crate::commands::flags::{FilterFlags, humantime_duration, read_hooks_file};

/// Every flag a schedule's template fixes (clap's conflicts with the flattened structs'
/// groups are not enforced, so they are named one by one).
const FROM_SCHEDULE_CONFLICTS: [&str; 23] = [
    "name",
    "wait",
    "include_namespaces",
    "exclude_namespaces",
    "include_resources",
    "exclude_resources",
    "selector",
    "include_cluster_resources",
    "include_dependencies",
    "storage_location",
    "ttl",
    "labels",
    "backup_volumes",
    "default_volumes_to_fs_backup",
    "snapshot_volumes",
    "snapshot_move_data",
    "snapshot_class",
    "snapshot_timeout",
    "resource_policies_configmap",
    "parallel_volumes",
    "mover_image",
    "mover_start_timeout",
    "stall_timeout",
];

/// Arguments of `backup create`.
#[derive(Debug, Args)]
pub struct BackupCreateArgs {
    /// Name of the backup (lower-case letters, digits and '-').
    #[arg(required_unless_present = "from_schedule")]
    pub name: Option<String>,
    /// Make the backup a schedule's run makes: its template, named
    /// `<schedule>-<yyyyMMddHHmmss>`, then gc with the schedule's retention (what the
    /// schedule's CronJob runs).
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = FROM_SCHEDULE_CONFLICTS)]
    pub from_schedule: Option<String>,
    /// Wait for the backup to finish (a progress bar on a terminal); false returns at once
    /// and the backup runs on in the background.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    #[command(flatten)]
    pub flags: BackupFlags,
}

/// What to back up and how, with Velero's names and meaning: shared by `backup create` and
/// `schedule create`.
#[derive(Debug, Args)]
pub struct BackupFlags {
    #[command(flatten)]
    pub filters: FilterFlags,
    /// Cluster-scoped objects: auto (all of them for a whole-cluster backup, otherwise only
    /// the PVs, CRDs, StorageClasses and ClusterRoleBindings the selection needs), true, false.
    #[arg(
        long,
        value_name = "auto|true|false",
        default_value = "auto",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub include_cluster_resources: ClusterResources,
    /// With a selector, also take the PVCs, ConfigMaps, Secrets, ServiceAccounts and
    /// Services the selected pods and workloads reference.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub include_dependencies: bool,
    /// Storage location (default: the default location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// How long to keep the backup (e.g. 720h, 30d; 0 keeps it until deleted).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = humantime_duration)]
    pub ttl: Duration,
    /// Labels on the backup (key=value,…).
    #[arg(long, value_name = "K=V[,…]")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub volumes: crate::commands::volumes::BackupVolumeArgs,
    /// Hooks for many pods at once, in Velero's spec.hooks shape (a Velero Backup or Restore
    /// manifest works as it is); pods' own hook annotations win over it.
    #[arg(long, value_name = "FILE")]
    pub hooks_file: Option<std::path::PathBuf>,
}

impl BackupFlags {
    /// The engine request these flags describe for backup `name`.
    /// `-n NAMESPACE` (the global flag) stands for `--include-namespaces NAMESPACE`.
    pub fn request(&self, name: &str, namespace: Option<&str>) -> anyhow::Result<BackupRequest> {
        let mut r = BackupRequest::new(name);
        r.namespaces = self.filters.namespaces(namespace)?;
        r.resources = self.filters.resources();
        r.selector = self.filters.selector();
        r.include_cluster_resources = self.include_cluster_resources;
        r.include_dependencies = self.include_dependencies;
        r.storage_location = self.storage_location.clone();
        r.ttl = self.ttl;
        r.labels = parse_labels(&self.labels)?;
        r.volumes = self.volumes.options();
        if let Some(hooks) = read_hooks_file(self.hooks_file.as_deref())? {
            r.hooks = hooks;
        }
        r.validate()?;
        Ok(r)
    }
}
