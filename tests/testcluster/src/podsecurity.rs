//! Pod Security admission (`staging/src/k8s.io/pod-security-admission`): namespaces labelled
//! `pod-security.kubernetes.io/enforce` (`-version`) refuse pods that break the `baseline` or
//! `restricted` level with 403 and the plugin's message; `warn` (and `audit`, whose warnings
//! kubectl shows as well) labels add `Warning` headers; workload resources (Deployments,
//! Jobs…) are only warned about, their pods are checked when created.
//!
//! The checks, their order (the policy package registers them file by file) and their words
//! are upstream's; Windows- and AppArmor/SELinux/sysctl-specific checks are left out.

use crate::error::ApiError;
use crate::resources::ResourceType;
use serde_json::Value;

/// A Pod Security level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Everything allowed.
    Privileged,
    /// Known privilege escalations refused.
    Baseline,
    /// Hardened: non-root, no capabilities, seccomp.
    Restricted,
}

impl Level {
    fn parse(v: &str) -> Option<Level> {
        match v {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A namespace's policy for one mode (`enforce`, `warn`, `audit`): level and version.
fn policy(namespace: &Value, mode: &str) -> Option<(Level, String)> {
    let labels = namespace.pointer("/metadata/labels")?;
    let level = Level::parse(
        labels
            .get(format!("pod-security.kubernetes.io/{mode}"))?
            .as_str()?,
    )?;
    let version = labels
        .get(format!("pod-security.kubernetes.io/{mode}-version"))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or("latest")
        .to_string();
    Some((level, version))
}

/// The pod spec a resource carries: a pod's own, a workload's template.
fn pod_spec<'a>(rt: &ResourceType, obj: &'a Value) -> Option<&'a Value> {
    let pointer = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => "/spec",
        ("", "replicationcontrollers" | "podtemplates") => "/spec/template/spec",
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => "/spec/template/spec",
        ("batch", "cronjobs") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    obj.pointer(pointer)
}

/// Admits `obj` (after mutation, its name assigned) in `namespace`: a pod that breaks the
/// enforced level is refused; what breaks the warn/audit levels, or a workload's template
/// that breaks the enforced one, becomes a warning.
pub fn admit(rt: &ResourceType, namespace: Option<&Value>, obj: &Value) -> Result<(), ApiError> {
    let (Some(ns), Some(spec)) = (namespace, pod_spec(rt, obj)) else {
        return Ok(());
    };
    let is_pod = rt.group.is_empty() && rt.plural == "pods";
    let mut warned = Vec::new();
    if let Some((level, version)) = policy(ns, "enforce") {
        let violations = check(level, spec);
        if !violations.is_empty() {
            let text = format!(
                "PodSecurity \"{}:{version}\": {}",
                level.name(),
                violations.join(", ")
            );
            if is_pod {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let why = format!("violates {text}");
                return Err(ApiError::forbidden(&rt.group, &rt.plural, name, &why));
            }
            warned.push((level, version.clone()));
            crate::warnings::warn(format!("would violate {text}"));
        }
    }
    for mode in ["warn", "audit"] {
        let Some((level, version)) = policy(ns, mode) else {
            continue;
        };
        if warned.contains(&(level, version.clone())) {
            continue;
        }
        let violations = check(level, spec);
        if !violations.is_empty() {
            warned.push((level, version.clone()));
            crate::warnings::warn(format!(
                "would violate PodSecurity \"{}:{version}\": {}",
                level.name(),
                violations.join(", ")
            ));
        }
    }
    Ok(())
}

fn pluralize(singular: &str, plural: &str, n: usize) -> String {
    if n == 1 { singular } else { plural }.to_string()
}

fn join_quote(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `initContainers`, `containers` and `ephemeralContainers`, in the visitor's order.
fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .collect()
}

fn cname(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn sc<'a>(c: &'a Value, key: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|s| s.get(key))
}

/// Containers for which `bad` holds, as `container "a"` / `containers "a", "b"`.
fn containers_where(spec: &Value, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(spec)
        .into_iter()
        .filter(|c| bad(c))
        .map(cname)
        .collect()
}

fn named(list: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", list.len()),
        join_quote(list)
    )
}

