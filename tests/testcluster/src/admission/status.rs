//! Admission failures as the `metav1.Status` the real server answers with.

use serde_json::{Map, Value, json};

/// A rejection, rendered by the server as a `metav1.Status` with this code/reason/message.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason` (may be empty, as when a webhook denies without one).
    pub reason: String,
    /// Human-readable message, word for word what kube-apiserver says.
    pub message: String,
    /// The complete `metav1.Status` object to send as the response body.
    pub status: Value,
}

impl std::fmt::Display for AdmissionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdmissionError {}

impl AdmissionError {
    /// `apierrors.NewInternalError(err)`.
    pub(super) fn internal(error: &str) -> AdmissionError {
        Self::from_status(json!({
            "status": "Failure",
            "message": format!("Internal error occurred: {error}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": error}]},
            "code": 500,
        }))
    }

    /// `apierrors.NewBadRequest(message)`.
    pub(super) fn bad_request(message: &str) -> AdmissionError {
        Self::from_status(json!({
            "status": "Failure",
            "message": message,
            "reason": "BadRequest",
            "code": 400,
        }))
    }

    /// The 404 the real server returns when a namespace selector needs a namespace that
    /// does not exist.
    pub(super) fn namespace_not_found(namespace: &str) -> AdmissionError {
        Self::from_status(json!({
            "status": "Failure",
            "message": format!("namespaces {} not found", go_quote(namespace)),
            "reason": "NotFound",
            "details": {"name": namespace, "kind": "namespaces"},
            "code": 404,
        }))
    }

    /// A webhook's denial: its own `status` with the message prefixed as
    /// `admission webhook "NAME" denied the request: ...`, the code passed through.
    pub(super) fn denied(webhook: &str, result: Option<&Value>) -> AdmissionError {
        let mut status = Map::new();
        // Keep only metav1.Status fields, as decoding into the Go type does.
        if let Some(Value::Object(result)) = result {
            for key in ["metadata", "status", "message", "reason", "details", "code"] {
                if let Some(value) = result.get(key).filter(|v| !v.is_null()) {
                    status.insert(key.to_owned(), value.clone());
                }
            }
        } else {
            status.insert("status".into(), json!("Failure"));
        }
        let text = |key: &str| {
            status
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let denied_by = format!("admission webhook {} denied the request", go_quote(webhook));
        let message = match (text("message"), text("reason")) {
            (Some(message), _) => format!("{denied_by}: {message}"),
            (None, Some(reason)) => format!("{denied_by}: {reason}"),
            (None, None) => format!("{denied_by} without explanation"),
        };
        status.insert("message".into(), json!(message));
        Self::from_status(Value::Object(status))
    }

    /// Normalises a status as the server's response writer does (`ErrorToAPIStatus`):
    /// empty status means Failure, a missing code means 500 (200 for Success).
    fn from_status(mut status: Value) -> AdmissionError {
        let object = status
            .as_object_mut()
            .expect("statuses are built as objects");
        let state = object
            .get("status")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("Failure")
            .to_owned();
        let code = object
            .get("code")
            .and_then(Value::as_u64)
            .filter(|c| (100..=599).contains(c))
            .unwrap_or(if state == "Success" { 200 } else { 500 }) as u16;
        object.insert("status".into(), json!(state));
        object.insert("code".into(), json!(code));
        object.insert("kind".into(), json!("Status"));
        object.insert("apiVersion".into(), json!("v1"));
        object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        AdmissionError {
            code,
            reason: text("reason"),
            message: text("message"),
            status,
        }
    }
}

/// Go's `%q` for the plain strings that appear in these messages.
pub(super) fn go_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// client-go's message for an error response that is not a `Status`
/// (`NewGenericServerResponse`).
pub(super) fn generic_server_response(code: u16, server_message: &str) -> String {
    match code {
        409 => "the server reported a conflict".into(),
        404 => "the server could not find the requested resource".into(),
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 => server_message.into(),
        405 => "the server does not allow this method on the requested resource".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        429 => "the server has received too many requests and has asked us to try again later".into(),
        c if c >= 500 => format!(
            "an error on the server ({}) has prevented the request from succeeding",
            go_quote(server_message)
        ),
        c => format!("the server responded with the status code {c} but did not return more information"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_passes_the_webhooks_code_and_prefixes_the_message() {
        let e = AdmissionError::denied(
            "pods.vbackup.io",
            Some(&json!({"code": 403, "reason": "Forbidden", "message": "no backups here"})),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"pods.vbackup.io\" denied the request: no backups here"
        );
        assert_eq!(e.status["kind"], "Status");
        assert_eq!(e.status["status"], "Failure");
    }

    #[test]
    fn denial_without_code_or_message_is_a_500_without_explanation() {
        let e = AdmissionError::denied("w", None);
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "admission webhook \"w\" denied the request without explanation"
        );
        let e = AdmissionError::denied("w", Some(&json!({"reason": "NoThanks"})));
        assert_eq!(
            e.message,
            "admission webhook \"w\" denied the request: NoThanks"
        );
    }

    #[test]
    fn internal_errors_carry_the_cause() {
        let e = AdmissionError::internal("failed calling webhook \"w\": boom");
        assert_eq!(e.code, 500);
        assert_eq!(e.reason, "InternalError");
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"w\": boom"
        );
        assert_eq!(
            e.status["details"]["causes"][0]["message"],
            "failed calling webhook \"w\": boom"
        );
    }
}
