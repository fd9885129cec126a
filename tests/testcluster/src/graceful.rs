//! Graceful deletion of pods (the pod strategy's `CheckGracefulDelete`): a pod bound to a
//! node and not finished stays, Terminating, with `deletionTimestamp` and
//! `deletionGracePeriodSeconds`, until its kubelet has stopped it (SIGTERM, SIGKILL at the
//! end of the period) and deletes it for good with a grace period of 0.

use crate::resources::ResourceType;
use serde_json::{Value, json};

/// The grace period a delete gives `obj`: `None` for objects without one (everything but
/// pods), `Some(0)` for a pod that goes at once (not scheduled, finished, or `--force`).
pub fn period(rt: &ResourceType, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if !(rt.group.is_empty() && rt.plural == "pods") {
        return None;
    }
    let mut period = requested.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    let unscheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        period = 0;
    }
    // A negative period means "as soon as possible": one second.
    Some(if period < 0 { 1 } else { period })
}

/// Whether the object waits for its grace period (rather than for finalizers).
pub fn is_graceful(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|g| g > 0)
}

/// Whether finalizers still hold the object.
pub fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Marks `obj` Terminating for `seconds`.
pub fn mark(obj: &mut Value, seconds: i64) {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    obj["metadata"]["deletionTimestamp"] = json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(seconds);
}

/// A Terminating pod given a shorter (non-zero) grace period by a second delete.
pub fn shortened(current: &Value, requested: Option<i64>) -> Option<Value> {
    let now = current
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)?;
    let seconds = requested.filter(|r| *r > 0 && *r < now)?;
    let mut new = current.clone();
    mark(&mut new, seconds);
    Some(new)
}
