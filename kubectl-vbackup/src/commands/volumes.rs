//! Volume-data flags shared by `backup create` and `restore create`, and what turns them into
//! the engine's mover step: progress bars per volume and Ctrl-C that stops and deletes movers.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;
use vbackup_engine::backups::VolumeRecord;
use vbackup_engine::policy::{Method, ResourcePolicies};
use vbackup_engine::repo::{ProgressFn, ProgressUpdate};
use vbackup_engine::resources::request::VolumeOptions;
use vbackup_engine::store::{BackupStorageLocation, Format, Locations};
use vbackup_engine::volumes::launch::Timeouts;
use vbackup_engine::volumes::step::default_image;
use vbackup_engine::volumes::{MoverSettings, MoverStep, VolumeObserver};

use super::flags::humantime_duration as duration_arg;

/// How movers run (both directions).
#[derive(Debug, Clone, Args)]
pub struct MoverArgs {
    /// Volumes copied at once (each claim by one mover pod at a time).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallel_volumes: usize,
    /// The image mover pods run (it must hold kubectl-vbackup).
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub mover_image: String,
    /// How long a mover pod may take to start (scheduling, attaching, pulling) before its
    /// volume fails with the cluster's reason.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_arg)]
    pub mover_start_timeout: Duration,
    /// A copy that moves no byte for this long fails (the copy is never cut short while it
    /// moves).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_arg)]
    pub stall_timeout: Duration,
}

/// Volume flags of `backup create`, with Velero's names and meaning.
#[derive(Debug, Clone, Args)]
pub struct BackupVolumeArgs {
    /// Copy the data of pod volumes (claims) into the location.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub backup_volumes: bool,
    /// Copy every claim-backed volume unless a pod opts it out
    /// (backup.velero.io/backup-volumes-excludes); false: only volumes pods opt in
    /// (backup.velero.io/backup-volumes).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub default_volumes_to_fs_backup: bool,
    /// Copy claims through CSI VolumeSnapshots instead of live file copies.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub snapshot_volumes: bool,
    /// Move snapshot data into the location (portable, one consistent instant) and delete the
    /// snapshot afterwards.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub snapshot_move_data: bool,
    /// The VolumeSnapshotClass for every snapshot (default: the class of each claim's driver).
    #[arg(long, value_name = "CLASS")]
    pub snapshot_class: Option<String>,
    /// A snapshot that moves to no next stage for this long fails its volume.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration_arg)]
    pub snapshot_timeout: Duration,
    /// ConfigMap (in the vbackup namespace) with Velero-style volume policies
    /// (`version: v1`, `volumePolicies`); the first matching policy wins over annotations.
    #[arg(long, value_name = "NAME")]
    pub resource_policies_configmap: Option<String>,
    #[command(flatten)]
    pub movers: MoverArgs,
}

impl BackupVolumeArgs {
    /// What the backup records of these flags.
    pub fn options(&self) -> VolumeOptions {
        VolumeOptions {
            back_up_volumes: Some(self.backup_volumes),
            default_volumes_to_fs_backup: self.default_volumes_to_fs_backup,
            snapshot_volumes: self.snapshot_volumes,
            snapshot_move_data: self.snapshot_move_data,
            snapshot_class: self.snapshot_class.clone(),
            resource_policies_configmap: self.resource_policies_configmap.clone(),
        }
    }
}

/// Builds the mover step for a location.
pub async fn mover_step(
    locations: &Locations,
    location: &BackupStorageLocation,
    movers: &MoverArgs,
    volumes: Option<(&VolumeOptions, Option<ResourcePolicies>, Duration)>,
    observer: Arc<dyn VolumeObserver>,
) -> anyhow::Result<MoverStep> {
    let name = location.metadata.name.clone().unwrap_or_default();
    let mut settings = MoverSettings {
        image: movers.mover_image.clone(),
        parallel: movers.parallel_volumes.max(1),
        timeouts: Timeouts {
            start: movers.mover_start_timeout,
            stall: movers.stall_timeout + Duration::from_secs(60),
        },
        ..MoverSettings::default()
    };
    if let Some((options, policies, snapshot_timeout)) = volumes {
        settings.policy = options.policy();
        settings.policies = policies;
        settings.snapshot_class = options.snapshot_class.clone();
        settings.snapshot_timeout = snapshot_timeout;
    }
    Ok(MoverStep {
        settings,
        credentials: locations.credentials(location).await?,
        key: match location.spec.format {
            Format::Vbackup => Some(locations.key(&name).await?),
            Format::Velero => None,
        },
        location: location.clone(),
        observer,
        cancel: ctrl_c_token(),
    })
}

