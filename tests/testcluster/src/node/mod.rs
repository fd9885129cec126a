//! The test cluster's nodes, `testnode` (and `testnode-2`… with [`NodeOptions::nodes`]):
//! they really run pods, all on this machine; a pod's node is bookkeeping, but the
//! scheduler, volume node affinity and attachment rules treat the nodes as separate.
//!
//! * storage: StorageClasses `local` (default) and `local-fast` binding on first consumer,
//!   `network` binding at once; PVs whose data is a directory under the node's state
//!   directory, reclaim policies, protection finalizers, CSI snapshots
//!   (`snapshot.storage.k8s.io/v1`) taken as directory copies;
//! * workloads: a scheduler (taints, tolerations, node affinity, pod (anti-)affinity, volume
//!   binding), Deployments (through ReplicaSets), StatefulSets (with their claims),
//!   DaemonSets and Jobs create their pods;
//! * the kubelet: pods whose image matches an [`ImageMapping`] run that local binary in a
//!   private mount namespace with their volumes, env and termination message; other pods
//!   are Running/Ready without a process; `pods/exec` (WebSocket) and `pods/log`.
//!
//! * the network: each pod in its own network namespace with its own IP on the node's
//!   bridge; the API server and declared host ports reached through the node
//!   (`network.rs`); readiness and liveness probes (`probes.rs`).
//!
//! Needs Linux mount and network namespaces, so root (or CAP_SYS_ADMIN), overlayfs,
//! util-linux (`unshare`, `nsenter`, `setpriv`), iproute2 (`ip`) and the kernel's bridge and
//! veth drivers.
//!
//! ```no_run
//! use vbackup_testcluster::node::{ImageMapping, NodeOptions};
//! use vbackup_testcluster::{ClusterOptions, TestCluster};
//!
//! let cluster = TestCluster::start_with(ClusterOptions {
//!     node: Some(NodeOptions {
//!         // Pods of ghcr.io/vbackup/mover:* run this binary with their command[1..] + args.
//!         image_map: vec![ImageMapping::parse("ghcr.io/vbackup/mover=/usr/local/bin/kubectl-vbackup").unwrap()],
//!         snapshot_crds: true,
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! })
//! .unwrap();
//! let data = cluster.node().unwrap().claim_dir("default", "data"); // a bound claim's files
//! ```

mod attach;
mod cronjobs;
mod events;
mod exec;
mod images;
mod kubelet;
mod logfile;
mod logs;
pub mod network;
mod nodeobject;
pub mod objects;
mod podenv;
mod probes;
pub mod sandbox;
mod scheduler;
mod security;
mod service_env;
mod snapshots;
mod storage;
mod usage;
mod volumes;
mod workloads;

use crate::api::{Api, Change};
use crate::connect::{ConnectFuture, ConnectHandler, ConnectRequest};
use crate::controllers::Controller;
use crate::error::ApiError;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

pub use snapshots::{NEVER_READY_PARAMETER, READY_AFTER_PARAMETER, install_snapshot_crds};
pub use storage::DRIVER;
pub use usage::ContainerUsage;

/// The first node's name; the others are `testnode-2`, `testnode-3`…
pub const NODE_NAME: &str = "testnode";

/// The name of the `i`th node (from 0).
pub fn node_name(i: usize) -> String {
    if i == 0 {
        NODE_NAME.to_string()
    } else {
        format!("{NODE_NAME}-{}", i + 1)
    }
}

/// Runs pods of images starting with `prefix` as the local executable `binary`: the image's
/// entrypoint becomes `binary`, the container's `command[1..]` and `args` its arguments.
/// Where `binary` is a directory, it stands for the image's filesystem: `command[0]` (or
/// `args[0]`) names the program in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMapping {
    /// Image prefix, e.g. `ghcr.io/vbackup/mover` (matches `...:tag` and `...@sha256:`).
    pub prefix: String,
    /// Absolute path of the local executable, or of a directory of executables.
    pub binary: PathBuf,
}

