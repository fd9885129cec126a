//! Watch streams: ADDED/MODIFIED/DELETED events (selector-aware: an object leaving a
//! selector is DELETED, entering it ADDED), BOOKMARKs, `resourceVersion` resumption with
//! 410 Expired for history that is gone, `sendInitialEvents` and `timeoutSeconds`.

use crate::api::{Change, ChangeType, ListOptions};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;
use crate::server::{AppState, Output, present};
use crate::tables;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// How often bookmarks are sent to clients that allow them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// Longest watch when the client sets no timeout (the real server picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct Filter {
    rt: ResourceType,
    version: String,
    ns: Option<String>,
    opts: ListOptions,
    out: Output,
}

impl Filter {
    fn matches(&self, v: &Value) -> bool {
        self.opts.labels.matches(v) && self.opts.fields.matches(v)
    }

    fn event(&self, c: &Change) -> Option<Value> {
        if c.key.group != self.rt.group || c.key.resource != self.rt.plural {
            return None;
        }
        if let Some(ns) = &self.ns
            && self.rt.namespaced
            && c.key.namespace != *ns
        {
            return None;
        }
        let now = self.matches(&c.object);
        let before = c.old.as_ref().is_some_and(|o| self.matches(o));
        let ty = match c.type_ {
            ChangeType::Added if now => "ADDED",
            ChangeType::Modified if now && before => "MODIFIED",
            ChangeType::Modified if now => "ADDED",
            ChangeType::Modified if before => "DELETED",
            ChangeType::Deleted if now => "DELETED",
            _ => return None,
        };
        Some(json!({"type": ty, "object": self.render(&c.object)}))
    }

    fn render(&self, obj: &Value) -> Value {
        let o = present(&self.rt, &self.version, obj);
        match self.out {
            Output::Object => o,
            Output::Metadata => tables::partial_metadata(&o),
            Output::Table(include) => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                tables::table(&self.rt, &[o], include, json!({"resourceVersion": rv}))
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(&self.version), "metadata": md}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn error_event(e: &ApiError) -> Value {
    json!({"type": "ERROR", "object": e.to_status()})
}

/// Starts a watch and returns the streaming response.
pub fn serve(
    st: Arc<AppState>,
    rt: ResourceType,
    version: String,
    ns: Option<String>,
    opts: ListOptions,
    q: &HashMap<String, String>,
    out: Output,
) -> ApiResult<Response> {
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let from = match q.get("resourceVersion").map(String::as_str) {
        _ if send_initial => None,
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {rv:?}: expected a number from a list or watch"
            ))
        })?),
    };
    let timeout = match q.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
    };
    let filter = Filter {
        rt,
        version,
        ns,
        opts,
        out,
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let begun = st.api.watch_begin(&filter.rt, filter.ns.as_deref(), from);
    tokio::spawn(async move {
        let (replay, mut sub, last_rv) = match begun {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(line(&error_event(&e))).await;
                return;
            }
        };
        for c in &replay {
            if let Some(ev) = filter.event(c)
                && tx.send(line(&ev)).await.is_err()
            {
                return;
            }
        }
        if send_initial
            && bookmarks
            && tx
                .send(line(&filter.bookmark(last_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        let mut sent_rv = last_rv;
        loop {
            tokio::select! {
                _ = st.shutdown.cancelled() => break,
                _ = &mut deadline => break,
                _ = tx.closed() => break,
                _ = tick.tick(), if bookmarks => {
                    let rv = st.api.current_rv().max(sent_rv);
                    if tx.send(line(&filter.bookmark(rv, false))).await.is_err() {
                        break;
                    }
                }
                msg = sub.recv() => match msg {
                    Ok(c) if c.rv > last_rv => {
                        sent_rv = c.rv;
                        if let Some(ev) = filter.event(&c)
                            && tx.send(line(&ev)).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let e = ApiError::gone("too old resource version: the watch fell behind; list again");
                        let _ = tx.send(line(&error_event(&e))).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, std::convert::Infallible>))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
