//! Who may do what, as kube-apiserver decides it: bearer tokens authenticate every request
//! (the kubeconfig's admin token, ServiceAccount tokens, else 401), impersonation headers
//! need the `impersonate` verb, and RBAC authorizes every request (403 with the real
//! message). The user a request runs as stays with it (admission, access reviews) through a
//! task-local.

pub mod aggregation;
pub mod authn;
pub mod bootstrap_roles;
pub mod escalation;
pub mod impersonation;
pub mod rbac;
pub mod request_info;
pub mod tokens;

use crate::api::{Api, WriteOptions};
use crate::error::{ApiError, ApiResult, qualified};
use crate::resources::ResourceType;
use axum::http::{HeaderMap, Method, Uri};
use request_info::Attributes;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group whose members may do anything (kube-apiserver's privileged group).
pub const MASTERS: &str = "system:masters";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The user the kubeconfig's token authenticates as.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:ns:name`.
    pub name: String,
    /// uid (a ServiceAccount's uid for its tokens).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (e.g. the pod a token is bound to).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The kubeconfig's admin.
    pub fn admin() -> UserInfo {
        UserInfo {
            name: ADMIN_USER.into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
            ..Default::default()
        }
    }

    /// A request without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..Default::default()
        }
    }

    /// A ServiceAccount's user (name and groups, as its tokens authenticate).
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo {
            name: service_account_user(namespace, name),
            groups: service_account_groups(namespace),
            ..Default::default()
        }
    }

    /// The user as the `userInfo` of reviews.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A ServiceAccount's groups: `system:serviceaccounts`, `system:serviceaccounts:NS`,
/// `system:authenticated`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        AUTHENTICATED.into(),
    ]
}

/// The namespace and name of a ServiceAccount user name.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

tokio::task_local! {
    static CURRENT: UserInfo;
}

/// The user of the request being served; the cluster admin outside requests (white-box
/// calls of tests).
pub fn current_user() -> UserInfo {
    CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| UserInfo::admin())
}

/// Runs `work` as `user`.
pub async fn run_as<F: std::future::Future>(user: UserInfo, work: F) -> F::Output {
    CURRENT.scope(user, work).await
}

/// `401 Unauthorized`, as the real server answers any credential it cannot verify.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// `403 Forbidden` for a denied request, worded as kube-apiserver's `responsewriters.Forbidden`.
pub fn forbidden(user: &str, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = if a.resource_request {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let place = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} {place}",
            a.verb, a.group
        )
    } else {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    forbidden_error(&a.group, &a.resource, &a.name, &msg)
}

/// apimachinery's `NewForbidden(groupResource, name, err)`.
pub fn forbidden_error(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
    let message = if resource.is_empty() {
        format!("forbidden: {why}")
    } else if name.is_empty() {
        format!("{} is forbidden: {why}", qualified(group, resource))
    } else {
        format!(
            "{} {name:?} is forbidden: {why}",
            qualified(group, resource)
        )
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    e.details = Some(Box::new((
        name.to_string(),
        group.to_string(),
        resource.to_string(),
    )));
    e
}

/// Whether `user` may do what `a` describes (RBAC after the privileged group).
pub fn authorize(api: &Api, user: &UserInfo, a: &Attributes) -> rbac::Decision {
    let inner = api.lock();
    rbac::authorize(&inner.store, user, a)
}

/// Authorizes `a` for `user`: the 403 when denied.
pub fn require(api: &Api, user: &UserInfo, a: &Attributes) -> ApiResult<()> {
    let d = authorize(api, user, a);
    if d.allowed {
        Ok(())
    } else {
        Err(forbidden(&user.name, a, &d.reason))
    }
}

/// Authenticates, impersonates and authorizes one HTTP request: the user it runs as, or
/// the 401/403 to answer. `tls` tells whether the request came over TLS (see
/// [`authn::authenticate`]).
pub fn check_request(
    api: &Api,
    tls: bool,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<UserInfo> {
    let user = authn::authenticate(api, headers, tls)?;
    let user = impersonation::apply(api, user, headers)?;
    let a = request_info::from_request(method, uri);
    require(api, &user, &a)?;
    // Connecting to a pod's exec, attach or port-forward over a WebSocket (a GET) also needs
    // `create`, as kube-apiserver's AuthorizePodWebsocketUpgradeCreatePermission demands.
    if a.resource_request
        && a.verb == "get"
        && a.group.is_empty()
        && a.resource == "pods"
        && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward")
    {
        require(
            api,
            &user,
            &Attributes {
                verb: "create".into(),
                ..a
            },
        )?;
    }
    Ok(user)
}

/// Creates an object through the whole create path (admission, defaulting, validation) as a
/// controller's ServiceAccount `kube-system/CONTROLLER`, after RBAC allowed it.
pub fn create_as_controller(
    api: &Api,
    controller: &str,
    rt: &ResourceType,
    obj: Value,
) -> ApiResult<Value> {
    let user = UserInfo::service_account("kube-system", controller);
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let a = Attributes::resource("create", &rt.group, &rt.plural, &ns, "");
    require(api, &user, &a)?;
    let opts = WriteOptions {
        field_manager: controller.to_string(),
        ..Default::default()
    };
    let ns = (!ns.is_empty()).then_some(ns);
    let work = run_as(user, api.create(rt, ns.as_deref(), obj, &opts));
    block_on(work)
}

/// Waits for `work` from synchronous code (controllers react to changes synchronously, and
/// admission may call webhooks) without stalling the runtime's other tasks.
fn block_on<F>(work: F) -> ApiResult<Value>
where
    F: std::future::Future<Output = ApiResult<Value>> + Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(work))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        ApiError::internal(format!("starting a runtime for admission: {e}"))
                    })?
                    .block_on(work)
            })
            .join()
            .unwrap_or_else(|_| Err(ApiError::internal("the admission thread panicked")))
        }),
    }
}
