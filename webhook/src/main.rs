//! `vbackup-webhook`: vbackup's admission webhook. On every pod CREATE it adds the volume
//! annotations and database hooks the cluster's BackupPolicy implies; it never blocks a pod.
//! The behaviour lives in the engine (`vbackup_engine::webhook`); this binary serves it.

mod backup_metrics;
mod cluster;
mod metrics;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vbackup_engine::cluster::{ClusterOptions, connect, install_crypto_provider};

/// vbackup's admission webhook: annotates pods' volumes and database hooks at creation.
#[derive(Debug, Parser)]
#[command(name = "vbackup-webhook", version)]
struct Args {
    /// Address to serve HTTPS on (/mutate, /healthz, /readyz, /metrics).
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serving certificate (PEM chain), reloaded when it changes on disk.
    #[arg(long, default_value = "/etc/vbackup/tls/tls.crt")]
    tls_cert_file: PathBuf,
    /// Its private key (PEM), reloaded with it.
    #[arg(long, default_value = "/etc/vbackup/tls/tls.key")]
    tls_key_file: PathBuf,
    /// Kubeconfig to read namespaces, BackupPolicies and (for the backup metrics) schedules,
    /// locations and claims with; in-cluster config when unset.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Do not read the cluster: apply the built-in default policy to every pod (for trying
    /// the webhook out and for benchmarks).
    #[arg(long)]
    standalone: bool,
    /// Namespace of vbackup's locations and schedules, read for the backup metrics.
    #[arg(long, env = "VBACKUP_NAMESPACE", default_value = vbackup_engine::store::SYSTEM_NAMESPACE)]
    vbackup_namespace: String,
    /// How often the backup metrics are recomputed from the locations' metadata and the
    /// cluster (served on /metrics); 0s turns them off.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    backup_metrics_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vbackup-webhook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vbackup-webhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    install_crypto_provider();
    let cert = tls::ReloadingCert::load(&args.tls_cert_file, &args.tls_key_file).context(
        "cannot load the serving certificate (Secret vbackup-webhook-tls; `kubectl vbackup install` creates it)",
    )?;
    let (view, backup) = if args.standalone {
        (server::View::Standalone(Default::default()), None)
    } else {
        let client = connect(&ClusterOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: None,
        })
        .await
        .context("cannot reach the cluster to watch namespaces and BackupPolicies (or pass --standalone)")?;
        let backup = (!args.backup_metrics_interval.is_zero()).then(|| {
            backup_metrics::BackupMetrics::start(
                client.clone(),
                args.vbackup_namespace.clone(),
                args.backup_metrics_interval,
            )
        });
        (
            server::View::Cluster(cluster::WatchedCluster::start(client)),
            backup,
        )
    };
    let app = Arc::new(server::App {
        view,
        metrics: Default::default(),
        backup,
        cert: Arc::new(cert),
    });
    server::serve(app, args.listen, args.shutdown_grace).await
}
