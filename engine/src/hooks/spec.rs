//! `--hooks-file`: hooks for many pods at once, in the shape of Velero's `spec.hooks`
//! (`resources:` with namespace, resource and label selection, `pre`/`post` exec hooks for
//! backups, `postHooks` exec and init hooks for restores). The file may hold the list under
//! `resources:`, `hooks.resources` or `spec.hooks.resources`, so a Velero Backup or Restore
//! manifest can be passed as it is.
//!
//! As in Velero, a pod's own hook annotations replace the file's hooks for that pod.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use super::annotations::{DEFAULT_TIMEOUT, DEFAULT_WAIT_TIMEOUT, go_duration};
use super::{ExecHook, OnError, RestoreExecHook};
use crate::{Error, Result};

/// The hooks of a `--hooks-file`, kept in the backup's (or restore's) request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookFile {
    /// Velero's `spec.hooks.resources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceHooks>,
}

/// One entry of `resources`: which pods, and their hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceHooks {
    /// A name for messages.
    pub name: String,
    /// Namespaces it applies to (empty or `*`: all).
    #[serde(default)]
    pub included_namespaces: Vec<String>,
    /// Namespaces it never applies to.
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    /// Resources it applies to: only `pods` (or `*`, or empty) selects pods.
    #[serde(default)]
    pub included_resources: Vec<String>,
    /// Resources excluded.
    #[serde(default)]
    pub excluded_resources: Vec<String>,
    /// Pods' labels.
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    /// Backup hooks before the pod's volumes are copied.
    #[serde(default)]
    pub pre: Vec<BackupHookSpec>,
    /// Backup hooks after.
    #[serde(default)]
    pub post: Vec<BackupHookSpec>,
    /// Restore hooks.
    #[serde(default)]
    pub post_hooks: Vec<RestoreHookSpec>,
}

/// `{exec: …}` of a backup hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHookSpec {
    /// The command.
    pub exec: ExecSpec,
}

/// `{exec: …}` or `{init: …}` of a restore hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreHookSpec {
    /// A command in the restored pod.
    #[serde(default)]
    pub exec: Option<ExecSpec>,
    /// Init containers added to the restored pod.
    #[serde(default)]
    pub init: Option<InitSpec>,
}

/// Velero's `ExecHook` / `ExecRestoreHook`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecSpec {
    /// Container (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `Fail` (default) or `Continue`.
    #[serde(default)]
    pub on_error: Option<String>,
    /// Backup hooks: how long it may run.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Restore hooks: how long it may run.
    #[serde(default)]
    pub exec_timeout: Option<String>,
    /// Restore hooks: how long to wait for the container.
    #[serde(default)]
    pub wait_timeout: Option<String>,
    /// Restore hooks: wait for Ready rather than Running.
    #[serde(default)]
    pub wait_for_ready: Option<bool>,
}

/// Velero's `InitRestoreHook`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitSpec {
    /// The containers to add, first.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Velero's bound on them (kept for compatibility; the kubelet runs them).
    #[serde(default)]
    pub timeout: Option<String>,
}

