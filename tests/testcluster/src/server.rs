//! HTTP: routes every request to discovery, OpenAPI or the resource handlers, negotiates
//! the representation (object, Table, PartialObjectMetadata — always JSON) and renders
//! errors as `metav1.Status`.

use crate::api::{Api, DeleteOptions, ListOptions, ListPage, WriteOptions};
use crate::error::{ApiError, ApiResult};
use crate::patch::PatchType;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::tables::{self, Include};
use crate::{discovery, openapi, watch};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The API.
    pub api: Arc<Api>,
    /// Cancelled when the server stops (ends watches).
    pub shutdown: CancellationToken,
    /// `host:port` the server is reachable at.
    pub address: String,
    /// Handlers of connect subresources (`pods/log`, `pods/exec`...).
    pub connect_handlers: Vec<Arc<dyn crate::connect::ConnectHandler>>,
    /// Served over TLS (over plain HTTP, requests without credentials are the admin's).
    pub tls: bool,
}

/// The router serving the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    // The real server accepts request bodies up to 3 MiB; leave a little room above that.
    Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(state)
}

/// How a response represents objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table(Include),
    /// `PartialObjectMetadata(List)`.
    Metadata,
}

/// A JSON response with a status code.
pub fn json_response(code: u16, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

fn json_response_typed(code: u16, body: &Value, content_type: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body.to_string(),
    )
        .into_response()
}

/// The `metav1.Status` response of an error.
pub fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

type Query = HashMap<String, String>;

fn parse_query(uri: &Uri) -> Query {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn output(headers: &HeaderMap, q: &Query) -> Output {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The first acceptable representation wins, as in the real server's negotiation.
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table") {
            let include = match q.get("includeObject").map(String::as_str) {
                Some("None") => Include::None,
                Some("Object") => Include::Object,
                _ => Include::Metadata,
            };
            return Output::Table(include);
        }
        if p.contains("as=PartialObjectMetadata") {
            return Output::Metadata;
        }
        if p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.starts_with("application/yaml")
        {
            return Output::Object;
        }
    }
    Output::Object
}

/// A plugged-in connect handler with the resource, namespace, name and subresource it serves.
type ConnectTarget = (
    Arc<dyn crate::connect::ConnectHandler>,
    ResourceType,
    Option<String>,
    String,
    String,
);

/// A plugged-in connect handler for this request, if any.
fn connect_target(st: &AppState, uri: &Uri) -> Option<ConnectTarget> {
    let path = uri.path().trim_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let t = parse_target(rest).ok()?;
    let sub = t.sub?;
    let handler = st
        .connect_handlers
        .iter()
        .find(|h| h.handles(group, t.plural, sub))?
        .clone();
    let rt = st.api.registry().find(group, version, t.plural)?.clone();
    Some((
        handler,
        rt,
        t.ns.map(str::to_string),
        t.name?.to_string(),
        sub.to_string(),
    ))
}

async fn handle(State(st): State<Arc<AppState>>, request: axum::extract::Request) -> Response {
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    match crate::auth::check_request(&st.api, st.tls, method, uri, headers) {
        Ok(user) => crate::auth::run_as(user, serve(st, request)).await,
        Err(e) => error_response(&e),
    }
}

