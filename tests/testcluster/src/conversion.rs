//! Conversion between the served versions of a built-in resource (objects are stored at
//! the storage version). Only HorizontalPodAutoscaler is served at two versions with
//! different shapes: autoscaling/v1's CPU target is a v2 `Resource` metric.

use crate::resources::ResourceType;
use serde_json::{Value, json};

/// Converts `obj` from version `from` to version `to` of `rt`, setting its apiVersion.
pub fn convert(rt: &ResourceType, obj: &mut Value, from: &str, to: &str) {
    if from != to && rt.group == "autoscaling" && rt.plural == "horizontalpodautoscalers" {
        match (from, to) {
            ("v1", "v2") => hpa_v1_to_v2(obj),
            ("v2", "v1") => hpa_v2_to_v1(obj),
            _ => {}
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(to)));
    }
}

fn hpa_v1_to_v2(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(target) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]),
        );
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
        && let Some(current) = status.remove("currentCPUUtilizationPercentage")
    {
        status.insert(
            "currentMetrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}]),
        );
    }
}

fn cpu_metric<'a>(list: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    list?.as_array()?.iter().find_map(|m| {
        let r = m.get("resource")?;
        (r.get("name")? == "cpu").then(|| r.get(field)?.get("averageUtilization"))?
    })
}

fn hpa_v2_to_v1(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let target = cpu_metric(spec.get("metrics"), "target").cloned();
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(t) = target {
            spec.insert("targetCPUUtilizationPercentage".into(), t);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let current = cpu_metric(status.get("currentMetrics"), "current").cloned();
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(c) = current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;

    #[test]
    fn hpa_cpu_target_round_trips_between_v1_and_v2() {
        let rt = builtin()
            .into_iter()
            .find(|t| t.plural == "horizontalpodautoscalers")
            .unwrap();
        let v1 = json!({"apiVersion": "autoscaling/v1", "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        let mut o = v1.clone();
        convert(&rt, &mut o, "v1", "v2");
        assert_eq!(
            o["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        convert(&rt, &mut o, "v2", "v1");
        assert_eq!(o, v1);
    }
}
