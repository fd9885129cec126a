//! `kubectl vbackup verify`: prove a backup restorable (repository check, test restore into
//! scratch namespaces, Ready workloads, the pods' verify commands); the engine's `verify`
//! does the work, this renders its verdicts.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kube::Client;
use vbackup_engine::backups::find_backup;
use vbackup_engine::resources::Progress;
use vbackup_engine::restore::RestoreRecords;
use vbackup_engine::store::{Locations, Store};
use vbackup_engine::verify::{VerifyOptions, VerifyReport, VerifyTarget, verify_backup};

use super::Context;
use super::flags::humantime_duration;
use super::volumes::MoverArgs;
use crate::output::{print_structured, table};

/// How long a verify waits for Ready and its commands by default (`--timeout`; also
/// what scheduled runs use).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup to verify.
    #[arg(long, value_name = "BACKUP")]
    pub backup: String,
    /// The location holding the backup (default: search every location).
    #[arg(long, visible_alias = "storage-location", value_name = "NAME")]
    pub location: Option<String>,
    /// How long the restored workloads may take to become Ready and their verify commands
    /// to run.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime_duration)]
    pub timeout: Duration,
    /// Leave the scratch namespaces in place to look at them (delete them later with
    /// `kubectl delete ns -l vbackup.io/verify=BACKUP`).
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub keep: bool,
    #[command(flatten)]
    pub movers: MoverArgs,
}

/// Runs `verify`: exit 0 when every namespace passed, 1 when one failed, 2 when nothing
/// could be tried.
pub async fn run(ctx: &Context, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    let (store, _) = find_backup(&locations, &args.backup, args.location.as_deref()).await?;
    let options = VerifyOptions {
        timeout: args.timeout,
        keep: args.keep,
    };
    let report = verify(
        ctx,
        &client,
        &locations,
        &store,
        &args.backup,
        &options,
        &args.movers,
    )
    .await?;
    if !print_structured(ctx.global.output, &report)? {
        print_report(&report);
    }
    Ok(exit_code(&report))
}

/// Verifies `backup` in `store` with mover pods as `movers` says (also what a scheduled run
/// calls after its backup).
pub async fn verify(
    ctx: &Context,
    client: &Client,
    locations: &Locations,
    store: &Store,
    backup: &str,
    options: &VerifyOptions,
    movers: &MoverArgs,
) -> anyhow::Result<VerifyReport> {
    let location = locations.get(store.name()).await?;
    // A Velero bucket's repositories open with Velero's password, not a location key.
    let key = match store.velero_repo_password() {
        Some(_) => None,
        None => Some(locations.key(store.name()).await?),
    };
    let step = super::volumes::mover_step(
        locations,
        &location,
        movers,
        None,
        super::volumes::Bars::new(false),
    )
    .await?;
    let records = RestoreRecords::new(client, &ctx.global.vbackup_namespace, store.clone());
    let target = VerifyTarget {
        client,
        store,
        key: key.as_ref(),
        records: &records,
        volumes: Some(&step),
    };
    let quiet = |_: &Progress| {};
    Ok(verify_backup(&target, backup, options, &quiet).await?)
}

/// 0 when the backup passed, [`super::EXIT_INCOMPLETE`] otherwise.
pub fn exit_code(report: &VerifyReport) -> ExitCode {
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INCOMPLETE)
    }
}

/// A verdict per namespace, then what each verify command printed.
pub fn print_report(report: &VerifyReport) {
    let rows: Vec<Vec<String>> = report
        .namespaces
        .iter()
        .map(|v| {
            vec![
                v.namespace.clone(),
                if v.passed() { "PASS" } else { "FAIL" }.to_string(),
                v.scratch.clone() + if v.kept { " (kept)" } else { "" },
                if v.passed() {
                    format!(
                        "repository {}, Ready, {} verify command(s) passed",
                        if v.repository_checked {
                            "checked"
                        } else {
                            "none"
                        },
                        v.commands.len()
                    )
                } else {
                    v.failures.join("; ")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["NAMESPACE", "VERDICT", "SCRATCH", "DETAILS"], &rows)
    );
    for v in &report.namespaces {
        for c in v.commands.iter().filter(|c| !c.output.is_empty()) {
            println!(
                "\n{}: pod {} container {} ({}):\n{}",
                v.namespace,
                c.pod,
                c.container,
                c.exit_code
                    .map_or_else(|| "no exit code".to_string(), |e| format!("exit {e}")),
                c.output
            );
        }
    }
    for f in &report.failures {
        println!("FAIL: {f}");
    }
    let restore = report
        .restore
        .as_deref()
        .map(|r| format!(" (test restore {r}: `kubectl vbackup restore describe {r}`)"))
        .unwrap_or_default();
    println!(
        "\nbackup {}: {}{restore}",
        report.backup,
        if report.passed() { "PASS" } else { "FAIL" }
    );
}
