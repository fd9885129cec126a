//! `kubectl vbackup restore …`: restore from a backup, and read or delete restore records.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vbackup_engine::backups::{RestoreRecord, find_backup};
use vbackup_engine::resources::Progress;
use vbackup_engine::restore::{
    ExistingResourcePolicy, RestoreRecords, RestoreRequest, class_config, parse_mappings,
    run::preflight, run::run_restore_with_volumes,
};
use vbackup_engine::store::Locations;

use super::Context;
use super::backup::{DETACHED_ENV, detach, exit_code};
use super::flags::{FilterFlags, read_hooks_file};
use crate::output::{print_structured, table};

/// The `restore` subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore API objects (and, with the volume work, volume data) from a backup.
    Create(RestoreCreateArgs),
    /// List restores.
    Get {
        /// Only this restore.
        name: Option<String>,
    },
    /// Show a restore: phase, counts, what existed already, errors and warnings.
    Describe {
        /// The restore.
        name: String,
        /// List every item error.
        #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        details: bool,
    },
    /// Print a restore's item log (one JSON line per object decision).
    Logs {
        /// The restore.
        name: String,
    },
    /// Delete a restore record (the restored objects stay).
    Delete {
        /// The restore.
        name: String,
    },
}

/// Arguments of `restore create`, with Velero's names and meaning.
#[derive(Debug, Args)]
pub struct RestoreCreateArgs {
    /// Name of the restore (default: BACKUP-YYYYMMDDHHMMSS).
    pub name: Option<String>,
    /// The backup to restore.
    #[arg(long, value_name = "BACKUP")]
    pub from_backup: String,
    #[command(flatten)]
    pub filters: FilterFlags,
    /// Restore namespaces under new names: old:new[,old2:new2…].
    #[arg(long, value_name = "OLD:NEW[,…]")]
    pub namespace_mappings: Vec<String>,
    /// Use other storage classes: old:new[,…]; also read from ConfigMaps labelled
    /// vbackup.io/change-storage-class in the vbackup namespace (flags win).
    #[arg(long, value_name = "OLD:NEW[,…]")]
    pub storage_class_mappings: Vec<String>,
    /// Objects that exist already: none (leave them, warn when they differ) or update
    /// (patch them to the backed-up state).
    #[arg(long, value_name = "none|update", default_value = "none")]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Restore volume data: each restored claim is filled by a mover pod before the
    /// workloads that mount it are created.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub restore_volumes: bool,
    #[command(flatten)]
    pub movers: super::volumes::MoverArgs,
    /// Keep Services' node ports instead of letting the cluster pick new ones.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub preserve_nodeports: bool,
    /// Hooks for many pods at once, in Velero's spec.hooks shape (a Velero Backup or Restore
    /// manifest works as it is); pods' own hook annotations win over it.
    #[arg(long, value_name = "FILE")]
    pub hooks_file: Option<std::path::PathBuf>,
    /// The location holding the backup (default: search every location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// Send every object to the cluster with dryRun=All and write nothing: report what would
    /// be created, updated, left as it is, or refused (admission, validation, quota).
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dry_run: bool,
    /// Wait for the restore to finish (a progress bar on a terminal); false returns at once
    /// and the restore runs on in the background.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
}

impl RestoreCreateArgs {
    /// The engine request these flags describe (storage-class ConfigMaps are added later).
    /// `-n NAMESPACE` (the global flag) stands for `--include-namespaces NAMESPACE`.
    pub fn request(&self, namespace: Option<&str>) -> anyhow::Result<RestoreRequest> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => default_name(&self.from_backup),
        };
        let mut r = RestoreRequest::new(name, &self.from_backup);
        r.namespaces = self.filters.namespaces(namespace)?;
        r.resources = self.filters.resources();
        r.selector = self.filters.selector();
        r.namespace_mappings = parse_mappings(&self.namespace_mappings, "--namespace-mappings")?;
        r.storage_class_mappings =
            parse_mappings(&self.storage_class_mappings, "--storage-class-mappings")?;
        r.existing_resource_policy = self.existing_resource_policy;
        r.preserve_node_ports = self.preserve_nodeports;
        r.restore_volumes = self.restore_volumes;
        r.storage_location = self.storage_location.clone();
        r.dry_run = self.dry_run;
        if let Some(hooks) = read_hooks_file(self.hooks_file.as_deref())? {
            r.hooks = hooks;
        }
        r.validate()?;
        Ok(r)
    }
}

