//! A tiny HTTPS webhook for admission tests (axum + rustls, certificates from an rcgen CA),
//! and builders for the MutatingWebhookConfigurations that register it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Json, OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use base64::Engine;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use vbackup_testcluster::admission::ServiceEndpoints;

pub const SERVICE_NAMESPACE: &str = "vbackup-system";
pub const SERVICE_NAME: &str = "webhook";

/// What the webhook received: the request URI and the AdmissionReview.
#[derive(Clone, Debug)]
pub struct Call {
    pub uri: String,
    pub review: Value,
}

/// A tiny HTTPS webhook whose behaviour is chosen by the request path.
pub struct TestWebhook {
    pub addr: SocketAddr,
    pub ca_pem: String,
    calls: Arc<Mutex<Vec<Call>>>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl TestWebhook {
    /// Serves a certificate for `webhook.vbackup-system.svc` and `127.0.0.1`, signed by a
    /// fresh CA.
    pub async fn start() -> TestWebhook {
        install_crypto_provider();
        let (ca_pem, cert_pem, key_pem) = certificates(
            "test webhook CA",
            &["webhook.vbackup-system.svc", "127.0.0.1"],
        );
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/{*route}", post(respond))
            .with_state(calls.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = RustlsConfig::from_pem(cert_pem.into_bytes(), key_pem.into_bytes())
            .await
            .unwrap();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .handle(handle.clone());
        tokio::spawn(server.serve(app.into_make_service()));
        TestWebhook {
            addr,
            ca_pem,
            calls,
            handle,
        }
    }

    pub fn endpoints(&self) -> ServiceEndpoints {
        let mut endpoints = ServiceEndpoints::default();
        endpoints.insert(SERVICE_NAMESPACE, SERVICE_NAME, self.addr);
        endpoints
    }

    /// `clientConfig` reaching `path` through the `webhook` Service.
    pub fn service(&self, path: &str) -> Value {
        json!({
            "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "path": path},
            "caBundle": b64(&self.ca_pem),
        })
    }

    /// `clientConfig` reaching `path` by URL.
    pub fn url(&self, path: &str) -> Value {
        json!({"url": format!("https://{}{path}", self.addr), "caBundle": b64(&self.ca_pem)})
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, path: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.uri.split('?').next() == Some(path))
            .count()
    }
}

pub fn install_crypto_provider() {
    // Several tests install it; only the first succeeds, which is all that matters.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A CA and a serving certificate for `names`, as (CA PEM, certificate PEM, key PEM).
pub fn certificates(ca_name: &str, names: &[&str]) -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn allowed(uid: &Value, extra: Value) -> Value {
    let mut response = json!({"uid": uid, "allowed": true});
    response
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

pub fn with_base64_patch(uid: &Value, patch: Value) -> Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
    allowed(uid, json!({"patchType": "JSONPatch", "patch": encoded}))
}

/// The webhook: the path says what to answer.
pub async fn respond(
    State(calls): State<Arc<Mutex<Vec<Call>>>>,
    OriginalUri(uri): OriginalUri,
    Json(review): Json<Value>,
) -> Response {
    calls.lock().unwrap().push(Call {
        uri: uri.to_string(),
        review: review.clone(),
    });
    let uid = review["request"]["uid"].clone();
    let path = uri.path().to_owned();
    let answer = match path.as_str() {
        "/allow" => allowed(&uid, json!({})),
        "/label-base64" => with_base64_patch(
            &uid,
            json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "base64-webhook"}]),
        ),
        // Answered with kube-rs's own types, which send the patch as an array of numbers.
        "/label-kube-rs" => {
            let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).unwrap();
            let request: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "add", "path": "/metadata/labels/mutated-by", "value": "kube-rs-webhook"}
            ]))
            .unwrap();
            let response = AdmissionResponse::from(&request)
                .with_patch(patch)
                .unwrap()
                .into_review();
            serde_json::to_value(response).unwrap()
        }
        "/deny" => json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": false, "status": {
                "code": 403, "reason": "Forbidden", "message": "pods in this namespace need a backup policy"
            }},
        }),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(20)).await;
            allowed(&uid, json!({}))
        }
        "/add-sidecar" => with_base64_patch(
            &uid,
            json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "sidecar", "image": "busybox"}}]),
        ),
        "/wrong-uid" => allowed(&json!("not-the-request-uid"), json!({})),
        "/warn" => allowed(
            &uid,
            json!({"warnings": ["pod web-0 has no backup policy yet"]}),
        ),
        "/internal-error" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "webhook internal server error\n",
            )
                .into_response();
        }
        "/patch-that-does-not-apply" => with_base64_patch(
            &uid,
            json!([{"op": "remove", "path": "/metadata/labels/no-such-label"}]),
        ),
        // Appends the last path segment to spec.order, to show who ran and in which order.
        other if other.starts_with("/append/") => with_base64_patch(
            &uid,
            json!([{"op": "add", "path": "/spec/order/-", "value": other.trim_start_matches("/append/")}]),
        ),
        other => panic!("the test webhook has no route {other}"),
    };
    Json(answer).into_response()
}

/// A webhook entry: pods on CREATE, no side effects, Fail, everything else defaulted
/// the way the API server stores it; `overrides` replace top-level fields.
pub fn webhook(name: &str, client_config: Value, overrides: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": {},
        "objectSelector": {},
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1"],
        "reinvocationPolicy": "Never",
    });
    hook.as_object_mut()
        .unwrap()
        .extend(overrides.as_object().unwrap().clone());
    hook
}

pub fn configuration(name: &str, webhooks: Vec<Value>) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks,
    })
}

/// A local port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
