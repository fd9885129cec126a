//! `kubectl vbackup repo …`: the restic-format repositories that hold volume data.

use std::process::ExitCode;

use clap::Subcommand;
use vbackup_engine::store::Locations;

use super::Context;

/// The `repo` subcommands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Print the password of a namespace's repository, for the stock `restic` or `rustic`
    /// tools (`restic -r … snapshots`). It is printed only on this explicit request.
    Password {
        /// The namespace whose repository it is.
        namespace: String,
        /// The location (default: the default location).
        #[arg(long)]
        storage_location: Option<String>,
    },
}

/// Runs a `repo` subcommand.
pub async fn run(ctx: &Context, command: RepoCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let locations = Locations::new(client, &ctx.global.vbackup_namespace);
    match command {
        RepoCommand::Password {
            namespace,
            storage_location,
        } => {
            let location = locations.resolve(storage_location.as_deref()).await?;
            let name = location.metadata.name.clone().unwrap_or_default();
            let password = locations.repo_password(&name, &namespace).await?;
            println!("{}", password.reveal());
        }
    }
    Ok(ExitCode::SUCCESS)
}
