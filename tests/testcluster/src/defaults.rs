//! Defaulting the real server applies when decoding a body (scheme defaults) and when
//! preparing an object for creation (status the strategy sets).

use crate::resources::ResourceType;
use base64::Engine;
use serde_json::{Map, Value, json};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
    // Typed clients send unset structs as `{}` (e.g. `strategy`), which the real server defaults.
    if map
        .get(key)
        .is_none_or(|v| v.is_null() || v.as_object().is_some_and(Map::is_empty))
    {
        map.insert(key.to_string(), value);
    }
}

fn at<'a>(v: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    v.pointer_mut(pointer).and_then(Value::as_object_mut)
}

fn default_container(c: &mut Value) {
    let Some(c) = obj(c) else { return };
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let last = image.rsplit('/').next().unwrap_or_default();
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    default_field(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(p, "protocol", json!("TCP"));
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(s) = obj(spec) else { return };
    default_field(s, "restartPolicy", json!("Always"));
    default_field(s, "dnsPolicy", json!("ClusterFirst"));
    default_field(s, "terminationGracePeriodSeconds", json!(30));
    default_field(s, "schedulerName", json!("default-scheduler"));
    default_field(s, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(key).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for src in ["secret", "configMap"] {
                if let Some(m) = v.get_mut(src).and_then(Value::as_object_mut) {
                    default_field(m, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// Scheme defaults, applied to every create and update body.
pub fn apply(rt: &ResourceType, o: &mut Value) {
    if rt.custom {
        return;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = o.get_mut("spec") {
                default_pod_spec(spec);
                if let Some(s) = obj(spec) {
                    default_field(s, "enableServiceLinks", json!(true));
                    default_field(s, "preemptionPolicy", json!("PreemptLowerPriority"));
                    default_field(s, "priority", json!(0));
                    default_field(s, "serviceAccountName", json!("default"));
                    let sa = s
                        .get("serviceAccountName")
                        .cloned()
                        .unwrap_or(json!("default"));
                    default_field(s, "serviceAccount", sa);
                }
            }
        }
        ("apps", "deployments") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "replicas", json!(1));
                default_field(s, "revisionHistoryLimit", json!(10));
                default_field(s, "progressDeadlineSeconds", json!(600));
                default_field(
                    s,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            }
            template(o);
        }
        ("apps", "statefulsets") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "replicas", json!(1));
                default_field(s, "revisionHistoryLimit", json!(10));
                default_field(s, "podManagementPolicy", json!("OrderedReady"));
                default_field(
                    s,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default_field(
                    s,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if let Some(ts) = s
                    .get_mut("volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                {
                    for t in ts {
                        if let Some(ts) = at(t, "/spec") {
                            default_field(ts, "volumeMode", json!("Filesystem"));
                        }
                        if let Some(t) = obj(t) {
                            default_field(t, "apiVersion", json!("v1"));
                            default_field(t, "kind", json!("PersistentVolumeClaim"));
                            default_field(t, "status", json!({"phase": "Pending"}));
                        }
                    }
                }
            }
            template(o);
        }
        ("apps", "daemonsets") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "revisionHistoryLimit", json!(10));
                default_field(
                    s,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
                );
            }
            template(o);
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "replicas", json!(1));
            }
            template(o);
        }
        ("batch", "jobs") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "backoffLimit", json!(6));
                default_field(s, "completionMode", json!("NonIndexed"));
                default_field(s, "suspend", json!(false));
                default_field(s, "podReplacementPolicy", json!("TerminatingOrFailed"));
                let parallel = s.get("completions").is_none_or(Value::is_null);
                default_field(s, "completions", json!(1));
                if parallel {
                    default_field(s, "parallelism", json!(1));
                }
            }
            template(o);
        }
        ("batch", "cronjobs") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "concurrencyPolicy", json!("Allow"));
                default_field(s, "suspend", json!(false));
                default_field(s, "successfulJobsHistoryLimit", json!(3));
                default_field(s, "failedJobsHistoryLimit", json!(1));
            }
            if let Some(t) = o.pointer_mut("/spec/jobTemplate/spec/template/spec") {
                default_pod_spec(t);
            }
        }
        ("", "services") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "type", json!("ClusterIP"));
                default_field(s, "sessionAffinity", json!("None"));
                if s.get("type").and_then(Value::as_str) != Some("ExternalName") {
                    default_field(s, "internalTrafficPolicy", json!("Cluster"));
                }
                if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_field(p, "protocol", json!("TCP"));
                        let port = p.get("port").cloned().unwrap_or(Value::Null);
                        default_field(p, "targetPort", port);
                    }
                }
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj(o) {
                default_field(m, "type", json!("Opaque"));
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = m.entry("data").or_insert_with(|| json!({}));
                    if let Some(data) = data.as_object_mut() {
                        for (k, v) in sd {
                            let text = v.as_str().unwrap_or_default().to_string();
                            data.insert(
                                k,
                                json!(base64::engine::general_purpose::STANDARD.encode(text)),
                            );
                        }
                    }
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "persistentvolumes") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "persistentVolumeReclaimPolicy", json!("Retain"));
                default_field(s, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "namespaces") => {
            if let Some(m) = obj(o) {
                let name = m.get("metadata").and_then(|md| md.get("name")).cloned();
                if let Some(Value::String(name)) = name
                    && let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    let labels = md.entry("labels").or_insert_with(|| json!({}));
                    if let Some(l) = labels.as_object_mut() {
                        l.insert("kubernetes.io/metadata.name".into(), json!(name));
                    }
                }
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            if let Some(m) = obj(o) {
                default_field(m, "reclaimPolicy", json!("Delete"));
                default_field(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            if let Some(s) = at(o, "/spec") {
                default_field(s, "conversion", json!({"strategy": "None"}));
            }
        }
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            crate::admission::apply_configuration_defaults(o)
        }
        _ => {}
    }
}