/// Serves an authenticated and authorized request.
async fn serve(st: Arc<AppState>, request: axum::extract::Request) -> Response {
    if let Some((handler, resource, namespace, name, subresource)) =
        connect_target(&st, request.uri())
    {
        let req = crate::connect::ConnectRequest {
            resource,
            namespace,
            name,
            subresource,
            request,
        };
        return handler.handle(st.api.clone(), req).await;
    }
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let body: Bytes = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    let q = parse_query(&uri);
    let path = uri.path().trim_matches('/').to_string();
    let segs: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let reg = || st.api.registry();
    let get_only = |v: Option<Value>| match (method == Method::GET, v) {
        (false, _) => error_response(&ApiError::method_not_allowed()),
        (true, Some(v)) => json_response(200, &v),
        (true, None) => error_response(&not_found_path()),
    };
    match segs.as_slice() {
        [] => get_only(Some(
            json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
        )),
        ["version"] => get_only(Some(discovery::version())),
        ["healthz" | "livez" | "readyz"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => match aggregated_version(&accept) {
            Some((v, ct)) => json_response_typed(200, &discovery::aggregated(&reg(), true, v), &ct),
            None => get_only(Some(discovery::api_versions(&st.address))),
        },
        ["apis"] => match aggregated_version(&accept) {
            Some((v, ct)) => {
                json_response_typed(200, &discovery::aggregated(&reg(), false, v), &ct)
            }
            None => get_only(Some(discovery::api_group_list(&reg()))),
        },
        ["api", "v1"] => get_only(discovery::resource_list(&reg(), "", "v1")),
        ["apis", group] => get_only(discovery::api_group(&reg(), group)),
        ["apis", group, version] => get_only(discovery::resource_list(&reg(), group, version)),
        ["openapi", "v2"] if method == Method::GET => {
            if accept.contains("protobuf") {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
                    openapi::v2_protobuf(),
                )
                    .into_response()
            } else {
                json_response(200, &openapi::v2_json())
            }
        }
        ["openapi", "v3"] => get_only(Some(openapi::root(&reg()))),
        ["openapi", "v3", "api", version] => get_only(openapi::group_version(&reg(), "", version)),
        ["openapi", "v3", "apis", group, version] => {
            get_only(openapi::group_version(&reg(), group, version))
        }
        ["api", "v1", rest @ ..] => {
            resources(&st, method, "", "v1", rest, &q, &headers, body).await
        }
        ["apis", group, version, rest @ ..] => {
            resources(&st, method, group, version, rest, &q, &headers, body).await
        }
        _ => error_response(&not_found_path()),
    }
}

/// Which aggregated discovery version the client accepts, with the content type to answer.
fn aggregated_version(accept: &str) -> Option<(&'static str, String)> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=APIGroupDiscoveryList") && p.contains("g=apidiscovery.k8s.io") {
            if p.contains("v=v2beta1") {
                return Some((
                    "apidiscovery.k8s.io/v2beta1",
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
                        .into(),
                ));
            }
            if p.contains("v=v2") {
                return Some((
                    "apidiscovery.k8s.io/v2",
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList".into(),
                ));
            }
        }
        if p.starts_with("application/json") && !p.contains("as=") {
            return None;
        }
    }
    None
}

/// A parsed resource URL.
struct Target<'a> {
    ns: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
    watch_path: bool,
}

fn parse_target<'a>(rest: &'a [&'a str]) -> ApiResult<Target<'a>> {
    let (watch_path, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"));
    let (ns, tail) = if namespaced {
        (Some(rest[1]), &rest[2..])
    } else {
        (None, rest)
    };
    match tail {
        [plural] => Ok(Target {
            ns,
            plural,
            name: None,
            sub: None,
            watch_path,
        }),
        [plural, name] => Ok(Target {
            ns,
            plural,
            name: Some(name),
            sub: None,
            watch_path,
        }),
        [plural, name, sub] => Ok(Target {
            ns,
            plural,
            name: Some(name),
            sub: Some(sub),
            watch_path,
        }),
        _ => Err(not_found_path()),
    }
}

fn write_options(q: &Query, headers: &HeaderMap, apply: bool) -> ApiResult<WriteOptions> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            )));
        }
    };
    let field_manager = match q.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ if apply => String::new(),
        _ => {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown");
            ua.split('/').next().unwrap_or("unknown").to_string()
        }
    };
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager must be at most 128 characters",
        ));
    }
    Ok(WriteOptions {
        dry_run,
        field_manager,
        force: q.get("force").is_some_and(|f| f == "true"),
        field_validation: crate::pruning::FieldValidation::parse(
            q.get("fieldValidation").map(String::as_str),
        )?,
    })
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if crate::protobuf::is_protobuf(body) {
        return crate::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}")));
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        return serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

/// An object as served at `version` (stored objects are at the storage version).
pub fn present(rt: &ResourceType, version: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    crate::conversion::convert(rt, &mut o, rt.storage_version(), version);
    if let Some(m) = o.as_object_mut() {
        m.insert("kind".into(), json!(rt.kind));
    }
    o
}

/// A request body at `version`, converted to the storage version.
fn to_storage(rt: &ResourceType, version: &str, mut obj: Value) -> Value {
    crate::conversion::convert(rt, &mut obj, version, rt.storage_version());
    obj
}

fn render_one(rt: &ResourceType, version: &str, obj: &Value, out: Output) -> Value {
    let o = present(rt, version, obj);
    match out {
        Output::Object => o,
        Output::Metadata => tables::partial_metadata(&o),
        Output::Table(include) => tables::table(
            rt,
            &[o],
            include,
            json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)}),
        ),
    }
}

