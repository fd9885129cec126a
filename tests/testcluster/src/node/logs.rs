//! `pods/log`: a container's stdout and stderr (interleaved as written), with `container`,
//! `previous`, `tailLines`, `limitBytes` and `follow`.

use super::Node;
use super::exec::{flag, param, pick_container, query};
use super::kubelet::{self, CState};
use super::objects::{self, s};
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
    if !path.exists()
        && let Some(CState::Waiting { reason, .. }) = ctr.as_ref().map(|c| &c.state)
    {
        return Err(ApiError::bad_request(format!(
            "container \"{cname}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let content = tokio::fs::read(&path).await.unwrap_or_default();
    let mut first = match tail {
        Some(n) => tail_lines(&content, n).to_vec(),
        None => content.clone(),
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
        |(first, offset, node, uid, cname, path)| async move {
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
                    let chunk = Bytes::copy_from_slice(&bytes[start..]);
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