fn template(o: &mut Value) {
    if let Some(t) = o.pointer_mut("/spec/template/spec") {
        default_pod_spec(t);
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        let full = |m: Option<&Map<String, Value>>| {
            m.is_some_and(|m| m.contains_key("cpu") && m.contains_key("memory"))
        };
        if !full(lim)
            || req.is_some_and(|r| lim.is_some_and(|l| r.iter().any(|(k, v)| l.get(k) != Some(v))))
        {
            guaranteed = false;
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Adds a finalizer to an object's metadata unless present.
pub fn add_finalizer(o: &mut Value, name: &str) {
    let md = &mut o["metadata"];
    if !md.get("finalizers").is_some_and(Value::is_array) {
        md["finalizers"] = json!([]);
    }
    if let Some(f) = md["finalizers"].as_array_mut()
        && !f.iter().any(|x| x == name)
    {
        f.push(json!(name));
    }
}

/// What a create strategy sets after resetting status (phases, conditions, CRD acceptance).
pub fn on_create(rt: &ResourceType, o: &mut Value) {
    if rt.custom {
        return;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            let qos = qos_class(o);
            o["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "namespaces") => {
            o["spec"] = json!({"finalizers": ["kubernetes"]});
            o["status"] = json!({"phase": "Active"});
        }
        // The StorageObjectInUseProtection admission plugin's finalizers.
        ("", "persistentvolumeclaims") => {
            o["status"] = json!({"phase": "Pending"});
            add_finalizer(o, "kubernetes.io/pvc-protection");
        }
        ("", "persistentvolumes") => {
            o["status"] = json!({"phase": "Available"});
            add_finalizer(o, "kubernetes.io/pv-protection");
        }
        ("", "services") => o["status"] = json!({"loadBalancer": {}}),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            // Names are accepted and the CRD established later, by crate::crd_establish.
            let storage: Vec<Value> = o
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect();
            o["status"] = json!({
                "acceptedNames": {"plural": "", "kind": ""},
                "storedVersions": storage,
            });
            let md = &mut o["metadata"];
            let finalizers = md
                .get("finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let f = json!("customresourcecleanup.apiextensions.k8s.io");
            if !finalizers.contains(&f) {
                let mut list = finalizers;
                list.push(f);
                md["finalizers"] = Value::Array(list);
            }
        }
        _ => {}
    }
}
