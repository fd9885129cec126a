//! CSI snapshots as the external snapshotter and a CSI driver do them: a VolumeSnapshot of a
//! bound claim gets a VolumeSnapshotContent and a copy of the data taken at that instant;
//! pre-provisioned contents bind to the snapshot naming them; `Delete` contents take their
//! copy with them. The snapshot controller's finalizers protect a snapshot that is bound or
//! being restored from, and a bound content. A VolumeSnapshotClass with the parameter
//! [`NEVER_READY_PARAMETER`] = `"true"` never becomes ready (timeouts); with
//! [`READY_AFTER_PARAMETER`] = `"N"` its snapshots become ready N seconds after they were
//! taken (slow storage).

use super::Node;
use super::objects::{self, s};
use super::storage::{self, DRIVER};
use crate::api::{Api, Change, ChangeType};
use serde_json::{Value, json};
use std::path::PathBuf;

/// VolumeSnapshotClass parameter: `"true"` keeps its snapshots from ever becoming ready.
pub const NEVER_READY_PARAMETER: &str = "testnode.vbackup.io/never-ready";

/// VolumeSnapshotClass parameter: snapshots become ready this many seconds after creation.
pub const READY_AFTER_PARAMETER: &str = "testnode.vbackup.io/ready-after-seconds";

const AS_SOURCE: &str = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
const BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
const CONTENT_BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";

const GROUP: &str = "snapshot.storage.k8s.io";
const MANAGER: &str = "snapshot-controller";
const DEFAULT_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";

fn crd(plural: &str, kind: &str, scope: &str, short: &[&str], columns: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}"),
            "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/814"}},
        "spec": {
            "group": GROUP, "scope": scope,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind,
                      "listKind": format!("{kind}List"), "shortNames": short},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": if kind == "VolumeSnapshotClass" { json!(null) } else { json!({"status": {}}) },
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

fn col(name: &str, ty: &str, path: &str) -> Value {
    json!({"name": name, "type": ty, "jsonPath": path})
}

/// Installs the `snapshot.storage.k8s.io/v1` CRDs and a default VolumeSnapshotClass
/// (`testnode-snapclass`) for the node's driver, when missing.
pub fn install_snapshot_crds(api: &Api) {
    let crds = [
        crd(
            "volumesnapshotclasses",
            "VolumeSnapshotClass",
            "Cluster",
            &["vsclass", "vsclasses"],
            json!([
                col("Driver", "string", ".driver"),
                col("DeletionPolicy", "string", ".deletionPolicy"),
                col("Age", "date", ".metadata.creationTimestamp")
            ]),
        ),
        crd(
            "volumesnapshotcontents",
            "VolumeSnapshotContent",
            "Cluster",
            &["vsc", "vscs"],
            json!([
                col("ReadyToUse", "boolean", ".status.readyToUse"),
                col("RestoreSize", "integer", ".status.restoreSize"),
                col("DeletionPolicy", "string", ".spec.deletionPolicy"),
                col("Driver", "string", ".spec.driver"),
                col(
                    "VolumeSnapshotClass",
                    "string",
                    ".spec.volumeSnapshotClassName"
                ),
                col("VolumeSnapshot", "string", ".spec.volumeSnapshotRef.name"),
                col(
                    "VolumeSnapshotNamespace",
                    "string",
                    ".spec.volumeSnapshotRef.namespace"
                ),
                col("Age", "date", ".metadata.creationTimestamp")
            ]),
        ),
        crd(
            "volumesnapshots",
            "VolumeSnapshot",
            "Namespaced",
            &["vs"],
            json!([
                col("ReadyToUse", "boolean", ".status.readyToUse"),
                col(
                    "SourcePVC",
                    "string",
                    ".spec.source.persistentVolumeClaimName"
                ),
                col(
                    "SourceSnapshotContent",
                    "string",
                    ".spec.source.volumeSnapshotContentName"
                ),
                col("RestoreSize", "string", ".status.restoreSize"),
                col("SnapshotClass", "string", ".spec.volumeSnapshotClassName"),
                col(
                    "SnapshotContent",
                    "string",
                    ".status.boundVolumeSnapshotContentName"
                ),
                col("CreationTime", "date", ".status.creationTime"),
                col("Age", "date", ".metadata.creationTimestamp")
            ]),
        ),
    ];
    for c in crds {
        if objects::get(
            api,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            objects::name(&c),
        )
        .is_none()
        {
            let _ = objects::create(
                api,
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                c,
                "testnode",
            );
        }
    }
    if api.resource(GROUP, "volumesnapshotclasses").is_some() && !default_class_exists(api) {
        let class = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "testnode-snapclass", "annotations": {DEFAULT_ANNOTATION: "true"}},
            "driver": DRIVER, "deletionPolicy": "Delete",
        });
        let _ = objects::create(api, GROUP, "volumesnapshotclasses", class, "testnode");
    }
}

