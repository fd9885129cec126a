//! Storage: the StorageClasses `local` (default) and `local-fast`, which bind on first
//! consumer and pin their volumes to that consumer's node (as local-path and the cloud
//! defaults do), and `network` (Immediate binding, volumes usable from any node, one node at
//! a time for ReadWriteOnce); dynamic provisioning of PVs whose data is a directory under
//! the node's state directory (optionally pre-filled from a VolumeSnapshot or another
//! claim), binding as the PV controller does it, and reclaiming (`Delete` removes the PV and
//! its directory, `Retain` leaves it Released).

use super::objects::{self, s};
use super::scheduler::SELECTED_NODE;
use super::{Node, events, snapshots};
use crate::api::{Change, ChangeType};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The CSI driver (and provisioner) name of the node's volumes.
pub const DRIVER: &str = "testnode.csi.vbackup.io";

const MANAGER: &str = "persistentvolume-binder-controller";
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The binding mode that waits for a pod.
const WAIT: &str = "WaitForFirstConsumer";

/// Creates the StorageClasses when missing.
pub fn ensure_classes(node: &Node) {
    for (name, default, mode) in [
        ("local", true, WAIT),
        ("local-fast", false, WAIT),
        ("network", false, "Immediate"),
    ] {
        if objects::get(&node.api, "storage.k8s.io", "storageclasses", "", name).is_some() {
            continue;
        }
        let mut sc = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": mode,
            "allowVolumeExpansion": true,
        });
        if default {
            sc["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        let _ = objects::create(
            &node.api,
            "storage.k8s.io",
            "storageclasses",
            sc,
            "testnode",
        );
    }
}

/// The class of a claim: its own, else the default one.
fn class_of(node: &Node, claim: &Value) -> Option<Value> {
    let name = match claim.pointer("/spec/storageClassName") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return None,
        None => default_class(node)?,
    };
    objects::get(&node.api, "storage.k8s.io", "storageclasses", "", &name)
}

/// Whether an unbound claim is bound through the scheduler (`WaitForFirstConsumer`).
pub fn binds_on_first_consumer(node: &Node, claim: &Value) -> bool {
    class_of(node, claim).is_some_and(|c| s(&c, "/volumeBindingMode") == WAIT)
}

/// Whether the node's provisioner can make a volume for the claim (or a volume is
/// pre-bound to it).
pub fn can_provision(node: &Node, claim: &Value) -> bool {
    class_of(node, claim).is_some_and(|c| s(&c, "/provisioner") == DRIVER)
        || objects::list(&node.api, "", "persistentvolumes", None)
            .iter()
            .any(|pv| claim_matches(pv, claim))
}

/// A quantity (`1Gi`, `500M`, `1024`) in bytes.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    match number.split_once('.') {
        None => number.parse::<u128>().ok().map(|n| n * factor),
        Some(_) => number
            .parse::<f64>()
            .ok()
            .map(|n| (n * factor as f64).ceil() as u128),
    }
}

fn default_class(node: &Node) -> Option<String> {
    objects::list(&node.api, "storage.k8s.io", "storageclasses", None)
        .into_iter()
        .filter(|c| {
            s(
                c,
                &format!(
                    "/metadata/annotations/{}",
                    DEFAULT_CLASS_ANNOTATION.replace('/', "~1")
                ),
            ) == "true"
        })
        .map(|c| objects::name(&c).to_string())
        .max()
}

