//! Readiness and liveness probes as the kubelet runs them: `exec` (in the container's
//! namespaces), `httpGet` (2xx/3xx is success, from the node to the pod IP; HTTPS without
//! certificate checks, as the kubelet) and `tcpSocket`, with `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`,
//! `successThreshold` and `failureThreshold` and the API's defaults (0, 10, 1, 1, 3).
//!
//! A container with a readiness probe is not ready until the probe has succeeded
//! `successThreshold` times in a row and stops being ready after `failureThreshold`
//! failures; a liveness probe that fails `failureThreshold` times has the container killed
//! (and restarted as its pod's `restartPolicy` says). Only containers of mapped images run
//! a program that could answer, so only they are probed.

use super::network::{self, Network};
use super::objects::s;
use super::sandbox::Sandbox;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Reports a probe's verdict: ready or not (readiness), or unhealthy (liveness, `false`).
pub type Report = Arc<dyn Fn(bool) + Send + Sync>;

/// Where the probes of one running container go.
#[derive(Clone)]
pub struct Target {
    /// The pod IP (127.0.0.1 for `hostNetwork` pods).
    pub ip: String,
    /// The container's process (exec probes enter its namespaces).
    pub pid: u32,
    /// The container's environment (exec probes run with it).
    pub env: Vec<(String, String)>,
    /// The node's network, to reach pod IPs.
    pub network: Arc<Network>,
}

/// Whether the container declares a readiness probe.
pub fn has_readiness_probe(container: &Value) -> bool {
    container
        .get("readinessProbe")
        .is_some_and(Value::is_object)
}

/// Starts the container's probes; they stop when the guard is dropped.
pub fn start(container: &Value, target: Target, readiness: Report, liveness: Report) -> DropGuard {
    let cancel = CancellationToken::new();
    for (key, report, live) in [
        ("readinessProbe", readiness, false),
        ("livenessProbe", liveness, true),
    ] {
        let Some(probe) = container.get(key).filter(|p| p.is_object()).cloned() else {
            continue;
        };
        let ports = container.get("ports").cloned().unwrap_or(Value::Null);
        tokio::spawn(run(
            probe,
            ports,
            target.clone(),
            live,
            report,
            cancel.clone(),
        ));
    }
    cancel.drop_guard()
}

fn seconds(probe: &Value, key: &str, default: u64) -> u64 {
    probe.get(key).and_then(Value::as_u64).unwrap_or(default)
}

async fn run(
    probe: Value,
    ports: Value,
    target: Target,
    liveness: bool,
    report: Report,
    cancel: CancellationToken,
) {
    let initial = Duration::from_secs(seconds(&probe, "initialDelaySeconds", 0));
    let period = Duration::from_secs(seconds(&probe, "periodSeconds", 10).max(1));
    let timeout = Duration::from_secs(seconds(&probe, "timeoutSeconds", 1).max(1));
    let successes_needed = seconds(&probe, "successThreshold", 1).max(1);
    let failures_needed = seconds(&probe, "failureThreshold", 3).max(1);
    let (mut successes, mut failures) = (0, 0);
    let mut verdict = None;
    let mut wait = initial;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = period;
        let ok = tokio::select! {
            _ = cancel.cancelled() => return,
            ok = check(&probe, &ports, &target, timeout) => ok,
        };
        if ok {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        if liveness {
            if failures >= failures_needed {
                report(false);
                return;
            }
        } else if successes >= successes_needed && verdict != Some(true) {
            verdict = Some(true);
            report(true);
        } else if failures >= failures_needed && verdict != Some(false) {
            verdict = Some(false);
            report(false);
        }
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(value: Option<&Value>, ports: &Value) -> Option<u16> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => name.parse().ok().or_else(|| {
            ports
                .as_array()?
                .iter()
                .find(|p| s(p, "/name") == name)?
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }),
        _ => None,
    }
}

async fn check(probe: &Value, ports: &Value, target: &Target, timeout: Duration) -> bool {
    if let Some(exec) = probe.get("exec") {
        let argv: Vec<String> = exec
            .get("command")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if argv.is_empty() {
            return false;
        }
        let mut cmd = Sandbox::enter(target.pid, &argv, &target.env);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        return matches!(
            tokio::time::timeout(timeout, child.wait()).await,
            Ok(Ok(status)) if status.success()
        );
    }
    let (action, http) = match (probe.get("httpGet"), probe.get("tcpSocket")) {
        (Some(h), _) => (h, true),
        (None, Some(t)) => (t, false),
        _ => return false,
    };
    let host = match s(action, "/host") {
        "" => target.ip.as_str(),
        h => h,
    };
    let Some(addr) = port(action.get("port"), ports).and_then(|p| network::pod_addr(host, p))
    else {
        return false;
    };
    let attempt = async {
        let stream = network::connect(Some(&target.network), addr, timeout).await?;
        if !http {
            return Ok(true);
        }
        if s(action, "/scheme").eq_ignore_ascii_case("HTTPS") {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(std::io::Error::other)?;
            let tls = tls_connector()?.connect(name, stream).await?;
            return http_get(tls, action, addr).await;
        }
        http_get(stream, action, addr).await
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Ok(true)))
}

/// The kubelet's probe client skips certificate verification (`InsecureSkipVerify`).
fn tls_connector() -> std::io::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Accepts any server certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends the probe's GET and tells whether the status is 2xx or 3xx.
async fn http_get<S>(
    mut stream: S,
    action: &Value,
    addr: std::net::SocketAddr,
) -> std::io::Result<bool>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let path = match s(action, "/path") {
        "" => "/",
        p => p,
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for h in action
        .get("httpHeaders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        request.push_str(&format!("{}: {}\r\n", s(h, "/name"), s(h, "/value")));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((200..400).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probe_ports_are_numbers_or_container_port_names() {
        let ports = json!([{"name": "http", "containerPort": 8080}]);
        assert_eq!(port(Some(&json!(9000)), &ports), Some(9000));
        assert_eq!(port(Some(&json!("http")), &ports), Some(8080));
        assert_eq!(port(Some(&json!("metrics")), &ports), None);
        assert_eq!(port(None, &ports), None);
    }
}
