//! `pods/exec` over WebSocket with the `v5.channel.k8s.io` and `v4.channel.k8s.io`
//! subprotocols: every binary message starts with its channel (0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize; v5 adds 255 = close the channel in the next byte). The
//! command's exit is reported on the error channel as the kubelet's `metav1.Status`.

use super::objects::{self, s};
use super::{Node, kubelet};
use crate::error::ApiError;
use crate::server::error_response;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Query parameters of an exec or log request (repeated keys such as `command` kept).
pub fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of a query parameter.
pub fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether a boolean query parameter is set.
pub fn flag(q: &[(String, String)], key: &str) -> bool {
    matches!(param(q, key), Some("true" | "1" | "True"))
}

fn names(pod: &Value, key: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{key}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| s(c, "/name").to_string())
        .collect()
}

/// The container a streaming request addresses, with the API server's errors.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<Value, ApiError> {
    let name = objects::name(pod);
    let all = |key: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => all("containers")
            .into_iter()
            .chain(all("initContainers"))
            .chain(all("ephemeralContainers"))
            .find(|x| s(x, "/name") == c)
            .ok_or_else(|| {
                ApiError::bad_request(format!("container {c} is not valid for pod {name}"))
            }),
        None => {
            let mains = all("containers");
            match mains.len() {
                1 => Ok(mains[0].clone()),
                0 => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => {
                    let mut msg = format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        names(pod, "containers").join(" ")
                    );
                    let inits = names(pod, "initContainers");
                    if !inits.is_empty() {
                        msg.push_str(&format!(
                            " or one of the init containers: [{}]",
                            inits.join(" ")
                        ));
                    }
                    Err(ApiError::bad_request(msg))
                }
            }
        }
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec`.
pub async fn handle(node: Arc<Node>, ns: &str, name: &str, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    match prepare(&node, ns, name, &parts.uri, &parts.headers, ws) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn prepare(
    node: &Arc<Node>,
    ns: &str,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let q = query(uri);
    let pod = objects::get(&node.api, "", "pods", ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let container = pick_container(&pod, param(&q, "container"))?;
    let argv: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if s(&pod, "/spec/nodeName").is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if matches!(s(&pod, "/status/phase"), "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "container not found (\"{}\")",
            s(&container, "/name")
        )));
    }
    let ws = ws.map_err(|_| {
        let spdy = headers
            .get("upgrade")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|u| u.to_ascii_lowercase().contains("spdy"));
        ApiError::bad_request(if spdy {
            "this test node serves pods/exec over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY"
        } else {
            "Upgrade request required"
        })
    })?;
    let ws = ws.protocols(PROTOCOLS);
    let Some(protocol) = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(str::to_string)
    else {
        return Err(ApiError::bad_request(format!(
            "none of the requested WebSocket subprotocols is served; use one of {}",
            PROTOCOLS.join(", ")
        )));
    };
    let (mut cmd, rt) =
        kubelet::exec_command(node, &pod, &container, &argv).map_err(ApiError::internal)?;
    let container = s(&container, "/name").to_string();
    let want = |k: &str| flag(&q, k);
    let (stdin, stdout, stderr, tty) = (want("stdin"), want("stdout"), want("stderr"), want("tty"));
    let piped = |on: bool| {
        if on {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    cmd.stdin(piped(stdin))
        .stdout(piped(stdout))
        .stderr(piped(stderr || (tty && stdout)));
    let v5 = protocol.starts_with("v5");
    Ok(ws
        .on_upgrade(move |socket| async move {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => return refuse(socket, e).await,
            };
            // The session dies with its container, as in a container runtime.
            let pgid = child.id();
            if let Some(p) = pgid {
                rt.add_exec(&container, p);
            }
            session(socket, &mut child, argv, v5, tty).await;
            if let Some(p) = pgid {
                rt.remove_exec(p);
            }
        })
        .into_response())
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

async fn pump(mut r: impl tokio::io::AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The error-channel payload for an exit code, as the kubelet sends it.
pub fn exit_status(argv: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", argv.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Reports a command that could not be started, as the kubelet does.
async fn refuse(mut socket: WebSocket, e: std::io::Error) {
    let st = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
        "message": format!("error executing command in container: {e}")});
    let _ = socket.send(frame(3, st.to_string().as_bytes())).await;
    let _ = socket.close().await;
}

async fn session(
    socket: WebSocket,
    child: &mut tokio::process::Child,
    argv: Vec<String>,
    v5: bool,
    tty: bool,
) {
    let (mut sink, mut stream) = socket.split();
    let pgid = child.id();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    if let Some(o) = child.stdout.take() {
        tokio::spawn(pump(o, 1, tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        // Under a TTY both streams share the terminal, i.e. stdout.
        tokio::spawn(pump(e, if tty { 1 } else { 2 }, tx.clone()));
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    let mut outputs_open = true;
    let mut exit: Option<i32> = None;
    let mut client_open = true;
    while outputs_open || exit.is_none() {
        tokio::select! {
            m = stream.next(), if client_open => match m {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => match b[0] {
                    0 => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&b[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    255 if v5 && b.get(1) == Some(&0) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_open = false;
                    stdin = None;
                    if let Some(p) = pgid {
                        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{p}")]).status();
                    }
                }
                _ => {}
            },
            d = rx.recv(), if outputs_open => match d {
                Some(msg) => {
                    if client_open && sink.send(msg).await.is_err() {
                        client_open = false;
                    }
                }
                None => outputs_open = false,
            },
            st = child.wait(), if exit.is_none() => {
                use std::os::unix::process::ExitStatusExt;
                exit = Some(match st {
                    Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
                    Err(_) => 128,
                });
            }
        }
    }
    if !client_open {
        return;
    }
    let status = exit_status(&argv, exit.unwrap_or(128));
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    // Let the close handshake finish so the client sees a clean end of stream.
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_container_gets_the_api_servers_message() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}, {"name": "side"}]}});
        assert_eq!(
            pick_container(&pod, Some("nope")).unwrap_err().message,
            "container nope is not valid for pod web"
        );
        assert_eq!(
            pick_container(&pod, None).unwrap_err().message,
            "a container name must be specified for pod web, choose one of: [app side]"
        );
        assert_eq!(
            s(&pick_container(&pod, Some("side")).unwrap(), "/name"),
            "side"
        );
    }

    #[test]
    fn non_zero_exit_is_reported_like_the_kubelet() {
        let st = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(
            st["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(exit_status(&[], 0)["status"], "Success");
    }
}