/// A token cancelled by the first Ctrl-C (movers are then stopped and deleted; a second
/// Ctrl-C ends the process at once).
fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: deleting mover pods (Ctrl-C again to quit at once)");
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    token
}

/// Progress bars per volume on a terminal; nothing otherwise.
pub struct Bars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    /// Bars when stderr is a terminal and `enabled`.
    pub fn new(enabled: bool) -> Arc<Bars> {
        let multi =
            (enabled && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Arc::new(Bars {
            multi,
            bars: Mutex::new(BTreeMap::new()),
        })
    }
}

impl VolumeObserver for Bars {
    fn started(&self, namespace: &str, claim: &str, method: Method) -> Option<ProgressFn> {
        let multi = self.multi.as_ref()?;
        let bar = multi.add(indicatif::ProgressBar::new(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{namespace}/{claim} ({})", method.describe()));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(format!("{namespace}/{claim}"), bar.clone());
        }
        Some(Arc::new(move |u: ProgressUpdate| {
            bar.set_length(u.bytes_total.max(u.bytes_done));
            bar.set_position(u.bytes_done);
            bar.set_message(format!("{} files", u.files_done));
        }))
    }

    fn finished(&self, record: &VolumeRecord) {
        let key = format!("{}/{}", record.namespace, record.name);
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&key)) {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.println(format!(
                "volume {key}: {}{}",
                record.phase,
                record
                    .message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        }
    }
}

/// The volumes of a backup or restore, for `describe`: a line per volume, and with
/// `details` its pods, snapshot id, message and warnings. A restore adds no data: its table
/// leaves that column out.
pub fn describe_volumes(volumes: &[VolumeRecord], details: bool, restore: bool) -> String {
    let mut out = format!("\nVolumes ({}):\n", volumes.len());
    if volumes.is_empty() {
        out += "  none\n";
        return out;
    }
    let rows: Vec<Vec<String>> = volumes
        .iter()
        .map(|v| {
            let mut row = vec![
                format!("{}/{}", v.namespace, v.name),
                v.phase.clone(),
                v.method.map_or("-", |m| m.describe()).to_string(),
                v.files.to_string(),
                bytesize::ByteSize::b(v.bytes).to_string(),
            ];
            if !restore {
                row.push(bytesize::ByteSize::b(v.bytes_added).to_string());
            }
            row.push(
                humantime::format_duration(Duration::from_secs(v.duration_seconds)).to_string(),
            );
            row.push(
                v.snapshot
                    .as_deref()
                    .map_or("-", |s| &s[..s.len().min(8)])
                    .to_string(),
            );
            row
        })
        .collect();
    let mut headers = vec!["CLAIM", "PHASE", "METHOD", "FILES", "SIZE"];
    if !restore {
        headers.push("ADDED");
    }
    headers.extend(["DURATION", "SNAPSHOT"]);
    for line in crate::output::table(&headers, &rows).lines() {
        out += &format!("  {line}\n");
    }
    for v in volumes {
        let why = v.message.as_deref().filter(|_| v.phase != "Completed");
        if !details && why.is_none() {
            continue;
        }
        out += &format!("  {}/{}:\n", v.namespace, v.name);
        if let Some(m) = &v.message {
            out += &format!(
                "    {}: {m}\n",
                if v.phase == "Failed" {
                    "error"
                } else {
                    "reason"
                }
            );
        }
        if details {
            if !v.pods.is_empty() {
                out += &format!("    pods: {}\n", v.pods.join(", "));
            }
            if let Some(s) = &v.snapshot {
                out += &format!("    snapshot: {s}\n");
            }
            if let Some(s) = &v.volume_snapshot {
                out += &format!("    VolumeSnapshot: {s}\n");
            }
            for w in &v.warnings {
                out += &format!("    warning: {w}\n");
            }
        }
    }
    out
}
