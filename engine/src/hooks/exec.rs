//! Running a command in a container through `pods/exec`, bounded in time and in what is kept
//! of its output; a command that runs too long is killed inside the container, children
//! included (closing the exec stream does not stop it on a real kubelet).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::Shared;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Bytes of stdout and of stderr kept for the log.
pub const OUTPUT_LIMIT: usize = 2048;

/// The first line the wrapper writes to stderr: the command's process id in the container.
const PID_MARKER: &str = "vbackup-hook-pid ";

/// Runs the command under a shell that first reports its pid, so a timed-out command can
/// be found and killed; `exec` keeps that pid for the command itself.
fn wrapped(command: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("echo \"{PID_MARKER}$$\" >&2; exec \"$@\""),
        "sh".into(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

/// Kills a process and its descendants (read from /proc), TERM first, KILL after 2s.
const KILL_TREE: &str = r#"tree() { for c in $(cat /proc/$1/task/*/children 2>/dev/null); do tree "$c"; done; echo "$1"; }
pids=$(tree "$1"); kill -TERM $pids 2>/dev/null; sleep 2; kill -KILL $(tree "$1") 2>/dev/null; true"#;

/// Output kept from a stream: the first [`OUTPUT_LIMIT`] bytes, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The start of the output.
    pub head: Vec<u8>,
    /// All bytes seen.
    pub total: u64,
}

impl Captured {
    /// The kept text, with a note when some was cut.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).trim_end().to_string();
        if self.total > self.head.len() as u64 {
            s.push_str(&format!(
                " […{} more bytes]",
                self.total - self.head.len() as u64
            ));
        }
        s
    }
}

/// Resolves (to `Ok`) when an exec session ended without reporting the command's exit.
type Broken = Shared<tokio::sync::oneshot::Receiver<()>>;

/// An exec session's status and outputs; the outputs end when the session ends without
/// reporting the command's exit.
pub(super) fn session<O, E>(
    status: impl Future<Output = Option<Status>>,
    stdout: O,
    stderr: E,
) -> (impl Future<Output = Option<Status>>, Output<O>, Output<E>) {
    let (status, broken) = watch_status(status);
    let (stdout, stderr) = (Output::new(stdout, &broken), Output::new(stderr, &broken));
    (status, stdout, stderr)
}

/// The session's status, and a [`Broken`] that resolves when it ends without one.
fn watch_status(
    status: impl Future<Output = Option<Status>>,
) -> (impl Future<Output = Option<Status>>, Broken) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let status = async move {
        let status = status.await;
        if status.is_none() {
            let _ = tx.send(());
        }
        status
    };
    (status, rx.shared())
}

/// An exec session's stdout or stderr that ends, after its last byte, when the session
/// breaks: kube's message loop drops its end of the pipe without closing it when the
/// WebSocket fails (a cut connection), and a plain read would then wait forever.
pub(super) struct Output<R> {
    inner: R,
    broken: Option<Broken>,
}

