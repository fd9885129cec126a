//! Calling one webhook over HTTPS, verifying its certificate against `caBundle`, and
//! applying the JSON patch it returns; failures are worded like kube-apiserver's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::Value;

use super::config::Webhook;
use super::review::{self, ResponseError, ReviewVersion};
use super::status::{self, go_quote};
use super::{AdmissionAttributes, AdmissionError, ServiceEndpoints};

/// How a webhook call failed.
pub(super) enum CallError {
    /// The webhook could not be used (`ErrCallingWebhook`): subject to `failurePolicy`.
    /// Holds the reason, to be prefixed with `failed calling webhook "NAME": `.
    Calling(String),
    /// The request is rejected whatever the failure policy (a denial, a patch that does not
    /// apply, a dry run the webhook cannot take part in).
    Rejected(AdmissionError),
}

/// Where a call goes: the URL the real server would print, the URL actually dialled
/// (the service's stand-in address), and the name the certificate must carry.
struct Target {
    display_url: String,
    connect_url: String,
    host_header: String,
    server_name: String,
    /// Addresses pinned for `server_name`; empty when the URL host is an IP address.
    addrs: Vec<SocketAddr>,
}

/// What an allowing webhook answered.
pub(super) struct Answer {
    /// The patched object, `None` when the webhook sent no patch.
    pub patched: Option<Value>,
    /// Warnings for the API client.
    pub warnings: Vec<String>,
}

