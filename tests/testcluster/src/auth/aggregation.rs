//! The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` gets the
//! rules of every other ClusterRole its `clusterRoleSelectors` match (sorted by name, each
//! rule once), kept up to date as roles come, change and go.

use super::rbac::GROUP;
use crate::api::{Api, Change};
use crate::controllers::Controller;
use crate::selectors::LabelSelector;
use serde_json::Value;
use std::sync::Arc;

/// Keeps aggregated ClusterRoles' rules current.
pub struct ClusterRoleAggregation;

fn aggregate_all(api: &Api) {
    let roles: Vec<Value> = {
        let inner = api.lock();
        inner
            .store
            .range(GROUP, "clusterroles", None, None)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let Some(rt) = api.resource(GROUP, "clusterroles") else {
        return;
    };
    let name = |r: &Value| {
        r.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for role in &roles {
        let Some(selectors) = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let mut rules: Vec<Value> = Vec::new();
        for sel in selectors {
            let selector = LabelSelector::from_object(sel);
            // The store lists roles by name, the order the real controller sorts them in.
            for other in roles
                .iter()
                .filter(|o| name(o) != name(role) && selector.matches(o))
            {
                for r in other
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
        }
        let current = role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if current != rules {
            let mut updated = role.clone();
            updated["rules"] = Value::Array(rules);
            let _ = api.update_now(
                &rt,
                None,
                &name(role),
                updated,
                "clusterrole-aggregation-controller",
                None,
            );
        }
    }
}

impl Controller for ClusterRoleAggregation {
    fn name(&self) -> &'static str {
        "clusterrole-aggregation-controller"
    }

    fn on_change(&self, api: &Arc<Api>, change: &Change) {
        if change.key.group == GROUP && change.key.resource == "clusterroles" {
            aggregate_all(api);
        }
    }

    fn resync(&self, api: &Arc<Api>) {
        aggregate_all(api);
    }
}
