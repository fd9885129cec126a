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
    /// The namespace: for `backup create` and `restore create`, the one namespace to take
    /// (same as --include-namespaces; default: all); for `explain` and `snapshot`, the
    /// namespace of the pod or claim (default: the context's namespace).
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
    /// Velero backups: copy them into a vbackup location (`velero import`).
    #[command(subcommand)]
    Velero(crate::commands::velero::VeleroCommand),
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
    /// Prove a backup restorable: check its repositories, restore it into scratch
    /// namespaces, wait for Ready, run the pods' verify commands, clean up (exit 1 on a
    /// failure).
    Verify(crate::commands::verify::VerifyArgs),
    /// Install (or upgrade) vbackup in the cluster: namespace, CRDs, RBAC, admission webhook.
    Install(crate::commands::install::InstallArgs),
    /// Remove what install made (backups and location keys stay unless --purge).
    Uninstall(crate::commands::install::UninstallArgs),
    /// Runs inside a mover pod: copies one volume (started by backups and restores).
    #[command(hide = true)]
    Mover(crate::commands::mover::MoverRunArgs),
}

#[cfg(test)]
mod tests {
    use clap::{ArgAction, CommandFactory, Parser};

    use super::*;

    /// Every boolean flag in `command` and its subcommands that does not take `--flag=false`.
    fn strict_booleans(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let set_once = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
            let bool_value = arg.get_value_names().is_some_and(|v| v == ["BOOL"]);
            let optional_value = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
            if set_once || (bool_value && !optional_value) {
                found.push(format!("{path} --{}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            strict_booleans(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_boolean_flag_takes_flag_alone_or_flag_equals_true_or_false() {
        let mut found = Vec::new();
        strict_booleans(&Cli::command(), "kubectl vbackup", &mut found);
        assert!(
            found.is_empty(),
            "boolean flags without =true|false: {found:?}"
        );
    }

    fn backup_create(args: &[&str]) -> crate::commands::backup::BackupCreateArgs {
        let cli =
            Cli::try_parse_from([&["kubectl-vbackup", "backup", "create", "b1"], args].concat())
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Backup(BackupCommand::Create(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn restore_request(args: &[&str]) -> anyhow::Result<vbackup_engine::restore::RestoreRequest> {
        let base = [
            "kubectl-vbackup",
            "restore",
            "create",
            "r1",
            "--from-backup",
            "b1",
        ];
        let cli = Cli::try_parse_from([&base[..], args].concat()).expect("flags parse");
        match cli.command {
            Command::Restore(RestoreCommand::Create(create)) => {
                create.request(cli.global.namespace.as_deref())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restore_dash_n_means_include_namespaces_as_on_backups() {
        let r = restore_request(&["-n", "shop"]).unwrap();
        assert_eq!(r.namespaces.include, ["shop"]);
        let r = restore_request(&["--include-namespaces", "a,b"]).unwrap();
        assert_eq!(r.namespaces.include, ["a", "b"]);
        let err = restore_request(&["-n", "shop", "--include-namespaces", "a"]).unwrap_err();
        assert!(err.to_string().contains("use one of them"), "{err}");
        assert!(restore_request(&[]).unwrap().namespaces.include.is_empty());
    }

    #[test]
    fn wait_alone_means_true_and_takes_an_explicit_value() {
        assert!(backup_create(&[]).wait);
        assert!(backup_create(&["--wait"]).wait);
        assert!(backup_create(&["--wait=true"]).wait);
        assert!(!backup_create(&["--wait=false"]).wait);
        assert!(
            !backup_create(&["--include-dependencies=false"])
                .flags
                .include_dependencies
        );
        assert!(
            Cli::try_parse_from(["kubectl-vbackup", "backup", "create", "b1", "--wait=maybe"])
                .is_err()
        );
    }
}
