//! The kubelet of the cluster's nodes (all on this machine): prepares the volumes of the
//! pods the scheduler bound to them, runs containers whose image is mapped to a local binary
//! (init containers first, restart policy honoured), marks the others Running/Ready, and
//! reports pod status as the real kubelet does.

use super::network::{Network, PodNet};
use super::objects::{self, s};
use super::sandbox::{Bind, Sandbox};
use super::usage::{self, ContainerUsage, Ledger};
use super::volumes::{self, NotReady};
use super::{Node, mapped_binary};
use super::{images, logfile, podenv, probes, security};
use crate::api::{Api, Change, ChangeType};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "kubelet";

/// The last 80 lines / 2048 bytes of logs stand in for an empty termination message under
/// `FallbackToLogsOnError`, as in the kubelet.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;
const MESSAGE_BYTES: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A container's state, as `containerStatuses[].state` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    /// Not running yet (or waiting to restart).
    Waiting { reason: String, message: String },
    /// Running since.
    Running { started_at: String },
    /// Exited.
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl CState {
    fn waiting(reason: &str, message: &str) -> Self {
        CState::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn to_json(&self, id: &str) -> Value {
        match self {
            CState::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            CState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            CState::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at,
                    "finishedAt": finished_at, "containerID": format!("containerd://{id}")});
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// One container of a pod.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Container name.
    pub name: String,
    image: String,
    binary: Option<PathBuf>,
    init: bool,
    /// An init container with `restartPolicy: Always`: it keeps running beside the main
    /// containers, restarted whatever the pod's policy, and is stopped once they are done.
    sidecar: bool,
    /// Current state.
    pub state: CState,
    last: Option<CState>,
    restarts: u32,
    id: String,
    pgid: Option<u32>,
    /// The readiness probe's verdict for the current run (true without a probe).
    probed_ready: bool,
}

/// A pod the node runs.
pub struct PodRt {
    uid: String,
    ns: String,
    name: String,
    dir: PathBuf,
    ip: String,
    host_network: bool,
    net: Mutex<Option<PodNet>>,
    start_time: String,
    cancel: CancellationToken,
    /// The pod's containers.
    pub ctrs: Mutex<Vec<Ctr>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The grace period of a deletion (else the spec's `terminationGracePeriodSeconds`).
    grace: Mutex<Option<Duration>>,
    /// Process groups of `pods/exec` sessions, by container: they die with their container,
    /// as processes in a container's cgroup do.
    execs: Mutex<Vec<(String, u32)>>,
}

impl PodRt {
    /// A container by name.
    pub fn ctr(&self, name: &str) -> Option<Ctr> {
        lock(&self.ctrs).iter().find(|c| c.name == name).cloned()
    }

    fn grace_or(&self, spec: Duration) -> Duration {
        lock(&self.grace).unwrap_or(spec)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Ctr)) {
        if let Some(c) = lock(&self.ctrs).iter_mut().find(|c| c.name == name) {
            f(c);
        }
    }

    /// Notes the process group of a `pods/exec` session in `container`.
    pub fn add_exec(&self, container: &str, pgid: u32) {
        lock(&self.execs).push((container.to_string(), pgid));
    }

    /// Forgets an ended `pods/exec` session.
    pub fn remove_exec(&self, pgid: u32) {
        lock(&self.execs).retain(|(_, p)| *p != pgid);
    }

    /// Kills the `pods/exec` sessions of a container that stopped (all with `None`).
    fn kill_execs(&self, container: Option<&str>) {
        for (c, pgid) in lock(&self.execs).iter() {
            if container.is_none_or(|name| c.as_str() == name) {
                kill_group(*pgid);
            }
        }
    }
}

/// The node's pods and what their tasks share.
pub struct Kubelet {
    pods: Mutex<HashMap<String, Arc<PodRt>>>,
    /// Pods within their deletion grace period.
    stopping: Arc<Mutex<HashMap<String, Arc<PodRt>>>>,
    status_lock: Arc<Mutex<()>>,
    next_ip: AtomicU32,
    dir: PathBuf,
    /// What finished containers used.
    pub usage: Arc<Ledger>,
}

impl Kubelet {
    /// A kubelet keeping pod directories under `dir/pods`.
    pub fn new(dir: &Path) -> Self {
        Kubelet {
            pods: Mutex::new(HashMap::new()),
            stopping: Arc::new(Mutex::new(HashMap::new())),
            status_lock: Arc::new(Mutex::new(())),
            next_ip: AtomicU32::new(0),
            dir: dir.to_path_buf(),
            usage: Arc::default(),
        }
    }

    /// The runtime of a pod, by uid.
    pub fn pod(&self, uid: &str) -> Option<Arc<PodRt>> {
        lock(&self.pods).get(uid).cloned()
    }

    /// A pod's directory (logs, termination messages, per-pod volumes).
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.dir.join("pods").join(uid)
    }

    fn alloc_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.244.{}.{}", n / 250, n % 250 + 2)
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for rt in lock(&self.pods)
            .values()
            .chain(lock(&self.stopping).values())
        {
            kill_all(rt);
        }
    }
}

