//! Connect subresources (`pods/log`, `pods/exec`, `pods/attach`, `pods/portforward`...):
//! served by handlers plugged in through `ClusterOptions::connect_handlers` (a node that runs
//! pods provides them). Without a handler the server answers as a cluster whose kubelet
//! cannot be reached.

use crate::api::Api;
use crate::resources::ResourceType;
use axum::extract::Request;
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One request for a connect subresource.
pub struct ConnectRequest {
    /// The resource (e.g. pods).
    pub resource: ResourceType,
    /// Namespace of the object.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// Subresource, e.g. `log` or `exec`.
    pub subresource: String,
    /// The whole HTTP request (WebSocket upgrades need it).
    pub request: Request,
}

/// A boxed response future.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Serves some connect subresources.
pub trait ConnectHandler: Send + Sync + 'static {
    /// Whether this handler serves `group`/`plural`/`subresource`.
    fn handles(&self, group: &str, plural: &str, subresource: &str) -> bool;
    /// Answers the request.
    fn handle(&self, api: Arc<Api>, request: ConnectRequest) -> ConnectFuture;
}
