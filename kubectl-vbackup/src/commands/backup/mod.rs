//! `kubectl vbackup backup …`: create, list, describe, read the log of, and delete backups.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vbackup_engine::backups::{BackupRecord, BackupSummary, Catalog, Phase, itemlog};
use vbackup_engine::resources::archive;
use vbackup_engine::resources::backup::preflight;
use vbackup_engine::resources::backup::run_backup_with_volumes;
use vbackup_engine::resources::filter::split_list;
use vbackup_engine::resources::request::parse_labels;
use vbackup_engine::resources::{BackupRequest, ClusterResources, Progress};
use vbackup_engine::schedules::Schedules;
use vbackup_engine::store::{Locations, Store};

use super::Context;
use crate::output::{print_structured, table};

/// Environment variable set on the background process `--wait=false` starts.
pub const DETACHED_ENV: &str = "VBACKUP_DETACHED";

/// The `backup` subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up API objects (and, with the volume work, volume data) to a storage location.
    Create(CreateArgs),
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

/// Every flag a schedule's template fixes (clap's conflicts with the flattened structs'
/// groups are not enforced, so they are named one by one).
const FROM_SCHEDULE_CONFLICTS: [&str; 23] = [
    "name",
    "wait",
    "include_namespaces",
    "exclude_namespaces",
    "include_resources",
    "exclude_resources",
    "selector",
    "include_cluster_resources",
    "include_dependencies",
    "storage_location",
    "ttl",
    "labels",
    "backup_volumes",
    "default_volumes_to_fs_backup",
    "snapshot_volumes",
    "snapshot_move_data",
    "snapshot_class",
    "snapshot_timeout",
    "resource_policies_configmap",
    "parallel_volumes",
    "mover_image",
    "mover_start_timeout",
    "stall_timeout",
];

/// Arguments of `backup create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the backup (lower-case letters, digits and '-').
    #[arg(required_unless_present = "from_schedule")]
    pub name: Option<String>,
    /// Make the backup a schedule's run makes: its template, named
    /// `<schedule>-<yyyyMMddHHmmss>`, then gc with the schedule's retention (what the
    /// schedule's CronJob runs).
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = FROM_SCHEDULE_CONFLICTS)]
    pub from_schedule: Option<String>,
    /// Wait for the backup to finish (a progress bar on a terminal); false returns at once
    /// and the backup runs on in the background.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    #[command(flatten)]
    pub flags: BackupFlags,
}

/// What to back up and how, with Velero's names and meaning: shared by `backup create` and
/// `schedule create`.
#[derive(Debug, Args)]
pub struct BackupFlags {
    /// Namespaces to back up (comma-separated, wildcards allowed; default: all, or the
    /// namespace given with -n).
    #[arg(long, value_name = "NS[,NS…]")]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out.
    #[arg(long, value_name = "NS[,NS…]")]
    pub exclude_namespaces: Vec<String>,
    /// Resource types to back up: resource, resource.group, kind or short name (default: all).
    #[arg(long, value_name = "RESOURCE[,…]")]
    pub include_resources: Vec<String>,
    /// Resource types to leave out.
    #[arg(long, value_name = "RESOURCE[,…]")]
    pub exclude_resources: Vec<String>,
    /// Only objects matching this label selector (e.g. app=nextcloud).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Cluster-scoped objects: auto (all of them for a whole-cluster backup, otherwise only
    /// the PVs, CRDs, StorageClasses and ClusterRoleBindings the selection needs), true, false.
    #[arg(
        long,
        value_name = "auto|true|false",
        default_value = "auto",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub include_cluster_resources: ClusterResources,
    /// With a selector, also take the PVCs, ConfigMaps, Secrets, ServiceAccounts and
    /// Services the selected pods and workloads reference.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub include_dependencies: bool,
    /// Storage location (default: the default location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// How long to keep the backup (e.g. 720h, 30d; 0 keeps it until deleted).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = humantime_duration)]
    pub ttl: Duration,
    /// Labels on the backup (key=value,…).
    #[arg(long, value_name = "K=V[,…]")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub volumes: super::volumes::BackupVolumeArgs,
    /// Hooks for many pods at once, in Velero's spec.hooks shape (a Velero Backup or Restore
    /// manifest works as it is); pods' own hook annotations win over it.
    #[arg(long, value_name = "FILE")]
    pub hooks_file: Option<std::path::PathBuf>,
}

pub fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 720h, 30d, 1h30m)"))
}

