//! `vbackup-testcluster`: serves a test Kubernetes API until killed.

use anyhow::Context;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};
use vbackup_testcluster::{ClusterOptions, ServiceEndpoints, TestCluster};

/// A faithful Kubernetes API server for tests and the demo. Prints its URL, writes a
/// kubeconfig and serves until killed.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory keeping the objects, so a restart keeps them (in memory if omitted).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Where to write the kubeconfig (required: clients need it).
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Serve HTTPS with a generated CA (put in the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Route a webhook's `clientConfig.service` to a local address: NS/NAME=127.0.0.1:PORT.
    #[arg(long = "service-endpoint", value_name = "NS/NAME=IP:PORT")]
    service_endpoints: Vec<String>,
    /// Run the node `testnode`: pods, volumes, snapshots, exec and logs (needs root for
    /// Linux mount namespaces).
    #[arg(long)]
    node: bool,
    /// Run pods whose image starts with IMAGE_PREFIX as the local binary (implies --node).
    #[arg(long = "image-map", value_name = "IMAGE_PREFIX=LOCAL_BINARY")]
    image_map: Vec<String>,
    /// Install the snapshot.storage.k8s.io/v1 CRDs and a default VolumeSnapshotClass
    /// (implies --node).
    #[arg(long)]
    snapshot_crds: bool,
    /// How many nodes: testnode, testnode-2… (implies --node when above 1).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Make the host's 127.0.0.1:PORT (an S3 server) reachable from every pod at its own
    /// 127.0.0.1:PORT, so one endpoint URL works on both sides (implies --node).
    #[arg(long = "forward-host-port", value_name = "PORT")]
    forward_host_ports: Vec<u16>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut endpoints = ServiceEndpoints::default();
    for spec in &args.service_endpoints {
        let (ns, name, addr) = ServiceEndpoints::parse(spec).map_err(anyhow::Error::msg)?;
        endpoints.insert(&ns, &name, addr);
    }
    let image_map = args
        .image_map
        .iter()
        .map(|m| ImageMapping::parse(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let enabled = args.node
        || args.snapshot_crds
        || !image_map.is_empty()
        || args.nodes > 1
        || !args.forward_host_ports.is_empty();
    let node = enabled.then_some(NodeOptions {
        state_dir: None,
        image_map,
        snapshot_crds: args.snapshot_crds,
        nodes: args.nodes,
        forward_host_ports: args.forward_host_ports,
    });
    let cluster = TestCluster::start_with(ClusterOptions {
        port: args.port,
        state_dir: args.state_dir,
        kubeconfig_out: Some(args.kubeconfig_out),
        tls: args.tls,
        service_endpoints: endpoints,
        controllers: Vec::new(),
        connect_handlers: Vec::new(),
        node,
    })?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", cluster.url())?;
    out.flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    cluster.stop();
    Ok(())
}
