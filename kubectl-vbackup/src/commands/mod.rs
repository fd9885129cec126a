//! One module per command group; each parses nothing and decides nothing the engine owns.

pub mod backup;
pub mod completion;
pub mod location;
pub mod repo;
pub mod restore;
pub mod version;

use std::process::ExitCode;

use vbackup_engine::cluster::{self, ClusterOptions};

use crate::cli::{Cli, Command, GlobalArgs};

/// Runs the parsed command; the exit code tells scripts whether it fully succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Version => version::run(&ctx).await,
        Command::Completion(args) => completion::run(&args),
        Command::Location(command) => location::run(&ctx, command).await,
        Command::Backup(command) => backup::run(&ctx, command).await,
        Command::Restore(command) => restore::run(&ctx, command).await,
        Command::Repo(command) => repo::run(&ctx, command).await,
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
}