impl ImageMapping {
    /// Parses `IMAGE_PREFIX=LOCAL_BINARY` (or `=DIRECTORY`), checking that it exists.
    pub fn parse(spec: &str) -> anyhow::Result<ImageMapping> {
        let (prefix, binary) = spec.split_once('=').with_context(|| {
            format!(
                "--image-map {spec:?}: expected IMAGE_PREFIX=LOCAL_BINARY, e.g. busybox=/bin/sh"
            )
        })?;
        anyhow::ensure!(
            !prefix.is_empty(),
            "--image-map {spec:?}: the image prefix is empty; give the start of an image name"
        );
        let binary = std::fs::canonicalize(binary).with_context(|| {
            format!(
                "--image-map {spec:?}: {binary} does not exist; give the path of a local executable"
            )
        })?;
        anyhow::ensure!(
            binary.is_file() || binary.is_dir(),
            "--image-map {spec:?}: {} is neither a file nor a directory; give the path of a local executable or of a directory of executables",
            binary.display()
        );
        Ok(ImageMapping {
            prefix: prefix.to_string(),
            binary,
        })
    }
}

/// Fails early, with what to do, where pods could not get their own mount namespace.
fn check_namespaces() -> anyhow::Result<()> {
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--uts", "--propagation", "private", "true"])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => anyhow::bail!(
            "the test node cannot create Linux mount namespaces ({}); run as root (or with CAP_SYS_ADMIN), or start the cluster without the node",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => anyhow::bail!(
            "the test node needs util-linux `unshare` ({e}); install util-linux, or start the cluster without the node"
        ),
    }
}

/// The binary an image runs as: the longest matching prefix wins.
pub fn mapped_binary<'a>(map: &'a [ImageMapping], image: &str) -> Option<&'a Path> {
    map.iter()
        .filter(|m| image.starts_with(&m.prefix))
        .max_by_key(|m| m.prefix.len())
        .map(|m| m.binary.as_path())
}

/// How to run the node.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Where volume data, snapshots, pod directories and logs go; `node/` under the
    /// cluster's state directory by default, else a temporary directory.
    pub state_dir: Option<PathBuf>,
    /// Images that really run, as local binaries.
    pub image_map: Vec<ImageMapping>,
    /// Install the `snapshot.storage.k8s.io/v1` CRDs and a default VolumeSnapshotClass.
    pub snapshot_crds: bool,
    /// How many nodes (0 or 1: just `testnode`).
    pub nodes: usize,
    /// Image prefixes whose pulls fail (`ErrImagePull`, then `ImagePullBackOff`).
    pub unpullable_images: Vec<String>,
    /// Ports of the host's 127.0.0.1 (a test S3 server) that pods reach at their own
    /// 127.0.0.1:PORT; more with [`Node::forward_host_port`].
    pub forward_host_ports: Vec<u16>,
}

/// The running node: a controller (scheduler, storage, workloads, kubelet) plus the
/// `pods/exec` and `pods/log` endpoints.
pub struct Node {
    api: Arc<Api>,
    dir: PathBuf,
    images: Vec<ImageMapping>,
    unpullable: Vec<String>,
    snapshot_crds: bool,
    /// The nodes' names, `testnode` first.
    names: Vec<String>,
    kubelet: kubelet::Kubelet,
    _tempdir: Option<tempfile::TempDir>,
    me: Weak<Node>,
    service: Service,
    network: Arc<network::Network>,
    cron_started: std::sync::atomic::AtomicBool,
}

/// How pods reach the API server (the `kubernetes` service): in-cluster clients read
/// `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's token and `ca.crt`.
#[derive(Debug, Clone)]
pub struct Service {
    /// Host: the `kubernetes` Service's clusterIP.
    pub host: String,
    /// Port.
    pub port: String,
    /// The CA when the cluster serves TLS.
    pub ca_pem: Option<String>,
}

