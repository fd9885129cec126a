//! What a hook is, wherever it was written (annotations or a hooks file).

use std::time::Duration;

/// What a failing hook does to the pod's backup, as Velero defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum OnError {
    /// The pod's volumes are not copied and the backup is PartiallyFailed (the default).
    #[default]
    Fail,
    /// The failure is recorded and the backup goes on.
    Continue,
}

impl OnError {
    /// `Fail` or `Continue` (any case, as people write `fail`).
    pub fn parse(value: &str) -> Option<OnError> {
        match value.to_ascii_lowercase().as_str() {
            "fail" => Some(OnError::Fail),
            "continue" => Some(OnError::Continue),
            _ => None,
        }
    }
}

/// A command to run in a container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecHook {
    /// The container (`None`: the pod's first container, as Velero does).
    pub container: Option<String>,
    /// The command, or why it could not be read (the hook then fails without running).
    pub command: Result<Vec<String>, String>,
    /// What a failure does.
    pub on_error: OnError,
    /// How long the command may run before it is killed.
    pub timeout: Duration,
    /// Where it was written (`annotation KEY` or `hooks file resource NAME`), for messages.
    pub origin: String,
}

/// A command run in a restored pod once its container runs (or is Ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreExecHook {
    /// The command; its `timeout` is Velero's `exec-timeout`.
    pub exec: ExecHook,
    /// How long to wait for the container.
    pub wait_timeout: Duration,
    /// Wait for Ready rather than Running.
    pub wait_for_ready: bool,
}

/// An init container a restore adds to a restored pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitHook {
    /// The container's name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its command (empty: the image's entrypoint).
    pub command: Vec<String>,
}

/// A hook setting that could not be used as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// The annotation (or hooks-file field).
    pub annotation: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pod {}, annotation {} {}",
            self.pod, self.annotation, self.message
        )
    }
}
