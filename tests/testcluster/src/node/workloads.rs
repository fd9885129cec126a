//! The workload controllers vbackup meets: Deployments (through ReplicaSets), StatefulSets
//! (pods `NAME-i` and claims `TEMPLATE-NAME-i`), DaemonSets (one pod on the node) and Jobs
//! (pods until completions or the backoff limit), with the status fields the real
//! controllers report.

use super::Node;
use super::objects::{self, controller_ref, controller_uid, s};
use crate::api::{Change, ChangeType};
use serde_json::{Map, Value, json};

fn list_owned(node: &Node, group: &str, plural: &str, owner: &Value) -> Vec<Value> {
    objects::list(&node.api, group, plural, Some(objects::namespace(owner)))
        .into_iter()
        .filter(|o| controller_uid(o) == Some(objects::uid(owner)))
        .collect()
}

fn phase(pod: &Value) -> &str {
    s(pod, "/status/phase")
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
}

fn active(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !objects::deleting(pod)
}

fn labels_of(template: &Value) -> Map<String, Value> {
    template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A pod from a template (labels, annotations, spec), owned by `owner`.
fn pod_from(template: &Value, ns: &str, owner_ref: Value, labels: Map<String, Value>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "labels": labels, "ownerReferences": [owner_ref]},
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    if let Some(a) = template.pointer("/metadata/annotations") {
        pod["metadata"]["annotations"] = a.clone();
    }
    pod
}

fn set_status(node: &Node, group: &str, plural: &str, obj: &Value, status: Value) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let mut o = obj.clone();
    o["status"] = status;
    let _ = objects::update_status(&node.api, group, plural, o, controller_name(plural));
}

fn controller_name(plural: &str) -> &'static str {
    match plural {
        "deployments" => "deployment-controller",
        "replicasets" => "replicaset-controller",
        "statefulsets" => "statefulset-controller",
        "daemonsets" => "daemonset-controller",
        _ => "job-controller",
    }
}

fn generation(o: &Value) -> Value {
    o.pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1))
}

/// Reacts to a workload's change.
pub fn on_change(node: &Node, change: &Change) {
    if change.type_ == ChangeType::Deleted {
        return;
    }
    reconcile(
        node,
        &change.key.group,
        &change.key.resource,
        change.object.clone(),
    );
}