/// Calls the webhook and applies its patch.
pub(super) async fn call_webhook(
    hook: &Webhook,
    attributes: &AdmissionAttributes,
    object: &Value,
    old_object: Option<&Value>,
    endpoints: &ServiceEndpoints,
) -> Result<Answer, CallError> {
    if attributes.dry_run {
        match hook.side_effects.as_deref() {
            None => return Err(CallError::Calling("Webhook SideEffects is nil".into())),
            Some("None" | "NoneOnDryRun") => {}
            Some(_) => {
                return Err(CallError::Rejected(AdmissionError::bad_request(&format!(
                    "admission webhook {} does not support dry run",
                    go_quote(&hook.name)
                ))));
            }
        }
    }
    let Some(version) = ReviewVersion::negotiate(&hook.review_versions) else {
        return Err(CallError::Calling(
            "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)".into(),
        ));
    };
    let uid = review::new_uid();
    let request = review::build_request(version, &uid, attributes, object, old_object);
    let timeout = Duration::from_secs(hook.timeout_seconds);
    let target = target(hook, endpoints).await?;
    let client = http_client(hook, &target)?;
    let post_failed = |reason: String| {
        CallError::Calling(format!(
            "failed to call webhook: Post {}: {reason}",
            go_quote(&target.display_url)
        ))
    };

    let exchange = async {
        let response = client
            .post(&target.connect_url)
            .header(reqwest::header::HOST, &target.host_header)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json, */*")
            .header(reqwest::header::USER_AGENT, "kube-apiserver-admission")
            .json(&request)
            .send()
            .await?;
        let code = response.status().as_u16();
        let text_plain = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((code, text_plain, body))
    };
    let (code, text_plain, body) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => return Err(post_failed("context deadline exceeded".into())),
        Ok(Err(error)) => return Err(post_failed(describe_transport_error(&error, &target))),
        Ok(Ok(answer)) => answer,
    };
    if !(200..=206).contains(&code) {
        return Err(CallError::Calling(format!(
            "failed to call webhook: {}",
            error_response_message(code, text_plain, &body)
        )));
    }
    let verdict = match review::verify_response(version, &uid, &body) {
        Ok(verdict) => verdict,
        Err(ResponseError::Decode(e)) => {
            return Err(CallError::Calling(format!("failed to call webhook: {e}")));
        }
        Err(ResponseError::Invalid(e)) => {
            return Err(CallError::Calling(format!(
                "received invalid webhook response: {e}"
            )));
        }
    };
    if !verdict.allowed {
        return Err(CallError::Rejected(AdmissionError::denied(
            &hook.name,
            verdict.result.as_ref(),
        )));
    }
    let patched = if verdict.patch.is_empty() {
        None
    } else {
        Some(apply_patch(
            hook,
            object,
            &verdict.patch,
            &verdict.patch_type,
        )?)
    };
    Ok(Answer {
        patched,
        warnings: verdict.warnings,
    })
}

/// Applies a webhook's patch as the real server does: undecodable patches and unknown
/// patch types are failed calls; a patch that does not apply rejects the request.
fn apply_patch(
    hook: &Webhook,
    object: &Value,
    patch: &[u8],
    patch_type: &str,
) -> Result<Value, CallError> {
    let operations: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(patch).map_err(|e| {
            CallError::Calling(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        })?;
    if operations.is_empty() {
        return Ok(object.clone());
    }
    if object.is_null() {
        return Err(CallError::Rejected(AdmissionError::internal(&format!(
            "admission webhook {} attempted to modify the object, which is not supported for this operation",
            go_quote(&hook.name)
        ))));
    }
    if patch_type != "JSONPatch" {
        return Err(CallError::Calling(format!(
            "unsupported patch type {}",
            go_quote(patch_type)
        )));
    }
    let patch: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
        CallError::Rejected(AdmissionError::internal(&format!("Unexpected kind: {e}")))
    })?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| CallError::Rejected(AdmissionError::internal(&e.to_string())))?;
    if !patched.is_object() {
        return Err(CallError::Rejected(AdmissionError::internal(&format!(
            "admission webhook {} returned a patch that does not leave an object",
            go_quote(&hook.name)
        ))));
    }
    Ok(patched)
}

/// Resolves `clientConfig` to a target: a service is addressed as `NAME.NS.svc:PORT`
/// (certificate name and printed URL) and dialled at its mapped local address.
async fn target(hook: &Webhook, endpoints: &ServiceEndpoints) -> Result<Target, CallError> {
    let query = format!("?timeout={}s", hook.timeout_seconds);
    if let Some(service) = &hook.client.service {
        let port = service.port.unwrap_or(443);
        let server_name = format!("{}.{}.svc", service.name, service.namespace);
        let path = normalise_path(service.path.as_deref().unwrap_or(""));
        let display_url = format!("https://{server_name}:{port}{path}{query}");
        if endpoints.get(&service.namespace, &service.name).is_none()
            && let Some(cluster) = endpoints.cluster()
        {
            let timeout = Duration::from_secs(hook.timeout_seconds);
            let dial_failed = |reason: String| {
                CallError::Calling(format!(
                    "failed to call webhook: Post {}: {reason}",
                    go_quote(&display_url)
                ))
            };
            let endpoint = cluster
                .resolve(&service.namespace, &service.name, port)
                .map_err(dial_failed)?;
            let stream = cluster
                .connect(endpoint, timeout)
                .await
                .map_err(|e| dial_failed(describe_dial_error(&e, endpoint)))?;
            let relay = relay(stream, timeout)
                .await
                .map_err(|e| dial_failed(format!("relaying to {endpoint}: {e}")))?;
            return Ok(Target {
                connect_url: format!("https://{server_name}:{}{path}{query}", relay.port()),
                host_header: format!("{server_name}:{port}"),
                display_url,
                server_name,
                addrs: vec![relay],
            });
        }
        let Some(addr) = endpoints.get(&service.namespace, &service.name) else {
            tracing::warn!(
                "webhook {:?} calls service {}/{} which has no --service-endpoint mapping",
                hook.name,
                service.namespace,
                service.name
            );
            return Err(CallError::Calling(format!(
                "failed to call webhook: Post {}: service {} not found",
                go_quote(&display_url),
                go_quote(&service.name)
            )));
        };
        return Ok(Target {
            connect_url: format!("https://{server_name}:{}{path}{query}", addr.port()),
            host_header: format!("{server_name}:{port}"),
            display_url,
            server_name,
            addrs: vec![addr],
        });
    }
    let Some(raw) = hook.client.url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(CallError::Calling(
            "could not get REST client: webhook configuration must have either service or URL"
                .into(),
        ));
    };
    let url = reqwest::Url::parse(raw).map_err(|e| {
        CallError::Calling(format!(
            "could not get REST client: Unparsable URL: parse {}: {e}",
            go_quote(raw)
        ))
    })?;
    let host = url.host_str().unwrap_or("").to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let path = normalise_path(url.path());
    let display_url = format!("{}://{authority}{path}{query}", url.scheme());
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = if bare_host.parse::<IpAddr>().is_ok() {
        Vec::new()
    } else {
        let timeout = Duration::from_secs(hook.timeout_seconds);
        match tokio::time::timeout(timeout, tokio::net::lookup_host((bare_host.as_str(), port)))
            .await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Err(_) => {
                return Err(CallError::Calling(format!(
                    "failed to call webhook: Post {}: context deadline exceeded",
                    go_quote(&display_url)
                )));
            }
            Ok(Err(_)) => {
                return Err(CallError::Calling(format!(
                    "failed to call webhook: Post {}: dial tcp: lookup {bare_host}: no such host",
                    go_quote(&display_url)
                )));
            }
        }
    };
    Ok(Target {
        connect_url: format!("{}://{authority}{path}{query}", url.scheme()),
        host_header: authority,
        display_url,
        server_name: bare_host,
        addrs,
    })
}

/// Go's words for a failed dial.
fn describe_dial_error(error: &std::io::Error, addr: SocketAddr) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        std::io::ErrorKind::TimedOut => format!("dial tcp {addr}: i/o timeout"),
        _ => format!("dial tcp {addr}: {error}"),
    }
}

/// Hands an established connection into the pod network to the HTTP client: a loopback
/// listener that accepts one connection (within `timeout`) and relays it.
async fn relay(
    mut upstream: tokio::net::TcpStream,
    timeout: Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok(Ok((mut client, _))) = tokio::time::timeout(timeout, listener.accept()).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Ok(addr)
}

fn normalise_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// An HTTP/1.1 client that trusts only the webhook's `caBundle`.
fn http_client(hook: &Webhook, target: &Target) -> Result<reqwest::Client, CallError> {
    let rest_client_error =
        |e: String| CallError::Calling(format!("could not get REST client: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    if !hook.client.ca_bundle.is_empty() {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&hook.client.ca_bundle)
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    rest_client_error(
                        "unable to load root certificates: unable to parse bytes as PEM block"
                            .into(),
                    )
                })?;
        if certs.is_empty() {
            return Err(rest_client_error(
                "unable to load root certificates: no valid certificate authority data seen".into(),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| rest_client_error(format!("unable to load root certificates: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| rest_client_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The real server talks HTTP/1.1 to webhooks so that they load-balance.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if !target.addrs.is_empty() {
        builder = builder.resolve_to_addrs(&target.server_name, &target.addrs);
    }
    builder
        .build()
        .map_err(|e| rest_client_error(e.to_string()))
}

/// The message client-go gives for a non-2xx answer: the webhook's own `Status` message
/// when it sent one, else a generic one by status code.
fn error_response_message(code: u16, text_plain: bool, body: &[u8]) -> String {
    if let Ok(Value::Object(status)) = serde_json::from_slice::<Value>(body)
        && status.get("kind").and_then(Value::as_str) == Some("Status")
        && let Some(message) = status.get("message").and_then(Value::as_str)
    {
        return message.to_owned();
    }
    let server_message = if text_plain {
        let shown = &body[..body.len().min(2048)];
        String::from_utf8_lossy(shown).trim().to_owned()
    } else {
        "unknown".to_owned()
    };
    status::generic_server_response(code, &server_message)
}

/// Words a transport failure like Go's net/http and crypto/tls do.
fn describe_transport_error(error: &reqwest::Error, target: &Target) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut chain = Vec::new();
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return describe_tls_error(tls, &target.server_name);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            // Connectors nest io::Errors; their source() skips the wrapped error itself.
            let mut io = io;
            while let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return describe_tls_error(tls, &target.server_name);
                }
                match inner.downcast_ref::<std::io::Error>() {
                    Some(nested) => io = nested,
                    None => break,
                }
            }
            let addr = target
                .addrs
                .first()
                .map(ToString::to_string)
                .unwrap_or_else(|| target.host_header.clone());
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!("dial tcp {addr}: connect: connection refused");
                }
                std::io::ErrorKind::ConnectionReset => {
                    return format!("read tcp {addr}: read: connection reset by peer");
                }
                std::io::ErrorKind::UnexpectedEof => return "EOF".into(),
                _ => {}
            }
        }
        let text = current.to_string();
        if text.contains("connection closed before message completed") {
            return "EOF".into();
        }
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = current.source();
    }
    chain.join(": ")
}

fn describe_tls_error(error: &rustls::Error, server_name: &str) -> String {
    use rustls::CertificateError as C;
    let verify = "tls: failed to verify certificate: x509:";
    match error {
        // A CA with the issuer's name but another key is, to Go, an unknown authority too.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            format!("{verify} certificate signed by unknown authority")
        }
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => {
            let names: Vec<String> = presented.iter().map(|n| presented_name(n)).collect();
            format!(
                "{verify} certificate is valid for {}, not {server_name}",
                names.join(", ")
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            format!("{verify} certificate is not valid for {server_name}")
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => format!("{verify} certificate has expired or is not yet valid"),
        other => format!("remote error: tls: {other}"),
    }
}

/// rustls reports names as `DnsName("a")` / `IpAddress(1.2.3.4)`; Go prints the bare name.
fn presented_name(name: &str) -> String {
    for prefix in ["DnsName(", "IpAddress("] {
        if let Some(inner) = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(')')) {
            return inner.trim_matches('"').to_owned();
        }
    }
    name.to_owned()
}
