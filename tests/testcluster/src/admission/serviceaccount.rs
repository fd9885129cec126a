//! The ServiceAccount admission plugin, run on pod creation before mutating webhooks:
//! `serviceAccountName` defaults to `default`; a missing account is refused (403, "error
//! looking up service account NS/NAME: serviceaccount "NAME" not found"); unless the pod or
//! its account turns `automountServiceAccountToken` off, a `kube-api-access-XXXXX` projected
//! volume (token, `kube-root-ca.crt`'s `ca.crt`, the namespace) is added and mounted at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and init container
//! that mounts nothing there itself.

use crate::api::Api;
use crate::error::ApiResult;
use crate::store::ObjectKey;
use serde_json::{Value, json};
use std::time::Duration;

/// Where in-cluster clients find the token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the token volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";

/// How often and how long the `default` account is looked up again before a pod is refused:
/// the namespace controller creates it just after the namespace.
const DEFAULT_ACCOUNT_ATTEMPTS: u32 = 10;
const RETRY_INTERVAL: Duration = Duration::from_millis(150);

fn lookup(api: &Api, ns: &str, name: &str) -> Option<Value> {
    api.get_key(&ObjectKey::new("", "serviceaccounts", ns, name))
}

/// Admits a pod being created.
pub async fn admit(api: &Api, pod: &mut Value) -> ApiResult<()> {
    // Mirror pods (static pods of a kubelet) are left alone.
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let account_name = match pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
    {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "default".to_string(),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.insert("serviceAccountName".into(), json!(account_name));
    let attempts = if account_name == "default" {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    let mut account = lookup(api, &ns, &account_name);
    for _ in 1..attempts {
        if account.is_some() {
            break;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
        account = lookup(api, &ns, &account_name);
    }
    let Some(account) = account else {
        let name = match pod.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => pod
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string(),
        };
        return Err(crate::auth::forbidden_error(
            "",
            "pods",
            &name,
            &format!(
                "error looking up service account {ns}/{account_name}: serviceaccount {account_name:?} not found"
            ),
        ));
    };
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(pod);
    }
    Ok(())
}

fn mount_token(pod: &mut Value) {
    let existing = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", crate::ids::name_suffix()));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for key in ["initContainers", "containers"] {
        for c in pod
            .pointer_mut(&format!("/spec/{key}"))
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            {
                continue;
            }
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volume = json!({"name": volume_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": crate::auth::tokens::KUBELET_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
            if let Some(v) = volumes.as_array_mut() {
                v.push(volume);
            }
        }
    }
}
