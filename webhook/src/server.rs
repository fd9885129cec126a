//! The HTTPS server: `/mutate`, `/healthz`, `/readyz`, `/metrics` on one port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use vbackup_engine::webhook::mutate::MAX_BODY_BYTES;
use vbackup_engine::webhook::{ClusterView, Outcome, mutate};

use crate::backup_metrics::BackupMetrics;
use crate::cluster::WatchedCluster;
use crate::metrics::Metrics;
use crate::tls::ReloadingCert;

/// Where policies and namespace labels come from.
pub enum View {
    /// Watched in the cluster.
    Cluster(WatchedCluster),
    /// No cluster: the built-in default policy, no namespace labels.
    Standalone(vbackup_engine::webhook::StaticView),
}

impl View {
    fn as_view(&self) -> &dyn ClusterView {
        match self {
            View::Cluster(c) => c,
            View::Standalone(s) => s,
        }
    }

    fn ready(&self) -> bool {
        match self {
            View::Cluster(c) => c.ready(),
            View::Standalone(_) => true,
        }
    }
}

/// Everything the handlers share.
pub struct App {
    /// Policies and namespaces.
    pub view: View,
    /// Request counters.
    pub metrics: Metrics,
    /// The backup metrics (not in standalone mode).
    pub backup: Option<Arc<BackupMetrics>>,
    /// The serving certificate.
    pub cert: Arc<ReloadingCert>,
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate", post(mutate_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn mutate_handler(State(app): State<Arc<App>>, body: Body) -> Response {
    let started = Instant::now();
    // Read the body ourselves: axum's extractor rejections answer in plain text.
    let reply = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => mutate(&bytes, app.view.as_view()),
        Err(e) => vbackup_engine::webhook::Reply {
            status: 413,
            body: serde_error(&format!(
                "cannot read the body ({e}); the limit is {MAX_BODY_BYTES} bytes"
            )),
            outcome: Outcome::BadRequest("body too large or unreadable".into()),
            dry_run: false,
        },
    };
    app.metrics
        .record(&reply.outcome, reply.dry_run, started.elapsed());
    match &reply.outcome {
        Outcome::Failed(why) | Outcome::BadRequest(why) => tracing::warn!("/mutate: {why}"),
        Outcome::Patched(n) => {
            tracing::debug!(operations = n, dry_run = reply.dry_run, "pod annotated")
        }
        Outcome::Unchanged(why) => tracing::debug!("pod unchanged: {why}"),
    }
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        reply.body,
    )
        .into_response()
}

fn serde_error(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.view.ready() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first list of namespaces and BackupPolicies",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = app.metrics.render(&app.cert);
    if let Some(backup) = &app.backup {
        backup.render(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish (up to `grace`).
pub async fn serve(app: Arc<App>, listen: SocketAddr, grace: Duration) -> anyhow::Result<()> {
    let mut tls = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_cert_resolver(app.cert.clone());
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    app.cert.clone().watch();
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    // Registered before the address is printed: a SIGTERM from then on is a clean stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.graceful_shutdown(Some(grace));
    });
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    // The address actually bound (port 0 picks one): tests and scripts read this line.
    println!("listening on https://{bound}");
    tracing::info!("listening on https://{bound}");
    axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(tls)))?
        .handle(handle)
        .serve(router(app).into_make_service())
        .await
        .context("serving HTTPS")
}
