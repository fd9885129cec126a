//! The Node objects, Ready, as kubelets register them.

use super::Node;
use super::objects;
use serde_json::json;

/// Creates (or refreshes the status of) every node's Node object.
pub fn ensure(node: &Node) {
    for (i, name) in node.names.iter().enumerate() {
        ensure_one(node, i, name);
    }
}

fn ensure_one(node: &Node, index: usize, name: &str) {
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
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
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
    let obj = match objects::get(api, "", "nodes", "", name) {
        Some(n) => n,
        None => {
            let n = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                    "beta.kubernetes.io/os": "linux",
                    "topology.kubernetes.io/region": "local",
                    "topology.kubernetes.io/zone": format!("local-{}", (b'a' + (index % 26) as u8) as char)}},
                "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
            });
            let mut n = n;
            // The first node is the control plane, untainted (as single-node clusters run).
            if index == 0 {
                n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = json!("");
            }
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