impl HookFile {
    /// True when the file gives no hooks.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Reads a hooks file; every malformed value is an error naming the entry and field.
    pub fn parse(text: &str, source: &str) -> Result<HookFile> {
        let doc: serde_json::Value = serde_saphyr::from_str(text)
            .map_err(|e| Error::BadInput(format!("hooks file {source} is not YAML: {e}")))?;
        let list = ["/resources", "/hooks/resources", "/spec/hooks/resources"]
            .iter()
            .find_map(|p| doc.pointer(p))
            .cloned()
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "hooks file {source} has no resources list: write `resources:` (or Velero's spec.hooks.resources)"
                ))
            })?;
        let resources: Vec<ResourceHooks> = serde_json::from_value(list)
            .map_err(|e| Error::BadInput(format!("hooks file {source}: {e}")))?;
        let file = HookFile { resources };
        for r in &file.resources {
            let exec = r.pre.iter().chain(&r.post).map(|h| &h.exec);
            for e in exec.chain(r.post_hooks.iter().filter_map(|h| h.exec.as_ref())) {
                e.check(&r.name, source)?;
            }
            for h in &r.post_hooks {
                if h.exec.is_none() == h.init.is_none() {
                    return Err(Error::BadInput(format!(
                        "hooks file {source}, resource {}: each postHooks entry holds exactly one of exec or init",
                        r.name
                    )));
                }
            }
        }
        Ok(file)
    }

    fn matching<'a>(&'a self, pod: &'a Pod) -> impl Iterator<Item = &'a ResourceHooks> + 'a {
        self.resources.iter().filter(move |r| r.selects(pod))
    }

    /// The pre and post backup hooks the file gives `pod`.
    pub fn backup_hooks(&self, pod: &Pod) -> (Vec<ExecHook>, Vec<ExecHook>) {
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for r in self.matching(pod) {
            pre.extend(
                r.pre
                    .iter()
                    .map(|h| h.exec.hook(&r.name, h.exec.timeout.as_deref())),
            );
            post.extend(
                r.post
                    .iter()
                    .map(|h| h.exec.hook(&r.name, h.exec.timeout.as_deref())),
            );
        }
        (pre, post)
    }

    /// The post-restore exec hooks and init containers the file gives `pod`.
    pub fn restore_hooks(&self, pod: &Pod) -> (Vec<RestoreExecHook>, Vec<Container>) {
        let (mut exec, mut init) = (Vec::new(), Vec::new());
        for r in self.matching(pod) {
            for h in &r.post_hooks {
                if let Some(e) = &h.exec {
                    exec.push(RestoreExecHook {
                        exec: e.hook(&r.name, e.exec_timeout.as_deref()),
                        wait_timeout: e
                            .wait_timeout
                            .as_deref()
                            .and_then(|t| go_duration(t).ok())
                            .unwrap_or(DEFAULT_WAIT_TIMEOUT),
                        wait_for_ready: e.wait_for_ready.unwrap_or(false),
                    });
                }
                if let Some(i) = &h.init {
                    init.extend(i.init_containers.iter().cloned());
                }
            }
        }
        (exec, init)
    }
}

impl ExecSpec {
    fn check(&self, resource: &str, source: &str) -> Result<()> {
        let bad = |m: String| {
            Err(Error::BadInput(format!(
                "hooks file {source}, resource {resource}: {m}"
            )))
        };
        if self.command.is_empty() {
            return bad("exec.command is empty: give the program and its arguments".into());
        }
        if let Some(e) = self
            .on_error
            .as_deref()
            .filter(|e| OnError::parse(e).is_none())
        {
            return bad(format!("exec.onError {e:?} is not Fail or Continue"));
        }
        for (field, value) in [
            ("timeout", &self.timeout),
            ("execTimeout", &self.exec_timeout),
            ("waitTimeout", &self.wait_timeout),
        ] {
            if let Some(v) = value.as_deref()
                && let Err(why) = go_duration(v)
            {
                return bad(format!(
                    "exec.{field} {v:?} {why}: write it like 30s, 5m or 1h30m"
                ));
            }
        }
        Ok(())
    }

    fn hook(&self, resource: &str, timeout: Option<&str>) -> ExecHook {
        ExecHook {
            container: self.container.clone().filter(|c| !c.is_empty()),
            command: Ok(self.command.clone()),
            on_error: self
                .on_error
                .as_deref()
                .and_then(OnError::parse)
                .unwrap_or_default(),
            timeout: timeout
                .and_then(|t| go_duration(t).ok())
                .filter(|t| *t > Duration::ZERO)
                .unwrap_or(DEFAULT_TIMEOUT),
            origin: format!("hooks file resource {resource}"),
        }
    }
}