/// The host directory holding a PV's data.
pub fn pv_dir(node: &Node, pv: &Value) -> Option<PathBuf> {
    if s(pv, "/spec/csi/driver") == DRIVER {
        let handle = s(pv, "/spec/csi/volumeHandle");
        if handle.is_empty() || handle.contains('/') || handle.starts_with('.') {
            return None;
        }
        return Some(node.dir.join("volumes").join(handle));
    }
    for p in ["/spec/hostPath/path", "/spec/local/path"] {
        let path = s(pv, p);
        if !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The data directory of a bound claim.
pub fn claim_dir(node: &Node, ns: &str, claim: &str) -> Option<PathBuf> {
    let pvc = objects::get(&node.api, "", "persistentvolumeclaims", ns, claim)?;
    if s(&pvc, "/status/phase") != "Bound" {
        return None;
    }
    let pv = objects::get(
        &node.api,
        "",
        "persistentvolumes",
        "",
        s(&pvc, "/spec/volumeName"),
    )?;
    pv_dir(node, &pv)
}

/// Copies a directory's content (modes, owners, links, times) into `to`.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(format!("{}/", to.display()))
        .output()
        .map_err(|e| format!("running cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "copying {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Reacts to a claim's change.
pub fn on_claim_change(node: &Node, change: &Change) {
    if change.type_ == ChangeType::Deleted {
        reclaim_for(node, &change.object);
    } else {
        reconcile_claim(node, change.object.clone());
    }
}

/// Reconciles every claim and volume.
pub fn reconcile_all(node: &Node) {
    for pvc in objects::list(&node.api, "", "persistentvolumeclaims", None) {
        reconcile_claim(node, pvc);
    }
    for pv in objects::list(&node.api, "", "persistentvolumes", None) {
        reconcile_volume(node, &pv);
    }
}

/// Reconciles the claims of one namespace (a snapshot they wait for may be ready).
pub fn reconcile_namespace(node: &Node, ns: &str) {
    if ns.is_empty() {
        return;
    }
    for pvc in objects::list(&node.api, "", "persistentvolumeclaims", Some(ns)) {
        if s(&pvc, "/status/phase") != "Bound" {
            reconcile_claim(node, pvc);
        }
    }
}

fn claim_matches(pv: &Value, pvc: &Value) -> bool {
    let r = pv.pointer("/spec/claimRef");
    r.is_some_and(|r| {
        s(r, "/namespace") == objects::namespace(pvc)
            && s(r, "/name") == objects::name(pvc)
            && (s(r, "/uid").is_empty() || s(r, "/uid") == objects::uid(pvc))
    })
}

fn reconcile_claim(node: &Node, mut pvc: Value) {
    if objects::deleting(&pvc) {
        return;
    }
    let api = &node.api;
    let volume_name = s(&pvc, "/spec/volumeName").to_string();
    if !volume_name.is_empty() {
        let Some(pv) = objects::get(api, "", "persistentvolumes", "", &volume_name) else {
            if s(&pvc, "/status/phase") == "Bound" {
                let mut lost = pvc.clone();
                lost["status"]["phase"] = json!("Lost");
                let _ = objects::update_status(api, "", "persistentvolumeclaims", lost, MANAGER);
            }
            return;
        };
        let claimed_by_other = pv.pointer("/spec/claimRef").is_some() && !claim_matches(&pv, &pvc);
        let settled = s(&pvc, "/status/phase") == "Bound" && s(&pv, "/status/phase") == "Bound";
        if !claimed_by_other && !settled {
            bind(node, &pvc, pv, false);
        }
        return;
    }
    if pvc
        .pointer("/spec/storageClassName")
        .is_none_or(Value::is_null)
    {
        let Some(class) = default_class(node) else {
            return;
        };
        pvc["spec"]["storageClassName"] = json!(class);
        match objects::update(api, "", "persistentvolumeclaims", pvc.clone(), MANAGER) {
            Ok(updated) => pvc = updated,
            Err(_) => return,
        }
    }
    let class = s(&pvc, "/spec/storageClassName").to_string();
    // A PV pre-bound to this claim (restores, static provisioning) wins over provisioning.
    if let Some(pv) = objects::list(api, "", "persistentvolumes", None)
        .into_iter()
        .find(|pv| claim_matches(pv, &pvc) && s(pv, "/status/phase") != "Released")
    {
        bind(node, &pvc, pv, true);
        return;
    }
    let Some(sc) = objects::get(api, "storage.k8s.io", "storageclasses", "", &class) else {
        return;
    };
    if s(&sc, "/provisioner") != DRIVER {
        return;
    }
    let selected = s(
        &pvc,
        &format!("/metadata/annotations/{}", SELECTED_NODE.replace('/', "~1")),
    )
    .to_string();
    if s(&sc, "/volumeBindingMode") == WAIT && selected.is_empty() {
        events::record(
            api,
            &pvc,
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
            "persistentvolume-controller",
        );
        return;
    }
    let source = pvc
        .pointer("/spec/dataSourceRef")
        .or_else(|| pvc.pointer("/spec/dataSource"))
        .cloned();
    let ns = objects::namespace(&pvc).to_string();
    let source_dir = match source {
        None => None,
        Some(src) => match (s(&src, "/apiGroup"), s(&src, "/kind")) {
            ("snapshot.storage.k8s.io", "VolumeSnapshot") => {
                let Some((dir, restore_size)) =
                    snapshots::ready_data_dir(node, &ns, s(&src, "/name"))
                else {
                    return;
                };
                let requested = s(&pvc, "/spec/resources/requests/storage");
                let (Some(want), Some(have)) =
                    (quantity_bytes(requested), quantity_bytes(&restore_size))
                else {
                    return;
                };
                if want < have {
                    events::record(
                        api,
                        &pvc,
                        "Warning",
                        "ProvisioningFailed",
                        &format!(
                            "failed to provision volume with StorageClass \"{class}\": requested volume size {want} is less than the size {have} for the source snapshot {}",
                            s(&src, "/name")
                        ),
                        &format!("{DRIVER}_{}", node.names[0]),
                    );
                    return;
                }
                Some(dir)
            }
            ("", "PersistentVolumeClaim") => match claim_dir(node, &ns, s(&src, "/name")) {
                Some(d) => Some(d),
                None => return,
            },
            _ => None,
        },
    };
    let pv_name = format!("pvc-{}", objects::uid(&pvc));
    let pv = match objects::get(api, "", "persistentvolumes", "", &pv_name) {
        Some(pv) => pv,
        None => {
            let dir = node.dir.join("volumes").join(&pv_name);
            if std::fs::create_dir_all(&dir).is_err() {
                return;
            }
            if let Some(src) = &source_dir
                && let Err(e) = copy_tree(src, &dir)
            {
                tracing::warn!("provisioning {pv_name}: {e}");
                return;
            }
            let storage = pvc
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or(json!("1Gi"));
            let mut spec = json!({
                "capacity": {"storage": storage},
                "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy").cloned().unwrap_or(json!("Delete")),
                "storageClassName": class,
                "volumeMode": pvc.pointer("/spec/volumeMode").cloned().unwrap_or(json!("Filesystem")),
                "csi": {"driver": DRIVER, "volumeHandle": pv_name, "fsType": "ext4",
                        "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": format!("{DRIVER}-{}", node.names[0])}},
            });
            // Volumes bound on first consumer live on that consumer's node.
            if !selected.is_empty() {
                spec["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [selected]}]}]}});
            }
            if let Some(mo) = sc.get("mountOptions") {
                spec["mountOptions"] = mo.clone();
            }
            let pv = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER,
                    "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                    "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""}},
                "spec": spec,
            });
            match objects::create(api, "", "persistentvolumes", pv, "csi-provisioner") {
                Ok(pv) => pv,
                Err(e) => {
                    tracing::warn!("creating {pv_name}: {}", e.message);
                    return;
                }
            }
        }
    };
    bind(node, &pvc, pv, true);
}

