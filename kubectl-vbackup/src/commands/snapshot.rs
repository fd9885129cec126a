//! `kubectl vbackup snapshot ls|restore`: one file or folder of a backed-up volume, listed or
//! restored straight from the location (no pod), or put back into its claim by a mover.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use vbackup_engine::backups::Catalog;
use vbackup_engine::backups::find_backup;
use vbackup_engine::repo::{EntryKind, RepoOptions, VolumeRepo, VolumeRestore};
use vbackup_engine::store::{Format, Locations};
use vbackup_engine::volumes::files::copied_volume;

use super::Context;
use crate::output::{print_structured, table};

/// The `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List the files of a claim as a backup copied it.
    Ls {
        #[command(flatten)]
        volume: VolumeArgs,
        /// Folder or file inside the volume (default: its root).
        #[arg(default_value = "")]
        path: String,
        /// Everything below the folder, not only its entries.
        #[arg(short = 'R', long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        recursive: bool,
    },
    /// Restore one file or folder of a claim: into a local directory (--to), or in place
    /// into the claim through a mover pod (--into-pvc).
    Restore {
        #[command(flatten)]
        volume: VolumeArgs,
        /// The file or folder inside the volume.
        #[arg(long, value_name = "PATH")]
        path: String,
        /// Local directory to restore into (created if missing).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "into_pvc",
            conflicts_with = "into_pvc"
        )]
        to: Option<PathBuf>,
        /// Put it back where it was, in the claim (-n namespace, --pvc name), through a mover.
        #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        into_pvc: bool,
        #[command(flatten)]
        movers: super::volumes::MoverArgs,
    },
}

/// Which backed-up volume.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// The backup.
    #[arg(long, value_name = "NAME")]
    pub backup: String,
    /// The claim (in the namespace of -n).
    #[arg(long, value_name = "CLAIM")]
    pub pvc: String,
    /// The location holding the backup (default: search every location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
}

/// Runs a `snapshot` subcommand.
pub async fn run(ctx: &Context, command: SnapshotCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let namespace = ctx.namespace(&client);
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    let volume = match &command {
        SnapshotCommand::Ls { volume, .. } | SnapshotCommand::Restore { volume, .. } => volume,
    };
    let (store, record) = find_backup(
        &locations,
        &volume.backup,
        volume.storage_location.as_deref(),
    )
    .await?;
    let record = Catalog::new(store.clone())
        .with_claims(record, &volume.backup)
        .await?;
    let v = copied_volume(&record, &namespace, &volume.pvc)?;
    let snapshot = v.snapshot.clone().unwrap_or_default();
    let key = match store.format() {
        Format::Vbackup => Some(locations.key(store.name()).await?),
        Format::Velero => None,
    };
    let repo =
        VolumeRepo::open_existing(&store, &v.namespace, key.as_ref(), RepoOptions::default())
            .await?;
    match &command {
        SnapshotCommand::Ls {
            path, recursive, ..
        } => {
            let entries = repo.ls(&snapshot, path, *recursive).await?;
            if !print_structured(ctx.global.output, &entries)? {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            format!(
                                "{}{:04o}",
                                match e.kind {
                                    EntryKind::Dir => 'd',
                                    EntryKind::Symlink => 'l',
                                    EntryKind::File => '-',
                                    EntryKind::Special => 's',
                                },
                                e.mode.unwrap_or(0)
                            ),
                            e.size.to_string(),
                            e.mtime.map_or_else(|| "-".into(), |t| t.to_string()),
                            match &e.link_target {
                                Some(t) => format!("{} -> {t}", display(&e.path)),
                                None => display(&e.path),
                            },
                        ]
                    })
                    .collect();
                print!("{}", table(&["MODE", "SIZE", "MODIFIED", "PATH"], &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Restore {
            path,
            to,
            into_pvc,
            movers,
            ..
        } => {
            if path.trim_matches('/').is_empty() {
                anyhow::bail!(
                    "--path names the file or folder to restore; to restore a whole volume use `kubectl vbackup restore create`"
                );
            }
            if let Some(dir) = to {
                let summary = repo
                    .restore(VolumeRestore {
                        snapshot,
                        path: Some(path.clone()),
                        target: dir.clone(),
                        verify_existing: false,
                        progress: None,
                        stall_after: Some(vbackup_engine::repo::DEFAULT_STALL_PERIOD),
                    })
                    .await?;
                println!(
                    "restored {path} of {}/{} from backup {} into {} ({} files, {} bytes)",
                    v.namespace,
                    v.name,
                    record.name(),
                    dir.display(),
                    summary.files_restored + summary.files_unchanged,
                    summary.bytes_restored
                );
                return Ok(ExitCode::SUCCESS);
            }
            debug_assert!(*into_pvc);
            let kind = repo
                .ls(&snapshot, path, false)
                .await?
                .first()
                .map_or(EntryKind::File, |e| e.kind);
            let location = locations.get(store.name()).await?;
            let step = super::volumes::mover_step(
                &locations,
                &location,
                movers,
                None,
                Arc::new(vbackup_engine::volumes::step::Quiet),
            )
            .await?;
            let result = step
                .restore_path_into_claim(
                    &client,
                    &namespace,
                    &volume.pvc,
                    &v.namespace,
                    &repo.secrets(),
                    &snapshot,
                    path,
                    kind,
                )
                .await?;
            println!(
                "restored {path} into claim {namespace}/{} from backup {} ({} files, {} bytes)",
                volume.pvc,
                record.name(),
                result.files,
                result.bytes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        format!("/{path}")
    }
}