/// Whether the default VolumeSnapshotClass exists (the snapshot CRDs are served).
pub fn default_class_exists(api: &Api) -> bool {
    api.resource(GROUP, "volumesnapshotclasses").is_some()
        && objects::get(
            api,
            GROUP,
            "volumesnapshotclasses",
            "",
            "testnode-snapclass",
        )
        .is_some()
}

fn served(node: &Node) -> bool {
    node.api.resource(GROUP, "volumesnapshots").is_some()
        && node.api.resource(GROUP, "volumesnapshotcontents").is_some()
}

fn data_dir(node: &Node, handle: &str) -> Option<PathBuf> {
    (!handle.is_empty() && !handle.contains('/') && !handle.starts_with('.'))
        .then(|| node.dir.join("snapshots").join(handle))
}

/// The data and `restoreSize` of a ready snapshot in `ns`, for a claim restored from it.
pub fn ready_data_dir(node: &Node, ns: &str, name: &str) -> Option<(PathBuf, String)> {
    if !served(node) {
        return None;
    }
    let vs = objects::get(&node.api, GROUP, "volumesnapshots", ns, name)?;
    if vs.pointer("/status/readyToUse") != Some(&json!(true)) {
        return None;
    }
    let content = objects::get(
        &node.api,
        GROUP,
        "volumesnapshotcontents",
        "",
        s(&vs, "/status/boundVolumeSnapshotContentName"),
    )?;
    if content.pointer("/status/readyToUse") != Some(&json!(true)) {
        return None;
    }
    let restore_size = match vs.pointer("/status/restoreSize") {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    };
    data_dir(node, s(&content, "/status/snapshotHandle"))
        .filter(|d| d.is_dir())
        .map(|d| (d, restore_size))
}

/// Reacts to a change of a snapshot object.
pub fn on_change(node: &Node, change: &Change) {
    if !served(node) {
        return;
    }
    match (change.key.resource.as_str(), change.type_) {
        ("volumesnapshots", ChangeType::Deleted) => snapshot_deleted(node, &change.object),
        ("volumesnapshots", _) => reconcile_snapshot(node, change.object.clone()),
        ("volumesnapshotcontents", ChangeType::Deleted) => content_deleted(node, &change.object),
        ("volumesnapshotcontents", _) => {
            if objects::deleting(&change.object) {
                content_deleting(node, change.object.clone());
            }
            let ns = s(&change.object, "/spec/volumeSnapshotRef/namespace").to_string();
            reconcile_namespace(node, &ns);
        }
        ("volumesnapshotclasses", _) => reconcile_all(node),
        _ => {}
    }
}

/// Reconciles every snapshot.
pub fn reconcile_all(node: &Node) {
    if !served(node) {
        return;
    }
    for vs in objects::list(&node.api, GROUP, "volumesnapshots", None) {
        reconcile_snapshot(node, vs);
    }
}

/// Reconciles the snapshots of a namespace (a claim they wait for may be bound).
pub fn reconcile_namespace(node: &Node, ns: &str) {
    if !served(node) || ns.is_empty() {
        return;
    }
    for vs in objects::list(&node.api, GROUP, "volumesnapshots", Some(ns)) {
        reconcile_snapshot(node, vs);
    }
}

fn class_for(node: &Node, vs: &Value) -> Option<Value> {
    let name = s(vs, "/spec/volumeSnapshotClassName");
    if !name.is_empty() {
        return objects::get(&node.api, GROUP, "volumesnapshotclasses", "", name);
    }
    objects::list(&node.api, GROUP, "volumesnapshotclasses", None)
        .into_iter()
        .filter(|c| s(c, "/driver") == DRIVER)
        .find(|c| {
            s(
                c,
                &format!(
                    "/metadata/annotations/{}",
                    DEFAULT_ANNOTATION.replace('/', "~1")
                ),
            ) == "true"
        })
}

fn never_ready(class: &Value) -> bool {
    class
        .pointer("/parameters")
        .and_then(|p| p.get(NEVER_READY_PARAMETER))
        == Some(&json!("true"))
}

