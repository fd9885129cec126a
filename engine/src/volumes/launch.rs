//! Runs one mover pod from the plugin's side: create it and its Secret, wait for it to start
//! (failing fast with the cluster's own reason when it cannot), turn its output into progress,
//! read its result from the termination message, and delete both — on success, failure and
//! cancellation alike.

use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ContainerState, Pod, Secret};
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::runtime::watcher::watch_object;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::job::{MoverJob, MoverResult, ProgressLine};
use super::mover_pod::{CONTAINER, MoverPod};
use crate::repo::{ProgressFn, ProgressUpdate};
use crate::{Error, Result};

/// How long movers may take to start and to stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From creation until the container runs: scheduling, volume attach, image pull.
    pub start: Duration,
    /// A running mover whose progress does not change for this long is abandoned (the mover
    /// itself gives up earlier, at the job's stall period, when it can still report).
    pub stall: Duration,
}

/// Why a pod cannot start, when the cluster says so in a way that will not fix itself.
fn hopeless(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for cs in status.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("");
            if matches!(
                reason,
                "ImagePullBackOff"
                    | "InvalidImageName"
                    | "ErrImageNeverPull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                return Some(format!(
                    "{reason}: {}",
                    w.message.as_deref().unwrap_or("no message")
                ));
            }
        }
    }
    None
}

/// What keeps a pod from starting, for the timeout message: its waiting reason, or an
/// unsatisfied condition (e.g. Unschedulable, or a volume that cannot attach).
pub(crate) fn pending_reason(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else {
        return "no status yet".into();
    };
    for cs in status.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            return format!(
                "{}{}",
                w.reason.as_deref().unwrap_or("Waiting"),
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    for c in status.conditions.iter().flatten() {
        if c.status == "False" && c.reason.is_some() {
            return format!(
                "{} {}: {}",
                c.type_,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            );
        }
    }
    format!("phase {}", status.phase.as_deref().unwrap_or("Pending"))
}

fn container_state(pod: &Pod) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)?
        .state
        .clone()
}

/// Runs `mover` with `job` to the end and returns its result. Failures of the mover itself
/// (its job failed) are in the result's `error`; failures to run it at all are `Err`.
pub async fn run_mover(
    client: &Client,
    mover: &MoverPod,
    job: &MoverJob,
    progress: Option<ProgressFn>,
    timeouts: Timeouts,
    cancel: &CancellationToken,
) -> Result<MoverResult> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &mover.namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &mover.namespace);
    let what = describe(mover);
    let created = pods
        .create(&PostParams::default(), &mover.pod())
        .await
        .map_err(|e| refused(&what, e))?;
    let result = async {
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let job_json = serde_json::to_vec(job)
            .map_err(|e| Error::Internal(format!("encoding the mover job failed: {e}")))?;
        secrets
            .create(&PostParams::default(), &mover.secret(&uid, job_json))
            .await
            .map_err(Error::kube(format!("cannot create the Secret of {what}")))?;
        tokio::select! {
            r = supervise(&pods, mover, &what, progress, timeouts) => r,
            () = cancel.cancelled() => Err(Error::Cancelled(format!("{what} was stopped"))),
        }
    }
    .await;
    cleanup(&pods, &secrets, &mover.name).await;
    result
}

fn describe(mover: &MoverPod) -> String {
    match &mover.claim {
        Some(claim) => format!(
            "the mover of claim {}/{claim} (pod {})",
            mover.namespace, mover.name
        ),
        None => format!("the probe mover {}/{}", mover.namespace, mover.name),
    }
}

fn refused(what: &str, e: kube::Error) -> Error {
    match e {
        // Admission (Pod Security, quotas, webhooks) says why in its own words.
        kube::Error::Api(ae) if ae.code == 403 || ae.code == 422 => {
            Error::BadInput(format!("the cluster refused {what}: {}", ae.message))
        }
        other => Error::Kube {
            context: format!("cannot create {what}"),
            source: other,
        },
    }
}

/// Deletes the mover and its Secret; a failure here is logged, never hides the result.
async fn cleanup(pods: &Api<Pod>, secrets: &Api<Secret>, name: &str) {
    let dp = DeleteParams::background();
    for outcome in [
        pods.delete(name, &dp).await.map(drop),
        secrets.delete(name, &dp).await.map(drop),
    ] {
        match outcome {
            Ok(()) | Err(kube::Error::Api(_)) => {}
            Err(e) => {
                tracing::warn!(mover = name, error = %e, "could not delete a mover; delete pods labelled vbackup.io/mover=true by hand")
            }
        }
    }
}

