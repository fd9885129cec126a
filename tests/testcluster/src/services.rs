//! Service IP and node port allocation: clusterIPs from 10.96.0.0/12 and node ports from
//! 30000-32767, keeping what a service already has and refusing addresses in use.

use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use serde_json::{Value, json};

fn md_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Gives a service its clusterIP(s) and node ports, keeping those it already has.
pub fn allocate(store: &Store, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    let mut used_ips = std::collections::HashSet::new();
    let mut used_ports = std::collections::HashSet::new();
    let me = (
        md_str(obj, "namespace").to_string(),
        md_str(obj, "name").to_string(),
    );
    for (k, v) in store.range("", "services", None, None) {
        if (k.namespace.clone(), k.name.clone()) == me {
            continue;
        }
        if let Some(ip) = v.pointer("/spec/clusterIP").and_then(Value::as_str) {
            used_ips.insert(ip.to_string());
        }
        for p in v
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                used_ports.insert(n);
            }
        }
    }
    let given = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ip = if !given.is_empty() {
        if given != "None" && given != old_ip && used_ips.contains(&given) {
            let name = md_str(obj, "name").to_string();
            return Err(ApiError::invalid(
                "",
                "Service",
                &name,
                vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: \"{given}\": failed to allocate IP {given}: provided IP is already allocated"
                    ),
                    field: "spec.clusterIPs".into(),
                }],
            ));
        }
        given
    } else if !old_ip.is_empty() {
        old_ip
    } else {
        let mut n: u32 = 10;
        loop {
            let candidate = format!("10.96.{}.{}", n / 256, n % 256);
            if !used_ips.contains(&candidate) {
                break candidate;
            }
            n += 1;
        }
    };
    let spec = obj["spec"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("spec must be an object"))?;
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if ip != "None" {
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let mut next = 30000i64;
        for p in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if p.get("nodePort").and_then(Value::as_i64).is_none() {
                while used_ports.contains(&next) {
                    next += 1;
                }
                p["nodePort"] = json!(next);
                used_ports.insert(next);
            }
        }
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    Ok(())
}