fn list_response(rt: &ResourceType, version: &str, page: ListPage, out: Output) -> Value {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let items: Vec<Value> = page.items.iter().map(|o| present(rt, version, o)).collect();
    match out {
        Output::Table(include) => tables::table(rt, &items, include, meta),
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "items": items.iter().map(tables::partial_metadata).collect::<Vec<_>>(),
        }),
        Output::Object => {
            let items: Vec<Value> = if rt.custom {
                items
            } else {
                // Built-in lists omit each item's kind and apiVersion, as the real server does.
                items
                    .into_iter()
                    .map(|mut o| {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("kind");
                            m.remove("apiVersion");
                        }
                        o
                    })
                    .collect()
            };
            json!({"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta, "items": items})
        }
    }
}

fn list_options(rt: &ResourceType, q: &Query, name: Option<&str>) -> ApiResult<ListOptions> {
    let labels = LabelSelector::parse(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let mut field_text = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(n) = name {
        if !field_text.is_empty() {
            field_text.push(',');
        }
        field_text.push_str(&format!("metadata.name={n}"));
    }
    let fields = FieldSelector::parse(&field_text, &rt.group, &rt.plural)?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
    };
    let continue_token = q.get("continue").filter(|c| !c.is_empty()).cloned();
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token,
    })
}

