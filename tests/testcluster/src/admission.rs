//! Mutating admission: calls the webhooks of matching MutatingWebhookConfigurations.
//!
//! Placeholder with the agreed interface (see /work/notes/admission-api.md); the real
//! implementation replaces this file at merge time.

use std::collections::HashMap;
use std::net::SocketAddr;

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

/// What the API server knows about the request being admitted.
#[derive(Debug, Clone)]
pub struct AdmissionAttributes {
    /// The operation.
    pub operation: Operation,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource, e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// Object name (may be empty before generateName is resolved).
    pub name: String,
    /// Namespace of namespaced objects.
    pub namespace: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Requesting user.
    pub username: String,
    /// Requesting user's groups.
    pub groups: Vec<String>,
}

/// Resolves `clientConfig.service` references (`--service-endpoint NS/NAME=127.0.0.1:PORT`).
#[derive(Debug, Clone, Default)]
pub struct ServiceEndpoints(HashMap<(String, String), SocketAddr>);

impl ServiceEndpoints {
    /// Maps a service to a local address.
    pub fn insert(&mut self, namespace: &str, name: &str, addr: SocketAddr) {
        self.0
            .insert((namespace.to_string(), name.to_string()), addr);
    }

    /// Parses `NS/NAME=IP:PORT`.
    pub fn parse(spec: &str) -> Result<(String, String, SocketAddr), String> {
        let (service, addr) = spec.split_once('=').ok_or_else(|| {
            format!("service endpoint {spec:?} must look like NS/NAME=127.0.0.1:PORT")
        })?;
        let (ns, name) = service
            .split_once('/')
            .ok_or_else(|| format!("service {service:?} must look like NS/NAME"))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| format!("address {addr:?} in {spec:?} is not IP:PORT: {e}"))?;
        Ok((ns.to_string(), name.to_string(), addr))
    }
}

/// A rejection, rendered by the server as a metav1.Status with this code/reason/message.
#[derive(Debug, Clone)]
pub struct AdmissionError {
    /// HTTP status code.
    pub code: u16,
    /// Status reason.
    pub reason: String,
    /// Status message.
    pub message: String,
}

/// Runs every matching MutatingWebhookConfiguration's webhooks and returns the object with
/// their patches applied (or the rejection).
pub async fn run_mutating_webhooks(
    _configurations: &[serde_json::Value],
    _namespace_object: Option<&serde_json::Value>,
    _attributes: &AdmissionAttributes,
    object: serde_json::Value,
    _old_object: Option<&serde_json::Value>,
    _endpoints: &ServiceEndpoints,
) -> Result<serde_json::Value, AdmissionError> {
    Ok(object)
}