impl BackupFlags {
    /// The engine request these flags describe for backup `name`.
    /// `-n NAMESPACE` (the global flag) stands for `--include-namespaces NAMESPACE`.
    pub fn request(&self, name: &str, namespace: Option<&str>) -> anyhow::Result<BackupRequest> {
        let mut r = BackupRequest::new(name);
        r.namespaces.include = super::included_namespaces(&self.include_namespaces, namespace)?;
        r.namespaces.exclude = split_list(&self.exclude_namespaces);
        r.resources.include = split_list(&self.include_resources);
        r.resources.exclude = split_list(&self.exclude_resources);
        r.selector = self.selector.clone().unwrap_or_default();
        r.include_cluster_resources = self.include_cluster_resources;
        r.include_dependencies = self.include_dependencies;
        r.storage_location = self.storage_location.clone();
        r.ttl = self.ttl;
        r.labels = parse_labels(&self.labels)?;
        r.volumes = self.volumes.options();
        if let Some(path) = &self.hooks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --hooks-file {}: {e}", path.display()))?;
            r.hooks = vbackup_engine::hooks::HookFile::parse(&text, &path.display().to_string())?;
        }
        r.validate()?;
        Ok(r)
    }
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
                anyhow::bail!(
                    "backup {n} not found in any storage location: list backups with `kubectl vbackup backup get`"
                );
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
            let (_, record) = find(&locations, &name, storage_location.as_deref()).await?;
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
            let (store, _) = find(&locations, &name, storage_location.as_deref()).await?;
            let key = Catalog::new(store.clone()).log_key(&name);
            itemlog::copy_log(&store, &key, std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Download {
            name,
            to,
            storage_location,
        } => {
            let (store, _) = find(&locations, &name, storage_location.as_deref()).await?;
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
            let store = match find(&locations, &name, storage_location.as_deref()).await {
                Ok((store, _)) => store,
                // A backup without metadata (its writer died) can still be deleted.
                Err(e) => match storage_location.as_deref() {
                    Some(l) => locations.open(&locations.get(l).await?).await?,
                    None => return Err(e),
                },
            };
            // Snapshots first: if that fails the archive is still there and the command can
            // simply be run again.
            let forgotten = locations.forget_backup_snapshots(&store, &name).await?;
            let removed = Catalog::new(store.clone()).delete_backup(&name).await?;
            let snapshots: usize = forgotten.iter().map(|(_, ids)| ids.len()).sum();
            println!(
                "backup {name} deleted from location {} ({removed} objects, {snapshots} volume snapshots)",
                store.name()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `backup create`: a backup from flags, or a schedule's run (`--from-schedule`).
async fn create(ctx: &Context, args: CreateArgs) -> anyhow::Result<ExitCode> {
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
    let bar = progress_bar(std::env::var_os(DETACHED_ENV).is_none());
    let on_progress = |p: &Progress| {
        if let Some(bar) = &bar {
            bar.set_position(p.items);
            bar.set_message(p.resource.clone());
        }
    };
    let policies = super::volumes::read_policies(
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
    Ok(code)
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

fn progress_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} objects  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Exit code of a backup or restore that ran: 0 only for `Completed`, 1 otherwise.
pub fn exit_code(phase: Phase) -> ExitCode {
    if phase == Phase::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INCOMPLETE)
    }
}

fn print_outcome(record: &BackupRecord) {
    let s = &record.status;
    println!(
        "backup {} {}: {} objects, {} errors, {} warnings, {} bytes in location {}",
        record.name(),
        s.phase,
        s.tally.total(),
        s.tally.error_count,
        s.tally.warnings.len(),
        s.archive_bytes,
        s.location
    );
    if let Some(f) = &s.failure {
        eprintln!("error: {f}");
    }
    for e in s.tally.errors.iter().take(10) {
        eprintln!("error: {}: {}", e.object, e.message);
    }
    if s.tally.error_count > 10 {
        eprintln!(
            "… see `kubectl vbackup backup describe {} --details`",
            record.name()
        );
    }
}

/// The stores to search: the named location, or every location.
async fn stores(locations: &Locations, name: Option<&str>) -> anyhow::Result<Vec<Store>> {
    let list = match name {
        Some(n) => vec![locations.get(n).await?],
        None => locations.list().await?,
    };
    let mut out = Vec::new();
    for l in &list {
        out.push(locations.open(l).await?);
    }
    Ok(out)
}

/// Finds a backup's metadata in the named location or the first location that has it.
pub async fn find(
    locations: &Locations,
    name: &str,
    location: Option<&str>,
) -> anyhow::Result<(Store, BackupRecord)> {
    if let Some(l) = location {
        let store = locations.open(&locations.get(l).await?).await?;
        let record = Catalog::new(store.clone()).backup(name).await?;
        return Ok((store, record));
    }
    for store in stores(locations, None).await? {
        let catalog = Catalog::new(store.clone());
        if catalog.backup_exists(name).await? {
            return Ok((store, catalog.backup(name).await?));
        }
    }
    anyhow::bail!(
        "backup {name} not found in any storage location: list backups with `kubectl vbackup backup get`"
    )
}

fn summary_name(s: &BackupSummary) -> &str {
    match s {
        BackupSummary::Recorded(r) => r.name(),
        BackupSummary::Incomplete { name, .. } => name,
    }
}

fn backups_table(rows: &[(String, BackupSummary)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(location, s)| match s {
            BackupSummary::Recorded(r) => vec![
                r.name().to_string(),
                r.status.phase.to_string(),
                r.status.tally.error_count.to_string(),
                r.status.tally.warnings.len().to_string(),
                r.status.started.clone(),
                r.status.expires.clone(),
                location.clone(),
                if r.spec.selector.is_empty() {
                    "<none>".into()
                } else {
                    r.spec.selector.clone()
                },
            ],
            BackupSummary::Incomplete { name, phase } => vec![
                name.clone(),
                phase.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                location.clone(),
                String::new(),
            ],
        })
        .collect();
    table(
        &[
            "NAME",
            "STATUS",
            "ERRORS",
            "WARNINGS",
            "CREATED",
            "EXPIRES",
            "STORAGE LOCATION",
            "SELECTOR",
        ],
        &rows,
    )
}

fn describe(r: &BackupRecord, details: bool) -> String {
    let s = &r.status;
    let list = |v: &[String], empty: &str| {
        if v.is_empty() {
            empty.to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!(
        "Name:                 {}\nPhase:                {}\n",
        r.name(),
        s.phase
    );
    if let Some(f) = &s.failure {
        out += &format!("Failure:              {f}\n");
    }
    out += &format!(
        "Storage location:     {}\nCluster version:      {}\nStarted:              {}\nCompleted:            {}\nExpires:              {}\n\
         Namespaces:           {} (excluded: {})\nResources:            {} (excluded: {})\nSelector:             {}\n\
         Cluster resources:    {:?}\nDependencies:         {}\nTTL:                  {}\nArchive:              {} bytes\n",
        s.location,
        s.cluster_version,
        s.started,
        s.completed.as_deref().unwrap_or("-"),
        s.expires,
        list(&r.spec.namespaces.include, "*"),
        list(&r.spec.namespaces.exclude, "<none>"),
        list(&r.spec.resources.include, "*"),
        list(&r.spec.resources.exclude, "<none>"),
        if r.spec.selector.is_empty() {
            "<none>"
        } else {
            &r.spec.selector
        },
        r.spec.include_cluster_resources,
        r.spec.include_dependencies,
        humantime::format_duration(r.spec.ttl),
        s.archive_bytes,
    );
    out += &format!("\nObjects ({}):\n", s.tally.total());
    for (resource, n) in &s.tally.counts {
        out += &format!("  {resource}: {n}\n");
    }
    if !s.skipped.is_empty() {
        out += "\nLeft out by default:\n";
        for k in &s.skipped {
            match k.count {
                0 => out += &format!("  {} (the whole type): {}\n", k.resource, k.reason),
                n => out += &format!("  {} ({n}): {}\n", k.resource, k.reason),
            }
        }
    }
    out += &super::volumes::describe_volumes(&s.volumes, details, false);
    if s.hooks.attempted > 0 {
        out += &format!(
            "\nHooks: {} attempted, {} failed (each run in `backup logs`)\n",
            s.hooks.attempted, s.hooks.failed
        );
    }
    if !s.dumps.is_empty() {
        out += &format!("\nDatabase dumps ({}):\n", s.dumps.len());
        for d in &s.dumps {
            out += &format!(
                "  {}/{} {}: {} {} bytes in {}s{}\n",
                d.namespace,
                d.pod,
                d.file,
                d.phase,
                d.bytes,
                d.duration_seconds,
                d.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
        }
    }
    out += &format!("\nErrors ({}):\n", s.tally.error_count);
    let shown = if details {
        s.tally.errors.len()
    } else {
        s.tally.errors.len().min(10)
    };
    for e in &s.tally.errors[..shown] {
        out += &format!("  {}: {}\n", e.object, e.message);
    }
    if shown < s.tally.errors.len() {
        out += "  … use --details for all\n";
    }
    out += &format!("\nWarnings ({}):\n", s.tally.warnings.len());
    for w in &s.tally.warnings {
        out += &format!("  {w}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vbackup_engine::resources::request::DEFAULT_TTL;

    #[test]
    fn ttl_accepts_hours_and_days() {
        assert_eq!(humantime_duration("720h").unwrap(), DEFAULT_TTL);
        assert_eq!(humantime_duration("30d").unwrap(), DEFAULT_TTL);
        assert!(humantime_duration("soon").is_err());
    }

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