#[allow(clippy::too_many_arguments)]
async fn resources(
    st: &Arc<AppState>,
    method: Method,
    group: &str,
    version: &str,
    rest: &[&str],
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let mut response =
            match resources_inner(st, method, group, version, rest, q, headers, body).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
        let warnings = crate::warnings::WARNINGS.with(|w| w.take());
        for w in warnings {
            let text = format!("299 - {}", serde_json::Value::String(w));
            if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
                response.headers_mut().append(header::WARNING, v);
            }
        }
        response
    };
    crate::warnings::WARNINGS
        .scope(std::cell::RefCell::new(Vec::new()), work)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn resources_inner(
    st: &Arc<AppState>,
    method: Method,
    group: &str,
    version: &str,
    rest: &[&str],
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let t = parse_target(rest)?;
    let rt = st
        .api
        .registry()
        .find(group, version, t.plural)
        .cloned()
        .ok_or_else(not_found_path)?;
    if t.ns.is_some() && !rt.namespaced {
        return Err(not_found_path());
    }
    if t.name.is_some() && rt.namespaced && t.ns.is_none() {
        return Err(not_found_path());
    }
    let api = &st.api;
    if rt.review {
        return match (&method, t.name) {
            (&Method::POST, None) => {
                let body = decode_body(headers, &body)?;
                Ok(json_response(
                    201,
                    &crate::reviews::answer(api, &rt, version, t.ns, body)?,
                ))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    let out = output(headers, q);
    let watching = t.watch_path || q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let sub = t.sub;
    match (method.clone(), t.name, sub) {
        (Method::GET, _, None) if watching => {
            let opts = list_options(&rt, q, t.name)?;
            watch::serve(
                st.clone(),
                rt,
                version.to_string(),
                t.ns.map(str::to_string),
                opts,
                q,
                out,
            )
        }
        (Method::GET, None, None) => {
            let opts = list_options(&rt, q, None)?;
            let page = api.list(&rt, t.ns, &opts)?;
            Ok(json_response(200, &list_response(&rt, version, page, out)))
        }
        (Method::GET, Some(name), None | Some("status")) => {
            if sub == Some("status") && !rt.status {
                return Err(not_found_path());
            }
            let obj = api.get(&rt, t.ns, name)?;
            Ok(json_response(200, &render_one(&rt, version, &obj, out)))
        }
        (Method::GET, Some(name), Some("scale")) if rt.scale.is_some() => {
            let obj = api.get(&rt, t.ns, name)?;
            Ok(json_response(200, &crate::scale::to_scale(&rt, &obj)))
        }
        (Method::POST, Some(name), Some("token"))
            if rt.connect_subresources.iter().any(|c| c == "token") =>
        {
            let account = api.get(&rt, t.ns, name)?;
            let body = decode_body(headers, &body)?;
            Ok(json_response(
                201,
                &crate::reviews::token(api, &account, body)?,
            ))
        }
        (Method::POST, None, None) => {
            let opts = write_options(q, headers, false)?;
            let obj = to_storage(&rt, version, decode_body(headers, &body)?);
            let created = api.create(&rt, t.ns, obj, &opts).await?;
            Ok(json_response(201, &present(&rt, version, &created)))
        }
        (Method::PUT, Some(name), None | Some("status") | Some("finalize")) => {
            if (sub == Some("status") && !rt.status)
                || (sub == Some("finalize") && rt.plural != "namespaces")
            {
                return Err(not_found_path());
            }
            let opts = write_options(q, headers, false)?;
            let obj = to_storage(&rt, version, decode_body(headers, &body)?);
            let updated = api.update(&rt, t.ns, name, obj, &opts, sub).await?;
            Ok(json_response(200, &present(&rt, version, &updated)))
        }
        (Method::PUT | Method::PATCH, Some(name), Some("scale")) if rt.scale.is_some() => {
            let opts = write_options(q, headers, false)?;
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json");
            let scale = crate::scale::write(
                api,
                &rt,
                version,
                t.ns,
                name,
                method == Method::PUT,
                ct,
                &body,
                &opts,
            )
            .await?;
            Ok(json_response(200, &scale))
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            if sub == Some("status") && !rt.status {
                return Err(not_found_path());
            }
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let ty = PatchType::from_content_type(ct, &rt)?;
            let opts = write_options(q, headers, ty == PatchType::Apply)?;
            let (obj, created) = api
                .patch(&rt, version, t.ns, name, ty, &body, &opts, sub)
                .await?;
            Ok(json_response(
                if created { 201 } else { 200 },
                &present(&rt, version, &obj),
            ))
        }
        (Method::DELETE, Some(name), None) => {
            let opts = delete_options(q, &body, &rt, version)?;
            let (obj, gone) = api.delete(&rt, t.ns, name, &opts)?;
            Ok(json_response(
                if gone { 200 } else { 202 },
                &present(&rt, version, &obj),
            ))
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(q, &body, &rt, version)?;
            let list = list_options(&rt, q, None)?;
            let page = api.list(
                &rt,
                t.ns,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..list
                },
            )?;
            let mut deleted = Vec::new();
            for o in &page.items {
                let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match api.delete(&rt, ns, name, &opts) {
                    Ok((obj, _)) => deleted.push(obj),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let page = ListPage {
                items: deleted,
                resource_version: api.current_rv(),
                continue_token: None,
                remaining: None,
            };
            Ok(json_response(
                200,
                &list_response(&rt, version, page, Output::Object),
            ))
        }
        (Method::GET | Method::POST, Some(name), Some(s))
            if rt.connect_subresources.iter().any(|c| c == s) =>
        {
            // No node serves this pod: answer as a real cluster does for an unscheduled pod.
            let obj = api.get(&rt, t.ns, name)?;
            let container = obj
                .pointer("/spec/containers/0/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(ApiError::bad_request(match s {
                "log" => format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
                ),
                _ => format!("pod {name} does not have a host assigned"),
            }))
        }
        (_, Some(_), Some(s))
            if !rt.connect_subresources.iter().any(|c| c == s) && s != "status" && s != "scale" =>
        {
            Err(not_found_path())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// What batch/v1 Jobs deleted without a propagation policy do (their pods stay), and the
/// warning the real server sends about it.
const JOB_DELETE_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn delete_options(
    q: &Query,
    body: &[u8],
    rt: &ResourceType,
    version: &str,
) -> ApiResult<DeleteOptions> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if crate::protobuf::is_protobuf(body) {
        crate::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All")
        || b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"));
    let propagation = q
        .get("propagationPolicy")
        .cloned()
        .or_else(|| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(
            || match b.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".to_string()),
                _ => None,
            },
        );
    if let Some(p) = &propagation
        && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy {p:?} is invalid: supported values are \"Orphan\", \"Background\", \"Foreground\""
        )));
    }
    // batch/v1 keeps its original default (DefaultGarbageCollectionPolicy): orphan.
    let propagation = match propagation {
        None if rt.group == "batch" && rt.plural == "jobs" && version == "v1" => {
            crate::warnings::warn(JOB_DELETE_WARNING.into());
            Some("Orphan".to_string())
        }
        p => p,
    };
    Ok(DeleteOptions {
        dry_run,
        propagation,
        uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
