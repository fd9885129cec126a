//! `as=Table` responses: the columns `kubectl get` prints, computed on the server as the
//! real one does (built-in printers for common kinds, CRD `additionalPrinterColumns`).

use crate::resources::ResourceType;
use crate::time::{age_seconds, human_duration};
use serde_json::{Value, json};

/// What each row carries as `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

struct Col(&'static str, &'static str, i64);

fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// A volume's or claim's phase, `Terminating` once its deletion is pending (as printed).
fn phase_or_terminating(v: &Value) -> String {
    if v.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".into()
    } else {
        s(v, "/status/phase")
    }
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn age(v: &Value) -> String {
    match age_seconds(&s(v, "/metadata/creationTimestamp")) {
        Some(secs) => human_duration(secs),
        None => "<unknown>".into(),
    }
}

fn count(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
        + if pointer == "/data" {
            v.pointer("/binaryData")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len() as i64)
        } else {
            0
        }
}

fn access_modes(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn containers_and_images(v: &Value, pointer: &str) -> (String, String) {
    let cs = v
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_string(v: &Value, pointer: &str) -> String {
    let Some(sel) = v.pointer(pointer) else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty()
        && let Some(m) = sel.as_object()
        && sel.get("matchExpressions").is_none()
    {
        parts = m
            .iter()
            .filter(|(_, v)| v.is_string())
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
    }
    or_none(parts.join(","))
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
    let mut status = s(p, "/status/phase");
    for c in &statuses {
        let reason = s(c, "/state/waiting/reason");
        let term = s(c, "/state/terminated/reason");
        if !reason.is_empty() {
            status = reason;
        } else if !term.is_empty() && status == "Running" {
            status = term;
        }
    }
    let reason = s(p, "/status/reason");
    if !reason.is_empty() {
        status = reason;
    }
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
    }
    vec![
        json!(s(p, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age(p)),
        json!(or_none(s(p, "/status/podIP"))),
        json!(or_none(s(p, "/spec/nodeName"))),
        json!(or_none(s(p, "/status/nominatedNodeName"))),
        json!("<none>"),
    ]
}

fn service_ports(v: &Value) -> String {
    let ports: Vec<String> = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let node = p
                .get("nodePort")
                .and_then(Value::as_i64)
                .map(|n| format!(":{n}"))
                .unwrap_or_default();
            format!("{}{node}/{}", n(p, "/port"), s(p, "/protocol"))
        })
        .collect();
    or_none(ports.join(","))
}