/// The violations of `level` by a pod spec, as `reason (detail)`.
pub fn check(level: Level, spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let restricted = level == Level::Restricted;
    let mut push = |reason: &str, detail: String| {
        out.push(if detail.is_empty() {
            reason.to_string()
        } else {
            format!("{reason} ({detail})")
        })
    };
    if restricted {
        let bad = containers_where(spec, |c| {
            sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
        });
        if !bad.is_empty() {
            push(
                "allowPrivilegeEscalation != false",
                format!(
                    "{} must set securityContext.allowPrivilegeEscalation=false",
                    named(&bad)
                ),
            );
        }
    }
    let added = |c: &Value| -> Vec<String> {
        sc(c, "capabilities")
            .and_then(|k| k.get("add"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    if restricted {
        let missing_drop = containers_where(spec, |c| {
            !sc(c, "capabilities")
                .and_then(|k| k.get("drop"))
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        });
        let adding = containers_where(spec, |c| added(c).iter().any(|a| a != "NET_BIND_SERVICE"));
        let mut caps: Vec<String> = containers(spec)
            .into_iter()
            .flat_map(added)
            .filter(|a| a != "NET_BIND_SERVICE")
            .collect();
        caps.sort();
        caps.dedup();
        let mut details = Vec::new();
        if !missing_drop.is_empty() {
            details.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                named(&missing_drop)
            ));
        }
        if !adding.is_empty() {
            details.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                named(&adding),
                join_quote(&caps)
            ));
        }
        if !details.is_empty() {
            push("unrestricted capabilities", details.join("; "));
        }
    } else {
        const DEFAULT: &[&str] = &[
            "AUDIT_WRITE",
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "MKNOD",
            "NET_BIND_SERVICE",
            "SETFCAP",
            "SETGID",
            "SETPCAP",
            "SETUID",
            "SYS_CHROOT",
        ];
        let bad = containers_where(spec, |c| {
            added(c).iter().any(|a| !DEFAULT.contains(&a.as_str()))
        });
        let mut caps: Vec<String> = containers(spec)
            .into_iter()
            .flat_map(added)
            .filter(|a| !DEFAULT.contains(&a.as_str()))
            .collect();
        caps.sort();
        caps.dedup();
        if !bad.is_empty() {
            push(
                "non-default capabilities",
                format!(
                    "{} must not include {} in securityContext.capabilities.add",
                    named(&bad),
                    join_quote(&caps)
                ),
            );
        }
    }
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec.get(**k).and_then(Value::as_bool) == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        push("host namespaces", host.join(", "));
    }
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let vname = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if !restricted {
        let host_paths: Vec<String> = volumes
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .map(|v| vname(v))
            .collect();
        if !host_paths.is_empty() {
            push(
                "hostPath volumes",
                format!(
                    "{} {}",
                    pluralize("volume", "volumes", host_paths.len()),
                    join_quote(&host_paths)
                ),
            );
        }
    }
    let mut ports = Vec::new();
    let port_users = containers_where(spec, |c| {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        !used.is_empty()
    });
    for c in containers(spec) {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(h) = p
                .get("hostPort")
                .and_then(Value::as_i64)
                .filter(|h| *h != 0)
            {
                ports.push(h.to_string());
            }
        }
    }
    if !port_users.is_empty() {
        push(
            "hostPort",
            format!(
                "{} {} {} {}",
                named(&port_users),
                pluralize("uses", "use", port_users.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        );
    }
    let privileged = containers_where(spec, |c| {
        sc(c, "privileged").and_then(Value::as_bool) == Some(true)
    });
    if !privileged.is_empty() {
        push(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                named(&privileged)
            ),
        );
    }
    if restricted {
        let mut bad: Vec<String> = volumes
            .iter()
            .filter(|v| {
                ![
                    "configMap",
                    "csi",
                    "downwardAPI",
                    "emptyDir",
                    "ephemeral",
                    "persistentVolumeClaim",
                    "projected",
                    "secret",
                ]
                .iter()
                .any(|k| v.get(*k).is_some())
            })
            .map(|v| vname(v))
            .collect();
        bad.sort();
        bad.dedup();
        if !bad.is_empty() {
            push(
                "restricted volume types",
                format!("volumes [{}] have restricted types", {
                    bad.iter()
                        .map(|b| format!("{b:?}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
            );
        }
        let psc = spec.get("securityContext").unwrap_or(&Value::Null);
        for (field, reason) in [
            ("runAsNonRoot", "runAsNonRoot != true"),
            ("seccompProfile", "seccompProfile"),
        ] {
            if field == "seccompProfile" {
                // runAsUser=0 comes between the two (file order).
                run_as_user(spec, psc, &mut push);
            }
            let good = |v: &Value| match field {
                "runAsNonRoot" => v.as_bool() == Some(true),
                _ => matches!(
                    v.get("type").and_then(Value::as_str),
                    Some("RuntimeDefault" | "Localhost")
                ),
            };
            let value_of = |v: &Value| match field {
                "runAsNonRoot" => "false".to_string(),
                _ => v
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            let mut setters = Vec::new();
            let mut values = Vec::new();
            let pod_ok = match psc.get(field).filter(|v| !v.is_null()) {
                Some(v) if good(v) => true,
                Some(v) => {
                    setters.push("pod".to_string());
                    values.push(value_of(v));
                    false
                }
                None => false,
            };
            let mut explicit = Vec::new();
            let mut implicit = Vec::new();
            for c in containers(spec) {
                match sc(c, field).filter(|v| !v.is_null()) {
                    Some(v) if !good(v) => {
                        explicit.push(cname(c));
                        values.push(value_of(v));
                    }
                    Some(_) => {}
                    None if !pod_ok => implicit.push(cname(c)),
                    None => {}
                }
            }
            if !explicit.is_empty() {
                setters.push(named(&explicit));
            }
            values.sort();
            values.dedup();
            if !setters.is_empty() {
                let detail = if field == "runAsNonRoot" {
                    format!(
                        "{} must not set securityContext.runAsNonRoot=false",
                        setters.join(" and ")
                    )
                } else {
                    format!(
                        "{} must not set securityContext.seccompProfile.type to {}",
                        setters.join(" and "),
                        join_quote(&values)
                    )
                };
                push(reason, detail);
            } else if !implicit.is_empty() {
                let detail = if field == "runAsNonRoot" {
                    format!(
                        "pod or {} must set securityContext.runAsNonRoot=true",
                        named(&implicit)
                    )
                } else {
                    format!(
                        "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                        named(&implicit)
                    )
                };
                push(reason, detail);
            }
        }
    }
    out
}

/// The restricted `runAsUser` check: nothing may set `runAsUser=0`.
fn run_as_user(spec: &Value, psc: &Value, push: &mut impl FnMut(&str, String)) {
    let mut setters = Vec::new();
    if psc.get("runAsUser").and_then(Value::as_i64) == Some(0) {
        setters.push("pod".to_string());
    }
    let bad = containers_where(spec, |c| {
        sc(c, "runAsUser").and_then(Value::as_i64) == Some(0)
    });
    if !bad.is_empty() {
        setters.push(named(&bad));
    }
    if !setters.is_empty() {
        push(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bare_pod_breaks_restricted_with_upstreams_words_in_upstreams_order() {
        let spec = json!({"containers": [{"name": "c", "image": "x"}]});
        assert_eq!(
            check(Level::Restricted, &spec).join(", "),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(check(Level::Baseline, &spec).is_empty());
    }

    #[test]
    fn a_root_mover_with_a_read_capability_breaks_baseline_and_restricted() {
        let spec = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "mover", "securityContext": {"runAsUser": 0, "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}}}]});
        assert_eq!(
            check(Level::Baseline, &spec),
            vec![
                "non-default capabilities (container \"mover\" must not include \"DAC_READ_SEARCH\" in securityContext.capabilities.add)"
            ]
        );
        assert_eq!(
            check(Level::Restricted, &spec),
            vec![
                "unrestricted capabilities (container \"mover\" must not include \"DAC_READ_SEARCH\" in securityContext.capabilities.add)",
                "runAsNonRoot != true (container \"mover\" must not set securityContext.runAsNonRoot=false)",
                "runAsUser=0 (container \"mover\" must not set runAsUser=0)",
            ]
        );
    }

    #[test]
    fn baseline_refuses_host_namespaces_paths_ports_and_privilege() {
        let spec = json!({"hostNetwork": true, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                            "securityContext": {"privileged": true}}]});
        assert_eq!(
            check(Level::Baseline, &spec),
            vec![
                "host namespaces (hostNetwork=true)",
                "hostPath volumes (volume \"h\")",
                "hostPort (container \"c\" uses hostPort 8080)",
                "privileged (container \"c\" must not set securityContext.privileged=true)",
            ]
        );
    }
}
