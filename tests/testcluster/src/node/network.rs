//! The pods' network, made entirely of network namespaces the node creates itself.
//!
//! * The node's namespace holds a bridge `cbr0` (10.244.0.1/16, the pods' gateway) and the
//!   `kubernetes` Service's clusterIP 10.96.0.1 on its loopback, where a forwarder hands
//!   connections to the API server on the host's 127.0.0.1.
//! * Every pod gets its own namespace (loopback up, `eth0` = one end of a veth pair whose
//!   other end is on the bridge, its pod IP, a default route via the bridge), so replicas
//!   can listen on one port and be told apart by address.
//! * Host ports the test declares (a test S3 server) are forwarded into each pod's namespace
//!   at 127.0.0.1:PORT, so one endpoint URL works on the host and in pods; pods never see
//!   the host's loopback itself.
//!
//! Nothing is added to the machine's own namespace and nothing routes out of the node's:
//! the cluster (host side) reaches pod IPs with sockets created by a thread that entered
//! the node's namespace. Namespaces live as long as the open file that names them (and
//! the processes inside), so a killed cluster leaves none behind.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use nix::sched::CloneFlags;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// The pods' gateway, on the node's bridge.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
/// The `kubernetes` Service's clusterIP, where pods reach the API server.
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The `kubernetes` Service's port.
pub const API_SERVICE_PORT: u16 = 443;
const BRIDGE: &str = "cbr0";

/// Runs `f` on a fresh thread that entered the network namespace `ns`: sockets it creates
/// belong to that namespace for their whole life. The thread ends with `f`, so no pooled
/// thread is ever left in another namespace.
fn in_netns<T: Send>(ns: &File, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a network namespace thread panicked")))
    })
}

/// A new, empty network namespace, held by the returned file.
fn new_netns() -> io::Result<File> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                File::open("/proc/thread-self/ns/net")
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a network namespace thread panicked")))
    })
}

/// A path other processes (`nsenter`, `ip`) can open to reach the namespace `ns`.
fn path_of(ns: &File) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        ns.as_raw_fd()
    ))
}

