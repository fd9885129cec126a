//! One module per command group; each parses nothing and decides nothing the engine owns.

pub mod backup;
pub mod completion;
pub mod coverage;
pub mod explain;
pub mod flags;
pub mod gc;
pub mod install;
pub mod location;
pub mod mover;
pub mod repo;
pub mod restore;
pub mod schedule;
pub mod snapshot;
pub mod velero;
pub mod verify;
pub mod version;
pub mod volumes;

use std::process::ExitCode;

use vbackup_engine::cluster::{self, ClusterOptions};

use crate::cli::{Cli, Command, GlobalArgs};

/// Exit code of a job (backup, restore, check) that ran but did not complete.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit code of an error: bad flags, no cluster or location, nothing of that name.
pub const EXIT_ERROR: u8 = 2;

/// Runs the parsed command. Exit codes, as ripgrep's: 0 the job completed, 1 it ran but did
/// not complete ([`EXIT_INCOMPLETE`]), 2 an error stopped the command ([`EXIT_ERROR`]).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Version => version::run(&ctx).await,
        Command::Completion(args) => completion::run(&args),
        Command::Location(command) => location::run(&ctx, command).await,
        Command::Backup(command) => backup::run(&ctx, command).await,
        Command::Restore(command) => restore::run(&ctx, command).await,
        Command::Repo(command) => repo::run(&ctx, command).await,
        Command::Mover(args) => mover::run(&args).await,
        Command::Explain(args) => explain::run(&ctx, &args).await,
        Command::Snapshot(command) => snapshot::run(&ctx, command).await,
        Command::Velero(command) => velero::run(&ctx, command).await,
        Command::Schedule(command) => schedule::run(&ctx, command).await,
        Command::Gc(args) => gc::run(&ctx, &args).await,
        Command::Coverage(args) => coverage::run_coverage(&ctx, &args).await,
        Command::Status => coverage::run_status(&ctx).await,
        Command::Verify(args) => verify::run(&ctx, &args).await,
        Command::Install(args) => install::run_install(&ctx, &args).await,
        Command::Uninstall(args) => install::run_uninstall(&ctx, &args).await,
    }
}

/// What every command gets: the global flags and a way to reach the cluster.
pub struct Context {
    pub global: GlobalArgs,
}

impl Context {
    /// Connects to the cluster the global flags select.
    pub async fn connect(&self) -> anyhow::Result<kube::Client> {
        let opts = ClusterOptions {
            kubeconfig: self.global.kubeconfig.clone(),
            context: self.global.context.clone(),
        };
        Ok(cluster::connect(&opts).await?)
    }

    /// The namespace a command acts on: `-n`, else the kubeconfig context's.
    pub fn namespace(&self, client: &kube::Client) -> String {
        self.global
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string())
    }
}
