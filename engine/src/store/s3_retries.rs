//! The S3 SDK retries throttled, failed and timed-out requests on its own, silently: this
//! interceptor says so, so a slow backup on a struggling object store shows why.

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;

/// Logs every attempt after an operation's first as a `tracing` warning.
#[derive(Debug)]
pub(super) struct RetryLog {
    /// The location's endpoint, for the log (no credentials).
    pub(super) endpoint: String,
}

impl Intercept for RetryLog {
    fn name(&self) -> &'static str {
        "vbackup-retry-log"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            let operation = cfg.load::<Metadata>().map_or("S3 request", |m| m.name());
            tracing::warn!(
                endpoint = %self.endpoint,
                operation,
                attempt,
                "retrying an S3 request after a failed attempt"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::store::ObjectBackend;
    use crate::store::location::S3Spec;
    use crate::store::s3::{S3Backend, S3Credentials};

    /// Collects what the tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An S3 endpoint that answers the first request `503 Slow Down` and every later one
    /// `404`, one request per connection.
    async fn slow_then_missing() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let status = if served == 0 {
                    "503 Slow Down"
                } else {
                    "404 Not Found"
                };
                served += 1;
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        url
    }

    #[tokio::test]
    async fn a_retried_request_is_logged_with_its_operation_and_attempt() {
        let endpoint = slow_then_missing().await;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let spec = S3Spec {
            bucket: "retries".into(),
            prefix: None,
            region: Some("us-east-1".into()),
            endpoint: Some(endpoint.clone()),
            force_path_style: true,
            credentials_secret: None,
        };
        let credentials = S3Credentials {
            access_key_id: "test".into(),
            secret_access_key: "test-secret".into(),
            session_token: None,
        };
        let backend = S3Backend::new(&spec, credentials).unwrap();
        // The retry (after the 503) gets the 404: the object is simply missing.
        assert_eq!(backend.head("backups/b/x").await.unwrap(), None);

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let retries: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("retrying an S3 request"))
            .collect();
        assert_eq!(retries.len(), 1, "{log}");
        assert!(retries[0].contains("operation=\"HeadObject\""), "{log}");
        assert!(retries[0].contains("attempt=2"), "{log}");
        assert!(retries[0].contains(&endpoint), "{log}");
        assert!(!log.contains("test-secret"), "{log}");
    }
}