/// Runs `ip -batch -` with `commands` inside the namespace at `ns`.
fn ip_batch(ns: &File, commands: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("/usr/bin/nsenter")
        .arg(format!("--net={}", path_of(ns).display()))
        .args(["--", "ip", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nsenter ip (util-linux and iproute2 are needed for pod networks)")?;
    child
        .stdin
        .take()
        .context("the stdin of ip")?
        .write_all(commands.as_bytes())
        .context("writing to ip")?;
    let out = child.wait_with_output().context("waiting for ip")?;
    anyhow::ensure!(
        out.status.success(),
        "ip -batch failed ({}) on:\n{commands}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A listening socket bound to `addr` inside the namespace `ns`.
fn listen_in(ns: &File, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    in_netns(ns, || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
}

/// Connects to `addr` from inside the namespace `ns`.
async fn connect_in(ns: &File, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = in_netns(ns, || match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    })?;
    tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "i/o timeout"))?
}

/// Accepts connections on `listener` and relays each to `target` in the host's namespace,
/// until `cancel`, on the forwarders' own runtime: callers run in whatever context a
/// controller or a pod start happens in, and a forwarder registered with a short-lived
/// runtime would stop accepting (pods' API connections then hang).
fn forward(
    rt: &tokio::runtime::Handle,
    listener: std::net::TcpListener,
    target: SocketAddr,
    cancel: CancellationToken,
) {
    let _entered = rt.enter();
    let Ok(listener) = TcpListener::from_std(listener) else {
        tracing::warn!("cannot serve a forwarder to {target}");
        return;
    };
    rt.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut inbound, _)) = accepted else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// The node's network: its namespace, the bridge, and what is forwarded.
pub struct Network {
    ns: File,
    api: SocketAddr,
    api_listener: Mutex<Option<std::net::TcpListener>>,
    host_ports: Mutex<Vec<u16>>,
    next_veth: AtomicU32,
    started: AtomicBool,
    cancel: CancellationToken,
    /// Where every forwarder runs (one thread), whatever thread asks for one.
    forwarders: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Drop for Network {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(rt) = self
            .forwarders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }
}

impl Network {
    /// Creates the node's namespace with its bridge and the API server's Service address,
    /// forwarding to the API server at `api` (on the host's loopback).
    pub fn create(api: SocketAddr, host_ports: &[u16]) -> anyhow::Result<Network> {
        let ns = new_netns().context(
            "creating the node's network namespace (needs root or CAP_SYS_ADMIN; start the cluster without the node otherwise)",
        )?;
        ip_batch(
            &ns,
            &format!(
                "link set lo up\nlink add {BRIDGE} type bridge\naddr add {GATEWAY}/16 dev {BRIDGE}\nlink set {BRIDGE} up\naddr add {API_SERVICE_IP}/32 dev lo\n"
            ),
        )
        .context("setting up the node's bridge (the kernel needs bridge and veth support)")?;
        let listener = listen_in(&ns, SocketAddr::from((API_SERVICE_IP, API_SERVICE_PORT)))
            .context("listening on the kubernetes Service address in the node's namespace")?;
        let forwarders = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("node-forwarder")
            .enable_all()
            .build()
            .context("starting the node's forwarders")?;
        let network = Network {
            ns,
            api,
            api_listener: Mutex::new(Some(listener)),
            host_ports: Mutex::new(host_ports.to_vec()),
            next_veth: AtomicU32::new(0),
            started: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            forwarders: Mutex::new(Some(forwarders)),
        };
        // The forwarders have their own runtime: the API is reachable from pods at once.
        network.start();
        Ok(network)
    }

    /// Starts the API server's forwarder (once).
    pub fn start(&self) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let listener = self
            .api_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(l), Some(rt)) = (listener, self.forwarders_handle()) {
            forward(&rt, l, self.api, self.cancel.clone());
        }
    }

    /// Forwards 127.0.0.1:`port` of pods started from now on to the host's 127.0.0.1:`port`.
    pub fn forward_host_port(&self, port: u16) {
        let mut ports = self.host_ports.lock().unwrap_or_else(|p| p.into_inner());
        if !ports.contains(&port) {
            ports.push(port);
        }
    }

    /// Gives a pod its namespace, `eth0` with `ip` on the bridge, and the host forwards.
    pub fn attach_pod(&self, ip: Ipv4Addr, cancel: CancellationToken) -> anyhow::Result<PodNet> {
        let ns = new_netns().context("creating the pod's network namespace")?;
        let veth = format!("veth{:08x}", self.next_veth.fetch_add(1, Ordering::Relaxed));
        ip_batch(
            &self.ns,
            &format!(
                "link add {veth} type veth peer name eth0 netns {}\nlink set {veth} master {BRIDGE}\nlink set {veth} up\n",
                path_of(&ns).display()
            ),
        )
        .context("connecting the pod to the node's bridge")?;
        ip_batch(
            &ns,
            &format!(
                "link set lo up\naddr add {ip}/16 dev eth0\nlink set eth0 up\nroute add default via {GATEWAY}\n"
            ),
        )
        .context("configuring the pod's interfaces")?;
        let ports = self
            .host_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for port in ports {
            let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let listener = listen_in(&ns, at)
                .with_context(|| format!("forwarding host port {port} into the pod"))?;
            let rt = self
                .forwarders_handle()
                .context("the node's forwarders are stopped")?;
            forward(&rt, listener, at, cancel.clone());
        }
        Ok(PodNet { ns, ip, cancel })
    }

    fn forwarders_handle(&self) -> Option<tokio::runtime::Handle> {
        self.forwarders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|rt| rt.handle().clone())
    }

    /// Connects to an address in the pod network (a pod IP), as the node does.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        connect_in(&self.ns, addr, timeout).await
    }
}

/// A pod's network namespace; dropping it stops the pod's forwarders.
pub struct PodNet {
    ns: File,
    /// The pod IP.
    pub ip: Ipv4Addr,
    cancel: CancellationToken,
}

impl PodNet {
    /// A path `nsenter --net=` can enter.
    pub fn path(&self) -> PathBuf {
        path_of(&self.ns)
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Connects through `network` when there is one (pod IPs), else directly (host-network
/// pods listen on the host's loopback).
pub async fn connect(
    network: Option<&Arc<Network>>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    match network {
        Some(n) if !addr.ip().is_loopback() => n.connect(addr, timeout).await,
        _ => tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "i/o timeout"))?,
    }
}

/// The IPv4 address of a pod IP string.
pub fn pod_addr(ip: &str, port: u16) -> Option<SocketAddr> {
    ip.parse::<Ipv4Addr>()
        .ok()
        .map(|ip| SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

/// The cluster's Services as kube-apiserver reaches them for webhooks: a ready endpoint
/// from the EndpointSlices, dialled from the node.
pub struct InClusterServices {
    /// The API (weak: the API holds this resolver).
    pub api: Weak<crate::Api>,
    /// The node's network.
    pub network: Arc<Network>,
}

impl crate::admission::ClusterServices for InClusterServices {
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Result<SocketAddr, String> {
        let api = self
            .api
            .upgrade()
            .ok_or_else(|| "the API server is shutting down".to_string())?;
        let (ip, port) = crate::endpoints::resolve(&api, namespace, name, port)?;
        pod_addr(&ip, port).ok_or_else(|| format!("endpoint address {ip:?} is not IPv4"))
    }

    fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'static, io::Result<TcpStream>> {
        let network = self.network.clone();
        Box::pin(async move { connect(Some(&network), addr, timeout).await })
    }
}
