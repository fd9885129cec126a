//! `kubectl vbackup backup …`: create, list, describe, read the log of, and delete backups.

mod flags;
mod render;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use vbackup_engine::backups::{
    BackupSummary, Catalog, Phase, delete_backup, find_backup, itemlog, stores,
};
use vbackup_engine::policy::ResourcePolicies;
use vbackup_engine::resources::Progress;
use vbackup_engine::resources::archive;
use vbackup_engine::resources::backup::{preflight, run_backup_with_volumes};
use vbackup_engine::schedules::Schedules;
use vbackup_engine::schedules::inventory::Inventory;
use vbackup_engine::store::Locations;
use vbackup_engine::verify::VerifyOptions;

pub use self::flags::{BackupCreateArgs, BackupFlags};
use self::render::{backups_table, describe, print_outcome, summary_name};
use super::Context;
use crate::output::print_structured;

/// Environment variable set on the background process `--wait=false` starts.
pub const DETACHED_ENV: &str = "VBACKUP_DETACHED";

/// The `backup` subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up API objects (and, with the volume work, volume data) to a storage location.
    Create(BackupCreateArgs),
    /// List backups (all locations, or the one given).
    Get {
        /// Only this backup.
        name: Option<String>,
        /// Only this location.
        #[arg(long, value_name = "NAME")]
        storage_location: Option<String>,
    },
    /// Show a backup: phase, counts per resource, volumes, errors and warnings.
    Describe {
        /// The backup.
        name: String,
        /// Also list every item error and skipped type.
        #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        details: bool,
        /// The location holding it (default: search every location).
        #[arg(long, value_name = "NAME")]
        storage_location: Option<String>,
    },
    /// Print a backup's item log (one JSON line per object decision).
    Logs {
        /// The backup.
        name: String,
        /// The location holding it (default: search every location).
        #[arg(long, value_name = "NAME")]
        storage_location: Option<String>,
    },
    /// Save a backup's object archive, decrypted: a tar.gz with one JSON file per object.
    Download {
        /// The backup.
        name: String,
        /// Where to write it (`-` for standard output; default: NAME-data.tar.gz).
        #[arg(long, value_name = "FILE")]
        to: Option<std::path::PathBuf>,
        /// The location holding it (default: search every location).
        #[arg(long, value_name = "NAME")]
        storage_location: Option<String>,
    },
    /// Delete a backup: its volume snapshots, archive, log and metadata (refused on a ReadOnly location).
    Delete {
        /// The backup.
        name: String,
        /// The location holding it (default: search every location).
        #[arg(long, value_name = "NAME")]
        storage_location: Option<String>,
    },
}

