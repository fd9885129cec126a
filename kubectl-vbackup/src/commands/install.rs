//! `kubectl vbackup install` and `uninstall`: vbackup's namespace, CRDs, RBAC and admission
//! webhook, applied server-side (field manager `vbackup`), safe to re-run as an upgrade.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vbackup_engine::install::{self, InstallOptions, apply, ready};
use vbackup_engine::volumes::step::default_image;

use super::Context;
use super::flags::humantime_duration;
use crate::output::OutputFormat;

/// Arguments of `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The image of the webhook (and of scheduled runs): it holds kubectl-vbackup and
    /// vbackup-webhook.
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub image: String,
    /// Let cert-manager issue the webhook's certificate and inject its CA (a self-signed
    /// Issuer); otherwise install makes a CA and a certificate itself.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cert_manager: bool,
    /// Print what would be applied (-o yaml or json) and change nothing; the certificate
    /// Secret and caBundle are left out (they are made at install time).
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dry_run: bool,
    /// Wait until the webhook answers: its Deployment available, then a dry-run pod in
    /// namespace default annotated by it (nothing is created).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait for the webhook; past it, install fails and says why.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime_duration)]
    pub timeout: Duration,
}

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also delete the CRDs (and with them the storage location objects) and the namespace
    /// (with the location key Secrets: keep a copy of the keys, or the backups cannot be
    /// read again). Backups in the locations are never deleted.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub purge: bool,
}

/// Runs `install`.
pub async fn run_install(ctx: &Context, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let opts = InstallOptions {
        namespace: ctx.global.vbackup_namespace.clone(),
        image: args.image.clone(),
        cert_manager: args.cert_manager,
    };
    if args.dry_run {
        let objects = install::objects(&opts, None)?;
        match ctx.global.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&objects)?),
            _ => print!("{}", install::to_yaml(&objects)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = ctx.connect().await?;
    let tls = if args.cert_manager {
        None
    } else {
        Some(apply::serving_certificate(&client, &opts.namespace).await?)
    };
    let objects = install::objects(&opts, tls.as_ref())?;
    let applied = apply::apply_all(&client, &objects).await?;
    for a in &applied {
        println!("applied {a}");
    }
    if args.wait {
        println!(
            "waiting (at most {}) until the webhook answers the API server",
            humantime::format_duration(args.timeout)
        );
        let answered =
            ready::wait_webhook_answers(&client, &opts.namespace, &opts.image, args.timeout)
                .await?;
        println!("{answered}");
    }
    println!(
        "vbackup installed in namespace {}: create a storage location with `kubectl vbackup location create`",
        opts.namespace
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `uninstall`.
pub async fn run_uninstall(ctx: &Context, args: &UninstallArgs) -> anyhow::Result<ExitCode> {
    let client = ctx.connect().await?;
    let removed = apply::uninstall(&client, &ctx.global.vbackup_namespace, args.purge).await?;
    for r in &removed {
        println!("deleted {r}");
    }
    if !args.purge {
        println!(
            "kept: namespace {} with the location key Secrets, the CRDs and the locations (--purge removes them); backups are never deleted",
            ctx.global.vbackup_namespace
        );
    }
    Ok(ExitCode::SUCCESS)
}
