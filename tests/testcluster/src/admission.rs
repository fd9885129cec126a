//! Mutating admission as kube-apiserver does it: select the webhooks of every
//! MutatingWebhookConfiguration that match the request, call them over HTTPS with an
//! `admission.k8s.io` AdmissionReview, and apply their JSON patches, with the real server's
//! ordering, failure policies, dry-run rules, reinvocation and error messages.

mod call;
mod config;
mod registration;
mod review;
mod rules;
mod selector;
pub mod serviceaccount;
mod status;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub use registration::{FieldProblem, apply_configuration_defaults, configuration_problems};
pub use status::AdmissionError;

use config::Webhook;

/// The operation being admitted, as named in rules and AdmissionReviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// An object is being created.
    #[default]
    Create,
    /// An object is being replaced or patched.
    Update,
    /// An object is being deleted.
    Delete,
    /// A connect subresource (exec, attach, port-forward, proxy) is being used.
    Connect,
}

impl Operation {
    /// The name used in webhook rules and in `request.operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What the API server knows about the request being admitted.
#[derive(Debug, Clone, Default)]
pub struct AdmissionAttributes {
    /// The operation being admitted.
    pub operation: Operation,
    /// API group of the object ("" for core).
    pub group: String,
    /// API version of the object, e.g. "v1".
    pub version: String,
    /// Kind of the object, e.g. "Pod".
    pub kind: String,
    /// Plural resource name, e.g. "pods".
    pub resource: String,
    /// Subresource, e.g. "status"; `None` for the main resource.
    pub subresource: Option<String>,
    /// Object name; may be empty before `generateName` is resolved.
    pub name: String,
    /// Namespace of the request; `None` for cluster-scoped resources (for a Namespace
    /// object itself, its own name when the request path carries it, as the real server does).
    pub namespace: Option<String>,
    /// The request has `dryRun=All`.
    pub dry_run: bool,
    /// The authenticated user, e.g. "kubernetes-admin".
    pub username: String,
    /// The user's groups, e.g. `["system:masters", "system:authenticated"]`.
    pub groups: Vec<String>,
}

impl AdmissionAttributes {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    fn subresource(&self) -> &str {
        self.subresource.as_deref().unwrap_or("")
    }
}

/// Services inside the cluster, as kube-apiserver reaches them for webhooks: resolved to
/// a ready endpoint (a pod IP and target port) and dialled in the pod network.
pub trait ClusterServices: Send + Sync {
    /// A ready endpoint of Service `namespace/name` for its port `port`, or the resolver's
    /// error (`no endpoints available for service "NAME"`).
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Result<SocketAddr, String>;
    /// Connects to an endpoint.
    fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> futures::future::BoxFuture<'static, std::io::Result<tokio::net::TcpStream>>;
}

/// Resolves `clientConfig.service` references: to local addresses for webhooks run
/// outside the cluster (`--service-endpoint NS/NAME=127.0.0.1:PORT`), else through the
/// cluster's own Services and endpoints once a node provides a pod network.
#[derive(Clone, Default)]
pub struct ServiceEndpoints {
    mapped: HashMap<(String, String), SocketAddr>,
    cluster: Arc<OnceLock<Arc<dyn ClusterServices>>>,
}

impl std::fmt::Debug for ServiceEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEndpoints")
            .field("mapped", &self.mapped)
            .field("in_cluster", &self.cluster.get().is_some())
            .finish()
    }
}

impl ServiceEndpoints {
    /// Routes calls to Service `namespace/name` to `addr`.
    pub fn insert(&mut self, namespace: &str, name: &str, addr: SocketAddr) {
        self.mapped
            .insert((namespace.to_owned(), name.to_owned()), addr);
    }

    /// The address that Service `namespace/name` is served on, if mapped.
    pub fn get(&self, namespace: &str, name: &str) -> Option<SocketAddr> {
        self.mapped
            .get(&(namespace.to_owned(), name.to_owned()))
            .copied()
    }

    /// Lets unmapped Services be reached inside the cluster (set once, by the node; every
    /// clone of these endpoints sees it).
    pub fn set_cluster(&self, services: Arc<dyn ClusterServices>) {
        let _ = self.cluster.set(services);
    }

    /// The cluster's own Services, when a node provides a pod network.
    pub fn cluster(&self) -> Option<&Arc<dyn ClusterServices>> {
        self.cluster.get()
    }

    /// Parses `NS/NAME=IP:PORT` into its namespace, name and address.
    pub fn parse(spec: &str) -> Result<(String, String, SocketAddr), String> {
        let usage =
            "expected NAMESPACE/NAME=IP:PORT, e.g. vbackup-system/vbackup-webhook=127.0.0.1:8443";
        let (service, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("service endpoint {spec:?} has no '=': {usage}"))?;
        let (namespace, name) = service.split_once('/').ok_or_else(|| {
            format!("service endpoint {spec:?} has no '/' in {service:?}: {usage}")
        })?;
        if namespace.is_empty() || name.is_empty() {
            return Err(format!(
                "service endpoint {spec:?} has an empty namespace or name: {usage}"
            ));
        }
        let addr: SocketAddr = addr.parse().map_err(|e| {
            format!("service endpoint {spec:?} has an invalid address {addr:?} ({e}): {usage}")
        })?;
        Ok((namespace.to_owned(), name.to_owned(), addr))
    }
}