/// A pod or ReplicaSet changed: reconcile its controller.
pub fn on_owned_change(node: &Node, obj: &Value) {
    let Some((kind, name)) = objects::controller_of(obj) else {
        return;
    };
    let (group, plural) = match kind {
        "ReplicaSet" => ("apps", "replicasets"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "Job" => ("batch", "jobs"),
        "Deployment" => ("apps", "deployments"),
        _ => return,
    };
    if let Some(owner) = objects::get(&node.api, group, plural, objects::namespace(obj), name) {
        reconcile(node, group, plural, owner);
    }
}

/// Reconciles every workload.
pub fn reconcile_all(node: &Node) {
    for (g, p) in [
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
    ] {
        for o in objects::list(&node.api, g, p, None) {
            reconcile(node, g, p, o);
        }
    }
}

fn reconcile(node: &Node, group: &str, plural: &str, obj: Value) {
    if objects::deleting(&obj) {
        return;
    }
    match (group, plural) {
        ("apps", "deployments") => deployment(node, &obj),
        ("apps", "replicasets") => {
            replicaset(node, &obj);
            on_owned_change(node, &obj);
        }
        ("apps", "statefulsets") => statefulset(node, &obj),
        ("apps", "daemonsets") => daemonset(node, &obj),
        ("batch", "jobs") => job(node, &obj),
        _ => {}
    }
}

fn replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn deployment(node: &Node, d: &Value) {
    let ns = objects::namespace(d);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = objects::template_hash(&template);
    let rs_name = format!("{}-{hash}", objects::name(d));
    let owned = list_owned(node, "apps", "replicasets", d);
    let want = replicas(d);
    let revision = owned
        .iter()
        .filter_map(|r| {
            s(
                r,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .parse::<i64>()
            .ok()
        })
        .max()
        .unwrap_or(0);
    let current = owned.iter().find(|r| objects::name(r) == rs_name).cloned();
    let current = match current {
        Some(rs) => {
            if replicas(&rs) != want {
                let mut r = rs.clone();
                r["spec"]["replicas"] = json!(want);
                r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(want.to_string());
                let _ =
                    objects::update(&node.api, "apps", "replicasets", r, "deployment-controller");
            }
            Some(rs)
        }
        None => {
            let mut labels = labels_of(&template);
            labels.insert("pod-template-hash".into(), json!(hash));
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"] = Value::Object(labels.clone());
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/desired-replicas": want.to_string(),
                        "deployment.kubernetes.io/max-replicas": (want + 1).to_string(),
                        "deployment.kubernetes.io/revision": (revision + 1).to_string()},
                    "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")]},
                "spec": {"replicas": want, "selector": selector, "template": tpl},
            });
            objects::create_as(
                &node.api,
                "apps",
                "replicasets",
                rs,
                "deployment-controller",
                d,
            )
            .ok()
        }
    };
    // Old ReplicaSets scale to zero once the new one exists (a one-step rollout).
    for old in owned.iter().filter(|r| objects::name(r) != rs_name) {
        if replicas(old) != 0 {
            let mut r = old.clone();
            r["spec"]["replicas"] = json!(0);
            let _ = objects::update(&node.api, "apps", "replicasets", r, "deployment-controller");
        }
    }
    let sum = |f: &str| -> i64 {
        owned
            .iter()
            .map(|r| {
                r.pointer(&format!("/status/{f}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            })
            .sum()
    };
    let updated = current
        .as_ref()
        .and_then(|r| r.pointer("/status/replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let available = sum("availableReplicas");
    let now = crate::time::now();
    let keep = |t: &str, status: &str, reason: &str, msg: String| {
        let old = d
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| s(c, "/type") == t);
        let (since, update) = match old {
            Some(o) if s(o, "/status") == status && s(o, "/reason") == reason => (
                o.get("lastTransitionTime").cloned().unwrap_or(json!(now)),
                o.get("lastUpdateTime").cloned().unwrap_or(json!(now)),
            ),
            _ => (json!(now), json!(now)),
        };
        json!({"type": t, "status": status, "reason": reason, "message": msg, "lastTransitionTime": since, "lastUpdateTime": update})
    };
    let mut status = json!({
        "observedGeneration": generation(d),
        "replicas": sum("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "conditions": [
            if available >= want {
                keep("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
            } else {
                keep("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
            },
            if updated >= want && available >= want {
                keep("Progressing", "True", "NewReplicaSetAvailable", format!("ReplicaSet \"{rs_name}\" has successfully progressed."))
            } else {
                keep("Progressing", "True", "ReplicaSetUpdated", format!("ReplicaSet \"{rs_name}\" is progressing."))
            },
        ],
    });
    if sum("replicas") - available > 0 {
        status["unavailableReplicas"] = json!(sum("replicas") - available);
    }
    for k in [
        "readyReplicas",
        "availableReplicas",
        "replicas",
        "updatedReplicas",
    ] {
        if status[k] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(k);
        }
    }
    set_status(node, "apps", "deployments", d, status);
}

fn replicaset(node: &Node, rs: &Value) {
    let ns = objects::namespace(rs);
    let pods: Vec<Value> = list_owned(node, "", "pods", rs)
        .into_iter()
        .filter(active)
        .collect();
    let want = replicas(rs) as usize;
    if pods.len() < want {
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in pods.len()..want {
            let mut pod = pod_from(
                &template,
                ns,
                controller_ref(rs, "apps/v1", "ReplicaSet"),
                labels_of(&template),
            );
            pod["metadata"]["generateName"] = json!(format!("{}-", objects::name(rs)));
            if objects::create_as(&node.api, "", "pods", pod, "replicaset-controller", rs).is_err()
            {
                break;
            }
        }
    } else if pods.len() > want {
        let mut victims = pods.clone();
        victims.sort_by(|a, b| {
            s(b, "/metadata/creationTimestamp").cmp(s(a, "/metadata/creationTimestamp"))
        });
        for p in victims.iter().take(pods.len() - want) {
            objects::delete(&node.api, "", "pods", ns, objects::name(p));
        }
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut status = json!({
        "replicas": pods.len(), "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready, "availableReplicas": ready,
        "observedGeneration": generation(rs),
    });
    for k in ["readyReplicas", "availableReplicas", "fullyLabeledReplicas"] {
        if status[k] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(k);
        }
    }
    set_status(node, "apps", "replicasets", rs, status);
}

fn statefulset(node: &Node, set: &Value) {
    let api = &node.api;
    let ns = objects::namespace(set);
    let name = objects::name(set);
    let template = set.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let revision = format!("{name}-{}", objects::template_hash(&template));
    let want = replicas(set);
    let parallel = s(set, "/spec/podManagementPolicy") == "Parallel";
    let when_deleted = s(
        set,
        "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
    );
    let claim_templates: Vec<Value> = set
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let pods = list_owned(node, "", "pods", set);
    let selector_labels = set
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for i in 0..want {
        let pod_name = format!("{name}-{i}");
        let existing = pods.iter().find(|p| objects::name(p) == pod_name);
        if let Some(p) = existing {
            // Rolling update: a pod from an older template is replaced, highest ordinal first.
            if s(p, "/metadata/labels/controller-revision-hash") != revision && active(p) {
                let newest_stale = (i + 1..want).all(|j| {
                    pods.iter()
                        .find(|q| objects::name(q) == format!("{name}-{j}"))
                        .is_none_or(|q| {
                            s(q, "/metadata/labels/controller-revision-hash") == revision
                        })
                });
                if newest_stale {
                    objects::delete(api, "", "pods", ns, &pod_name);
                    break;
                }
            }
            let settled = pod_ready(p) || phase(p) == "Succeeded";
            if !parallel && !settled {
                break;
            }
            continue;
        }
        for ct in &claim_templates {
            let claim_name = format!("{}-{pod_name}", s(ct, "/metadata/name"));
            if objects::get(api, "", "persistentvolumeclaims", ns, &claim_name).is_some() {
                continue;
            }
            let mut labels = ct
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            labels.extend(selector_labels.clone());
            let mut claim = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim_name, "namespace": ns, "labels": labels},
                "spec": ct.get("spec").cloned().unwrap_or(json!({})),
            });
            if let Some(a) = ct.pointer("/metadata/annotations") {
                claim["metadata"]["annotations"] = a.clone();
            }
            if when_deleted == "Delete" {
                claim["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": name, "uid": objects::uid(set), "controller": true, "blockOwnerDeletion": true}]);
            }
            let _ = objects::create_as(
                api,
                "",
                "persistentvolumeclaims",
                claim,
                "statefulset-controller",
                set,
            );
        }
        let mut labels = labels_of(&template);
        labels.insert("controller-revision-hash".into(), json!(revision));
        labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
        labels.insert("apps.kubernetes.io/pod-index".into(), json!(i.to_string()));
        let mut pod = pod_from(
            &template,
            ns,
            controller_ref(set, "apps/v1", "StatefulSet"),
            labels,
        );
        pod["metadata"]["name"] = json!(pod_name);
        pod["spec"]["hostname"] = json!(pod_name);
        let svc = s(set, "/spec/serviceName");
        if !svc.is_empty() {
            pod["spec"]["subdomain"] = json!(svc);
        }
        let mut volumes: Vec<Value> = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for ct in &claim_templates {
            let vname = s(ct, "/metadata/name");
            volumes.retain(|v| s(v, "/name") != vname);
            volumes.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": format!("{vname}-{pod_name}")}}));
        }
        if !volumes.is_empty() {
            pod["spec"]["volumes"] = json!(volumes);
        }
        let _ = objects::create_as(api, "", "pods", pod, "statefulset-controller", set);
        if !parallel {
            break;
        }
    }
    for p in &pods {
        let idx = objects::name(p)
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<i64>().ok());
        if idx.is_some_and(|i| i >= want) {
            objects::delete(api, "", "pods", ns, objects::name(p));
        }
    }
    let live: Vec<&Value> = pods.iter().filter(|p| active(p)).collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count();
    let updated = live
        .iter()
        .filter(|p| s(p, "/metadata/labels/controller-revision-hash") == revision)
        .count();
    let mut status = json!({
        "observedGeneration": generation(set),
        "replicas": live.len(), "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": updated, "updatedReplicas": updated,
        "currentRevision": revision, "updateRevision": revision, "collisionCount": 0,
    });
    for k in ["readyReplicas", "currentReplicas", "updatedReplicas"] {
        if status[k] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(k);
        }
    }
    set_status(node, "apps", "statefulsets", set, status);
}