/// The report of `restore create --dry-run`: what the server said it would do.
fn print_dry_run(record: &RestoreRecord) {
    let s = &record.status;
    println!(
        "restore {} (dry run, nothing written): {} objects would be created, {} updated, {} left          as they are, {} refused",
        record.spec.name,
        s.tally.total().saturating_sub(s.updated),
        s.updated,
        s.unchanged,
        s.tally.error_count,
    );
    for e in &s.tally.errors {
        println!("would be refused: {}: {}", e.object, e.message);
    }
    for w in &s.tally.warnings {
        println!("warning: {w}");
    }
}

/// `BACKUP-YYYYMMDDHHMMSS`, the backup's name shortened so the result stays a valid name.
fn default_name(backup: &str) -> String {
    let stamp = jiff::Zoned::now().strftime("%Y%m%d%H%M%S").to_string();
    let keep = 63 - stamp.len() - 4;
    let prefix: String = backup.chars().take(keep).collect();
    format!("{}-{stamp}", prefix.trim_end_matches('-'))
}

/// Runs a `restore` subcommand.
pub async fn run(ctx: &Context, command: RestoreCommand) -> anyhow::Result<ExitCode> {
    let request = match &command {
        RestoreCommand::Create(args) => Some(args.request(ctx.global.namespace.as_deref())?),
        _ => None,
    };
    let client = ctx.connect().await?;
    let ns = &ctx.global.vbackup_namespace;
    let locations = Locations::new(client.clone(), ns);
    match command {
        RestoreCommand::Create(args) => {
            let name_defaulted = args.name.is_none();
            let mut request = request.context("request built above")?;
            let (store, _) = find_backup(
                &locations,
                &request.backup,
                request.storage_location.as_deref(),
            )
            .await?;
            let mut classes = class_config::read(&client, ns).await?;
            classes.append(&mut request.storage_class_mappings);
            request.storage_class_mappings = classes;
            let records = RestoreRecords::new(&client, ns, store.clone());
            if name_defaulted {
                request.name = records.unused_name(&request.name).await?;
            }
            if !args.wait && !args.dry_run && std::env::var_os(DETACHED_ENV).is_none() {
                // Refuse what can be refused while someone is watching.
                preflight(&store, &records, &request).await?;
                let name = request.name.clone();
                let extra: &[&str] = if name_defaulted { &[&name] } else { &[] };
                return detach("restore", &name, extra);
            }
            let bar = crate::progress::object_bar(std::env::var_os(DETACHED_ENV).is_none());
            let on_progress = |p: &Progress| crate::progress::show(bar.as_ref(), p);
            let location = locations.get(store.name()).await?;
            let step = super::volumes::mover_step(
                &locations,
                &location,
                &args.movers,
                None,
                super::volumes::Bars::new(bar.is_some()),
            )
            .await?;
            let record = run_restore_with_volumes(
                &client,
                &store,
                &records,
                &request,
                Some(&step),
                &on_progress,
            )
            .await;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let record = record?;
            if !print_structured(ctx.global.output, &record)? {
                let s = &record.status;
                if record.spec.dry_run {
                    print_dry_run(&record);
                    return Ok(exit_code(s.phase));
                }
                println!(
                    "restore {} {}: {} objects created or updated, {} left as they were, {} errors, {} warnings",
                    record.spec.name,
                    s.phase,
                    s.tally.total(),
                    s.unchanged,
                    s.tally.error_count,
                    s.tally.warnings.len()
                );
                for e in s.tally.errors.iter().take(10) {
                    eprintln!("error: {}: {}", e.object, e.message);
                }
            }
            Ok(exit_code(record.status.phase))
        }
        RestoreCommand::Get { name } => {
            let mut all: Vec<RestoreRecord> = Vec::new();
            for l in locations.list().await? {
                let store = locations.open(&l).await?;
                for r in RestoreRecords::new(&client, ns, store).list().await? {
                    if !all.iter().any(|a| a.spec.name == r.spec.name)
                        && name.as_deref().is_none_or(|n| n == r.spec.name)
                    {
                        all.push(r);
                    }
                }
            }
            if let Some(n) = &name
                && all.is_empty()
            {
                anyhow::bail!(
                    "restore {n} not found: list restores with `kubectl vbackup restore get`"
                );
            }
            if !print_structured(ctx.global.output, &all)? {
                if all.is_empty() {
                    eprintln!(
                        "no restores: create one with `kubectl vbackup restore create --from-backup NAME`"
                    );
                } else {
                    print!("{}", restores_table(&all));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RestoreCommand::Describe { name, details } => {
            let (_, record) = find_restore(&client, ns, &locations, &name).await?;
            if !print_structured(ctx.global.output, &record)? {
                print!("{}", describe(&record, details));
            }
            // Describing worked, whatever the restore's phase.
            Ok(ExitCode::SUCCESS)
        }
        RestoreCommand::Logs { name } => {
            let (records, _) = find_restore(&client, ns, &locations, &name).await?;
            let gz = records.log_gz(&name).await?.with_context(|| {
                format!("restore {name} has no item log (it was too large to keep in the cluster)")
            })?;
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2_decoder(&gz), &mut text)
                .context("the restore log is corrupt")?;
            std::io::stdout().write_all(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        RestoreCommand::Delete { name } => {
            let (records, _) = find_restore(&client, ns, &locations, &name).await?;
            records.delete(&name).await?;
            println!("restore record {name} deleted (restored objects are not touched)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn flate2_decoder(gz: &[u8]) -> impl std::io::Read + '_ {
    vbackup_engine::backups::itemlog::gunzip(gz)
}

async fn find_restore(
    client: &kube::Client,
    ns: &str,
    locations: &Locations,
    name: &str,
) -> anyhow::Result<(RestoreRecords, RestoreRecord)> {
    for l in locations.list().await? {
        let records = RestoreRecords::new(client, ns, locations.open(&l).await?);
        if let Some(r) = records.get_opt(name).await? {
            return Ok((records, r));
        }
    }
    anyhow::bail!("restore {name} not found: list restores with `kubectl vbackup restore get`")
}

fn restores_table(all: &[RestoreRecord]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            vec![
                r.spec.name.clone(),
                r.spec.backup.clone(),
                r.status.phase.to_string(),
                r.status.tally.error_count.to_string(),
                r.status.tally.warnings.len().to_string(),
                r.status.started.clone(),
                if r.spec.selector.is_empty() {
                    "<none>".into()
                } else {
                    r.spec.selector.clone()
                },
            ]
        })
        .collect();
    table(
        &[
            "NAME", "BACKUP", "STATUS", "ERRORS", "WARNINGS", "CREATED", "SELECTOR",
        ],
        &rows,
    )
}

fn describe(r: &RestoreRecord, details: bool) -> String {
    let s = &r.status;
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            "<none>".to_string()
        } else {
            m.iter()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = format!(
        "Name:                     {}\nBackup:                   {}\nPhase:                    {}\nStarted:                  {}\nCompleted:                {}\n\
         Namespace mappings:       {}\nStorage class mappings:   {}\nExisting resource policy: {:?}\nRestore volumes:          {}\n\
         Created or updated:       {}\nUpdated:                  {}\nLeft as they were:        {}\n",
        r.spec.name,
        r.spec.backup,
        s.phase,
        s.started,
        s.completed.as_deref().unwrap_or("-"),
        pairs(&r.spec.namespace_mappings),
        pairs(&r.spec.storage_class_mappings),
        r.spec.existing_resource_policy,
        r.spec.restore_volumes,
        s.tally.total(),
        s.updated,
        s.unchanged,
    );
    out += "\nObjects:\n";
    for (resource, n) in &s.tally.counts {
        out += &format!("  {resource}: {n}\n");
    }
    if !s.skipped.is_empty() {
        out += "\nSkipped:\n";
        for k in &s.skipped {
            out += &format!("  {} ({}): {}\n", k.resource, k.count, k.reason);
        }
    }
    out += &super::volumes::describe_volumes(&s.volumes, details, true);
    if s.hooks.attempted > 0 {
        out += &format!(
            "\nPost-restore hooks: {} attempted, {} failed (each run in `restore logs`)\n",
            s.hooks.attempted, s.hooks.failed
        );
    }
    if s.dumps.restored + s.dumps.failed > 0 {
        out += &format!(
            "\nDatabase dumps: {} restored, {} failed (each in `restore logs`)\n",
            s.dumps.restored, s.dumps.failed
        );
    }
    out += &crate::output::errors_and_warnings(&s.tally, details);
    out
}