/// Runs every matching MutatingWebhookConfiguration's webhooks, in the real server's order,
/// and returns the object with their patches applied (or the rejection).
///
/// `configurations` are MutatingWebhookConfiguration objects as stored; `namespace_object`
/// is the request's Namespace (for `namespaceSelector`), `None` for cluster-scoped requests;
/// `object` is `Value::Null` when there is none (DELETE, CONNECT); `old_object` is set for
/// UPDATE and DELETE.
pub async fn run_mutating_webhooks(
    configurations: &[Value],
    namespace_object: Option<&Value>,
    attributes: &AdmissionAttributes,
    object: Value,
    old_object: Option<&Value>,
    endpoints: &ServiceEndpoints,
) -> Result<Value, AdmissionError> {
    run_mutating_webhooks_with_warnings(
        configurations,
        namespace_object,
        attributes,
        object,
        old_object,
        endpoints,
    )
    .await
    .map(|admitted| admitted.object)
}

/// The outcome of admission that let the request through.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The object with every patch applied.
    pub object: Value,
    /// Webhook warnings, for `Warning: 299 - "..."` response headers as the real server sends.
    pub warnings: Vec<String>,
}

/// [`run_mutating_webhooks`], also returning the webhooks' warnings.
pub async fn run_mutating_webhooks_with_warnings(
    configurations: &[Value],
    namespace_object: Option<&Value>,
    attributes: &AdmissionAttributes,
    object: Value,
    old_object: Option<&Value>,
    endpoints: &ServiceEndpoints,
) -> Result<Admitted, AdmissionError> {
    let mut warnings = Vec::new();
    if rules::is_exempt_configuration_resource(attributes) {
        return Ok(Admitted { object, warnings });
    }
    let hooks = config::webhooks_in_order(configurations)?;
    let mut object = object;
    let mut reinvocation = Reinvocation::default();
    // The real server reinvokes the admission chain at most once, and only when a webhook
    // changed the object.
    for reinvoking in [false, true] {
        if reinvoking && !reinvocation.requested {
            break;
        }
        for (index, hook) in hooks.iter().enumerate() {
            if !should_call(hook, attributes, namespace_object, &object, old_object)? {
                continue;
            }
            // A webhook skipped in the first round is never called for the first time
            // on reinvocation, even if it matches now.
            if reinvoking && !reinvocation.reinvoke.contains(&index) {
                continue;
            }
            let changed = match call::call_webhook(hook, attributes, &object, old_object, endpoints)
                .await
            {
                Ok(answer) => {
                    warnings.extend(answer.warnings);
                    match answer.patched {
                        Some(patched) => {
                            let changed = patched != object;
                            object = patched;
                            changed
                        }
                        None => false,
                    }
                }
                Err(call::CallError::Calling(reason)) => {
                    let message = format!(
                        "failed calling webhook {}: {reason}",
                        status::go_quote(&hook.name)
                    );
                    if !hook.ignore_failures {
                        return Err(AdmissionError::internal(&message));
                    }
                    tracing::warn!(webhook = %hook.name, "Failed calling webhook, failing open: {message}");
                    false
                }
                Err(call::CallError::Rejected(error)) => return Err(error),
            };
            if changed {
                reinvocation.require_reinvoking_previous();
            }
            if hook.reinvoke_if_needed {
                reinvocation.previously_invoked.insert(index);
            }
        }
    }
    Ok(Admitted { object, warnings })
}

/// The real server's bookkeeping for `reinvocationPolicy: IfNeeded`: a webhook is
/// reinvoked (once) when a webhook invoked after it changed the object.
#[derive(Default)]
struct Reinvocation {
    /// A webhook changed the object: run the chain once more.
    requested: bool,
    /// `IfNeeded` webhooks invoked since the last change.
    previously_invoked: BTreeSet<usize>,
    /// Webhooks to call in the second round.
    reinvoke: BTreeSet<usize>,
}

impl Reinvocation {
    fn require_reinvoking_previous(&mut self) {
        self.requested = true;
        self.reinvoke.append(&mut self.previously_invoked);
    }
}

/// Whether the webhook applies to the request: namespace selector, object selector,
/// then rules; selector errors only surface for webhooks whose rules match.
fn should_call(
    hook: &Webhook,
    attributes: &AdmissionAttributes,
    namespace_object: Option<&Value>,
    object: &Value,
    old_object: Option<&Value>,
) -> Result<bool, AdmissionError> {
    let namespace_match =
        selector::match_namespace_selector(hook, attributes, namespace_object, object);
    if let Ok(false) = namespace_match {
        return Ok(false);
    }
    let object_match = selector::match_object_selector(hook, object, old_object);
    if let Ok(false) = object_match {
        return Ok(false);
    }
    if !hook.rules.iter().any(|rule| rule.matches(attributes)) {
        return Ok(false);
    }
    namespace_match?;
    object_match?;
    if hook.has_match_conditions {
        tracing::warn!(webhook = %hook.name, "matchConditions (CEL) are not evaluated by the test cluster; calling the webhook");
    }
    Ok(true)
}