fn daemonset(node: &Node, ds: &Value) {
    let ns = objects::namespace(ds);
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = objects::template_hash(&template);
    let pods: Vec<Value> = list_owned(node, "", "pods", ds)
        .into_iter()
        .filter(active)
        .collect();
    for p in pods
        .iter()
        .filter(|p| s(p, "/metadata/labels/controller-revision-hash") != hash)
    {
        objects::delete(&node.api, "", "pods", ns, objects::name(p));
    }
    let current: Vec<&Value> = pods
        .iter()
        .filter(|p| s(p, "/metadata/labels/controller-revision-hash") == hash)
        .collect();
    // One pod per node, placed by the DaemonSet controller itself.
    for target in node
        .names()
        .iter()
        .filter(|n| !current.iter().any(|p| s(p, "/spec/nodeName") == n.as_str()))
    {
        let mut labels = labels_of(&template);
        labels.insert("controller-revision-hash".into(), json!(hash));
        labels.insert(
            "pod-template-generation".into(),
            json!(generation(ds).to_string()),
        );
        let mut pod = pod_from(
            &template,
            ns,
            controller_ref(ds, "apps/v1", "DaemonSet"),
            labels,
        );
        pod["metadata"]["generateName"] = json!(format!("{}-", objects::name(ds)));
        pod["spec"]["nodeName"] = json!(target);
        let _ = objects::create_as(&node.api, "", "pods", pod, "daemon-set-controller", ds);
    }
    let ready = current.iter().filter(|p| pod_ready(p)).count();
    let status = json!({
        "observedGeneration": generation(ds),
        "currentNumberScheduled": current.len(), "desiredNumberScheduled": node.names().len(), "numberMisscheduled": 0,
        "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": current.len(),
    });
    set_status(node, "apps", "daemonsets", ds, status);
}

