//! `kubectl vbackup coverage` and `kubectl vbackup status`: is everything protected, and are
//! the schedules keeping up. Both exit 1 when something needs attention, for cron and CI.

use std::process::ExitCode;
use std::time::Duration;

use bytesize::ByteSize;
use clap::Args;
use jiff::Timestamp;
use vbackup_engine::schedules::inventory::{Inventory, namespaces_except};
use vbackup_engine::schedules::status;

use super::Context;
use crate::output::{print_structured, table};

/// Arguments of `coverage`.
#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Every namespace (default: the one of -n, or the context's).
    #[arg(short = 'A', long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub all_namespaces: bool,
}

fn age(now: Timestamp, t: Option<Timestamp>) -> String {
    t.and_then(|t| Duration::try_from(now.duration_since(t)).ok())
        .map_or_else(
            || "-".into(),
            |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        )
}

/// Runs `coverage`: exit 1 when a claim is not protected.
pub async fn run_coverage(ctx: &Context, args: &CoverageArgs) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let vbackup_ns = &ctx.global.vbackup_namespace;
    let inventory = Inventory::read(&client, vbackup_ns, false).await?;
    let namespaces = if args.all_namespaces {
        namespaces_except(&client, vbackup_ns).await?
    } else {
        vec![ctx.namespace(&client)]
    };
    let now = Timestamp::now();
    let rows = inventory
        .coverage(&client, vbackup_ns, &namespaces, now)
        .await?;
    if !print_structured(ctx.global.output, &rows)? {
        if rows.is_empty() {
            println!("no claims and no pod volumes holding data");
        } else {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.namespace.clone(),
                        r.volume.clone(),
                        if r.protected { "yes" } else { "NO" }.into(),
                        r.schedule.clone().unwrap_or_else(|| "-".into()),
                        r.method
                            .map_or_else(|| "-".into(), |m| m.describe().to_string()),
                        age(now, r.last_copy),
                        r.reason.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "NAMESPACE",
                        "VOLUME",
                        "PROTECTED",
                        "SCHEDULE",
                        "METHOD",
                        "LAST COPY AGE",
                        "WHY"
                    ],
                    &cells
                )
            );
        }
    }
    let unprotected = rows
        .iter()
        .any(|r| !r.protected && r.volume.starts_with("pvc/"));
    Ok(if unprotected {
        ExitCode::from(super::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs `status`: exit 1 when a schedule is overdue.
pub async fn run_status(ctx: &Context) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let inventory = Inventory::read(&client, &ctx.global.vbackup_namespace, false).await?;
    let now = Timestamp::now();
    let rows = status::rows(&inventory.schedules, &inventory.backups, now);
    if !print_structured(ctx.global.output, &rows)? {
        if rows.is_empty() {
            println!("no backups and no schedules yet");
        } else {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.location.clone(),
                        r.schedule.clone().unwrap_or_else(|| "<none>".into()),
                        r.last_backup.clone().unwrap_or_else(|| "-".into()),
                        r.phase.map_or_else(|| "-".into(), |p| p.to_string()),
                        age(now, r.started),
                        ByteSize::b(r.bytes).to_string(),
                        r.next_run.map_or_else(|| "-".into(), |t| t.to_string()),
                        r.problem.clone().unwrap_or_else(|| "ok".into()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "LOCATION",
                        "SCHEDULE",
                        "LAST BACKUP",
                        "PHASE",
                        "AGE",
                        "SIZE",
                        "NEXT RUN",
                        "STATUS"
                    ],
                    &cells
                )
            );
        }
    }
    Ok(if rows.iter().any(|r| r.overdue) {
        ExitCode::from(super::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
