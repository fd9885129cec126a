//! A pod's volumes as host directories: claims resolve to their PV's directory, `emptyDir`
//! is per pod, ConfigMap/Secret/downward API/projected volumes are written as files.

use super::objects::{self, s};
use super::sandbox::Bind;
use super::{Node, storage};
use base64::Engine;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A volume ready to mount.
#[derive(Debug, Clone)]
pub struct HostVolume {
    /// Host directory.
    pub dir: PathBuf,
    /// Always read-only (claims with `readOnly`, ConfigMaps, Secrets...).
    pub read_only: bool,
}

/// Why a pod's volumes are not ready yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady(pub String);

/// The claims a pod mounts.
pub fn claims(pod: &Value) -> Vec<String> {
    crate::storage_protection::pod_claims(pod)
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8], mode: u32) -> Result<(), NotReady> {
    use std::os::unix::fs::PermissionsExt;
    if rel.split('/').any(|p| p == "..") || rel.starts_with('/') {
        return Err(NotReady(format!("invalid item path {rel:?}")));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| NotReady(format!("creating {}: {e}", parent.display())))?;
    }
    std::fs::write(&path, bytes)
        .map_err(|e| NotReady(format!("writing {}: {e}", path.display())))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777));
    Ok(())
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.get("mode")
        .or_else(|| v.get("defaultMode"))
        .and_then(Value::as_u64)
        .map(|m| m as u32)
        .unwrap_or(default)
}

/// Writes the keys of a ConfigMap or Secret (`plural`) into `dir`.
fn project_keys(
    node: &Node,
    ns: &str,
    plural: &str,
    src: &Value,
    dir: &Path,
    default_mode: u32,
) -> Result<(), NotReady> {
    let name = s(src, "/name");
    let optional = src.get("optional").and_then(Value::as_bool) == Some(true);
    let Some(obj) = objects::get(&node.api, "", plural, ns, name) else {
        if optional {
            return Ok(());
        }
        let word = if plural == "secrets" {
            "secret"
        } else {
            "configmap"
        };
        return Err(NotReady(format!("{word} \"{name}\" not found")));
    };
    let mut data: Vec<(String, Vec<u8>)> = Vec::new();
    for (field, b64) in [("data", plural == "secrets"), ("binaryData", true)] {
        for (k, v) in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = v.as_str().unwrap_or_default();
            let bytes = if b64 {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_default()
            } else {
                text.as_bytes().to_vec()
            };
            data.push((k.clone(), bytes));
        }
    }
    let mode = mode_of(src, default_mode);
    match src.get("items").and_then(Value::as_array) {
        Some(items) => {
            for it in items {
                let key = s(it, "/key");
                let Some((_, bytes)) = data.iter().find(|(k, _)| k == key) else {
                    if optional {
                        continue;
                    }
                    return Err(NotReady(format!(
                        "configmap references non-existent config key: {key}"
                    )));
                };
                write_file(dir, s(it, "/path"), bytes, mode_of(it, mode))?;
            }
        }
        None => {
            for (k, bytes) in &data {
                write_file(dir, k, bytes, mode)?;
            }
        }
    }
    Ok(())
}

fn downward_items(
    pod: &Value,
    items: &Value,
    dir: &Path,
    default_mode: u32,
) -> Result<(), NotReady> {
    for it in items.as_array().into_iter().flatten() {
        let path = s(it, "/fieldRef/fieldPath");
        let value = match path {
            "metadata.labels" | "metadata.annotations" => {
                let key = path.trim_start_matches("metadata.");
                pod.pointer(&format!("/metadata/{key}"))
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or_default()))
                    .collect::<String>()
            }
            "metadata.name" => objects::name(pod).to_string(),
            "metadata.namespace" => objects::namespace(pod).to_string(),
            "metadata.uid" => objects::uid(pod).to_string(),
            _ => String::new(),
        };
        write_file(
            dir,
            s(it, "/path"),
            value.as_bytes(),
            mode_of(it, default_mode),
        )?;
    }
    Ok(())
}

