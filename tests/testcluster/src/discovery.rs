//! Discovery documents: `/api`, `/apis`, group and resource lists (legacy), and the
//! aggregated `apidiscovery.k8s.io` v2/v2beta1 lists kubectl asks for first.

use crate::registry::Registry;
use crate::resources::ResourceType;
use serde_json::{Value, json};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const REVIEW_VERBS: &[&str] = &["create"];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-vbackup-testcluster",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0].clone()})
}

/// `/apis`.
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = reg
        .groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())?;
    let mut v = group_entry(&g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn strs(v: &[String]) -> Value {
    json!(v)
}

fn subresources(t: &ResourceType) -> Vec<(String, Value, Vec<&'static str>)> {
    let mut out = Vec::new();
    if t.status {
        out.push((
            "status".to_string(),
            json!({"group": t.group, "version": "", "kind": t.kind}),
            SUB_VERBS.to_vec(),
        ));
    }
    if t.scale.is_some() {
        out.push((
            "scale".to_string(),
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
            SUB_VERBS.to_vec(),
        ));
    }
    for s in &t.connect_subresources {
        let (kind, verbs): (&str, Vec<&'static str>) = match s.as_str() {
            "log" => ("Pod", vec!["get"]),
            "exec" => ("PodExecOptions", vec!["create", "get"]),
            "attach" => ("PodAttachOptions", vec!["create", "get"]),
            "portforward" => ("PodPortForwardOptions", vec!["create", "get"]),
            "proxy" => (
                "PodProxyOptions",
                vec!["create", "delete", "get", "patch", "update"],
            ),
            "binding" => ("Binding", vec!["create"]),
            "eviction" => ("Eviction", vec!["create"]),
            "token" => ("TokenRequest", vec!["create"]),
            _ => ("Status", vec!["get"]),
        };
        let group = match s.as_str() {
            "eviction" => "policy",
            "token" => "authentication.k8s.io",
            _ => "",
        };
        out.push((
            s.clone(),
            json!({"group": group, "version": "v1", "kind": kind}),
            verbs,
        ));
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.serves(version))
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let verbs = if t.review { REVIEW_VERBS } else { VERBS };
        let mut r = json!({"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": verbs});
        if !t.short_names.is_empty() {
            r["shortNames"] = strs(&t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = strs(&t.categories);
        }
        resources.push(r);
        for (name, kind, verbs) in subresources(t) {
            let mut r = json!({"name": format!("{}/{name}", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": kind["kind"], "verbs": verbs});
            if name == "scale" || name == "eviction" || name == "token" {
                r["group"] = kind["group"].clone();
                r["version"] = kind["version"].clone();
            }
            resources.push(r);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The aggregated discovery list for `/api` (core) or `/apis` (all other groups).
pub fn aggregated(reg: &Registry, core: bool, api_version: &str) -> Value {
    let mut items = Vec::new();
    for (group, versions) in reg.groups() {
        if group.is_empty() != core {
            continue;
        }
        let mut vs = Vec::new();
        for version in &versions {
            let mut resources = Vec::new();
            for t in reg
                .all()
                .iter()
                .filter(|t| t.group == group && t.serves(version))
            {
                let subs: Vec<Value> = subresources(t)
                    .into_iter()
                    .map(|(name, mut kind, verbs)| {
                        if kind["version"] == "" {
                            kind["version"] = json!(version);
                        }
                        json!({"subresource": name, "responseKind": kind, "verbs": verbs})
                    })
                    .collect();
                let mut r = json!({
                    "resource": t.plural,
                    "responseKind": {"group": t.group, "version": version, "kind": t.kind},
                    "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": t.singular,
                    "verbs": if t.review { REVIEW_VERBS } else { VERBS },
                });
                if !t.short_names.is_empty() {
                    r["shortNames"] = strs(&t.short_names);
                }
                if !t.categories.is_empty() {
                    r["categories"] = strs(&t.categories);
                }
                if !subs.is_empty() {
                    r["subresources"] = Value::Array(subs);
                }
                resources.push(r);
            }
            vs.push(json!({"version": version, "resources": resources, "freshness": "Current"}));
        }
        items.push(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": vs}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}
