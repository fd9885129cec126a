//! The endpoints and EndpointSlice controllers: a Service with a selector gets an
//! `Endpoints` object of the same name and `discovery.k8s.io/v1` EndpointSlices
//! (`kubernetes.io/service-name`, owned by the Service) listing the selected pods that have
//! an IP, Ready ones as `addresses` / `conditions.ready: true` and the others as
//! `notReadyAddresses` / `ready: false` (all ready with `publishNotReadyAddresses`).
//! `targetPort` is a number or the name of a container port, resolved per pod; pods that
//! resolve the ports differently land in different subsets and slices, as upstream.
//! Services without a selector are left to their owners.
//!
//! [`resolve`] is kube-apiserver's webhook service resolution over those slices.

use crate::api::{Api, Change, ChangeType};
use crate::controllers::Controller;
use crate::node::objects::{self, s};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const ENDPOINTS_MANAGER: &str = "endpoint-controller";
const SLICE_MANAGER: &str = "endpointslice-controller";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Keeps Endpoints and EndpointSlices in step with Services and their pods.
pub struct EndpointsController;

impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        ENDPOINTS_MANAGER
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        let k = &change.key;
        match (k.group.as_str(), k.resource.as_str()) {
            ("", "services") if change.type_ == ChangeType::Deleted => {
                // Slices go with their owner (garbage collector); Endpoints have none.
                objects::delete(api, "", "endpoints", &k.namespace, &k.name);
            }
            ("", "services") => reconcile(api, &change.object),
            ("", "pods") => {
                for svc in objects::list(api, "", "services", Some(&k.namespace)) {
                    let touched = |p: Option<&Value>| p.is_some_and(|p| selects(&svc, p));
                    if touched(Some(&change.object)) || touched(change.old.as_ref()) {
                        reconcile(api, &svc);
                    }
                }
            }
            _ => {}
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        for svc in objects::list(api, "", "services", None) {
            reconcile(api, &svc);
        }
    }
}

fn selector(svc: &Value) -> Option<&serde_json::Map<String, Value>> {
    svc.pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

/// Whether the Service's selector picks the pod (same namespace, labels match).
fn selects(svc: &Value, pod: &Value) -> bool {
    let Some(sel) = selector(svc) else {
        return false;
    };
    objects::namespace(svc) == objects::namespace(pod)
        && sel.iter().all(|(k, v)| {
            pod.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .is_some_and(|l| l == v)
        })
}

/// The endpoint ports of a pod for the Service's ports; a named targetPort that is not
/// among the pod's container ports leaves that port out for this pod.
fn pod_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for sp in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let protocol = match s(sp, "/protocol") {
            "" => "TCP",
            p => p,
        };
        let number = match sp.get("targetPort") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(name)) if name.parse::<u64>().is_ok() => name.parse().ok(),
            Some(Value::String(name)) => pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("ports").and_then(Value::as_array))
                .flatten()
                .find(|p| {
                    let p_protocol = match s(p, "/protocol") {
                        "" => "TCP",
                        x => x,
                    };
                    s(p, "/name") == name && p_protocol == protocol
                })
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_u64),
            _ => sp.get("port").and_then(Value::as_u64),
        };
        let Some(number) = number else { continue };
        let mut port = json!({"port": number, "protocol": protocol});
        if !s(sp, "/name").is_empty() {
            port["name"] = json!(s(sp, "/name"));
        }
        if let Some(app) = sp.get("appProtocol") {
            port["appProtocol"] = app.clone();
        }
        out.push(port);
    }
    out
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": objects::namespace(pod), "name": objects::name(pod),
        "uid": objects::uid(pod)})
}

/// One selected pod, as both objects list it.
struct Member<'a> {
    pod: &'a Value,
    ip: String,
    ready: bool,
    terminating: bool,
}

fn reconcile(api: &Api, svc: &Value) {
    if selector(svc).is_none() || s(svc, "/spec/type") == "ExternalName" || objects::deleting(svc) {
        return;
    }
    let ns = objects::namespace(svc);
    let publish_not_ready = publish(svc);
    let pods = objects::list(api, "", "pods", Some(ns));
    // Pods grouped by the ports they resolve to (serialized, so groups compare cheaply).
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<Member>)> = BTreeMap::new();
    for pod in &pods {
        let ip = s(pod, "/status/podIP");
        if !selects(svc, pod)
            || ip.is_empty()
            || matches!(s(pod, "/status/phase"), "Succeeded" | "Failed")
        {
            continue;
        }
        let ports = pod_ports(svc, pod);
        let has_ports = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        if has_ports && ports.is_empty() {
            continue;
        }
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let terminating = objects::deleting(pod);
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(Member {
                pod,
                ip: ip.to_string(),
                ready: (publish_not_ready || is_ready(pod)) && !terminating,
                terminating,
            });
    }
    for (_, members) in groups.values_mut() {
        members.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    write_endpoints(api, svc, &groups);
    write_slices(api, svc, &groups);
}

fn labels_of(svc: &Value) -> serde_json::Map<String, Value> {
    svc.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

type Groups<'a> = BTreeMap<String, (Vec<Value>, Vec<Member<'a>>)>;

