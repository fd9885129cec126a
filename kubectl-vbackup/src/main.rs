//! `kubectl vbackup`: back up and restore Kubernetes namespaces, objects and volume data.

mod cli;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    vbackup_engine::cluster::install_crypto_provider();
    let cli = cli::Cli::parse();
    init_logging(cli.global.verbose);
    match commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", output::error_chain(&error));
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}

/// `-v`/`-vv`/`-vvv` raise vbackup's own level only: dependencies (kube, hyper, rustls,
/// the S3 SDK) stay at warnings unless VBACKUP_LOG asks for them.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,vbackup_engine=info,kubectl_vbackup=info",
        2 => "warn,vbackup_engine=debug,kubectl_vbackup=debug",
        _ => "warn,vbackup_engine=trace,kubectl_vbackup=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VBACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
