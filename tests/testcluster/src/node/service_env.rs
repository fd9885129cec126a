//! The Service environment variables the kubelet gives every container: for each Service
//! of the pod's namespace with a cluster IP (when `enableServiceLinks` is not false) and
//! always for the API server's `kubernetes` Service, `NAME_SERVICE_HOST`,
//! `NAME_SERVICE_PORT[_PORTNAME]` and the Docker-link `NAME_PORT[_P_PROTO[_PROTO|_PORT|_ADDR]]`.

use super::objects::{self, s};
use crate::api::Api;
use serde_json::{Value, json};

fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn of_service(svc: &Value, out: &mut Vec<(String, String)>) {
    let ip = s(svc, "/spec/clusterIP");
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ip.is_empty() || ip == "None" || ports.is_empty() {
        return;
    }
    let prefix = env_name(objects::name(svc));
    let number = |p: &Value| p.get("port").and_then(Value::as_u64).unwrap_or(0);
    out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
    out.push((
        format!("{prefix}_SERVICE_PORT"),
        number(&ports[0]).to_string(),
    ));
    for p in &ports {
        if !s(p, "/name").is_empty() {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(s(p, "/name"))),
                number(p).to_string(),
            ));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let protocol = match s(p, "/protocol") {
            "" => "TCP",
            x => x,
        };
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{ip}:{}", number(p));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", number(p), protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), number(p).to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
}

/// The Service variables of a container of `pod`, before its own `env`.
pub fn build(api: &Api, pod: &Value) -> Vec<(String, String)> {
    let ns = objects::namespace(pod);
    let mut services = if pod.pointer("/spec/enableServiceLinks") == Some(&json!(false)) {
        Vec::new()
    } else {
        objects::list(api, "", "services", Some(ns))
    };
    // The API server's Service always, unless the namespace has its own of that name.
    if !services
        .iter()
        .any(|svc| objects::name(svc) == "kubernetes")
    {
        services.extend(objects::get(api, "", "services", "default", "kubernetes"));
    }
    let mut out = Vec::new();
    for svc in &services {
        of_service(svc, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_gives_host_port_and_docker_link_variables() {
        let svc = json!({"metadata": {"name": "my-db"}, "spec": {"clusterIP": "10.96.0.20",
            "ports": [{"name": "sql", "port": 5432}, {"name": "metrics", "port": 9187, "protocol": "TCP"}]}});
        let mut out = Vec::new();
        of_service(&svc, &mut out);
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MY_DB_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get("MY_DB_SERVICE_PORT"), Some("5432"));
        assert_eq!(get("MY_DB_SERVICE_PORT_METRICS"), Some("9187"));
        assert_eq!(get("MY_DB_PORT"), Some("tcp://10.96.0.20:5432"));
        assert_eq!(get("MY_DB_PORT_9187_TCP_ADDR"), Some("10.96.0.20"));
        assert_eq!(get("MY_DB_PORT_5432_TCP_PROTO"), Some("tcp"));
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}});
        let mut none = Vec::new();
        of_service(&headless, &mut none);
        assert!(none.is_empty());
    }
}