fn kill_group(pgid: u32) {
    signal_group(pgid, "KILL");
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Waits for a container's process to exit; its resource usage is read before it is reaped.
async fn wait_measured(
    child: &mut tokio::process::Child,
) -> (
    std::io::Result<std::process::ExitStatus>,
    Option<usage::Usage>,
) {
    let used = match child.id() {
        Some(pid) => usage::on_exit(pid)
            .await
            .inspect_err(|e| tracing::debug!("container process {pid}: no usage: {e}"))
            .ok(),
        None => None,
    };
    (child.wait().await, used)
}

/// Stops a container as the kubelet does: SIGTERM, then SIGKILL after the grace period.
async fn terminate(child: &mut tokio::process::Child, pgid: Option<u32>, grace: Duration) {
    if let Some(p) = pgid {
        signal_group(p, "TERM");
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        if let Some(p) = pgid {
            kill_group(p);
        }
        let _ = child.kill().await;
    } else if let Some(p) = pgid {
        kill_group(p);
    }
}

fn terminal(pod: &Value) -> bool {
    matches!(s(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Reacts to a pod's change.
pub fn on_change(node: &Node, change: &Change) {
    let pod = &change.object;
    if change.type_ == ChangeType::Deleted || objects::deleting(pod) {
        let uid = objects::uid(pod);
        if change.type_ == ChangeType::Deleted {
            // Gone (forced, or its grace period over): nothing of it may keep running.
            if let Some(rt) = lock(&node.kubelet.stopping).remove(uid) {
                kill_all(&rt);
            }
            stop(node, uid);
        } else if crate::graceful::is_graceful(pod) {
            stop_gracefully(node, pod);
        } else {
            stop(node, uid);
        }
        if change.type_ == ChangeType::Deleted {
            // A claim with ReadWriteOncePod may now be free for a waiting pod.
            retry_waiting(node, objects::namespace(pod));
        }
        return;
    }
    admit(node, pod.clone());
}

/// Retries the pods of a namespace that wait for claims, ConfigMaps or Secrets.
pub fn retry_waiting(node: &Node, ns: &str) {
    if ns.is_empty() {
        return;
    }
    for pod in objects::list(&node.api, "", "pods", Some(ns)) {
        if node.kubelet.pod(objects::uid(&pod)).is_none() && !objects::deleting(&pod) {
            admit(node, pod);
        }
    }
}

/// Retries every pod not running yet (a volume may have been detached elsewhere).
pub fn retry_waiting_everywhere(node: &Node) {
    for pod in objects::list(&node.api, "", "pods", None) {
        if node.kubelet.pod(objects::uid(&pod)).is_none() && !objects::deleting(&pod) {
            admit(node, pod);
        }
    }
}

/// Schedules and starts every pod; forgets pods that are gone.
pub fn reconcile_all(node: &Node) {
    let pods = objects::list(&node.api, "", "pods", None);
    let live: std::collections::HashSet<String> =
        pods.iter().map(|p| objects::uid(p).to_string()).collect();
    let known: Vec<String> = lock(&node.kubelet.pods).keys().cloned().collect();
    for uid in known.iter().filter(|u| !live.contains(*u)) {
        stop(node, uid);
    }
    for pod in pods {
        if !objects::deleting(&pod) {
            admit(node, pod);
        } else if crate::graceful::is_graceful(&pod) {
            stop_gracefully(node, &pod);
        }
    }
}

fn kill_all(rt: &PodRt) {
    rt.cancel.cancel();
    for c in lock(&rt.ctrs).iter() {
        if let Some(pgid) = c.pgid {
            kill_group(pgid);
        }
    }
    rt.kill_execs(None);
}

/// Stops a Terminating pod within its `deletionGracePeriodSeconds` (SIGTERM, then SIGKILL),
/// then deletes it for good.
fn stop_gracefully(node: &Node, pod: &Value) {
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or_default();
    let uid = objects::uid(pod).to_string();
    if lock(&node.kubelet.stopping).contains_key(&uid) {
        return;
    }
    let (ns, name) = (
        objects::namespace(pod).to_string(),
        objects::name(pod).to_string(),
    );
    let api = node.api.clone();
    let Some(rt) = lock(&node.kubelet.pods).remove(&uid) else {
        // Nothing runs (still waiting for volumes, or never admitted here).
        objects::delete_stopped_pod(&api, &ns, &name, &uid);
        return;
    };
    *lock(&rt.grace) = Some(grace);
    lock(&node.kubelet.stopping).insert(uid.clone(), rt.clone());
    rt.cancel.cancel();
    let task = lock(&rt.task).take();
    let stopping = node.kubelet.stopping.clone();
    tokio::spawn(async move {
        if let Some(t) = task {
            let _ = t.await;
        }
        lock(&stopping).remove(&uid);
        let _ = tokio::fs::remove_dir_all(&rt.dir).await;
        objects::delete_stopped_pod(&api, &ns, &name, &uid);
    });
}

fn stop(node: &Node, uid: &str) {
    let Some(rt) = lock(&node.kubelet.pods).remove(uid) else {
        return;
    };
    rt.cancel.cancel();
    let task = lock(&rt.task).take();
    let dir = rt.dir.clone();
    tokio::spawn(async move {
        if let Some(t) = task {
            let _ = t.await;
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
    });
}

fn admit(node: &Node, pod: Value) {
    if terminal(&pod) {
        return;
    }
    let Some(pod) = super::scheduler::schedule(node, pod) else {
        return;
    };
    start(node, &pod);
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, old: &Value) -> Value {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| s(c, "/type") == type_);
    let since = match previous {
        Some(p) if s(p, "/status") == status => p
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or(json!(crate::time::now())),
        _ => json!(crate::time::now()),
    };
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

fn write_status(api: &Api, mut pod: Value, status: Value) {
    if pod.get("status") == Some(&status) {
        return;
    }
    pod["status"] = status;
    let _ = objects::update_status(api, "", "pods", pod, MANAGER);
}

/// Marks a pod that the scheduler could not place: Pending, `PodScheduled=False`.
pub fn mark_unschedulable(node: &Node, pod: &Value, message: &str) {
    let _g = lock(&node.kubelet.status_lock);
    let Some(current) = current(node, pod) else {
        return;
    };
    let mut status = current.get("status").cloned().unwrap_or(json!({}));
    status["phase"] = json!("Pending");
    status["conditions"] = json!([condition(
        "PodScheduled",
        false,
        "Unschedulable",
        message,
        &current
    )]);
    write_status(&node.api, current, status);
}

/// What one container runs with.
#[derive(Clone)]
struct Plan {
    container: Value,
    binds: Vec<Bind>,
    /// `terminationGracePeriodSeconds`.
    grace: Duration,
}

fn containers(pod: &Value, key: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{key}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn start(node: &Node, pod: &Value) {
    let uid = objects::uid(pod).to_string();
    if node.kubelet.pod(&uid).is_some() {
        return;
    }
    if let Err(NotReady(why)) = super::attach::check(node, pod) {
        tracing::debug!("pod {}: {why}", objects::name(pod));
        waiting_for_volumes(node, pod);
        return;
    }
    let dir = node.kubelet.pod_dir(&uid);
    let volumes = match volumes::prepare(node, pod, &dir) {
        Ok(v) => v,
        Err(NotReady(why)) => {
            tracing::debug!(
                "pod {}/{}: {why}",
                objects::namespace(pod),
                objects::name(pod)
            );
            waiting_for_volumes(node, pod);
            return;
        }
    };
    let dirs = volumes
        .iter()
        .map(|(k, v)| (k.clone(), v.dir.clone()))
        .collect();
    if let Err(e) = security::apply_fs_group(&node.api, pod, &dirs) {
        tracing::warn!("pod {}: applying fsGroup: {e}", objects::name(pod));
    }
    let mut plans = Vec::new();
    let mut ctrs = Vec::new();
    for (key, init) in [("initContainers", true), ("containers", false)] {
        for c in containers(pod, key) {
            let binds = match volumes::container_binds(&c, &volumes) {
                Ok(b) => b,
                Err(NotReady(why)) => {
                    tracing::debug!("pod {}: {why}", objects::name(pod));
                    waiting_for_volumes(node, pod);
                    return;
                }
            };
            let image = s(&c, "/image").to_string();
            let binary = mapped_binary(&node.images, &image).map(Path::to_path_buf);
            ctrs.push(Ctr {
                name: s(&c, "/name").to_string(),
                probed_ready: !(binary.is_some() && probes::has_readiness_probe(&c)),
                binary,
                image,
                init,
                sidecar: init && s(&c, "/restartPolicy") == "Always",
                state: CState::waiting(
                    if init || !containers(pod, "initContainers").is_empty() {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    },
                    "",
                ),
                last: None,
                restarts: 0,
                id: crate::ids::uid().replace('-', ""),
                pgid: None,
            });
            let grace = pod
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30);
            plans.push(Plan {
                container: c,
                binds,
                grace: Duration::from_secs(grace),
            });
        }
    }
    let host_network = pod.pointer("/spec/hostNetwork") == Some(&json!(true));
    let rt = Arc::new(PodRt {
        uid: uid.clone(),
        ns: objects::namespace(pod).to_string(),
        name: objects::name(pod).to_string(),
        dir,
        // A hostNetwork pod's IP is its node's.
        ip: if host_network {
            "127.0.0.1".into()
        } else {
            node.kubelet.alloc_ip()
        },
        host_network,
        net: Mutex::new(None),
        start_time: crate::time::now(),
        cancel: CancellationToken::new(),
        ctrs: Mutex::new(ctrs),
        task: Mutex::new(None),
        grace: Mutex::new(None),
        execs: Mutex::new(Vec::new()),
    });
    lock(&node.kubelet.pods).insert(uid, rt.clone());
    let ctx = Ctx {
        api: node.api.clone(),
        status_lock: node.kubelet.status_lock.clone(),
        root: node.dir.join("rootfs"),
        service: node.service.clone(),
        unpullable: node.unpullable.clone(),
        network: node.network.clone(),
        usage: node.kubelet.usage.clone(),
    };
    let task = tokio::spawn(run_pod(ctx, rt.clone(), plans));
    *lock(&rt.task) = Some(task);
}

/// The stored version of a pod.
fn current(node: &Node, pod: &Value) -> Option<Value> {
    objects::get(
        &node.api,
        "",
        "pods",
        objects::namespace(pod),
        objects::name(pod),
    )
}

fn waiting_for_volumes(node: &Node, pod: &Value) {
    let _g = lock(&node.kubelet.status_lock);
    let Some(current) = current(node, pod) else {
        return;
    };
    let mut status = current.get("status").cloned().unwrap_or(json!({}));
    status["phase"] = json!("Pending");
    status["hostIP"] = json!("127.0.0.1");
    status["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", false, "", "", &current),
        condition("Initialized", true, "", "", &current),
        condition("Ready", false, "ContainersNotReady", "", &current),
        condition("ContainersReady", false, "ContainersNotReady", "", &current),
        condition("PodScheduled", true, "", "", &current),
    ]);
    let statuses: Vec<Value> = containers(&current, "containers")
        .iter()
        .map(|c| json!({"name": s(c, "/name"), "image": s(c, "/image"), "imageID": "", "ready": false,
            "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ContainerCreating"}}}))
        .collect();
    status["containerStatuses"] = json!(statuses);
    write_status(&node.api, current, status);
}

#[derive(Clone)]
struct Ctx {
    api: Arc<Api>,
    status_lock: Arc<Mutex<()>>,
    root: PathBuf,
    service: super::Service,
    unpullable: Vec<String>,
    network: Arc<Network>,
    usage: Arc<Ledger>,
}

fn ctr_status(c: &Ctr) -> Value {
    let running = matches!(c.state, CState::Running { .. });
    let ready = if c.init && !c.sidecar {
        matches!(c.state, CState::Terminated { exit_code: 0, .. })
    } else {
        running && c.probed_ready
    };
    let mut v = json!({
        "name": c.name, "image": c.image,
        "imageID": format!("{}@sha256:{:064x}", c.image.split(['@']).next().unwrap_or_default(), objects::fnv32a(c.image.as_bytes())),
        "containerID": format!("containerd://{}", c.id),
        "ready": ready, "started": running, "restartCount": c.restarts,
        "state": c.state.to_json(&c.id),
        "lastState": c.last.as_ref().map(|l| l.to_json(&c.id)).unwrap_or(json!({})),
    });
    if matches!(c.state, CState::Waiting { .. }) && c.restarts == 0 {
        if let Some(m) = v.as_object_mut() {
            m.remove("containerID");
        }
        v["imageID"] = json!("");
    }
    v
}

fn pod_status(rt: &PodRt, pod: &Value) -> Value {
    let ctrs = lock(&rt.ctrs).clone();
    let policy = match s(pod, "/spec/restartPolicy") {
        "" => "Always",
        p => p,
    };
    let inits: Vec<&Ctr> = ctrs.iter().filter(|c| c.init).collect();
    let mains: Vec<&Ctr> = ctrs.iter().filter(|c| !c.init).collect();
    let sidecars: Vec<&Ctr> = ctrs.iter().filter(|c| c.sidecar).collect();
    let ok = |c: &&Ctr| matches!(c.state, CState::Terminated { exit_code: 0, .. });
    let failed =
        |c: &&Ctr| matches!(c.state, CState::Terminated { exit_code, .. } if exit_code != 0);
    let running = |c: &&Ctr| matches!(c.state, CState::Running { .. });
    // A sidecar counts as initialised once it has started; a plain init container once it
    // has completed.
    let initialized = |c: &&Ctr| {
        if c.sidecar {
            !matches!(c.state, CState::Waiting { .. }) || c.restarts > 0
        } else {
            ok(c)
        }
    };
    let inits_done = inits.iter().all(initialized);
    // Sidecars are stopped once the main containers are done; the phase waits for them.
    let all_done = mains
        .iter()
        .all(|c| matches!(c.state, CState::Terminated { .. }))
        && !sidecars.iter().any(running);
    let phase = if !inits_done {
        if policy == "Never" && inits.iter().any(|c| !c.sidecar && failed(c)) {
            "Failed"
        } else {
            "Pending"
        }
    } else if all_done && policy != "Always" && !mains.is_empty() {
        if mains.iter().all(ok) {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else if mains.iter().any(|c| {
        matches!(c.state, CState::Running { .. })
            || c.restarts > 0
            || matches!(c.state, CState::Terminated { .. })
    }) {
        "Running"
    } else {
        "Pending"
    };
    // Sidecars' readiness counts toward the pod's, as the main containers' does.
    let unready: Vec<&str> = mains
        .iter()
        .chain(&sidecars)
        .filter(|c| !running(c) || !c.probed_ready)
        .map(|c| c.name.as_str())
        .collect();
    let uninit: Vec<&str> = inits
        .iter()
        .filter(|c| !initialized(c))
        .map(|c| c.name.as_str())
        .collect();
    let done = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_msg) = if done {
        ("PodCompleted", String::new())
    } else if unready.is_empty() {
        ("", String::new())
    } else {
        (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", unready.join(" ")),
        )
    };
    let ready = unready.is_empty() && !done;
    let mut conditions = vec![
        condition("PodReadyToStartContainers", !done, "", "", pod),
        if uninit.is_empty() {
            condition(
                "Initialized",
                true,
                if done && !inits.is_empty() {
                    "PodCompleted"
                } else {
                    ""
                },
                "",
                pod,
            )
        } else {
            condition(
                "Initialized",
                false,
                "ContainersNotInitialized",
                &format!("containers with incomplete status: [{}]", uninit.join(" ")),
                pod,
            )
        },
        condition("Ready", ready, ready_reason, &ready_msg, pod),
        condition("ContainersReady", ready, ready_reason, &ready_msg, pod),
        condition("PodScheduled", true, "", "", pod),
    ];
    if done {
        conditions[0] = condition("PodReadyToStartContainers", false, "", "", pod);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": rt.ip, "podIPs": [{"ip": rt.ip}],
        "startTime": rt.start_time,
        "qosClass": pod.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
        "containerStatuses": mains.iter().map(|c| ctr_status(c)).collect::<Vec<_>>(),
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] =
            json!(inits.iter().map(|c| ctr_status(c)).collect::<Vec<_>>());
    }
    status
}

fn sync(ctx: &Ctx, rt: &PodRt) {
    let _g = lock(&ctx.status_lock);
    let Some(pod) = objects::get(&ctx.api, "", "pods", &rt.ns, &rt.name) else {
        return;
    };
    if objects::uid(&pod) != rt.uid || rt.cancel.is_cancelled() {
        return;
    }
    let status = pod_status(rt, &pod);
    write_status(&ctx.api, pod, status);
}

async fn run_pod(ctx: Ctx, rt: Arc<PodRt>, plans: Vec<Plan>) {
    if !rt.host_network {
        let attached = rt
            .ip
            .parse()
            .map_err(anyhow::Error::from)
            .and_then(|ip| ctx.network.attach_pod(ip, rt.cancel.child_token()));
        match attached {
            Ok(net) => *lock(&rt.net) = Some(net),
            Err(e) => {
                tracing::warn!(
                    "pod {}/{}: Failed to create pod sandbox: {e:#}",
                    rt.ns,
                    rt.name
                );
                return;
            }
        }
    }
    sync(&ctx, &rt);
    let policy = |ctx: &Ctx| {
        objects::get(&ctx.api, "", "pods", &rt.ns, &rt.name)
            .map(|p| s(&p, "/spec/restartPolicy").to_string())
            .unwrap_or_default()
    };
    let ctrs = lock(&rt.ctrs).clone();
    let inits: Vec<(Plan, &Ctr)> = plans
        .iter()
        .zip(ctrs.iter())
        .filter(|(_, c)| c.init)
        .map(|(p, c)| (p.clone(), c))
        .collect();
    // Cancelled once the main containers are done: the sidecars then stop.
    let mains_done = rt.cancel.child_token();
    let mut sidecars = Vec::new();
    for (plan, ctr) in inits {
        let name = ctr.name.clone();
        if ctr.sidecar {
            let plan_grace = plan.grace;
            let run = run_sidecar(
                ctx.clone(),
                rt.clone(),
                plan,
                name.clone(),
                mains_done.clone(),
            );
            sidecars.push((name.clone(), plan_grace, tokio::spawn(run)));
            // The next container starts once the sidecar has.
            if !sidecar_started(&rt, &name).await {
                return;
            }
            continue;
        }
        loop {
            match run_once(&ctx, &rt, &plan, &name).await {
                None => return,
                Some(0) => break,
                Some(_) if policy(&ctx) == "Never" => return,
                Some(_) => {
                    if !backoff(&ctx, &rt, &name).await {
                        return;
                    }
                }
            }
        }
    }
    let mains: Vec<(Plan, String)> = plans
        .iter()
        .zip(ctrs.iter())
        .filter(|(_, c)| !c.init)
        .map(|(p, c)| (p.clone(), c.name.clone()))
        .collect();
    let runs = mains.into_iter().map(|(plan, name)| {
        let ctx = ctx.clone();
        let rt = rt.clone();
        async move {
            loop {
                let Some(code) = run_once(&ctx, &rt, &plan, &name).await else {
                    return;
                };
                let restart = match policy(&ctx).as_str() {
                    "Never" => false,
                    "OnFailure" => code != 0,
                    _ => true,
                };
                if !restart || !backoff(&ctx, &rt, &name).await {
                    return;
                }
            }
        }
    });
    futures::future::join_all(runs).await;
    if sidecars.is_empty() {
        return;
    }
    mains_done.cancel();
    // In reverse order of their start, as the kubelet stops them.
    for (name, grace, task) in sidecars.into_iter().rev() {
        if let Some(pgid) = rt.ctr(&name).and_then(|c| c.pgid) {
            signal_group(pgid, "TERM");
        }
        let abort = task.abort_handle();
        if tokio::time::timeout(rt.grace_or(grace), task)
            .await
            .is_err()
        {
            if let Some(pgid) = rt.ctr(&name).and_then(|c| c.pgid) {
                kill_group(pgid);
            }
            abort.abort();
        }
    }
}

/// Runs a sidecar, restarting it whatever the pod's restart policy, until the main
/// containers are done (`mains_done`) or the pod stops.
async fn run_sidecar(
    ctx: Ctx,
    rt: Arc<PodRt>,
    plan: Plan,
    name: String,
    mains_done: CancellationToken,
) {
    while !mains_done.is_cancelled() {
        if run_once(&ctx, &rt, &plan, &name).await.is_none()
            || mains_done.is_cancelled()
            || !backoff(&ctx, &rt, &name).await
        {
            return;
        }
    }
}

/// Waits until a sidecar has started; false when the pod is stopped first.
async fn sidecar_started(rt: &PodRt, name: &str) -> bool {
    loop {
        let started = rt
            .ctr(name)
            .is_some_and(|c| matches!(c.state, CState::Running { .. }) || c.restarts > 0);
        if started {
            return true;
        }
        tokio::select! {
            _ = rt.cancel.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

/// Waits before a restart (CrashLoopBackOff); false when the pod is being stopped.
async fn backoff(ctx: &Ctx, rt: &PodRt, name: &str) -> bool {
    let mut restarts = 0;
    rt.update(name, |c| {
        c.last = Some(c.state.clone());
        c.restarts += 1;
        restarts = c.restarts;
        c.state = CState::waiting(
            "CrashLoopBackOff",
            &format!("back-off restarting failed container {name}"),
        );
    });
    sync(ctx, rt);
    let delay = Duration::from_millis(500 * 2u64.pow(restarts.min(5)));
    tokio::select! {
        _ = rt.cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// Log file of a container (`previous`: of its last run).
pub fn log_path(pod_dir: &Path, container: &str, previous: bool) -> PathBuf {
    pod_dir.join("logs").join(if previous {
        format!("{container}.previous.log")
    } else {
        format!("{container}.log")
    })
}

fn tail_bytes(bytes: &[u8], lines: usize, max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let joined = all[from..].join("\n");
    let cut = joined.len().saturating_sub(max);
    let mut start = cut;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    joined[start..].to_string()
}

/// An image that cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`, retried with the
/// kubelet's back-off (10 s, doubling up to 5 min) until the pod goes.
async fn pull_back_off(ctx: &Ctx, rt: &PodRt, name: &str, image: &str) {
    let err = images::pull_error(image);
    let record = |type_: &str, reason: &str, message: &str| {
        if let Some(pod) = objects::get(&ctx.api, "", "pods", &rt.ns, &rt.name) {
            super::events::record(&ctx.api, &pod, type_, reason, message, MANAGER);
        }
    };
    let mut delay = Duration::from_secs(10);
    loop {
        record("Normal", "Pulling", &format!("Pulling image \"{image}\""));
        record(
            "Warning",
            "Failed",
            &format!("Failed to pull image \"{image}\": {err}"),
        );
        record("Warning", "Failed", "Error: ErrImagePull");
        rt.update(name, |c| c.state = CState::waiting("ErrImagePull", &err));
        sync(ctx, rt);
        tokio::select! {
            _ = rt.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        record(
            "Normal",
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
        );
        record("Warning", "Failed", "Error: ImagePullBackOff");
        let message = format!("Back-off pulling image \"{image}\": ErrImagePull: {err}");
        rt.update(name, |c| {
            c.state = CState::waiting("ImagePullBackOff", &message)
        });
        sync(ctx, rt);
        tokio::select! {
            _ = rt.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}

/// Starts a running container's probes: readiness updates its `ready`, a failed liveness
/// probe kills it as the kubelet does (SIGTERM, SIGKILL after the grace period).
fn start_probes(
    ctx: &Ctx,
    rt: &Arc<PodRt>,
    plan: &Plan,
    name: &str,
    pid: u32,
    env: &[(String, String)],
    process: &security::Process,
) -> tokio_util::sync::DropGuard {
    let target = probes::Target {
        ip: rt.ip.clone(),
        pid,
        env: env.to_vec(),
        process: process.clone(),
        network: ctx.network.clone(),
    };
    let readiness: probes::Report = {
        let (ctx, rt, name) = (ctx.clone(), rt.clone(), name.to_string());
        Arc::new(move |ready| {
            rt.update(&name, |c| c.probed_ready = ready);
            sync(&ctx, &rt);
        })
    };
    let liveness: probes::Report = {
        let (rt, name, grace) = (rt.clone(), name.to_string(), plan.grace);
        Arc::new(move |_| {
            let Some(pgid) = rt.ctr(&name).and_then(|c| c.pgid) else {
                return;
            };
            tracing::info!(
                "{}/{} container {name}: liveness probe failed, killing",
                rt.ns,
                rt.name
            );
            signal_group(pgid, "TERM");
            let rt = rt.clone();
            let name = name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if rt.ctr(&name).and_then(|c| c.pgid) == Some(pgid) {
                    kill_group(pgid);
                }
            });
        })
    };
    probes::start(&plan.container, target, readiness, liveness)
}

async fn run_once(ctx: &Ctx, rt: &Arc<PodRt>, plan: &Plan, name: &str) -> Option<i32> {
    let image = rt.ctr(name)?.image;
    if images::unpullable(&ctx.unpullable, &image) {
        pull_back_off(ctx, rt, name, &image).await;
        return None;
    }
    let (env, process) = loop {
        let pod = objects::get(&ctx.api, "", "pods", &rt.ns, &rt.name)
            .filter(|p| objects::uid(p) == rt.uid)?;
        let config = podenv::build(&ctx.api, &pod, &plan.container, &rt.ip, &ctx.service)
            .map_err(|podenv::ConfigError(m)| m)
            .and_then(|env| {
                security::process(&pod, &plan.container)
                    .map(|p| (env, p))
                    .map_err(|security::Refused(m)| m)
            });
        match config {
            Ok(config) => break config,
            Err(msg) => {
                rt.update(name, |c| {
                    c.state = CState::waiting("CreateContainerConfigError", &msg)
                });
                sync(ctx, rt);
                tokio::select! {
                    _ = rt.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    let ctr = rt.ctr(name)?;
    if ctr.binary.is_none() && ctr.init && !ctr.sidecar {
        // An init container of an image that is not mapped completes at once.
        let now = crate::time::now();
        rt.update(name, |c| {
            c.state = CState::Terminated {
                exit_code: 0,
                reason: "Completed".into(),
                message: String::new(),
                started_at: now.clone(),
                finished_at: now,
            }
        });
        sync(ctx, rt);
        return Some(0);
    }
    let logs = rt.dir.join("logs");
    let term_dir = rt.dir.join("containers").join(name);
    let started = crate::time::now();
    let setup = (|| -> std::io::Result<(std::fs::File, PathBuf)> {
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&term_dir)?;
        let current = log_path(&rt.dir, name, false);
        if ctr.restarts > 0 && current.exists() {
            let previous = log_path(&rt.dir, name, true);
            std::fs::rename(&current, &previous)?;
            let _ = std::fs::rename(
                logfile::times_path(&current),
                logfile::times_path(&previous),
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        let term = term_dir.join("termination-log");
        std::fs::write(&term, b"")?;
        // As the kubelet makes it: writable by whatever user the container runs as.
        std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        std::fs::write(term_dir.join("ready"), b"")?;
        Ok((log, term))
    })();
    let fail = |msg: String| {
        let now = crate::time::now();
        rt.update(name, |c| {
            c.state = CState::Terminated {
                exit_code: 128,
                reason: "StartError".into(),
                message: msg,
                started_at: now.clone(),
                finished_at: now,
            }
        });
        sync(ctx, rt);
        Some(128)
    };
    let (log, term) = match setup {
        Ok(x) => x,
        Err(e) => return fail(format!("preparing the container: {e}")),
    };
    let term_path = match s(&plan.container, "/terminationMessagePath") {
        "" => "/dev/termination-log".to_string(),
        p => p.to_string(),
    };
    let mut binds = plan.binds.clone();
    let argv = match ctr.binary.clone() {
        Some(path) => match images::command(&path, &plan.container, &env) {
            Ok((bind, argv)) => {
                binds.push(bind);
                argv
            }
            Err(msg) => return fail(msg),
        },
        // Not mapped: a process that only holds the container's namespaces for pods/exec.
        None => vec!["/usr/bin/sleep".into(), "infinity".into()],
    };
    let ready = term_dir.join("ready");
    binds.push(Bind {
        source: term.clone(),
        target: term_path,
        read_only: false,
        file: true,
    });
    let sandbox = Sandbox {
        root_mountpoint: ctx.root.clone(),
        binds,
        hostname: rt.name.clone(),
        working_dir: s(&plan.container, "/workingDir").to_string(),
        ready_file: Some(ready.clone()),
        process: Some(process.clone()),
        netns: lock(&rt.net).as_ref().map(PodNet::path),
    };
    let mut cmd = sandbox.command(&argv, &env);
    drop(log);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("starting unshare: {e}")),
    };
    let capture = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), Some(err)) => {
            let path = log_path(&rt.dir, name, false);
            Some(tokio::spawn(async move {
                logfile::capture(out, err, &path).await
            }))
        }
        _ => None,
    };
    let pgid = child.id();
    // Running once the process is inside its finished root (exec may enter it from then on).
    let mut early = None;
    while std::fs::read(&ready).map(|r| r.is_empty()).unwrap_or(true) {
        tokio::select! {
            s = child.wait() => {
                early = Some(s);
                break;
            }
            _ = rt.cancel.cancelled() => {
                terminate(&mut child, pgid, rt.grace_or(plan.grace)).await;
                return None;
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    rt.update(name, |c| {
        c.state = CState::Running {
            started_at: started.clone(),
        };
        c.pgid = if early.is_none() { pgid } else { None };
        // Only a real program can answer probes: an unmapped image's stand-in is ready.
        c.probed_ready = !(c.binary.is_some() && probes::has_readiness_probe(&plan.container));
    });
    sync(ctx, rt);
    let _probes = match (early.is_none(), pgid, &ctr.binary) {
        (true, Some(pid), Some(_)) => Some(start_probes(ctx, rt, plan, name, pid, &env, &process)),
        _ => None,
    };
    let (status, used) = match early {
        Some(s) => (s, None),
        None => tokio::select! {
            s = wait_measured(&mut child) => s,
            _ = rt.cancel.cancelled() => {
                terminate(&mut child, pgid, rt.grace_or(plan.grace)).await;
                rt.kill_execs(Some(name));
                return None;
            }
        },
    };
    if let Some(p) = pgid {
        kill_group(p);
    }
    rt.kill_execs(Some(name));
    if let Some(c) = capture {
        // The group is gone, so its pipes close: the log is complete.
        let _ = tokio::time::timeout(Duration::from_secs(5), c).await;
    }
    let code = match status {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
        }
        Err(_) => 128,
    };
    if let Some(used) = used {
        ctx.usage.record(ContainerUsage {
            seq: 0,
            namespace: rt.ns.clone(),
            pod: rt.name.clone(),
            container: name.to_string(),
            image,
            exit_code: code,
            user_cpu: used.user_cpu,
            system_cpu: used.system_cpu,
            max_rss_kib: used.max_rss_kib,
        });
    }
    // The kubelet reads at most the last 4096 bytes (`tail.ReadAtMost`).
    let mut message = std::fs::read(&term)
        .map(|b| String::from_utf8_lossy(&b[b.len().saturating_sub(MESSAGE_BYTES)..]).into_owned())
        .unwrap_or_default();
    if message.is_empty()
        && code != 0
        && s(&plan.container, "/terminationMessagePolicy") == "FallbackToLogsOnError"
    {
        message = std::fs::read(log_path(&rt.dir, name, false))
            .map(|b| tail_bytes(&b, FALLBACK_LINES, FALLBACK_BYTES))
            .unwrap_or_default();
    }
    let finished = crate::time::now();
    rt.update(name, |c| {
        c.pgid = None;
        c.state = CState::Terminated {
            exit_code: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message,
            started_at: started,
            finished_at: finished,
        };
    });
    sync(ctx, rt);
    Some(code)
}

/// A command running `argv` in a running container of `pod`, with its env (pods/exec), and
/// the pod's runtime (to register the session, which dies with the container).
pub fn exec_command(
    node: &Node,
    pod: &Value,
    container: &Value,
    argv: &[String],
) -> Result<(tokio::process::Command, Arc<PodRt>), String> {
    let name = s(container, "/name");
    let not_found = || format!("unable to upgrade connection: container not found (\"{name}\")");
    let rt = node.kubelet.pod(objects::uid(pod)).ok_or_else(not_found)?;
    let pid = rt.ctr(name).and_then(|c| c.pgid).ok_or_else(not_found)?;
    let env = podenv::build(&node.api, pod, container, &rt.ip, &node.service)
        .map_err(|podenv::ConfigError(m)| m)?;
    let process = security::process(pod, container).map_err(|security::Refused(m)| m)?;
    Ok((Sandbox::enter(pid, Some(&process), argv, &env), rt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_message_is_the_tail_of_the_log() {
        let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail_bytes(log.as_bytes(), FALLBACK_LINES, FALLBACK_BYTES);
        assert!(t.starts_with("line 20\n"), "{t}");
        assert!(t.ends_with("line 99"));
    }
}
