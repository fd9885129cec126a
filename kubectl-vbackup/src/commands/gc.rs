//! `kubectl vbackup gc`: delete expired backups and those no schedule's `--keep-*` keeps,
//! then prune the repositories and say how many bytes that gave back.

use std::process::ExitCode;
use std::time::Duration;

use bytesize::ByteSize;
use clap::Args;
use kube::Client;
use vbackup_engine::backups::gc::{self, GcOptions, GcReport};
use vbackup_engine::repo::PRUNE_KEEP_MARKED;
use vbackup_engine::schedules::Schedules;
use vbackup_engine::store::{Locations, Store};

use super::Context;
use super::flags::humantime_duration;
use crate::output::print_structured;

/// Arguments of `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only this location (default: every ReadWrite location).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// Only list what would be deleted.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dry_run: bool,
    /// Unused volume data is first marked and deleted by a gc at least this much later, so
    /// a backup running meanwhile (from any cluster) never loses data it reuses. Shorten it
    /// only when nothing writes to the location.
    #[arg(long, value_name = "DURATION", default_value = PRUNE_KEEP_MARKED, value_parser = humantime_duration)]
    pub prune_delay: Duration,
}

impl Default for GcArgs {
    fn default() -> Self {
        GcArgs {
            storage_location: None,
            dry_run: false,
            prune_delay: humantime::parse_duration(PRUNE_KEEP_MARKED)
                .unwrap_or(Duration::from_secs(23 * 3600)),
        }
    }
}

/// Runs `gc`: exit 0 when everything due was deleted and pruned, 1 otherwise.
pub async fn run(ctx: &Context, args: &GcArgs) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    let list = match &args.storage_location {
        Some(name) => vec![locations.get(name).await?],
        None => locations.list().await?,
    };
    let mut reports = Vec::new();
    for location in &list {
        let store = locations.open(location).await?;
        if args.storage_location.is_none() && store.ensure_writable().is_err() {
            continue;
        }
        reports.push(collect(ctx, &client, &locations, &store, args).await?);
    }
    if !print_structured(ctx.global.output, &reports)? {
        for r in &reports {
            print_report(r);
        }
    }
    Ok(if reports.iter().any(GcReport::has_failures) {
        ExitCode::from(super::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

/// gc of one location with every schedule's retention.
pub async fn collect(
    ctx: &Context,
    client: &Client,
    locations: &Locations,
    store: &Store,
    args: &GcArgs,
) -> anyhow::Result<GcReport> {
    let mut retention = std::collections::BTreeMap::new();
    for s in Schedules::new(client.clone(), &ctx.global.vbackup_namespace)
        .list()
        .await?
    {
        if let Ok(cron) = s.spec.cron() {
            retention.insert(s.name.clone(), (s.spec.retention, cron.zone().clone()));
        }
    }
    let opts = GcOptions {
        now: jiff::Timestamp::now(),
        retention,
        dry_run: args.dry_run,
        keep_marked: args.prune_delay,
    };
    Ok(gc::run(locations, store, &opts).await?)
}

/// What gc did, for people.
pub fn print_report(r: &GcReport) {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    for d in &r.deleted {
        println!(
            "{verb} backup {} ({}; {} volume snapshots)",
            d.name, d.reason, d.snapshots
        );
    }
    for (name, error) in &r.failed {
        eprintln!("error: backup {name} not deleted: {error}");
    }
    for p in &r.pruned {
        match &p.error {
            Some(e) => eprintln!(
                "error: repository of namespace {} not pruned: {e}",
                p.namespace
            ),
            None if p.packs_marked > 0 => println!(
                "repository {}: {} packs deleted, {} unused packs marked (deleted by a gc after the prune delay)",
                p.namespace, p.packs_deleted, p.packs_marked
            ),
            None => println!(
                "repository {}: {} packs deleted",
                p.namespace, p.packs_deleted
            ),
        }
    }
    if !r.incomplete.is_empty() {
        println!(
            "left alone: {} backups without metadata (running, or their writer died): {}",
            r.incomplete.len(),
            r.incomplete.join(", ")
        );
    }
    if r.dry_run {
        println!(
            "location {}: {} backups would be deleted (dry run, nothing changed)",
            r.location,
            r.deleted.len()
        );
    } else {
        println!(
            "location {}: {} backups deleted, {} freed ({} → {})",
            r.location,
            r.deleted.len(),
            ByteSize::b(r.bytes_freed()),
            ByteSize::b(r.bytes_before),
            ByteSize::b(r.bytes_after)
        );
    }
}
