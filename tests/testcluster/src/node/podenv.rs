//! A container's environment as the kubelet builds it: `envFrom` (ConfigMaps, Secrets,
//! with prefixes), then `env` (values, `$(VAR)` references, `valueFrom` ConfigMap/Secret
//! keys and pod fields), over the runtime's defaults.

use super::objects::{self, s};
use crate::api::Api;
use base64::Engine;
use serde_json::Value;

/// The default `PATH` of container runtimes when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container's environment cannot be built (the kubelet's CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

fn source_data(api: &Api, ns: &str, plural: &str, name: &str) -> Option<Vec<(String, String)>> {
    let obj = objects::get(api, "", plural, ns, name)?;
    let mut out = Vec::new();
    if plural == "secrets" {
        for (k, v) in obj
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_default();
            out.push((k.clone(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    } else {
        for (k, v) in obj
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
        }
    }
    Some(out)
}

fn kind_word(plural: &str) -> &'static str {
    if plural == "secrets" {
        "secret"
    } else {
        "configmap"
    }
}

/// Expands `$(NAME)` references against `vars`; `$$(` escapes, unknown names stay as they are.
pub fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_ref(pod: &Value, path: &str, pod_ip: &str) -> Option<String> {
    let md = |k: &str| s(pod, &format!("/metadata/{k}")).to_string();
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .or_else(|| path.strip_prefix("metadata.annotations['"))
    {
        let key = key.trim_end_matches("']");
        let map = if path.starts_with("metadata.labels") {
            "labels"
        } else {
            "annotations"
        };
        return Some(
            pod.pointer(&format!("/metadata/{map}"))
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
    }
    Some(match path {
        "metadata.name" => md("name"),
        "metadata.namespace" => md("namespace"),
        "metadata.uid" => md("uid"),
        "spec.nodeName" => s(pod, "/spec/nodeName").to_string(),
        "spec.serviceAccountName" => s(pod, "/spec/serviceAccountName").to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_string(),
        _ => return None,
    })
}

/// The environment of `container` in `pod`.
pub fn build(
    api: &Api,
    pod: &Value,
    container: &Value,
    pod_ip: &str,
    service: &super::Service,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = objects::namespace(pod);
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), objects::name(pod).to_string()),
        ("HOME".into(), "/root".into()),
        ("KUBERNETES_SERVICE_HOST".into(), service.host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), service.port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), service.port.clone()),
        (
            "KUBERNETES_PORT".into(),
            format!("tcp://{}:{}", service.host, service.port),
        ),
    ];
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for (k, v) in super::service_env::build(api, pod) {
        set(&mut vars, k, v);
    }
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for (key, plural) in [("configMapRef", "configmaps"), ("secretRef", "secrets")] {
            let Some(r) = from.get(key) else { continue };
            let name = s(r, "/name");
            let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
            match source_data(api, ns, plural, name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => {
                    return Err(ConfigError(format!(
                        "{} \"{name}\" not found",
                        kind_word(plural)
                    )));
                }
            }
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(e, "/name").to_string();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            let v = expand(v, &vars);
            set(&mut vars, name, v);
            continue;
        }
        let Some(from) = e.get("valueFrom") else {
            set(&mut vars, name, String::new());
            continue;
        };
        for (key, plural) in [
            ("configMapKeyRef", "configmaps"),
            ("secretKeyRef", "secrets"),
        ] {
            let Some(r) = from.get(key) else { continue };
            let src = s(r, "/name");
            let k = s(r, "/key");
            let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
            match source_data(api, ns, plural, src) {
                Some(data) => match data.into_iter().find(|(dk, _)| dk == k) {
                    Some((_, v)) => set(&mut vars, name.clone(), v),
                    None if optional => {}
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {k} in {} {ns}/{src}",
                            if plural == "secrets" {
                                "Secret"
                            } else {
                                "ConfigMap"
                            }
                        )));
                    }
                },
                None if optional => {}
                None => {
                    return Err(ConfigError(format!(
                        "{} \"{src}\" not found",
                        kind_word(plural)
                    )));
                }
            }
        }
        if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
            && let Some(v) = field_ref(pod, path, pod_ip)
        {
            set(&mut vars, name.clone(), v);
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_replaces_known_references_and_keeps_escapes() {
        let vars = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$$(A) $(B) $", &vars), "$(A) $(B) $");
    }
}