/// The class's `ready-after-seconds`, if set.
fn ready_after(class: &Value) -> Option<u64> {
    class
        .pointer("/parameters")
        .and_then(|p| p.get(READY_AFTER_PARAMETER))
        .and_then(Value::as_str)
        .and_then(|n| n.parse().ok())
}

/// Whether a content taken at `created_nanos` under `class` is ready now; schedules a
/// re-check of `ns` for when it will be.
fn ready_now(node: &Node, class: &Value, created_nanos: i64, ns: &str) -> bool {
    if never_ready(class) {
        return false;
    }
    let Some(after) = ready_after(class) else {
        return true;
    };
    let due = created_nanos.saturating_add(after as i64 * 1_000_000_000);
    let left = due.saturating_sub(now_nanos());
    if left <= 0 {
        return true;
    }
    if let Some(me) = node.me.upgrade() {
        let ns = ns.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_nanos(left as u64)).await;
            reconcile_namespace(&me, &ns);
        });
    }
    false
}

fn has_finalizer(o: &Value, name: &str) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == name))
}

/// Adds or removes a finalizer; returns the object as written.
fn set_finalizer(api: &Api, plural: &str, mut o: Value, name: &str, on: bool) -> Option<Value> {
    if has_finalizer(&o, name) == on {
        return Some(o);
    }
    let md = &mut o["metadata"];
    if !md.get("finalizers").is_some_and(Value::is_array) {
        md["finalizers"] = json!([]);
    }
    if let Some(f) = md["finalizers"].as_array_mut() {
        if on {
            f.push(json!(name));
        } else {
            f.retain(|x| x != name);
        }
    }
    objects::update(api, GROUP, plural, o, MANAGER).ok()
}

/// Whether a claim being provisioned (not bound yet) restores from this snapshot.
fn used_as_source(node: &Node, vs: &Value) -> bool {
    objects::list(
        &node.api,
        "",
        "persistentvolumeclaims",
        Some(objects::namespace(vs)),
    )
    .iter()
    .filter(|c| s(c, "/status/phase") != "Bound" && !objects::deleting(c))
    .any(|c| {
        let src = c
            .pointer("/spec/dataSourceRef")
            .or_else(|| c.pointer("/spec/dataSource"));
        src.is_some_and(|d| {
            s(d, "/kind") == "VolumeSnapshot"
                && s(d, "/apiGroup") == GROUP
                && s(d, "/name") == objects::name(vs)
        })
    })
}

/// A snapshot being deleted: kept while a claim restores from it; then its `Delete`
/// content goes first, and the snapshot's finalizers last.
fn snapshot_deleting(node: &Node, vs: Value) {
    let api = &node.api;
    if used_as_source(node, &vs) {
        return;
    }
    let Some(vs) = set_finalizer(api, "volumesnapshots", vs, AS_SOURCE, false) else {
        return;
    };
    let bound = s(&vs, "/status/boundVolumeSnapshotContentName").to_string();
    if let Some(content) = objects::get(api, GROUP, "volumesnapshotcontents", "", &bound)
        && s(&content, "/spec/volumeSnapshotRef/uid") == objects::uid(&vs)
    {
        if s(&content, "/spec/deletionPolicy") == "Delete" {
            if !objects::deleting(&content) {
                objects::delete(api, GROUP, "volumesnapshotcontents", "", &bound);
            }
            // The snapshot's finalizer goes once the content is gone.
            return;
        }
        let _ = set_finalizer(api, "volumesnapshotcontents", content, CONTENT_BOUND, false);
    }
    let _ = set_finalizer(api, "volumesnapshots", vs, BOUND, false);
}

/// A content being deleted: kept while its snapshot exists; then (under `Delete`) its data
/// goes, and its finalizer.
fn content_deleting(node: &Node, content: Value) {
    let api = &node.api;
    let ns = s(&content, "/spec/volumeSnapshotRef/namespace").to_string();
    let snapshot = objects::get(
        api,
        GROUP,
        "volumesnapshots",
        &ns,
        s(&content, "/spec/volumeSnapshotRef/name"),
    )
    .filter(|vs| objects::uid(vs) == s(&content, "/spec/volumeSnapshotRef/uid"));
    if snapshot.as_ref().is_some_and(|vs| !objects::deleting(vs)) {
        return;
    }
    content_deleted(node, &content);
    let _ = set_finalizer(api, "volumesnapshotcontents", content, CONTENT_BOUND, false);
    if let Some(vs) = snapshot {
        let _ = set_finalizer(api, "volumesnapshots", vs, BOUND, false);
    }
}