impl ResourceHooks {
    fn selects(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let listed = |list: &[String], what: &str| list.iter().any(|x| x == "*" || x == what);
        let pods = |list: &[String]| list.iter().any(|x| x == "*" || x == "pods" || x == "pod");
        (self.included_namespaces.is_empty() || listed(&self.included_namespaces, ns))
            && !listed(&self.excluded_namespaces, ns)
            && (self.included_resources.is_empty() || pods(&self.included_resources))
            && !pods(&self.excluded_resources)
            && self.label_selector.as_ref().is_none_or(|s| {
                selector_matches(s, pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
            })
    }
}

/// Kubernetes' label selector semantics: every `matchLabels` pair and every expression.
pub fn selector_matches(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs && exprs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const VELERO_BACKUP: &str = r#"
apiVersion: velero.io/v1
kind: Backup
metadata: {name: nightly}
spec:
  hooks:
    resources:
      - name: freeze
        includedNamespaces: [shop]
        labelSelector:
          matchLabels: {app: db}
          matchExpressions:
            - {key: tier, operator: NotIn, values: [cache]}
        pre:
          - exec:
              container: db
              command: [/sbin/fsfreeze, --freeze, /var/lib/mysql]
              onError: Continue
              timeout: 1m
        post:
          - exec:
              command: [/sbin/fsfreeze, --unfreeze, /var/lib/mysql]
        postHooks:
          - exec: {command: [/bin/true], waitTimeout: 2m, waitForReady: true}
          - init:
              initContainers:
                - {name: seed, image: "alpine:3", command: [/bin/true]}
"#;

    fn pod(ns: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("db-0".into()),
                namespace: Some(ns.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_velero_backup_manifest_gives_hooks_to_the_pods_it_selects() {
        let file = HookFile::parse(VELERO_BACKUP, "nightly.yaml").unwrap();
        let (pre, post) = file.backup_hooks(&pod("shop", &[("app", "db")]));
        assert_eq!(pre.len(), 1);
        assert_eq!(pre[0].container.as_deref(), Some("db"));
        assert_eq!(pre[0].on_error, OnError::Continue);
        assert_eq!(pre[0].timeout, Duration::from_secs(60));
        assert_eq!(pre[0].origin, "hooks file resource freeze");
        assert_eq!(post[0].command.as_ref().unwrap()[1], "--unfreeze");
        assert_eq!(
            (post[0].on_error, post[0].timeout),
            (OnError::Fail, DEFAULT_TIMEOUT)
        );
        let (exec, init) = file.restore_hooks(&pod("shop", &[("app", "db")]));
        assert_eq!(exec[0].wait_timeout, Duration::from_secs(120));
        assert!(exec[0].wait_for_ready);
        assert_eq!(init[0].name, "seed");
        for other in [
            pod("other", &[("app", "db")]),
            pod("shop", &[("app", "web")]),
            pod("shop", &[("app", "db"), ("tier", "cache")]),
        ] {
            assert_eq!(file.backup_hooks(&other).0.len(), 0, "{:?}", other.metadata);
        }
    }

    #[test]
    fn malformed_hook_files_name_the_entry_and_field() {
        let cases = [
            (
                "resources: [{name: a, pre: [{exec: {command: [x], timeout: '30'}}]}]",
                "resource a: exec.timeout \"30\" has no unit",
            ),
            (
                "resources: [{name: b, pre: [{exec: {command: [x], onError: Ignore}}]}]",
                "resource b: exec.onError \"Ignore\" is not Fail or Continue",
            ),
            (
                "resources: [{name: c, pre: [{exec: {command: []}}]}]",
                "resource c: exec.command is empty",
            ),
            (
                "resources: [{name: d, pre: [{exec: {comand: [x]}}]}]",
                "unknown field `comand`",
            ),
            ("kind: Backup", "has no resources list"),
        ];
        for (yaml, want) in cases {
            let err = HookFile::parse(yaml, "h.yaml").unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