impl<R> Output<R> {
    /// `inner`, ended when `broken` resolves.
    fn new(inner: R, broken: &Broken) -> Self {
        Output {
            inner,
            broken: Some(broken.clone()),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Output<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        match this.broken.as_mut().map(|b| Pin::new(b).poll(cx)) {
            // The session is gone and the pipe is empty: end of stream.
            Some(Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            // It reported the exit: the pipe is closed properly.
            Some(Poll::Ready(Err(_))) => {
                this.broken = None;
                Poll::Pending
            }
            _ => Poll::Pending,
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It ran longer than allowed and was killed.
    TimedOut(Duration),
    /// It could not be started or its end was never reported.
    Failed(String),
}

/// One command's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// How it ended.
    pub exit: Exit,
    /// Its stdout.
    pub stdout: Captured,
    /// Its stderr.
    pub stderr: Captured,
    /// How long it took.
    pub duration: Duration,
}

impl ExecOutcome {
    /// None when it exited 0, else why it failed, phrased for the person who has to fix it.
    pub fn failure(&self, container: &str) -> Option<String> {
        match &self.exit {
            Exit::Code(0) => None,
            Exit::Code(c @ (126 | 127)) => Some(format!(
                "command not found in container {container} (exit {c}): the image has no such \
                 program, or it is not executable; fix the command"
            )),
            Exit::Code(c) => Some(exit_code_text(*c)),
            Exit::TimedOut(t) => Some(format!(
                "timed out after {}; the command was killed in container {container}",
                humantime::format_duration(*t)
            )),
            Exit::Failed(why) => Some(why.clone()),
        }
    }
}

/// A non-zero exit code in words: above 128 it is the signal that killed the command.
pub(super) fn exit_code_text(code: i32) -> String {
    match code {
        137 => "was killed (exit 137, SIGKILL: its container stopped, was deleted or ran out \
                of memory)"
            .into(),
        143 => "was terminated (exit 143, SIGTERM: its container is stopping)".into(),
        c @ 129..=159 => format!("was killed by signal {} (exit {c})", c - 128),
        c => format!("exited with code {c}"),
    }
}

/// The container a hook addresses: the named one, or the pod's first container; an error
/// names the containers there are.
pub fn resolve_container(spec: &PodSpec, requested: Option<&str>) -> Result<String, String> {
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let names: Vec<&str> = spec
        .containers
        .iter()
        .chain(sidecars)
        .map(|c| c.name.as_str())
        .collect();
    match requested {
        None => names
            .first()
            .map(|n| n.to_string())
            .ok_or_else(|| "the pod has no containers".to_string()),
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(format!(
            "container {c} does not exist in the pod (its containers: {}): name one of them",
            names.join(", ")
        )),
    }
}

/// Runs `command` in `container` of `pod`, killing it inside the container after
/// `timeout`.
pub async fn run(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> ExecOutcome {
    let started = Instant::now();
    let mut outcome = attempt(pods, pod, container, &wrapped(command), timeout, true).await;
    // No shell in the image (the wrapper could not start): run the command as it is,
    // without the means to kill it on a timeout.
    if outcome.stderr.head.is_empty() && matches!(outcome.exit, Exit::Code(126 | 127)) {
        outcome = attempt(pods, pod, container, command, timeout, false).await;
    }
    outcome.duration = started.elapsed();
    outcome
}

async fn attempt(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: &[String],
    timeout: Duration,
    has_marker: bool,
) -> ExecOutcome {
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let failed = |why: String| ExecOutcome {
        exit: Exit::Failed(why),
        stdout: Captured::default(),
        stderr: Captured::default(),
        duration: Duration::ZERO,
    };
    let mut process = match pods.exec(pod, argv, &params).await {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot exec in container {container}: {e}")),
    };
    let (Some(stdout), Some(stderr), Some(status)) =
        (process.stdout(), process.stderr(), process.take_status())
    else {
        return failed("the exec session has no output streams".into());
    };
    let (status, stdout, stderr) = session(status, stdout, stderr);
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let run = async {
        let (out, err, status) = tokio::join!(
            capture(stdout, None),
            capture(stderr, has_marker.then_some(pid_tx)),
            status
        );
        (out, err, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((stdout, stderr, status)) => {
            let _ = process.join().await;
            ExecOutcome {
                exit: exit_of(status, container),
                stdout,
                stderr,
                duration: Duration::ZERO,
            }
        }
        Err(_) => {
            process.abort();
            if let Ok(pid) = pid_rx.await {
                kill(pods, pod, container, &pid).await;
            }
            ExecOutcome {
                exit: Exit::TimedOut(timeout),
                stdout: Captured::default(),
                stderr: Captured::default(),
                duration: Duration::ZERO,
            }
        }
    }
}

/// Reads a stream to its end, keeping its start.
pub(super) async fn capture_stream(r: impl AsyncRead + Unpin) -> Captured {
    capture(r, None).await
}

/// Reads a stream to its end, keeping its start; the wrapper's pid line (first line of
/// stderr) is handed to `pid` instead of being kept.
async fn capture(
    mut r: impl AsyncRead + Unpin,
    mut pid: Option<tokio::sync::oneshot::Sender<String>>,
) -> Captured {
    let mut kept = Captured::default();
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(tx) = pid.take() else {
            keep(&mut kept, &buf[..n]);
            continue;
        };
        pending.extend_from_slice(&buf[..n]);
        match pending.iter().position(|b| *b == b'\n') {
            None if pending.len() < 256 => pid = Some(tx),
            None => keep(&mut kept, &std::mem::take(&mut pending)),
            Some(nl) => {
                let line = String::from_utf8_lossy(&pending[..nl]).to_string();
                if let Some(p) = line.strip_prefix(PID_MARKER) {
                    let _ = tx.send(p.trim().to_string());
                    pending.drain(..=nl);
                }
                keep(&mut kept, &std::mem::take(&mut pending));
            }
        }
    }
    keep(&mut kept, &pending);
    kept
}

fn keep(kept: &mut Captured, data: &[u8]) {
    kept.total += data.len() as u64;
    let room = OUTPUT_LIMIT.saturating_sub(kept.head.len());
    kept.head.extend_from_slice(&data[..data.len().min(room)]);
}

async fn kill(pods: &Api<Pod>, pod: &str, container: &str, pid: &str) {
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let argv = ["/bin/sh", "-c", KILL_TREE, "sh", pid];
    let params = AttachParams::default()
        .container(container)
        .stdout(false)
        .stderr(false);
    if let Ok(mut p) = pods.exec(pod, argv, &params).await {
        if let Some(status) = p.take_status() {
            let _ = tokio::time::timeout(Duration::from_secs(10), status).await;
        }
        let _ = p.join().await;
    }
}

/// The exit code the kubelet reports on the error channel.
pub(super) fn exit_of(status: Option<Status>, container: &str) -> Exit {
    let Some(status) = status else {
        return Exit::Failed(format!(
            "the exec stream of container {container} ended before the command's exit was \
             reported (the connection to the API server or the kubelet was cut)"
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Exit::Code(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse().ok());
    match code {
        Some(c) => Exit::Code(c),
        None => Exit::Failed(format!(
            "exec in container {container} failed: {}",
            status.message.unwrap_or_else(|| "no reason given".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    #[tokio::test]
    async fn output_is_kept_up_to_the_limit_and_the_pid_line_is_taken_out() {
        let mut input = format!("{PID_MARKER}42\nwarn\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', OUTPUT_LIMIT * 2));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let kept = capture(&input[..], Some(tx)).await;
        assert_eq!(rx.await.unwrap(), "42");
        assert!(kept.head.starts_with(b"warn\nxxx"));
        assert_eq!(kept.head.len(), OUTPUT_LIMIT);
        assert_eq!(kept.total, 5 + 2 * OUTPUT_LIMIT as u64);
        assert!(kept.text().ends_with(&format!(
            "[…{} more bytes]",
            kept.total - OUTPUT_LIMIT as u64
        )));
    }

    #[tokio::test]
    async fn output_ends_when_the_session_breaks_and_not_before() {
        use tokio::io::AsyncWriteExt;
        // Broken: the writer stays open, as kube's failed message loop leaves it.
        let (reader, mut writer) = tokio::io::simplex(1024);
        writer.write_all(b"partial").await.unwrap();
        let (status, broken) = watch_status(async { None });
        let (status, kept) = tokio::join!(status, capture_stream(Output::new(reader, &broken)));
        assert!(status.is_none());
        assert_eq!(kept.head, b"partial");
        drop(writer);
        // Reported: everything written after the status is still read.
        let (reader, mut writer) = tokio::io::simplex(1024);
        let (status, broken) = watch_status(async { Some(Status::default()) });
        let write = async {
            status.await;
            writer.write_all(b"all of it").await.unwrap();
            writer.shutdown().await.unwrap();
        };
        let (kept, ()) = tokio::join!(capture_stream(Output::new(reader, &broken)), write);
        assert_eq!(kept.head, b"all of it");
    }

    #[test]
    fn exits_126_and_127_say_command_not_found() {
        let o = |exit| ExecOutcome {
            exit,
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: Duration::ZERO,
        };
        assert!(
            o(Exit::Code(127))
                .failure("db")
                .unwrap()
                .starts_with("command not found in container db")
        );
        assert!(
            o(Exit::Code(126))
                .failure("db")
                .unwrap()
                .starts_with("command not found in container db")
        );
        assert_eq!(
            o(Exit::Code(3)).failure("db").unwrap(),
            "exited with code 3"
        );
        assert!(
            o(Exit::Code(137))
                .failure("db")
                .unwrap()
                .starts_with("was killed (exit 137, SIGKILL: its container stopped")
        );
        assert_eq!(
            o(Exit::Code(130)).failure("db").unwrap(),
            "was killed by signal 2 (exit 130)"
        );
        assert_eq!(o(Exit::Code(0)).failure("db"), None);
        assert!(
            o(Exit::TimedOut(Duration::from_secs(2)))
                .failure("db")
                .unwrap()
                .contains("timed out after 2s; the command was killed in container db")
        );
    }

    #[test]
    fn containers_default_to_the_first_and_sidecars_count() {
        let c = |n: &str| Container {
            name: n.into(),
            ..Default::default()
        };
        let mut sidecar = c("log");
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![c("app"), c("db")],
            init_containers: Some(vec![c("setup"), sidecar]),
            ..Default::default()
        };
        assert_eq!(resolve_container(&spec, None).unwrap(), "app");
        assert_eq!(resolve_container(&spec, Some("log")).unwrap(), "log");
        let err = resolve_container(&spec, Some("setup")).unwrap_err();
        assert!(
            err.contains(
                "container setup does not exist in the pod (its containers: app, db, log)"
            ),
            "{err}"
        );
    }
}