fn set_error(node: &Node, mut vs: Value, message: &str) {
    if s(&vs, "/status/error/message") == message {
        return;
    }
    vs["status"]["readyToUse"] = json!(false);
    vs["status"]["error"] = json!({"message": message, "time": crate::time::now()});
    let _ = objects::update_status(&node.api, GROUP, "volumesnapshots", vs, MANAGER);
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += dir_size(&e.path()),
            Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    total
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn reconcile_snapshot(node: &Node, mut vs: Value) {
    let api = &node.api;
    if objects::deleting(&vs) {
        snapshot_deleting(node, vs);
        return;
    }
    let ns = objects::namespace(&vs).to_string();
    let used = used_as_source(node, &vs);
    match set_finalizer(api, "volumesnapshots", vs, AS_SOURCE, used) {
        Some(v) => vs = v,
        None => return,
    }
    let bound = s(&vs, "/status/boundVolumeSnapshotContentName").to_string();
    if !bound.is_empty() {
        // Follow the content's readiness (a pre-provisioned one may turn ready later).
        if let Some(mut content) = objects::get(api, GROUP, "volumesnapshotcontents", "", &bound) {
            if s(&content, "/spec/deletionPolicy") == "Delete" && !has_finalizer(&vs, BOUND) {
                match set_finalizer(api, "volumesnapshots", vs, BOUND, true) {
                    Some(v) => vs = v,
                    None => return,
                }
            }
            if content.pointer("/status/readyToUse") == Some(&json!(false))
                && let Some(class) = class_for(node, &vs)
                && !s(&content, "/status/snapshotHandle").is_empty()
            {
                let created = content
                    .pointer("/status/creationTime")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if ready_now(node, &class, created, &ns) {
                    content["status"]["readyToUse"] = json!(true);
                    match objects::update_status(
                        api,
                        GROUP,
                        "volumesnapshotcontents",
                        content,
                        "csi-snapshotter",
                    ) {
                        Ok(c) => content = c,
                        Err(_) => return,
                    }
                }
            }
            let ready = content
                .pointer("/status/readyToUse")
                .cloned()
                .unwrap_or(json!(false));
            if vs.pointer("/status/readyToUse") != Some(&ready) {
                vs["status"]["readyToUse"] = ready;
                let _ = objects::update_status(api, GROUP, "volumesnapshots", vs, MANAGER);
            }
        }
        return;
    }
    let pre = s(&vs, "/spec/source/volumeSnapshotContentName").to_string();
    if !pre.is_empty() {
        bind_pre_provisioned(node, vs, &pre);
        return;
    }
    let claim_name = s(&vs, "/spec/source/persistentVolumeClaimName").to_string();
    let Some(class) = class_for(node, &vs) else {
        let msg = if s(&vs, "/spec/volumeSnapshotClassName").is_empty() {
            "Failed to set default snapshot class with error cannot find default snapshot class"
                .to_string()
        } else {
            format!(
                "Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{}\" not found",
                s(&vs, "/spec/volumeSnapshotClassName")
            )
        };
        set_error(node, vs, &msg);
        return;
    };
    if s(&vs, "/spec/volumeSnapshotClassName").is_empty() {
        vs["spec"]["volumeSnapshotClassName"] = json!(objects::name(&class));
        match objects::update(api, GROUP, "volumesnapshots", vs, MANAGER) {
            Ok(v) => vs = v,
            Err(_) => return,
        }
    }
    let Some(pvc) = objects::get(api, "", "persistentvolumeclaims", &ns, &claim_name) else {
        set_error(
            node,
            vs,
            &format!(
                "failed to retrieve PVC {claim_name}: persistentvolumeclaim \"{claim_name}\" not found"
            ),
        );
        return;
    };
    let Some(src) = storage::claim_dir(node, &ns, &claim_name) else {
        return;
    };
    let content_name = format!("snapcontent-{}", objects::uid(&vs));
    let Some(dest) = data_dir(node, &content_name) else {
        return;
    };
    if objects::get(api, GROUP, "volumesnapshotcontents", "", &content_name).is_none() {
        if let Err(e) = storage::copy_tree(&src, &dest) {
            set_error(node, vs, &e);
            return;
        }
        let content = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": content_name, "finalizers": [CONTENT_BOUND]},
            "spec": {
                "deletionPolicy": class.get("deletionPolicy").cloned().unwrap_or(json!("Delete")),
                "driver": DRIVER,
                "source": {"volumeHandle": s(&pvc, "/spec/volumeName")},
                "sourceVolumeMode": pvc.pointer("/spec/volumeMode").cloned().unwrap_or(json!("Filesystem")),
                "volumeSnapshotClassName": objects::name(&class),
                "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                    "name": objects::name(&vs), "namespace": ns, "uid": objects::uid(&vs),
                    "resourceVersion": s(&vs, "/metadata/resourceVersion")},
            },
        });
        let Ok(mut content) =
            objects::create(api, GROUP, "volumesnapshotcontents", content, MANAGER)
        else {
            return;
        };
        let created = now_nanos();
        let size = storage::quantity_bytes(s(&pvc, "/status/capacity/storage"))
            .map(|b| b as u64)
            .unwrap_or_else(|| dir_size(&dest));
        content["status"] = json!({
            "creationTime": created,
            "readyToUse": ready_now(node, &class, created, &ns),
            "restoreSize": size,
            "snapshotHandle": content_name,
        });
        let _ = objects::update_status(
            api,
            GROUP,
            "volumesnapshotcontents",
            content,
            "csi-snapshotter",
        );
    }
    let ready = objects::get(api, GROUP, "volumesnapshotcontents", "", &content_name)
        .and_then(|c| c.pointer("/status/readyToUse").and_then(Value::as_bool))
        .unwrap_or(false);
    let size = pvc
        .pointer("/status/capacity/storage")
        .cloned()
        .unwrap_or(json!("0"));
    vs["status"] = json!({
        "boundVolumeSnapshotContentName": content_name,
        "creationTime": crate::time::now(),
        "readyToUse": ready,
        "restoreSize": size,
    });
    let _ = objects::update_status(api, GROUP, "volumesnapshots", vs, MANAGER);
}