impl Node {
    /// Prepares the node over `api` served at `url`; it acts once spawned as a controller.
    pub fn new(
        api: &Arc<Api>,
        opts: NodeOptions,
        cluster_state: Option<&Path>,
        url: &str,
        ca_pem: Option<&str>,
    ) -> anyhow::Result<Arc<Node>> {
        let (tempdir, dir) = match (opts.state_dir, cluster_state) {
            (Some(d), _) => (None, d),
            (None, Some(c)) => (None, c.join("node")),
            (None, None) => {
                let t = tempfile::Builder::new()
                    .prefix("vbackup-testnode-")
                    .tempdir()
                    .context("creating the node's state directory")?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        check_namespaces()?;
        for sub in ["volumes", "snapshots", "pods", "rootfs"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let dir =
            std::fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
        let api_addr = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("the API server's address in {url}"))?;
        let network = Arc::new(network::Network::create(
            api_addr,
            &opts.forward_host_ports,
        )?);
        api.service_endpoints()
            .set_cluster(Arc::new(network::InClusterServices {
                api: Arc::downgrade(api),
                network: network.clone(),
            }));
        Ok(Arc::new_cyclic(|me| Node {
            me: me.clone(),
            // Pods reach the API server as on a real cluster: the `kubernetes` Service.
            service: Service {
                host: network::API_SERVICE_IP.to_string(),
                port: network::API_SERVICE_PORT.to_string(),
                ca_pem: ca_pem.map(str::to_string),
            },
            network,
            cron_started: std::sync::atomic::AtomicBool::new(false),
            api: api.clone(),
            kubelet: kubelet::Kubelet::new(&dir),
            dir,
            images: opts.image_map,
            unpullable: opts.unpullable_images,
            snapshot_crds: opts.snapshot_crds,
            names: (0..opts.nodes.max(1)).map(node_name).collect(),
            _tempdir: tempdir,
        }))
    }

    /// CronJobs run on a clock, not on changes: one ticker per node.
    fn start_cron(&self) {
        if self
            .cron_started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let Some(node) = me.upgrade() else {
                    return;
                };
                cronjobs::tick(&node, jiff::Timestamp::now());
            }
        });
    }

    /// Forwards 127.0.0.1:`port` of pods started from now on to the host's 127.0.0.1:`port`
    /// (a test S3 server), so one endpoint URL works on the host and in pods.
    pub fn forward_host_port(&self, port: u16) {
        self.network.forward_host_port(port);
    }

    /// Connects to an address of the pod network (a pod IP) from the node, as a test's
    /// client outside the cluster would through a node.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
    ) -> std::io::Result<tokio::net::TcpStream> {
        self.network.connect(addr, timeout).await
    }

    /// The node's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until what the node installs is served: the snapshot CRDs established and
    /// their default class created (a cluster that comes with them, as test clusters do).
    pub fn wait_installed(&self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while self.snapshot_crds && !snapshots::default_class_exists(&self.api) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the snapshot CRDs were not established within {timeout:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// The nodes' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// CPU time and peak memory of the containers that exited by themselves on the nodes
    /// (the last 1,024, oldest first); containers the node stopped are not measured.
    pub fn container_usage(&self) -> Vec<ContainerUsage> {
        self.kubelet.usage.all()
    }

    /// The data directory of a bound claim, if bound.
    pub fn claim_dir(&self, namespace: &str, claim: &str) -> Option<PathBuf> {
        storage::claim_dir(self, namespace, claim)
    }
}

/// The node serves `pods/exec` and `pods/log`.
impl ConnectHandler for Node {
    fn handles(&self, group: &str, plural: &str, subresource: &str) -> bool {
        group.is_empty() && plural == "pods" && matches!(subresource, "exec" | "log")
    }

    fn handle(&self, _api: Arc<Api>, request: ConnectRequest) -> ConnectFuture {
        let Some(node) = self.me.upgrade() else {
            let gone = ApiError::new(503, "ServiceUnavailable", "the node is shutting down");
            return Box::pin(async move { crate::server::error_response(&gone) });
        };
        Box::pin(async move {
            let ns = request.namespace.unwrap_or_default();
            match request.subresource.as_str() {
                "exec" => exec::handle(node, &ns, &request.name, request.request).await,
                _ => logs::handle(node, &ns, &request.name, request.request.uri()).await,
            }
        })
    }
}

impl Controller for Node {
    fn name(&self) -> &'static str {
        "testnode"
    }

    fn on_change(&self, _api: &Arc<Api>, change: &Change) {
        let k = &change.key;
        match (k.group.as_str(), k.resource.as_str()) {
            ("", "pods") => {
                kubelet::on_change(self, change);
                workloads::on_owned_change(self, &change.object);
                // A finished or deleted pod may free a claim (protection, attachment).
                let finished = |p: &serde_json::Value| {
                    matches!(objects::s(p, "/status/phase"), "Succeeded" | "Failed")
                };
                let was_finished = change.old.as_ref().is_some_and(finished);
                if change.type_ == crate::api::ChangeType::Deleted
                    || (finished(&change.object) && !was_finished)
                {
                    kubelet::retry_waiting_everywhere(self);
                }
            }
            ("", "persistentvolumeclaims") => {
                storage::on_claim_change(self, change);
                kubelet::retry_waiting(self, &k.namespace);
                snapshots::reconcile_namespace(self, &k.namespace);
            }
            ("", "persistentvolumes") | ("storage.k8s.io", "storageclasses") => {
                storage::reconcile_all(self);
            }
            ("", "configmaps" | "secrets") => kubelet::retry_waiting(self, &k.namespace),
            // A controller refused for a missing ServiceAccount tries again once it exists.
            ("", "serviceaccounts") => workloads::reconcile_all(self),
            // A new node label may let a pending pod's nodeSelector fit.
            ("", "nodes") => kubelet::reconcile_all(self),
            ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
            | ("batch", "jobs") => {
                workloads::on_change(self, change);
            }
            ("snapshot.storage.k8s.io", _) => {
                snapshots::on_change(self, change);
                storage::reconcile_namespace(self, &k.namespace);
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                // The default VolumeSnapshotClass once the CRDs are established.
                if self.snapshot_crds {
                    install_snapshot_crds(&self.api);
                }
                snapshots::reconcile_all(self);
            }
            _ => {}
        }
    }

    fn resync(&self, _api: &Arc<Api>) {
        self.start_cron();
        self.network.start();
        nodeobject::ensure(self);
        storage::ensure_classes(self);
        if self.snapshot_crds {
            install_snapshot_crds(&self.api);
        }
        storage::reconcile_all(self);
        snapshots::reconcile_all(self);
        workloads::reconcile_all(self);
        kubelet::reconcile_all(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_image_prefix_wins() {
        let map = vec![
            ImageMapping {
                prefix: "busybox".into(),
                binary: "/bin/sh".into(),
            },
            ImageMapping {
                prefix: "busybox:1.36".into(),
                binary: "/bin/true".into(),
            },
        ];
        assert_eq!(
            mapped_binary(&map, "busybox:1.36"),
            Some(Path::new("/bin/true"))
        );
        assert_eq!(
            mapped_binary(&map, "busybox:1.35"),
            Some(Path::new("/bin/sh"))
        );
        assert_eq!(mapped_binary(&map, "nginx"), None);
    }

    #[test]
    fn image_map_spec_needs_an_existing_binary() {
        let err = ImageMapping::parse("mover=/no/such/binary").unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
        assert!(ImageMapping::parse("no-equals-sign").is_err());
        assert_eq!(
            ImageMapping::parse("busybox=/bin/sh").unwrap().prefix,
            "busybox"
        );
    }
}
