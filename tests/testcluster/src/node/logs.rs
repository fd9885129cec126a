//! `pods/log`: a container's stdout and stderr (interleaved as written), with `container`,
//! `previous`, `tailLines`, `limitBytes`, `follow`, `timestamps`, `sinceSeconds` and `sinceTime`.

use super::exec::{flag, param, pick_container, query};
use super::kubelet::{self, CState};
use super::objects::{self, s};
use super::{Node, logfile};
use crate::error::ApiError;
use crate::server::error_response;
use axum::body::{Body, Bytes};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The last `n` lines of `bytes`.
pub fn tail_lines(bytes: &[u8], n: usize) -> &[u8] {
    let mut end = bytes.len();
    if end > 0 && bytes[end - 1] == b'\n' {
        end -= 1;
    }
    let mut seen = 0;
    let mut i = end;
    while i > 0 {
        if bytes[i - 1] == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i..];
            }
        }
        i -= 1;
    }
    if n == 0 { &bytes[bytes.len()..] } else { bytes }
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`.
pub async fn handle(node: Arc<Node>, ns: &str, name: &str, uri: &Uri) -> Response {
    match serve(&node, ns, name, uri).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn parse_num(q: &[(String, String)], key: &str) -> Result<Option<usize>, ApiError> {
    match param(q, key) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(|n| Some(n.max(0) as usize))
            .map_err(|_| ApiError::bad_request(format!("invalid {key} {v:?}: must be an integer"))),
    }
}

async fn serve(node: &Arc<Node>, ns: &str, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let q = query(uri);
    let pod = objects::get(&node.api, "", "pods", ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let container = pick_container(&pod, param(&q, "container"))?;
    let cname = s(&container, "/name").to_string();
    let previous = flag(&q, "previous");
    let follow = flag(&q, "follow") && !previous;
    let tail = parse_num(&q, "tailLines")?;
    let limit = parse_num(&q, "limitBytes")?;
    let uid = objects::uid(&pod).to_string();
    let path = kubelet::log_path(&node.kubelet.pod_dir(&uid), &cname, previous);
    let ctr = node.kubelet.pod(&uid).and_then(|rt| rt.ctr(&cname));
    if previous && !path.exists() {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{cname}\" in pod \"{name}\" not found"
        )));
    }
    if !path.exists() {
        // Not started: the runtime's waiting reason, or the pod's (volumes not ready yet).
        let reason = match ctr.as_ref().map(|c| &c.state) {
            Some(CState::Waiting { reason, .. }) => Some(reason.clone()),
            Some(_) => None,
            None => Some(waiting_reason(&pod, &cname)),
        };
        if let Some(reason) = reason {
            return Err(ApiError::bad_request(format!(
                "container \"{cname}\" in pod \"{name}\" is waiting to start: {reason}"
            )));
        }
    }
    let timestamps = flag(&q, "timestamps");
    let since = since_nanos(&q)?;
    let content = tokio::fs::read(&path).await.unwrap_or_default();
    let times = tokio::fs::read_to_string(logfile::times_path(&path))
        .await
        .unwrap_or_default();
    let shown = if timestamps || since.is_some() {
        render(&content, &times, 0, since, timestamps)
    } else {
        content.clone()
    };
    let mut first = match tail {
        Some(n) => tail_lines(&shown, n).to_vec(),
        None => shown,
    };
    if let Some(l) = limit {
        first.truncate(l);
    }
    let text = [(header::CONTENT_TYPE, "text/plain")];
    if !follow {
        return Ok((text, first).into_response());
    }
    let state = (
        Some(first),
        content.len() as u64,
        node.clone(),
        uid,
        cname,
        path,
    );
    let stream = futures::stream::unfold(
        state,
        move |(first, offset, node, uid, cname, path)| async move {
            if let Some(f) = first {
                return Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(f)),
                    (None, offset, node, uid, cname, path),
                ));
            }
            loop {
                let len = tokio::fs::metadata(&path)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                // A restart moved the log aside: follow the new one from its start.
                let offset = if len < offset { 0 } else { offset };
                if len > offset {
                    let bytes = tokio::fs::read(&path).await.unwrap_or_default();
                    let start = (offset as usize).min(bytes.len());
                    let chunk = if timestamps {
                        let times = tokio::fs::read_to_string(logfile::times_path(&path))
                            .await
                            .unwrap_or_default();
                        Bytes::from(render(&bytes, &times, start, None, true))
                    } else {
                        Bytes::copy_from_slice(&bytes[start..])
                    };
                    let new_offset = bytes.len() as u64;
                    return Some((Ok(chunk), (None, new_offset, node, uid, cname, path)));
                }
                // The stream ends when the container has stopped for good (or the pod is gone).
                let running = node
                    .kubelet
                    .pod(&uid)
                    .and_then(|rt| rt.ctr(&cname))
                    .is_some_and(|c| !matches!(c.state, CState::Terminated { .. }));
                if !running {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    Ok((text, Body::from_stream(stream)).into_response())
}

/// `sinceSeconds` or `sinceTime` as the earliest time shown (at most one of them).
fn since_nanos(q: &[(String, String)]) -> Result<Option<i128>, ApiError> {
    let seconds = parse_num(q, "sinceSeconds")?;
    let time = param(q, "sinceTime").filter(|t| !t.is_empty());
    match (seconds, time) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(s), None) => Ok(Some(
            jiff::Timestamp::now().as_nanosecond() - s as i128 * 1_000_000_000,
        )),
        (None, Some(t)) => t
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_nanosecond()))
            .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}"))),
        (None, None) => Ok(None),
    }
}

/// The log from byte `from`, lines older than `since` left out, each prefixed with its time
/// when `timestamps`.
fn render(log: &[u8], times: &str, from: usize, since: Option<i128>, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (at, line) in logfile::lines(log, times, from) {
        if since.is_some_and(|s| at < s) {
            continue;
        }
        if timestamps {
            out.extend_from_slice(logfile::stamp(at).as_bytes());
        }
        out.extend_from_slice(line);
    }
    out
}

/// The waiting reason a pod's status gives a container (`ContainerCreating` before any).
fn waiting_reason(pod: &serde_json::Value, container: &str) -> String {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| {
            pod.pointer(&format!("/status/{k}"))
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|c| s(c, "/name") == container)
        .map(|c| s(c, "/state/waiting/reason").to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "ContainerCreating".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_counts_from_the_end() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb\n", 0), b"");
    }
}