fn bind_pre_provisioned(node: &Node, mut vs: Value, content_name: &str) {
    let api = &node.api;
    let Some(mut content) = objects::get(api, GROUP, "volumesnapshotcontents", "", content_name)
    else {
        return;
    };
    if s(&content, "/spec/volumeSnapshotRef/name") != objects::name(&vs)
        || s(&content, "/spec/volumeSnapshotRef/namespace") != objects::namespace(&vs)
    {
        return;
    }
    if s(&content, "/spec/volumeSnapshotRef/uid") != objects::uid(&vs)
        || !has_finalizer(&content, CONTENT_BOUND)
    {
        content["spec"]["volumeSnapshotRef"]["uid"] = json!(objects::uid(&vs));
        if !has_finalizer(&content, CONTENT_BOUND) {
            if !content
                .pointer("/metadata/finalizers")
                .is_some_and(Value::is_array)
            {
                content["metadata"]["finalizers"] = json!([]);
            }
            if let Some(f) = content["metadata"]["finalizers"].as_array_mut() {
                f.push(json!(CONTENT_BOUND));
            }
        }
        match objects::update(api, GROUP, "volumesnapshotcontents", content, MANAGER) {
            Ok(c) => content = c,
            Err(_) => return,
        }
    }
    let handle = s(&content, "/spec/source/snapshotHandle").to_string();
    let dir = data_dir(node, &handle).filter(|d| d.is_dir());
    let ready = dir.is_some();
    if content.pointer("/status/readyToUse") != Some(&json!(ready)) {
        content["status"] = json!({
            "creationTime": now_nanos(), "readyToUse": ready,
            "restoreSize": dir.as_deref().map(dir_size).unwrap_or(0), "snapshotHandle": handle,
        });
        let _ = objects::update_status(
            api,
            GROUP,
            "volumesnapshotcontents",
            content,
            "csi-snapshotter",
        );
    }
    vs["status"] = json!({
        "boundVolumeSnapshotContentName": content_name,
        "creationTime": crate::time::now(),
        "readyToUse": ready,
    });
    let _ = objects::update_status(api, GROUP, "volumesnapshots", vs, MANAGER);
}

fn snapshot_deleted(node: &Node, vs: &Value) {
    let content = s(vs, "/status/boundVolumeSnapshotContentName");
    if let Some(c) = objects::get(&node.api, GROUP, "volumesnapshotcontents", "", content)
        && s(&c, "/spec/deletionPolicy") == "Delete"
    {
        objects::delete(&node.api, GROUP, "volumesnapshotcontents", "", content);
    }
}

fn content_deleted(node: &Node, content: &Value) {
    if s(content, "/spec/deletionPolicy") != "Delete" {
        return;
    }
    let handle = s(content, "/status/snapshotHandle");
    let handle = if handle.is_empty() {
        s(content, "/spec/source/snapshotHandle")
    } else {
        handle
    };
    if let Some(dir) = data_dir(node, handle) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
