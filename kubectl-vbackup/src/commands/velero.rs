//! `kubectl vbackup velero import`: Velero backups copied into a vbackup location, so the
//! Velero bucket can be retired.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use vbackup_engine::repo::RepoOptions;
use vbackup_engine::store::Locations;
use vbackup_engine::velero::import::{self, ImportOptions, ImportedBackup};

use super::Context;
use crate::output::{print_structured, table};

/// The `velero` subcommands.
#[derive(Debug, Subcommand)]
pub enum VeleroCommand {
    /// Copy Velero backups into a vbackup location: objects re-packed into vbackup's
    /// encrypted archive, restic volume snapshots copied into the location's repositories.
    /// Re-running skips what was imported already.
    Import(ImportArgs),
}

/// What to import, from where, to where.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Velero backups to import (`backup get --storage-location LOCATION` lists them).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// The Velero-format location holding them (`location create --format velero`).
    #[arg(long, visible_alias = "storage-location", value_name = "LOCATION")]
    pub location: String,
    /// The vbackup location to copy them into (ReadWrite).
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    /// Name each imported backup PREFIX + its Velero name (default: the same name).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub rename_prefix: String,
}

/// Runs a `velero` subcommand.
pub async fn run(ctx: &Context, command: VeleroCommand) -> anyhow::Result<ExitCode> {
    let VeleroCommand::Import(args) = command;
    let client = ctx.connect().await?;
    let locations = Locations::new(client, &ctx.global.vbackup_namespace);
    let source = locations
        .open(&locations.get(&args.location).await?)
        .await?;
    let dest = locations.open(&locations.get(&args.to).await?).await?;
    import::check_locations(&source, &dest)?;
    let key = locations.key(&args.to).await?;
    let options = ImportOptions {
        rename_prefix: args.rename_prefix,
        repo: RepoOptions::default(),
    };
    let imported = import::import(&source, &dest, &key, &args.names, &options).await?;
    if !print_structured(ctx.global.output, &imported)? {
        print!("{}", report(&imported));
    }
    Ok(if imported.iter().all(ImportedBackup::complete) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INCOMPLETE)
    })
}

fn report(imported: &[ImportedBackup]) -> String {
    let rows: Vec<Vec<String>> = imported
        .iter()
        .map(|b| {
            let with_data = b.volumes.iter().filter(|v| v.snapshot.is_some()).count();
            vec![
                b.velero_backup.clone(),
                b.backup.clone(),
                if b.imported {
                    "imported"
                } else {
                    "already imported"
                }
                .into(),
                b.phase.to_string(),
                b.objects.to_string(),
                format!("{with_data}/{}", b.volumes.len()),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "VELERO BACKUP",
            "BACKUP",
            "RESULT",
            "PHASE",
            "OBJECTS",
            "VOLUMES",
        ],
        &rows,
    );
    for b in imported {
        for v in &b.volumes {
            if let Some(error) = &v.error {
                out.push_str(&format!(
                    "{}: volume {}/{} not imported: {error}\n",
                    b.velero_backup, v.namespace, v.name
                ));
            }
        }
    }
    out
}