async fn supervise(
    pods: &Api<Pod>,
    mover: &MoverPod,
    what: &str,
    progress: Option<ProgressFn>,
    timeouts: Timeouts,
) -> Result<MoverResult> {
    // A watch, not polling: the copy's end is seen as the kubelet reports it, where a poll
    // interval would add its half on average to every claim.
    let mut updates = pod_updates(pods, &mover.name);
    let started = wait_started(&mut updates, what, timeouts.start).await?;
    // A quick mover may have finished by the update that showed it started.
    if let Some(done) = container_state(&started).and_then(|s| s.terminated) {
        return finished(what, &done);
    }
    let (tx, mut rx) = tokio::sync::watch::channel(ProgressLine::default());
    let follow = tokio::spawn(follow_output(pods.clone(), mover.name.clone(), tx));
    let mut last_seen = (ProgressLine::default(), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            update = updates.next() => match update {
                Some(Some(pod)) => {
                    if let Some(done) = container_state(&pod).and_then(|s| s.terminated) {
                        break finished(what, &done);
                    }
                }
                Some(None) => {
                    break Err(Error::Internal(format!("{what} was deleted while it ran")));
                }
                None => break Err(Error::Internal(format!("the watch of {what} ended"))),
            },
            _ = tick.tick() => {
                let line = *rx.borrow_and_update();
                if line != last_seen.0 {
                    last_seen = (line, Instant::now());
                    if let Some(p) = &progress {
                        p(ProgressUpdate {
                            bytes_done: line.bytes,
                            bytes_total: line.total,
                            files_done: line.files,
                            files_read: line.files,
                        });
                    }
                }
                if last_seen.1.elapsed() > timeouts.stall {
                    tracing::warn!(mover = %mover.name, what, stalled_for = ?last_seen.1.elapsed(), "mover pod made no progress; giving up on it");
                    break Err(Error::Stalled {
                        what: what.to_string(),
                        stalled_for: last_seen.1.elapsed(),
                    });
                }
            }
        }
    };
    follow.abort();
    outcome
}

/// The mover pod as the API server reports it, change by change (`None`: it is gone). Watch
/// errors (an API server restart, a dropped connection) are retried by the watcher after a
/// pause; the start and stall limits bound how long that may last.
fn pod_updates(pods: &Api<Pod>, name: &str) -> BoxStream<'static, Option<Pod>> {
    let name = name.to_string();
    watch_object(pods.clone(), &name)
        .filter_map(move |update| {
            let name = name.clone();
            async move {
                match update {
                    Ok(pod) => Some(pod),
                    Err(e) => {
                        tracing::warn!(mover = %name, error = %e, "watching the mover pod failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        None
                    }
                }
            }
        })
        .boxed()
}

fn finished(
    what: &str,
    done: &k8s_openapi::api::core::v1::ContainerStateTerminated,
) -> Result<MoverResult> {
    let message = done.message.as_deref().unwrap_or("");
    match MoverResult::parse(message) {
        Some(result) => Ok(result),
        None => Err(Error::Internal(format!(
            "{what} ended with exit code {}{} and no result{}",
            done.exit_code,
            done.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {}", message.trim())
            }
        ))),
    }
}

/// Waits until the mover's container runs (or has already ended) and gives the pod as it
/// was then; fails fast with the cluster's reason when it cannot start.
async fn wait_started(
    updates: &mut BoxStream<'static, Option<Pod>>,
    what: &str,
    limit: Duration,
) -> Result<Pod> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last: Option<Pod> = None;
    loop {
        let update = match tokio::time::timeout_at(deadline, updates.next()).await {
            Ok(Some(update)) => update,
            Ok(None) => return Err(Error::Internal(format!("the watch of {what} ended"))),
            Err(_) => {
                return Err(Error::MoverNotStarted {
                    what: what.into(),
                    reason: format!(
                        "not running after {limit:?}: {}",
                        last.as_ref()
                            .map_or_else(|| "no status yet".into(), pending_reason)
                    ),
                });
            }
        };
        let pod = update
            .ok_or_else(|| Error::Internal(format!("{what} was deleted before it started")))?;
        match container_state(&pod) {
            Some(s) if s.running.is_some() || s.terminated.is_some() => return Ok(pod),
            _ => {}
        }
        if let Some(reason) = hopeless(&pod) {
            return Err(Error::MoverNotStarted {
                what: what.into(),
                reason,
            });
        }
        last = Some(pod);
    }
}

/// Follows the mover's output and publishes its latest progress line.
async fn follow_output(pods: Api<Pod>, name: String, tx: tokio::sync::watch::Sender<ProgressLine>) {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..Default::default()
    };
    let Ok(stream) = pods.log_stream(&name, &params).await else {
        return;
    };
    let mut lines = stream.lines();
    while let Some(Ok(line)) = lines.next().await {
        if let Some(p) = ProgressLine::parse(&line) {
            let _ = tx.send(p);
        } else if !line.trim().is_empty() {
            tracing::debug!(mover = %name, "{line}");
        }
    }
    let _ = lines.try_next().await;
}