fn write_endpoints(api: &Api, svc: &Value, groups: &Groups) {
    let (ns, name) = (objects::namespace(svc), objects::name(svc));
    let address = |m: &Member| json!({"ip": m.ip, "nodeName": s(m.pod, "/spec/nodeName"), "targetRef": target_ref(m.pod)});
    let mut subsets = Vec::new();
    for (ports, members) in groups.values() {
        // Endpoints leave terminating pods out; slices show them.
        let live = members.iter().filter(|m| !m.terminating);
        let (ready, not_ready): (Vec<&Member>, Vec<&Member>) = live.partition(|m| m.ready);
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        let mut subset = serde_json::Map::new();
        if !ready.is_empty() {
            subset.insert(
                "addresses".into(),
                ready.iter().map(|m| address(m)).collect(),
            );
        }
        if !not_ready.is_empty() {
            subset.insert(
                "notReadyAddresses".into(),
                not_ready.iter().map(|m| address(m)).collect(),
            );
        }
        if !ports.is_empty() {
            subset.insert("ports".into(), json!(ports));
        }
        subsets.push(Value::Object(subset));
    }
    let existing = objects::get(api, "", "endpoints", ns, name);
    let mut obj = existing.clone().unwrap_or_else(|| {
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}})
    });
    obj["metadata"]["labels"] = Value::Object(labels_of(svc));
    match obj.as_object_mut() {
        Some(o) if subsets.is_empty() => {
            o.remove("subsets");
        }
        Some(o) => {
            o.insert("subsets".into(), json!(subsets));
        }
        None => return,
    }
    let result = match existing {
        Some(e) if e == obj => return,
        Some(_) => objects::update(api, "", "endpoints", obj, ENDPOINTS_MANAGER),
        None => objects::create(api, "", "endpoints", obj, ENDPOINTS_MANAGER),
    };
    if let Err(e) = result {
        tracing::debug!("endpoints {ns}/{name}: {}", e.message);
    }
}

fn write_slices(api: &Api, svc: &Value, groups: &Groups) {
    let (ns, name) = (objects::namespace(svc), objects::name(svc));
    let mut existing: Vec<Value> =
        objects::list(api, "discovery.k8s.io", "endpointslices", Some(ns))
            .into_iter()
            .filter(|e| {
                s(
                    e,
                    &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
                ) == name
                    && s(
                        e,
                        &format!("/metadata/labels/{}", MANAGED_BY_LABEL.replace('/', "~1")),
                    ) == MANAGED_BY
            })
            .collect();
    existing.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    let mut labels = labels_of(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    let mut wanted: Vec<(Value, Value)> = groups
        .values()
        .map(|(ports, members)| {
            let endpoints: Vec<Value> = members
                .iter()
                .map(|m| {
                    json!({"addresses": [m.ip],
                        "conditions": {"ready": m.ready, "serving": is_ready(m.pod) || publish(svc), "terminating": m.terminating},
                        "nodeName": s(m.pod, "/spec/nodeName"), "targetRef": target_ref(m.pod)})
                })
                .collect();
            (json!(ports), json!(endpoints))
        })
        .collect();
    if wanted.is_empty() {
        // A Service that selects nothing still has one (empty) slice.
        wanted.push((json!([]), json!([])));
    }
    for (i, (ports, endpoints)) in wanted.into_iter().enumerate() {
        let current = existing.get(i).cloned();
        let mut obj = current.clone().unwrap_or_else(|| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": format!("{name}-"), "namespace": ns,
                    "ownerReferences": [objects::controller_ref(svc, "v1", "Service")]},
                "addressType": "IPv4"})
        });
        obj["metadata"]["labels"] = Value::Object(labels.clone());
        obj["ports"] = ports;
        obj["endpoints"] = endpoints;
        let result = match current {
            Some(c) if c == obj => continue,
            Some(_) => objects::update(
                api,
                "discovery.k8s.io",
                "endpointslices",
                obj,
                SLICE_MANAGER,
            ),
            None => objects::create(
                api,
                "discovery.k8s.io",
                "endpointslices",
                obj,
                SLICE_MANAGER,
            ),
        };
        if let Err(e) = result {
            tracing::debug!("endpointslices of {ns}/{name}: {}", e.message);
        }
    }
    let used = groups.len().max(1);
    for stale in existing.iter().skip(used) {
        objects::delete(
            api,
            "discovery.k8s.io",
            "endpointslices",
            ns,
            objects::name(stale),
        );
    }
}

fn publish(svc: &Value) -> bool {
    svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true))
}

/// Where kube-apiserver sends a request for Service `ns/name` port `port` (a webhook's
/// `clientConfig.service`): a ready endpoint of its EndpointSlices, or the resolver's
/// error as upstream words it.
pub fn resolve(api: &Api, ns: &str, name: &str, port: u16) -> Result<(String, u16), String> {
    let svc = objects::get(api, "", "services", ns, name)
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let ty = match s(&svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    if !matches!(ty, "ClusterIP" | "LoadBalancer" | "NodePort") {
        return Err(format!("unsupported service type \"{ty}\""));
    }
    let svc_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let port_name = s(svc_port, "/name");
    let none = || format!("no endpoints available for service \"{name}\"");
    let slices: Vec<Value> = objects::list(api, "discovery.k8s.io", "endpointslices", Some(ns))
        .into_iter()
        .filter(|e| {
            s(
                e,
                &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
            ) == name
        })
        .collect();
    for slice in &slices {
        let Some(target) = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| s(p, "/name") == port_name)
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let ready: Vec<&str> = slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| e.pointer("/conditions/ready") != Some(&json!(false)))
            .filter_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))
            .collect();
        if ready.is_empty() {
            continue;
        }
        // Spread calls over the ready endpoints as upstream's random pick does.
        let pick = crate::ids::uid().bytes().map(usize::from).sum::<usize>() % ready.len();
        return Ok((ready[pick].to_string(), target));
    }
    Err(none())
}
