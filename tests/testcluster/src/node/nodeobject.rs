//! The `testnode` Node object, Ready, as a kubelet registers it.

use super::objects;
use super::{NODE_NAME, Node};
use serde_json::json;

/// Creates (or refreshes the status of) the Node object.
pub fn ensure(node: &Node) {
    let api = &node.api;
    let now = crate::time::now();
    let cond = |t: &str, status: &str, reason: &str, msg: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": msg,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity =
        json!({"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    let status = json!({
        "capacity": capacity, "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "bootID": "", "machineID": "", "systemUUID": "",
            "containerRuntimeVersion": "vbackup-testnode://0.1.0",
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "kubeProxyVersion": "", "kubeletVersion": "v1.32.0",
            "operatingSystem": "linux", "osImage": "vbackup test node",
        },
    });
    let obj = match objects::get(api, "", "nodes", "", NODE_NAME) {
        Some(n) => n,
        None => {
            let n = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                    "beta.kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}},
                "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
            });
            match objects::create(api, "", "nodes", n, "kubelet") {
                Ok(n) => n,
                Err(_) => return,
            }
        }
    };
    let mut n = obj;
    n["status"] = status;
    let _ = objects::update_status(api, "", "nodes", n, "kubelet");
}