/// Runs a `backup` subcommand.
pub async fn run(ctx: &Context, command: BackupCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        BackupCommand::Create(args) => return create(ctx, args).await,
        other => other,
    };
    let client = ctx.connect().await?;
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    match command {
        BackupCommand::Create(_) => anyhow::bail!("internal error: backup create handled above"),
        BackupCommand::Get {
            name,
            storage_location,
        } => {
            let mut rows = Vec::new();
            for store in stores(&locations, storage_location.as_deref()).await? {
                for summary in Catalog::new(store.clone()).backups().await? {
                    if name.as_deref().is_none_or(|n| summary_name(&summary) == n) {
                        rows.push((store.name().to_string(), summary));
                    }
                }
            }
            if let Some(n) = &name
                && rows.is_empty()
            {
                return Err(vbackup_engine::Error::BackupNotFound {
                    name: n.clone(),
                    location: storage_location,
                }
                .into());
            }
            let summaries: Vec<&BackupSummary> = rows.iter().map(|(_, s)| s).collect();
            if !print_structured(ctx.global.output, &summaries)? {
                if rows.is_empty() {
                    eprintln!("no backups: create one with `kubectl vbackup backup create NAME`");
                } else {
                    print!("{}", backups_table(&rows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Describe {
            name,
            details,
            storage_location,
        } => {
            let (_, record) = find_backup(&locations, &name, storage_location.as_deref()).await?;
            if !print_structured(ctx.global.output, &record)? {
                print!("{}", describe(&record, details));
            }
            // Describing worked, whatever the backup's phase.
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Logs {
            name,
            storage_location,
        } => {
            let (store, _) = find_backup(&locations, &name, storage_location.as_deref()).await?;
            let key = Catalog::new(store.clone()).log_key(&name);
            itemlog::copy_log(&store, &key, std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Download {
            name,
            to,
            storage_location,
        } => {
            let (store, _) = find_backup(&locations, &name, storage_location.as_deref()).await?;
            let to = to.unwrap_or_else(|| format!("{name}-data.tar.gz").into());
            if to.as_os_str() == "-" {
                archive::download(&store, &name, std::io::stdout()).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let file = std::fs::File::create_new(&to).with_context(|| {
                format!("cannot create {} (it must not exist yet)", to.display())
            })?;
            let bytes = archive::download(&store, &name, file).await?;
            eprintln!(
                "backup {name}: object archive saved to {} ({bytes} bytes)",
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Delete {
            name,
            storage_location,
        } => {
            let (store, deleted) =
                delete_backup(&locations, &name, storage_location.as_deref()).await?;
            println!(
                "backup {name} deleted from location {} ({} objects, {} volume snapshots)",
                store.name(),
                deleted.objects,
                deleted.snapshots
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `backup create`: a backup from flags, or a schedule's run (`--from-schedule`).
async fn create(ctx: &Context, args: BackupCreateArgs) -> anyhow::Result<ExitCode> {
    // Bad flags are refused before the cluster is reached.
    let manual = match &args.name {
        Some(name) => Some(args.flags.request(name, ctx.global.namespace.as_deref())?),
        None => None,
    };
    let client = ctx.connect().await?;
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    let (request, movers, snapshot_timeout, schedule) = match manual {
        Some(request) => (
            request,
            args.flags.volumes.movers.clone(),
            args.flags.volumes.snapshot_timeout,
            None,
        ),
        None => {
            let name = args
                .from_schedule
                .as_deref()
                .context("give a backup name or --from-schedule")?;
            let schedule = Schedules::new(client.clone(), &ctx.global.vbackup_namespace)
                .get(name)
                .await?;
            let request = schedule.spec.backup_request(name, jiff::Timestamp::now());
            request.validate()?;
            let (movers, timeout) = super::schedule::mover_args(&schedule.spec.movers);
            (request, movers, timeout, Some(schedule))
        }
    };
    if !args.wait && std::env::var_os(DETACHED_ENV).is_none() {
        // Everything that can be refused is refused here, before the background process
        // (whose output nobody sees) takes over.
        let location = locations
            .resolve(request.storage_location.as_deref())
            .await?;
        let store = locations.open(&location).await?;
        preflight(&client, &store, &request).await?;
        return detach("backup", &request.name, &[]);
    }
    let location = locations
        .resolve(request.storage_location.as_deref())
        .await?;
    let store = locations.open(&location).await?;
    let bar = crate::progress::object_bar(std::env::var_os(DETACHED_ENV).is_none());
    let on_progress = |p: &Progress| crate::progress::show(bar.as_ref(), p);
    let policies = ResourcePolicies::read(
        &client,
        &ctx.global.vbackup_namespace,
        request.volumes.resource_policies_configmap.as_deref(),
    )
    .await?;
    let step = super::volumes::mover_step(
        &locations,
        &location,
        &movers,
        Some((&request.volumes, policies, snapshot_timeout)),
        super::volumes::Bars::new(bar.is_some()),
    )
    .await?;
    let record =
        run_backup_with_volumes(&client, &store, &request, Some(&step), &on_progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let record = record?;
    if !print_structured(ctx.global.output, &record)? {
        print_outcome(&record);
    }
    let mut code = exit_code(record.status.phase);
    if schedule.is_some() {
        // Each scheduled run also deletes what expired and what the retention lets go.
        let report = super::gc::collect(
            ctx,
            &client,
            &locations,
            &store,
            &super::gc::GcArgs::default(),
        )
        .await;
        match report {
            Ok(report) => {
                if ctx.global.output == crate::output::OutputFormat::Table {
                    super::gc::print_report(&report);
                }
                if report.has_failures() {
                    code = ExitCode::from(super::EXIT_INCOMPLETE);
                }
            }
            Err(e) => {
                eprintln!("error: gc after the backup failed: {e:#}");
                code = ExitCode::from(super::EXIT_INCOMPLETE);
            }
        }
    }
    if let Some(schedule) = &schedule
        && record.status.phase == Phase::Completed
        && !scheduled_verify(ctx, &client, &locations, &store, schedule, &record, &movers).await
    {
        code = ExitCode::from(super::EXIT_INCOMPLETE);
    }
    Ok(code)
}

/// A scheduled run's verify of its backup, when the schedule's `--verify-every` says this
/// run is due (counted over the schedule's successful backups in the inventory); false when
/// it was due and did not pass.
async fn scheduled_verify(
    ctx: &Context,
    client: &kube::Client,
    locations: &Locations,
    store: &vbackup_engine::store::Store,
    schedule: &vbackup_engine::schedules::Schedule,
    record: &vbackup_engine::backups::BackupRecord,
    movers: &super::volumes::MoverArgs,
) -> bool {
    let name = record.name();
    let outcome = async {
        let inventory = Inventory::read(client, &ctx.global.vbackup_namespace, false).await?;
        let successful = inventory.successful_backups(&schedule.name);
        if !schedule.spec.verify_due(successful) {
            return Ok(None);
        }
        println!(
            "verifying backup {name} (successful backup {successful} of schedule {}, verified every {})",
            schedule.name, schedule.spec.verify_every
        );
        let options = VerifyOptions {
            timeout: super::verify::DEFAULT_TIMEOUT,
            keep: false,
        };
        super::verify::verify(ctx, client, locations, store, name, &options, movers)
            .await
            .map(Some)
    };
    match outcome.await {
        Ok(None) => true,
        Ok(Some(report)) => {
            if ctx.global.output == crate::output::OutputFormat::Table {
                super::verify::print_report(&report);
            }
            report.passed()
        }
        Err(e) => {
            eprintln!("error: verifying backup {name} failed: {e:#}");
            false
        }
    }
}

/// `--wait=false`: runs the same command again in the background (with `extra_args`
/// appended) and returns at once.
pub fn detach(what: &str, name: &str, extra_args: &[&str]) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the kubectl-vbackup executable")?;
    std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .args(extra_args)
        .env(DETACHED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start the {what} in the background"))?;
    println!(
        "{what} {name} started in the background; follow it with `kubectl vbackup {what} describe {name}`"
    );
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a backup or restore that ran: 0 only for `Completed`, 1 otherwise.
pub fn exit_code(phase: Phase) -> ExitCode {
    if phase == Phase::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INCOMPLETE)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_schedule_takes_its_flags_from_the_schedule_only() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args);
        assert!(
            parse(&[
                "kubectl-vbackup",
                "backup",
                "create",
                "--from-schedule",
                "nightly"
            ])
            .is_ok()
        );
        for extra in [
            &["x"][..],
            &["--ttl", "1h"],
            &["--snapshot-volumes"],
            &["--parallel-volumes", "2"],
            &["--wait=false"],
        ] {
            let mut args = vec![
                "kubectl-vbackup",
                "backup",
                "create",
                "--from-schedule",
                "nightly",
            ];
            args.extend(extra);
            let e = parse(&args).unwrap_err().to_string();
            assert!(e.contains("cannot be used with"), "{extra:?}: {e}");
        }
        assert!(parse(&["kubectl-vbackup", "backup", "create"]).is_err());
    }
}
