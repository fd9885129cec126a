//! Events (`core/v1`) the node's controllers record, as client-go's event recorder does:
//! one Event per object, reason and message, its `count` raised when it happens again.

use super::objects::{self, s};
use crate::api::Api;
use serde_json::{Value, json};

/// Repeats within this many seconds do not raise the count (the recorder's spam filter).
const REPEAT_SECONDS: i64 = 10;

/// Records a `Normal` or `Warning` event about `object` from `component`.
pub fn record(
    api: &Api,
    object: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = match objects::namespace(object) {
        "" => "default",
        n => n,
    };
    let uid = objects::uid(object);
    let now = crate::time::now();
    let existing = objects::list(api, "", "events", Some(ns))
        .into_iter()
        .find(|e| {
            s(e, "/involvedObject/uid") == uid
                && s(e, "/reason") == reason
                && s(e, "/message") == message
        });
    if let Some(mut e) = existing {
        let last = s(&e, "/lastTimestamp").parse::<jiff::Timestamp>().ok();
        let recent = last
            .is_some_and(|t| jiff::Timestamp::now().as_second() - t.as_second() < REPEAT_SECONDS);
        if !recent {
            let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            e["count"] = json!(count + 1);
            e["lastTimestamp"] = json!(now);
            let _ = objects::update(api, "", "events", e, component);
        }
        return;
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // As client-go names events: the object's name and the time in hex nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("{}.{nanos:x}", objects::name(object));
    let mut involved = json!({"kind": kind, "namespace": objects::namespace(object),
        "name": objects::name(object), "uid": uid,
        "apiVersion": object.get("apiVersion").cloned().unwrap_or(json!("v1")),
        "resourceVersion": s(object, "/metadata/resourceVersion")});
    if objects::namespace(object).is_empty()
        && let Some(m) = involved.as_object_mut()
    {
        m.remove("namespace");
    }
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": type_,
        "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": component, "reportingInstance": "",
    });
    let _ = objects::create(api, "", "events", event, component);
}
