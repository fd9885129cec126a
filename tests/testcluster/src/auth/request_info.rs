//! What a request asks to do, in authorization terms, by kube-apiserver's request-info
//! rules: `/api/v1/...` and `/apis/GROUP/VERSION/...` are resource requests (verb from the
//! method: get/list/watch, create, update, patch, delete/deletecollection; `pods/log`
//! style subresources; a namespace's own URL carries its name as the namespace); every other
//! path is a non-resource request whose verb is the lower-case method.

use axum::http::{Method, Uri};

/// The attributes RBAC decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Verb: `get`, `list`, `watch`, `create`... (or `impersonate`, `bind`, `escalate`).
    pub verb: String,
    /// A resource request (else a non-resource URL).
    pub resource_request: bool,
    /// The URL path (non-resource requests).
    pub path: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl Attributes {
    /// A resource request's attributes.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// A non-resource request's attributes.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }
}

/// The attributes of an HTTP request.
pub fn from_request(method: &Method, uri: &Uri) -> Attributes {
    let path = uri.path();
    let mut info = Attributes::non_resource(&method.as_str().to_ascii_lowercase(), path);
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if parts.len() < 3 {
        return info;
    }
    match parts[0] {
        "api" => parts.remove(0),
        "apis" if parts.len() >= 4 => {
            parts.remove(0);
            info.group = parts.remove(0).to_string();
            ""
        }
        _ => {
            info.group.clear();
            return info;
        }
    };
    info.resource_request = true;
    info.version = parts.remove(0).to_string();
    if matches!(parts.first(), Some(&"watch" | &"proxy")) {
        if parts.len() < 2 {
            return info;
        }
        info.verb = parts.remove(0).to_string();
    } else {
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    if parts.first() == Some(&"namespaces") {
        if parts.len() > 1 {
            info.namespace = parts[1].to_string();
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(..2);
            }
        }
    }
    if parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = parts[2].to_string();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_string();
    }
    if let Some(r) = parts.first() {
        info.resource = r.to_string();
    }
    let query = || url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes());
    if info.name.is_empty() && info.verb == "get" {
        let watch = query().find(|(k, _)| k == "watch").map(|(_, v)| v);
        info.verb = match watch.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0") => "list",
            Some(_) => "watch",
        }
        .to_string();
        // A list or watch of one name (`fieldSelector=metadata.name=x`) is authorized
        // against that name, so resourceNames rules apply to `kubectl get --watch NAME`.
        if let Some((_, fs)) = query().find(|(k, _)| k == "fieldSelector")
            && let Some(name) = exact_name(&fs)
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (k.trim() == "metadata.name" && !k.ends_with('!') && !v.is_empty())
            .then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> Attributes {
        from_request(&method, &uri.parse().unwrap())
    }

    #[test]
    fn verbs_resources_and_namespaces_as_upstream() {
        let a = info(Method::GET, "/api/v1/namespaces/x/pods");
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
            ("list", "pods", "x")
        );
        let a = info(Method::GET, "/api/v1/namespaces/x/pods?watch=true");
        assert_eq!(a.verb, "watch");
        let a = info(Method::GET, "/api/v1/watch/namespaces/x/pods");
        assert_eq!((a.verb.as_str(), a.resource.as_str()), ("watch", "pods"));
        let a = info(Method::GET, "/api/v1/namespaces/x/pods/p/log");
        assert_eq!(
            (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
            ("get", "p", "log")
        );
        let a = info(Method::DELETE, "/apis/apps/v1/namespaces/x/deployments");
        assert_eq!(
            (a.verb.as_str(), a.group.as_str()),
            ("deletecollection", "apps")
        );
        let a = info(Method::GET, "/api/v1/namespaces/x");
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "x", "x")
        );
        let a = info(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let a = info(
            Method::GET,
            "/api/v1/namespaces/x/configmaps?fieldSelector=metadata.name%3Dc&watch=1",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "c"));
        let a = info(Method::GET, "/apis/apps");
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/apis/apps"));
        assert!(!info(Method::GET, "/version").resource_request);
    }
}
