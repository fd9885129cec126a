//! A pod's verify command: `vbackup.io/verify-command` (read as the hook `command`
//! annotations are) run through pods/exec in `vbackup.io/verify-container`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::hooks::annotations::parse_command;
use crate::hooks::exec::{self, Exit, resolve_container};

/// The annotation holding a pod's verify command.
pub const VERIFY_COMMAND: &str = "vbackup.io/verify-command";
/// The annotation naming the container it runs in (default: the pod's first container).
pub const VERIFY_CONTAINER: &str = "vbackup.io/verify-container";

/// A verify command to run, read from a pod's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCommand {
    /// The pod.
    pub pod: String,
    /// The container it runs in.
    pub container: String,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// The pod's verify command, `None` when it has none; `Err` says which annotation is wrong
/// and how to fix it.
pub fn verify_command(pod: &Pod) -> Result<Option<VerifyCommand>, String> {
    let annotations = pod.annotations();
    let Some(raw) = annotations.get(VERIFY_COMMAND) else {
        return Ok(None);
    };
    let name = pod.name_any();
    let command =
        parse_command(raw).map_err(|m| format!("annotation {VERIFY_COMMAND} of pod {name} {m}"))?;
    let requested = annotations
        .get(VERIFY_CONTAINER)
        .map(|c| c.trim())
        .filter(|c| !c.is_empty());
    let spec = pod.spec.clone().unwrap_or_default();
    let container = resolve_container(&spec, requested)
        .map_err(|m| format!("annotation {VERIFY_CONTAINER} of pod {name}: {m}"))?;
    Ok(Some(VerifyCommand {
        pod: name,
        container,
        command,
    }))
}

/// What a verify command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRun {
    /// The pod it ran in.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The command.
    pub command: Vec<String>,
    /// Its exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed; `None` when it exited 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Its stdout and stderr, truncated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl VerifyCommand {
    /// Runs it in `namespace`, killed after `timeout`.
    pub async fn run(&self, pods: &Api<Pod>, timeout: Duration) -> CommandRun {
        let outcome = exec::run(pods, &self.pod, &self.container, &self.command, timeout).await;
        let output = [outcome.stdout.text(), outcome.stderr.text()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        CommandRun {
            pod: self.pod.clone(),
            container: self.container.clone(),
            command: self.command.clone(),
            exit_code: match outcome.exit {
                Exit::Code(c) => Some(c),
                _ => None,
            },
            failure: outcome.failure(&self.container),
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-0", "annotations": annotations},
            "spec": {"containers": [{"name": "db"}, {"name": "exporter"}]},
        }))
        .unwrap()
    }

    #[test]
    fn verify_commands_are_read_like_hook_commands() {
        let c = verify_command(&pod(serde_json::json!({
            VERIFY_COMMAND: r#"["sh", "-c", "test -s /data/x"]"#,
        })))
        .unwrap()
        .unwrap();
        assert_eq!(c.command, ["sh", "-c", "test -s /data/x"]);
        assert_eq!(c.container, "db", "the first container by default");
        let c = verify_command(&pod(serde_json::json!({
            VERIFY_COMMAND: "/bin/check",
            VERIFY_CONTAINER: "exporter",
        })))
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.command, c.container.as_str()),
            (vec!["/bin/check".to_string()], "exporter")
        );
        assert_eq!(verify_command(&pod(serde_json::json!({}))).unwrap(), None);
    }

    #[test]
    fn malformed_verify_annotations_are_named() {
        let err =
            verify_command(&pod(serde_json::json!({VERIFY_COMMAND: "[\"sh\", 1]"}))).unwrap_err();
        assert!(
            err.contains(VERIFY_COMMAND) && err.contains("db-0"),
            "{err}"
        );
        let err = verify_command(&pod(serde_json::json!({
            VERIFY_COMMAND: "true",
            VERIFY_CONTAINER: "nope",
        })))
        .unwrap_err();
        assert!(
            err.contains(VERIFY_CONTAINER) && err.contains("nope"),
            "{err}"
        );
    }
}