fn job(node: &Node, job: &Value) {
    let ns = objects::namespace(job);
    let finished = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| matches!(s(c, "/type"), "Complete" | "Failed") && s(c, "/status") == "True");
    let pods = list_owned(node, "", "pods", job);
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let running: Vec<&Value> = pods.iter().filter(|p| active(p)).collect();
    let completions = job
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let parallelism = job
        .pointer("/spec/parallelism")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let backoff_limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let now = crate::time::now();
    let mut status = job.get("status").cloned().unwrap_or(json!({}));
    if status.get("startTime").is_none() && !suspended {
        status["startTime"] = json!(now);
    }
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "reason": reason, "message": msg, "lastProbeTime": now, "lastTransitionTime": now});
    if !finished {
        if succeeded >= completions {
            status["conditions"] = json!([
                cond(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
                cond(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
            ]);
            status["completionTime"] = json!(now);
        } else if failed > backoff_limit {
            status["conditions"] = json!([
                cond(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit"
                ),
                cond(
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit"
                ),
            ]);
            for p in &running {
                objects::delete(&node.api, "", "pods", ns, objects::name(p));
            }
        } else if !suspended {
            let want = parallelism.min(completions - succeeded).max(0) as usize;
            let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
            for _ in running.len()..want {
                let mut labels = labels_of(&template);
                for k in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
                    labels.insert(k.into(), json!(objects::uid(job)));
                }
                for k in ["batch.kubernetes.io/job-name", "job-name"] {
                    labels.insert(k.into(), json!(objects::name(job)));
                }
                let mut pod = pod_from(
                    &template,
                    ns,
                    controller_ref(job, "batch/v1", "Job"),
                    labels,
                );
                pod["metadata"]["generateName"] = json!(format!("{}-", objects::name(job)));
                if objects::create_as(&node.api, "", "pods", pod, "job-controller", job).is_err() {
                    break;
                }
            }
        }
    }
    status["active"] = json!(running.len());
    status["ready"] = json!(running.iter().filter(|p| pod_ready(p)).count());
    status["terminating"] = json!(0);
    status["uncountedTerminatedPods"] = json!({});
    for (k, n) in [("succeeded", succeeded), ("failed", failed)] {
        if n > 0 {
            status[k] = json!(n);
        }
    }
    if status["active"] == json!(0)
        && let Some(m) = status.as_object_mut()
    {
        m.remove("active");
    }
    set_status(node, "batch", "jobs", job, status);
}
