//! `kubectl vbackup explain pod/NAME | pvc/NAME`: per volume, copied or not, how, and why —
//! the answer the webhook and backups give, from the same engine function.

use std::process::ExitCode;

use clap::Args;
use vbackup_engine::policy::{Action, PolicyOptions, ResourcePolicies};
use vbackup_engine::volumes::explain::{Target, explain};
use vbackup_engine::volumes::plan::explain_decision;

use super::Context;
use crate::output::{print_structured, table};

/// Arguments of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// What to explain: pod/NAME or pvc/NAME (in the namespace of -n).
    pub target: String,
    /// As a backup with --default-volumes-to-fs-backup=BOOL would.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub default_volumes_to_fs_backup: bool,
    /// As a backup with --snapshot-volumes would.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub snapshot_volumes: bool,
    /// As a backup with --snapshot-move-data would.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub snapshot_move_data: bool,
    /// As a backup with these volume policies (ConfigMap in the vbackup namespace) would.
    #[arg(long, value_name = "NAME")]
    pub resource_policies_configmap: Option<String>,
    /// As a backup with --snapshot-class would.
    #[arg(long, value_name = "CLASS")]
    pub snapshot_class: Option<String>,
}

/// Runs `explain`.
pub async fn run(ctx: &Context, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let target = Target::parse(&args.target)?;
    let client = ctx.connect().await?;
    let namespace = ctx.namespace(&client);
    let policies = ResourcePolicies::read(
        &client,
        &ctx.global.vbackup_namespace,
        args.resource_policies_configmap.as_deref(),
    )
    .await?;
    let options = PolicyOptions {
        default_volumes_to_fs_backup: args.default_volumes_to_fs_backup,
        snapshot_volumes: args.snapshot_volumes,
        snapshot_move_data: args.snapshot_move_data,
    };
    let explained = explain(
        &client,
        &namespace,
        &target,
        options,
        policies.as_ref(),
        args.snapshot_class.as_deref(),
    )
    .await?;
    if print_structured(ctx.global.output, &explained)? {
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} in namespace {}:", explained.target, explained.namespace);
    let rows: Vec<Vec<String>> = explained
        .volumes
        .iter()
        .map(|(pod, d)| {
            vec![
                pod.clone().unwrap_or_else(|| "<no pod>".into()),
                d.volume.clone(),
                d.claim.clone().unwrap_or_else(|| "-".into()),
                match d.action {
                    Action::Copy(m) => format!("yes, {}", m.describe()),
                    Action::Skip => "no".into(),
                },
                explain_decision(d),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["POD", "VOLUME", "CLAIM", "COPIED", "WHY"], &rows)
    );
    if let Some(webhook) = &explained.webhook {
        match &webhook.untouched {
            Some(why) => println!(
                "admission webhook (policy {}): adds nothing: {why}",
                webhook.policy
            ),
            None => {
                println!("admission webhook (policy {}) adds:", webhook.policy);
                for (key, value) in &webhook.adds {
                    println!("  {key}: {value}");
                }
            }
        }
    }
    for (claim, excludes) in &explained.excludes {
        if !excludes.patterns.is_empty() {
            println!(
                "claim {claim}: not copied inside it: {}",
                excludes.patterns.join(", ")
            );
        }
        for w in &excludes.warnings {
            println!("claim {claim}: warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
