//! Builds the `kube::Client` every command uses: kubeconfig, context, or in-cluster.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::{Error, Result};

/// How to reach the cluster, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// A kubeconfig file; `$KUBECONFIG` or `~/.kube/config` (or in-cluster) when unset.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of the current one.
    pub context: Option<String>,
}

/// Builds a client from the options; installs the process-wide TLS provider first.
pub async fn connect(opts: &ClusterOptions) -> Result<Client> {
    install_crypto_provider();
    let kube_opts = KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let config = match &opts.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                Error::BadInput(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &kube_opts)
                .await
                .map_err(config_error)?
        }
        None if opts.context.is_some() => Config::from_kubeconfig(&kube_opts)
            .await
            .map_err(config_error)?,
        None => Config::infer().await.map_err(config_error)?,
    };
    Client::try_from(config).map_err(Error::kube("cannot build the Kubernetes client"))
}

fn config_error(e: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("cannot load the cluster configuration: {e}"))
}

/// Makes rustls use aws-lc-rs; without it rustls panics when two providers are linked.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
