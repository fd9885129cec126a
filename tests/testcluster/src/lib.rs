//! A faithful Kubernetes API server for vbackup's tests and demo.
//!
//! ```no_run
//! let cluster = vbackup_testcluster::TestCluster::start().unwrap();
//! std::process::Command::new("kubectl")
//!     .arg("--kubeconfig").arg(cluster.kubeconfig_path())
//!     .args(["get", "namespaces"])
//!     .status()
//!     .unwrap();
//! ```
//!
//! The server runs on its own thread and runtime, so it works from synchronous tests and
//! from any async runtime alike; it stops when the [`TestCluster`] is dropped or stopped.

pub mod admission;
pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod connect;
pub mod controllers;
pub mod conversion;
pub mod crd_establish;
pub mod crd_schema;
pub mod cron;
pub mod defaults;
pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod ids;
pub mod immutability;
pub mod kubeconfig;
pub mod listtypes;
pub mod managed_fields;
pub mod node;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod pruning;
pub mod registry;
pub mod resources;
pub mod reviews;
pub mod scale;
pub mod schema_validation;
pub mod selectors;
pub mod server;
pub mod services;
pub mod storage_protection;
pub mod store;
pub mod tables;
pub mod time;
pub mod tls;
pub mod validation;
pub mod warnings;
pub mod watch;

use anyhow::Context;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use admission::ServiceEndpoints;
pub use api::Api;
pub use controllers::Controller;

/// How to start a cluster.
#[derive(Default)]
pub struct ClusterOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Keep objects in this directory (a restart keeps them); in memory when `None`.
    pub state_dir: Option<PathBuf>,
    /// Write the kubeconfig here; a temporary file owned by the cluster when `None`.
    pub kubeconfig_out: Option<PathBuf>,
    /// Serve HTTPS with a generated CA (placed in the kubeconfig).
    pub tls: bool,
    /// Where admission webhooks' `clientConfig.service` references go.
    pub service_endpoints: ServiceEndpoints,
    /// Controllers run besides the built-in ones.
    pub controllers: Vec<Arc<dyn Controller>>,
    /// Handlers of connect subresources (`pods/log`, `pods/exec`...).
    pub connect_handlers: Vec<Arc<dyn connect::ConnectHandler>>,
    /// Run the node `testnode` (pods, volumes, snapshots, exec, logs); needs root.
    pub node: Option<node::NodeOptions>,
}

/// A running test cluster.
pub struct TestCluster {
    url: String,
    kubeconfig_path: PathBuf,
    kubeconfig: String,
    ca_pem: Option<String>,
    api: Arc<Api>,
    shutdown: CancellationToken,
    node: Option<Arc<node::Node>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _tempdir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// Starts a cluster over plain HTTP on a free port, in memory.
    pub fn start() -> anyhow::Result<TestCluster> {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with options.
    pub fn start_with(opts: ClusterOptions) -> anyhow::Result<TestCluster> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = TcpListener::bind(("127.0.0.1", opts.port)).with_context(|| {
            format!(
                "binding 127.0.0.1:{}; choose another --port or 0",
                opts.port
            )
        })?;
        let addr = listener.local_addr()?;
        let tls = if opts.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let kubeconfig = kubeconfig::render(&url, ca_pem.as_deref())?;
        let (tempdir, kubeconfig_path) = match &opts.kubeconfig_out {
            Some(p) => (None, p.clone()),
            None => {
                let dir = tempfile::tempdir().context("creating a directory for the kubeconfig")?;
                let p = dir.path().join("kubeconfig");
                (Some(dir), p)
            }
        };
        if let Some(parent) = kubeconfig_path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&kubeconfig_path, &kubeconfig)
            .with_context(|| format!("writing the kubeconfig to {}", kubeconfig_path.display()))?;
        let api = Api::open(opts.state_dir.as_deref(), opts.service_endpoints.clone())?;
        let shutdown = CancellationToken::new();
        let node = match opts.node {
            Some(n) => Some(node::Node::new(
                &api,
                n,
                opts.state_dir.as_deref(),
                &url,
                ca_pem.as_deref(),
            )?),
            None => None,
        };
        let mut connect_handlers = opts.connect_handlers;
        if let Some(n) = &node {
            connect_handlers.push(n.clone() as Arc<dyn connect::ConnectHandler>);
        }
        let state = Arc::new(server::AppState {
            api: api.clone(),
            shutdown: shutdown.clone(),
            address: addr.to_string(),
            connect_handlers,
            tls: opts.tls,
        });
        let mut controllers = controllers::builtin(ca_pem.clone());
        controllers.push(Arc::new(auth::aggregation::ClusterRoleAggregation));
        controllers.extend(opts.controllers);
        if let Some(n) = &node {
            controllers.push(n.clone() as Arc<dyn Controller>);
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let token = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("vbackup-testcluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    controllers::spawn(&state.api, controllers, &token);
                    let result = serve(state, listener, tls, token, ready_tx.clone()).await;
                    if let Err(e) = result {
                        let _ = ready_tx.send(Err(e));
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => anyhow::bail!("the test cluster thread ended before serving"),
        }
        let cluster = TestCluster {
            url,
            kubeconfig_path,
            kubeconfig,
            ca_pem,
            api,
            shutdown,
            node,
            thread: Some(thread),
            _tempdir: tempdir,
        };
        // Dropping the cluster on failure stops its thread.
        if let Some(n) = &cluster.node {
            n.wait_installed(Duration::from_secs(60))?;
        }
        Ok(cluster)
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Path of the written kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The kubeconfig's YAML.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Direct access to the API's state (for controllers and white-box checks).
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// The node, when started with [`ClusterOptions::node`].
    pub fn node(&self) -> Option<&Arc<node::Node>> {
        self.node.as_ref()
    }

    /// Stops serving and waits for the server thread to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn serve(
    state: Arc<server::AppState>,
    listener: TcpListener,
    tls: Option<tls::TlsMaterial>,
    shutdown: CancellationToken,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let app = server::router(state);
    // Open connections (idle keep-alives, streaming watches) get a short grace period.
    let grace = {
        let s = shutdown.clone();
        async move {
            s.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let _ = ready.send(Ok(()));
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned());
            tokio::select! {
                r = server => r.context("serving HTTP")?,
                _ = grace => {}
            }
        }
        Some(t) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                t.cert_pem.into_bytes(),
                t.key_pem.into_bytes(),
            )
            .await
            .context("loading the generated TLS certificate")?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            let s = shutdown.clone();
            tokio::spawn(async move {
                s.cancelled().await;
                h.graceful_shutdown(Some(Duration::from_secs(1)));
            });
            let server = axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app.into_make_service());
            let _ = ready.send(Ok(()));
            tokio::select! {
                r = server => r.context("serving HTTPS")?,
                _ = grace => {}
            }
        }
    }
    Ok(())
}
