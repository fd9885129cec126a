//! Command-line grammar: every flag is documented where it is defined; `--help` is the manual.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{backup::BackupCommand, restore::RestoreCommand};
use crate::commands::{completion::CompletionArgs, location::LocationCommand, repo::RepoCommand};
use crate::output::OutputFormat;

/// Back up and restore Kubernetes namespaces — API objects and volume data — to
/// S3-compatible storage or a local directory.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-vbackup",
    bin_name = "kubectl vbackup",
    version,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, with kubectl's names and meaning.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace the command acts on (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace holding vbackup's own objects (locations, keys, schedules).
    #[arg(long, global = true, env = "VBACKUP_NAMESPACE", default_value = vbackup_engine::store::SYSTEM_NAMESPACE)]
    pub vbackup_namespace: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// More log output on stderr (-v, -vv); VBACKUP_LOG overrides.
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the client version and, when reachable, the cluster's.
    Version,
    /// Print a shell completion script (bash, zsh or fish).
    Completion(CompletionArgs),
    /// Manage storage locations: where backups are kept.
    #[command(subcommand, visible_alias = "locations")]
    Location(LocationCommand),
    /// Back up API objects (and volume data) to a storage location; list, describe, delete.
    #[command(subcommand, visible_alias = "backups")]
    Backup(BackupCommand),
    /// Restore from a backup; list, describe and delete restore records.
    #[command(subcommand, visible_alias = "restores")]
    Restore(RestoreCommand),
    /// Volume-data repositories (restic format): access for the stock tools.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// List or restore single files of a backed-up volume.
    #[command(subcommand)]
    Snapshot(crate::commands::snapshot::SnapshotCommand),
    /// Show, per volume of a pod or claim, whether backups copy it, how, and why.
    Explain(crate::commands::explain::ExplainArgs),
    /// Back up on a cron schedule (a CronJob in the cluster); list, pause, run now.
    #[command(subcommand, visible_alias = "schedules")]
    Schedule(crate::commands::schedule::ScheduleCommand),
    /// Delete expired backups and those no schedule keeps, and free their storage.
    Gc(crate::commands::gc::GcArgs),
    /// Every claim and pod volume: which schedule protects it, its last copy, or why not
    /// (exit 1 when a claim is unprotected).
    Coverage(crate::commands::coverage::CoverageArgs),
    /// Per location and schedule: the last backup, its age and size, the next run (exit 1
    /// when a schedule's last success is older than twice its interval).
    Status,
    /// Install (or upgrade) vbackup in the cluster: namespace, CRDs, RBAC, admission webhook.
    Install(crate::commands::install::InstallArgs),
    /// Remove what install made (backups and location keys stay unless --purge).
    Uninstall(crate::commands::install::UninstallArgs),
    /// Runs inside a mover pod: copies one volume (started by backups and restores).
    #[command(hide = true)]
    Mover(crate::commands::mover::MoverArgs),
}