fn bind(node: &Node, pvc: &Value, mut pv: Value, by_controller: bool) {
    let api = &node.api;
    let pv_name = objects::name(&pv).to_string();
    let claim_ref = json!({
        "kind": "PersistentVolumeClaim", "namespace": objects::namespace(pvc), "name": objects::name(pvc),
        "uid": objects::uid(pvc), "apiVersion": "v1", "resourceVersion": s(pvc, "/metadata/resourceVersion"),
    });
    let had_ref = pv
        .pointer("/spec/claimRef/uid")
        .is_some_and(|u| u == objects::uid(pvc));
    if !had_ref {
        if pv.pointer("/spec/claimRef").is_none() {
            pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        }
        pv["spec"]["claimRef"] = claim_ref;
        match objects::update(api, "", "persistentvolumes", pv, MANAGER) {
            Ok(p) => pv = p,
            Err(_) => return,
        }
    }
    if s(&pv, "/status/phase") != "Bound" {
        let mut p = pv.clone();
        p["status"] = json!({"phase": "Bound"});
        match objects::update_status(api, "", "persistentvolumes", p, MANAGER) {
            Ok(p) => pv = p,
            Err(_) => return,
        }
    }
    let mut claim = pvc.clone();
    claim["spec"]["volumeName"] = json!(pv_name);
    let ann = &mut claim["metadata"]["annotations"];
    if !ann.is_object() {
        *ann = json!({});
    }
    ann["pv.kubernetes.io/bind-completed"] = json!("yes");
    if by_controller {
        ann["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    }
    if s(&pv, "/spec/csi/driver") == DRIVER
        && s(
            &pv,
            "/metadata/annotations/pv.kubernetes.io~1provisioned-by",
        ) == DRIVER
    {
        ann["volume.beta.kubernetes.io/storage-provisioner"] = json!(DRIVER);
        ann["volume.kubernetes.io/storage-provisioner"] = json!(DRIVER);
    }
    let Ok(mut claim) = objects::update(api, "", "persistentvolumeclaims", claim, MANAGER) else {
        return;
    };
    claim["status"] = json!({
        "phase": "Bound",
        "accessModes": pv.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
        "capacity": pv.pointer("/spec/capacity").cloned().unwrap_or(json!({})),
    });
    let _ = objects::update_status(api, "", "persistentvolumeclaims", claim, MANAGER);
}

/// A claim is gone: release its volume, and delete it with its data under `Delete`.
fn reclaim_for(node: &Node, pvc: &Value) {
    for pv in objects::list(&node.api, "", "persistentvolumes", None) {
        if s(&pv, "/spec/claimRef/uid") == objects::uid(pvc) && !objects::uid(pvc).is_empty() {
            release(node, pv);
        }
    }
}

fn reconcile_volume(node: &Node, pv: &Value) {
    let uid = s(pv, "/spec/claimRef/uid");
    if uid.is_empty() {
        return;
    }
    let ns = s(pv, "/spec/claimRef/namespace");
    let name = s(pv, "/spec/claimRef/name");
    let claim = objects::get(&node.api, "", "persistentvolumeclaims", ns, name);
    let claim_gone = claim.is_none_or(|c| objects::uid(&c) != uid);
    if claim_gone || s(pv, "/status/phase") == "Released" {
        release(node, pv.clone());
    }
}

fn release(node: &Node, mut pv: Value) {
    let name = objects::name(&pv).to_string();
    if s(&pv, "/status/phase") != "Released" {
        let mut p = pv.clone();
        p["status"] = json!({"phase": "Released"});
        match objects::update_status(&node.api, "", "persistentvolumes", p, MANAGER) {
            Ok(p) => pv = p,
            Err(_) => return,
        }
    }
    if s(&pv, "/spec/persistentVolumeReclaimPolicy") == "Delete" {
        // Only volumes the node provisioned have data it may remove.
        if s(&pv, "/spec/csi/driver") == DRIVER
            && let Some(dir) = pv_dir(node, &pv)
            && dir.starts_with(node.dir.join("volumes"))
        {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !objects::deleting(&pv) {
            objects::delete(&node.api, "", "persistentvolumes", "", &name);
        }
    }
}
