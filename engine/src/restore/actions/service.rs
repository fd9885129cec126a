//! Services get new cluster IPs, and new node ports unless asked to keep them.

use serde_json::Value;

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Drops `clusterIP(s)` (except headless `None`) and node ports unless preserved.
pub struct ServiceAction;

impl ItemAction for ServiceAction {
    fn name(&self) -> &'static str {
        "service"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "services"
    }

    fn apply(&self, object: &mut Value, ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        let Some(spec) = object.get_mut("spec") else {
            return Ok(ActionOutcome::Restore);
        };
        if spec["clusterIP"] != "None" {
            remove(spec, "clusterIP");
            remove(spec, "clusterIPs");
        }
        if !ctx.request.preserve_node_ports {
            let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                remove(port, "nodePort");
            }
            remove(spec, "healthCheckNodePort");
        }
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;
    use serde_json::json;

    fn svc() -> Value {
        json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
            "ports": [{"port": 80, "nodePort": 30080}]}})
    }

    #[test]
    fn service_loses_cluster_ip_and_node_ports() {
        let r = RestoreRequest::new("r", "b");
        let mut s = svc();
        ServiceAction
            .apply(&mut s, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(
            s,
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn node_ports_are_kept_when_preserved_and_headless_stays_headless() {
        let mut r = RestoreRequest::new("r", "b");
        r.preserve_node_ports = true;
        let mut s = svc();
        ServiceAction
            .apply(&mut s, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30080);
        let mut headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        ServiceAction
            .apply(&mut headless, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }
}