/// Resolves (and for per-pod volumes, creates) every volume of a pod.
pub fn prepare(
    node: &Node,
    pod: &Value,
    pod_dir: &Path,
) -> Result<HashMap<String, HostVolume>, NotReady> {
    let ns = objects::namespace(pod);
    let mut out = HashMap::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(v, "/name").to_string();
        let own = pod_dir.join("volumes").join(&name);
        let mk = |d: &Path| {
            std::fs::create_dir_all(d)
                .map_err(|e| NotReady(format!("creating {}: {e}", d.display())))
        };
        let hv = if let Some(pvc) = v.get("persistentVolumeClaim") {
            let claim = s(pvc, "/claimName");
            let dir = storage::claim_dir(node, ns, claim).ok_or_else(|| {
                NotReady(format!("persistentvolumeclaim \"{claim}\" is not bound"))
            })?;
            mk(&dir)?;
            HostVolume {
                dir,
                read_only: pvc.get("readOnly").and_then(Value::as_bool) == Some(true),
            }
        } else if v.get("emptyDir").is_some() {
            mk(&own)?;
            HostVolume {
                dir: own,
                read_only: false,
            }
        } else if let Some(src) = v.get("configMap").or_else(|| v.get("secret")) {
            let plural = if v.get("secret").is_some() {
                "secrets"
            } else {
                "configmaps"
            };
            let mut src = src.clone();
            if plural == "secrets" {
                src["name"] = src.get("secretName").cloned().unwrap_or(Value::Null);
            }
            mk(&own)?;
            project_keys(node, ns, plural, &src, &own, 0o644)?;
            HostVolume {
                dir: own,
                read_only: true,
            }
        } else if let Some(d) = v.get("downwardAPI") {
            mk(&own)?;
            downward_items(
                pod,
                d.get("items").unwrap_or(&Value::Null),
                &own,
                mode_of(d, 0o644),
            )?;
            HostVolume {
                dir: own,
                read_only: true,
            }
        } else if let Some(p) = v.get("projected") {
            mk(&own)?;
            let mode = mode_of(p, 0o644);
            for src in p
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = src.get("configMap") {
                    project_keys(node, ns, "configmaps", c, &own, mode)?;
                } else if let Some(c) = src.get("secret") {
                    project_keys(node, ns, "secrets", c, &own, mode)?;
                } else if let Some(d) = src.get("downwardAPI") {
                    downward_items(pod, d.get("items").unwrap_or(&Value::Null), &own, mode)?;
                } else if let Some(t) = src.get("serviceAccountToken") {
                    let path = t.get("path").and_then(Value::as_str).unwrap_or("token");
                    write_file(&own, path, pod_token(node, pod, t)?.as_bytes(), mode)?;
                }
            }
            HostVolume {
                dir: own,
                read_only: true,
            }
        } else if let Some(h) = v.get("hostPath") {
            let dir = PathBuf::from(s(h, "/path"));
            if matches!(s(h, "/type"), "DirectoryOrCreate") {
                mk(&dir)?;
            }
            HostVolume {
                dir,
                read_only: false,
            }
        } else {
            // Volume types the node cannot provide (nfs, inline CSI...) are left unmounted.
            continue;
        };
        out.insert(name, hv);
    }
    Ok(out)
}

/// The bind mounts of one container.
pub fn container_binds(
    container: &Value,
    volumes: &HashMap<String, HostVolume>,
) -> Result<Vec<Bind>, NotReady> {
    let mut binds = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(m, "/name");
        let Some(v) = volumes.get(name) else {
            continue;
        };
        let mut source = v.dir.clone();
        let sub = s(m, "/subPath");
        if !sub.is_empty() {
            if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                return Err(NotReady(format!("invalid subPath {sub:?}")));
            }
            source = source.join(sub);
            if !source.is_file() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| NotReady(format!("creating {}: {e}", source.display())))?;
            }
        }
        let file = source.is_file();
        binds.push(Bind {
            source,
            target: s(m, "/mountPath").to_string(),
            read_only: v.read_only || m.get("readOnly").and_then(Value::as_bool) == Some(true),
            file,
        });
    }
    Ok(binds)
}

/// A token for the pod's ServiceAccount, bound to the pod, as the kubelet requests it for a
/// projected `serviceAccountToken` source.
fn pod_token(node: &Node, pod: &Value, source: &Value) -> Result<String, NotReady> {
    let ns = objects::namespace(pod);
    let account_name = match s(pod, "/spec/serviceAccountName") {
        "" => "default",
        a => a,
    };
    let account =
        objects::get(&node.api, "", "serviceaccounts", ns, account_name).ok_or_else(|| {
            NotReady(format!(
                "failed to fetch token: serviceaccounts {account_name:?} not found"
            ))
        })?;
    let mut spec = serde_json::json!({
        "expirationSeconds": source.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(3600),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": objects::name(pod), "uid": objects::uid(pod)},
    });
    if let Some(aud) = source.get("audience").and_then(Value::as_str) {
        spec["audiences"] = serde_json::json!([aud]);
    }
    let answer = crate::reviews::token(&node.api, &account, serde_json::json!({"spec": spec}))
        .map_err(|e| NotReady(format!("failed to fetch token: {}", e.message)))?;
    Ok(s(&answer, "/status/token").to_string())
}