fn builtin_columns(t: &ResourceType) -> Option<Vec<Col>> {
    let cols = match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Status", "string", 0),
            Col("Restarts", "string", 0),
            Col("Age", "string", 0),
            Col("IP", "string", 1),
            Col("Node", "string", 1),
            Col("Nominated Node", "string", 1),
            Col("Readiness Gates", "string", 1),
        ],
        ("apps", "deployments") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("apps", "statefulsets") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
        ],
        ("apps", "replicasets") => vec![
            Col("Name", "string", 0),
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("apps", "daemonsets") => vec![
            Col("Name", "string", 0),
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            Col("Node Selector", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "services") => vec![
            Col("Name", "string", 0),
            Col("Type", "string", 0),
            Col("Cluster-IP", "string", 0),
            Col("External-IP", "string", 0),
            Col("Port(s)", "string", 0),
            Col("Age", "string", 0),
            Col("Selector", "string", 1),
        ],
        ("", "configmaps") => vec![
            Col("Name", "string", 0),
            Col("Data", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "secrets") => vec![
            Col("Name", "string", 0),
            Col("Type", "string", 0),
            Col("Data", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "namespaces") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "serviceaccounts") => vec![
            Col("Name", "string", 0),
            Col("Secrets", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "persistentvolumeclaims") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Volume", "string", 0),
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("StorageClass", "string", 0),
            Col("VolumeAttributesClass", "string", 0),
            Col("Age", "string", 0),
            Col("VolumeMode", "string", 1),
        ],
        ("", "persistentvolumes") => vec![
            Col("Name", "string", 0),
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("Reclaim Policy", "string", 0),
            Col("Status", "string", 0),
            Col("Claim", "string", 0),
            Col("StorageClass", "string", 0),
            Col("VolumeAttributesClass", "string", 0),
            Col("Reason", "string", 0),
            Col("Age", "string", 0),
            Col("VolumeMode", "string", 1),
        ],
        ("batch", "jobs") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Completions", "string", 0),
            Col("Duration", "string", 0),
            Col("Age", "string", 0),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![Col("Name", "string", 0), Col("Created At", "date", 0)]
        }
        ("storage.k8s.io", "storageclasses") => vec![
            Col("Name", "string", 0),
            Col("Provisioner", "string", 0),
            Col("ReclaimPolicy", "string", 0),
            Col("VolumeBindingMode", "string", 0),
            Col("AllowVolumeExpansion", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "nodes") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Roles", "string", 0),
            Col("Age", "string", 0),
            Col("Version", "string", 0),
        ],
        ("", "endpoints") => vec![
            Col("Name", "string", 0),
            Col("Endpoints", "string", 0),
            Col("Age", "string", 0),
        ],
        ("admissionregistration.k8s.io", _) => vec![
            Col("Name", "string", 0),
            Col("Webhooks", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("coordination.k8s.io", "leases") => vec![
            Col("Name", "string", 0),
            Col("Holder", "string", 0),
            Col("Age", "string", 0),
        ],
        ("batch", "cronjobs") => vec![
            Col("Name", "string", 0),
            Col("Schedule", "string", 0),
            Col("Timezone", "string", 0),
            Col("Suspend", "boolean", 0),
            Col("Active", "integer", 0),
            Col("Last Schedule", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") | ("", "limitranges") => {
            vec![Col("Name", "string", 0), Col("Created At", "date", 0)]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            Col("Name", "string", 0),
            Col("Role", "string", 0),
            Col("Age", "string", 0),
            Col("Users", "string", 1),
            Col("Groups", "string", 1),
            Col("ServiceAccounts", "string", 1),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            Col("Name", "string", 0),
            Col("Min Available", "string", 0),
            Col("Max Unavailable", "string", 0),
            Col("Allowed Disruptions", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "resourcequotas") => vec![
            Col("Name", "string", 0),
            Col("Request", "string", 0),
            Col("Limit", "string", 0),
            Col("Age", "string", 0),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            Col("Name", "string", 0),
            Col("Class", "string", 0),
            Col("Hosts", "string", 0),
            Col("Address", "string", 0),
            Col("Ports", "string", 0),
            Col("Age", "string", 0),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            Col("Name", "string", 0),
            Col("Pod-Selector", "string", 0),
            Col("Age", "string", 0),
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            Col("Name", "string", 0),
            Col("Value", "integer", 0),
            Col("Global-Default", "boolean", 0),
            Col("Age", "string", 0),
            Col("PreemptionPolicy", "string", 0),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            Col("Name", "string", 0),
            Col("Reference", "string", 0),
            Col("Targets", "string", 0),
            Col("MinPods", "string", 0),
            Col("MaxPods", "integer", 0),
            Col("Replicas", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "events") => vec![
            Col("Last Seen", "string", 0),
            Col("Type", "string", 0),
            Col("Reason", "string", 0),
            Col("Object", "string", 0),
            Col("Message", "string", 0),
        ],
        _ => return None,
    };
    Some(cols)
}

fn builtin_cells(t: &ResourceType, v: &Value) -> Vec<Value> {
    let name = json!(s(v, "/metadata/name"));
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => pod_cells(v),
        ("apps", "deployments") => {
            let (c, i) = containers_and_images(v, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(v, "/status/readyReplicas"),
                    n(v, "/spec/replicas")
                )),
                json!(n(v, "/status/updatedReplicas")),
                json!(n(v, "/status/availableReplicas")),
                json!(age(v)),
                json!(c),
                json!(i),
                json!(selector_string(v, "/spec/selector")),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, i) = containers_and_images(v, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(v, "/status/readyReplicas"),
                    n(v, "/spec/replicas")
                )),
                json!(age(v)),
                json!(c),
                json!(i),
            ]
        }
        ("apps", "replicasets") => {
            let (c, i) = containers_and_images(v, "/spec/template/spec/containers");
            vec![
                name,
                json!(n(v, "/spec/replicas")),
                json!(n(v, "/status/replicas")),
                json!(n(v, "/status/readyReplicas")),
                json!(age(v)),
                json!(c),
                json!(i),
                json!(selector_string(v, "/spec/selector")),
            ]
        }
        ("apps", "daemonsets") => vec![
            name,
            json!(n(v, "/status/desiredNumberScheduled")),
            json!(n(v, "/status/currentNumberScheduled")),
            json!(n(v, "/status/numberReady")),
            json!(n(v, "/status/updatedNumberScheduled")),
            json!(n(v, "/status/numberAvailable")),
            json!(selector_string(v, "/spec/template/spec/nodeSelector")),
            json!(age(v)),
        ],
        ("", "services") => {
            let ty = s(v, "/spec/type");
            let external = match ty.as_str() {
                "ExternalName" => s(v, "/spec/externalName"),
                "LoadBalancer" => "<pending>".into(),
                _ => String::new(),
            };
            vec![
                name,
                json!(ty),
                json!(or_none(s(v, "/spec/clusterIP"))),
                json!(or_none(external)),
                json!(service_ports(v)),
                json!(age(v)),
                json!(selector_string(v, "/spec/selector")),
            ]
        }
        ("", "configmaps") => vec![name, json!(count(v, "/data")), json!(age(v))],
        ("", "secrets") => vec![
            name,
            json!(s(v, "/type")),
            json!(count(v, "/data")),
            json!(age(v)),
        ],
        ("", "namespaces") => vec![name, json!(s(v, "/status/phase")), json!(age(v))],
        ("", "serviceaccounts") => vec![
            name,
            json!(
                v.pointer("/secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            json!(age(v)),
        ],
        ("", "persistentvolumeclaims") => vec![
            name,
            json!(phase_or_terminating(v)),
            json!(s(v, "/spec/volumeName")),
            json!(s(v, "/status/capacity/storage")),
            json!(access_modes(v, "/status/accessModes")),
            json!(or_none(s(v, "/spec/storageClassName"))),
            json!("<unset>"),
            json!(age(v)),
            json!(s(v, "/spec/volumeMode")),
        ],
        ("", "persistentvolumes") => {
            let claim = match s(v, "/spec/claimRef/name") {
                c if c.is_empty() => String::new(),
                c => format!("{}/{c}", s(v, "/spec/claimRef/namespace")),
            };
            vec![
                name,
                json!(s(v, "/spec/capacity/storage")),
                json!(access_modes(v, "/spec/accessModes")),
                json!(s(v, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase_or_terminating(v)),
                json!(claim),
                json!(s(v, "/spec/storageClassName")),
                json!("<unset>"),
                json!(s(v, "/status/reason")),
                json!(age(v)),
                json!(s(v, "/spec/volumeMode")),
            ]
        }
        ("batch", "jobs") => {
            let conds = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if has("Suspended") {
                "Suspended"
            } else {
                "Running"
            };
            vec![
                name,
                json!(status),
                json!(format!(
                    "{}/{}",
                    n(v, "/status/succeeded"),
                    n(v, "/spec/completions")
                )),
                json!(""),
                json!(age(v)),
            ]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![name, json!(s(v, "/metadata/creationTimestamp"))]
        }
        ("storage.k8s.io", "storageclasses") => {
            let default = v
                .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true");
            let shown = if default {
                format!("{} (default)", s(v, "/metadata/name"))
            } else {
                s(v, "/metadata/name")
            };
            let expand = v
                .pointer("/allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                json!(shown),
                json!(s(v, "/provisioner")),
                json!(s(v, "/reclaimPolicy")),
                json!(s(v, "/volumeBindingMode")),
                json!(expand.to_string()),
                json!(age(v)),
            ]
        }
        ("", "nodes") => {
            let ready = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!("<none>"),
                json!(age(v)),
                json!(s(v, "/status/nodeInfo/kubeletVersion")),
            ]
        }
        ("", "endpoints") => {
            let eps: Vec<String> = v
                .pointer("/subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|sub| {
                    let ports: Vec<i64> = sub
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| n(p, "/port"))
                        .collect();
                    sub.get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .flat_map(move |a| {
                            let ip = s(a, "/ip");
                            ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            vec![name, json!(or_none(eps.join(","))), json!(age(v))]
        }
        ("admissionregistration.k8s.io", _) => vec![
            name,
            json!(
                v.pointer("/webhooks")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            json!(age(v)),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![name, json!(s(v, "/spec/holderIdentity")), json!(age(v))]
        }
        ("batch", "cronjobs") => {
            let (c, i) =
                containers_and_images(v, "/spec/jobTemplate/spec/template/spec/containers");
            let tz = or_none(s(v, "/spec/timeZone"));
            let last = match age_seconds(&s(v, "/status/lastScheduleTime")) {
                Some(secs) => human_duration(secs),
                None => "<none>".into(),
            };
            let active = v
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![
                name,
                json!(s(v, "/spec/schedule")),
                json!(tz),
                json!(
                    v.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(active),
                json!(last),
                json!(age(v)),
                json!(c),
                json!(i),
                json!(selector_string(v, "/spec/jobTemplate/spec/selector")),
            ]
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") | ("", "limitranges") => {
            vec![name, json!(s(v, "/metadata/creationTimestamp"))]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let subjects = v
                .pointer("/subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of = |kind: &str| {
                subjects
                    .iter()
                    .filter(|x| s(x, "/kind") == kind)
                    .map(|x| {
                        if kind == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(v, "/roleRef/kind"),
                    s(v, "/roleRef/name")
                )),
                json!(age(v)),
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        ("policy", "poddisruptionbudgets") => {
            let na = |p: &str| match s(v, p) {
                x if x.is_empty() => "N/A".to_string(),
                x => x,
            };
            vec![
                name,
                json!(na("/spec/minAvailable")),
                json!(na("/spec/maxUnavailable")),
                json!(n(v, "/status/disruptionsAllowed")),
                json!(age(v)),
            ]
        }
        ("", "resourcequotas") => {
            let hard = v
                .pointer("/spec/hard")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let used = |k: &str| {
                v.pointer(&format!("/status/used/{}", k.replace('/', "~1")))
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_string()
            };
            let (mut req, mut lim) = (Vec::new(), Vec::new());
            for (k, h) in &hard {
                let entry = format!("{k}: {}/{}", used(k), h.as_str().unwrap_or_default());
                if k.starts_with("limits.") {
                    lim.push(entry)
                } else {
                    req.push(entry)
                }
            }
            vec![
                name,
                json!(req.join(", ")),
                json!(lim.join(", ")),
                json!(age(v)),
            ]
        }
        ("networking.k8s.io", "ingresses") => {
            let rules = v
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let hosts: Vec<String> = rules
                .iter()
                .map(|r| s(r, "/host"))
                .map(|h| if h.is_empty() { "*".into() } else { h })
                .collect();
            let ports = if v
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
            {
                "80, 443"
            } else {
                "80"
            };
            vec![
                name,
                json!(or_none(s(v, "/spec/ingressClassName"))),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(s(v, "/status/loadBalancer/ingress/0/ip")),
                json!(ports),
                json!(age(v)),
            ]
        }
        ("networking.k8s.io", "networkpolicies") => {
            let sel = selector_string(v, "/spec/podSelector");
            vec![
                name,
                json!(if sel == "<none>" {
                    "<none>".to_string()
                } else {
                    sel
                }),
                json!(age(v)),
            ]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(n(v, "/value")),
            json!(
                v.pointer("/globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(age(v)),
            json!(s(v, "/preemptionPolicy")),
        ],
        ("autoscaling", "horizontalpodautoscalers") => {
            let targets: Vec<String> = v
                .pointer("/spec/metrics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let r = m.get("resource")?;
                    let target = r
                        .pointer("/target/averageUtilization")
                        .map(|t| format!("{t}%"))
                        .or_else(|| {
                            r.pointer("/target/averageValue")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })?;
                    Some(format!("{}: <unknown>/{target}", s(r, "/name")))
                })
                .collect();
            let targets = match v.pointer("/spec/targetCPUUtilizationPercentage") {
                Some(t) => format!("cpu: <unknown>/{t}%"),
                None if targets.is_empty() => "<none>".into(),
                None => targets.join(", "),
            };
            let min = v
                .pointer("/spec/minReplicas")
                .map(|m| m.to_string())
                .unwrap_or_else(|| "1".into());
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(v, "/spec/scaleTargetRef/kind"),
                    s(v, "/spec/scaleTargetRef/name")
                )),
                json!(targets),
                json!(min),
                json!(n(v, "/spec/maxReplicas")),
                json!(n(v, "/status/currentReplicas")),
                json!(age(v)),
            ]
        }
        ("", "events") => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| age_seconds(&s(v, p)))
            .map(human_duration)
            .unwrap_or_else(|| "<unknown>".into());
            let object = format!(
                "{}/{}",
                s(v, "/involvedObject/kind").to_lowercase(),
                s(v, "/involvedObject/name")
            );
            vec![
                json!(last),
                json!(s(v, "/type")),
                json!(s(v, "/reason")),
                json!(object),
                json!(s(v, "/message")),
            ]
        }
        _ => vec![name, json!(age(v))],
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0].b`,
/// `.a[?(@.type=="Ready")].status`.
pub fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items = cur.as_array()?;
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = items
                    .iter()
                    .find(|i| i.get(field.trim()).and_then(Value::as_str) == Some(want))?;
            } else {
                cur = items.get(inner.trim().parse::<usize>().ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

fn columns_of(t: &ResourceType) -> Vec<Value> {
    let col = |name: &str, ty: &str, priority: i64, desc: &str| {
        let format = if name == "Name" { "name" } else { "" };
        json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
    };
    if t.custom {
        let mut cols = vec![col(
            "Name",
            "string",
            0,
            "Name must be unique within a namespace.",
        )];
        if t.columns.is_empty() {
            cols.push(col("Age", "date", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."));
        } else {
            for c in &t.columns {
                cols.push(col(&c.name, &c.type_, c.priority, &c.description));
            }
        }
        return cols;
    }
    match builtin_columns(t) {
        Some(cs) => cs.iter().map(|Col(n, ty, p)| col(n, ty, *p, "")).collect(),
        None => vec![
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace.",
            ),
            col("Age", "string", 0, ""),
        ],
    }
}

fn cells_of(t: &ResourceType, v: &Value) -> Vec<Value> {
    if !t.custom {
        return builtin_cells(t, v);
    }
    let mut cells = vec![json!(s(v, "/metadata/name"))];
    if t.columns.is_empty() {
        cells.push(json!(age(v)));
        return cells;
    }
    for c in &t.columns {
        let value = json_path(v, &c.json_path).cloned().unwrap_or(Value::Null);
        let cell = match (c.type_.as_str(), &value) {
            ("date", Value::String(ts)) => {
                json!(age_seconds(ts).map(human_duration).unwrap_or_default())
            }
            (_, Value::Null) => Value::Null,
            (_, other) => other.clone(),
        };
        cells.push(cell);
    }
    cells
}

/// The `PartialObjectMetadata` of an object (as `apiVersion`).
pub fn partial_metadata(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A `meta.k8s.io/v1` Table of `objects` (already at the requested version).
pub fn table(t: &ResourceType, objects: &[Value], include: Include, list_metadata: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells_of(t, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(o),
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata, "columnDefinitions": columns_of(t), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_supports_filters_and_indices() {
        let v = json!({"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]}, "spec": {"l": [1, 2]}});
        assert_eq!(
            json_path(&v, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&v, ".spec.l[1]"), Some(&json!(2)));
        assert_eq!(json_path(&v, ".spec.missing"), None);
    }
}
