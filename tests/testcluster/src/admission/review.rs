//! The AdmissionReview sent to a webhook and the checks on the one it returns.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::status::go_quote;
use super::{AdmissionAttributes, Operation};

/// An AdmissionReview version the real server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReviewVersion {
    V1,
    V1beta1,
}

impl ReviewVersion {
    /// The first version in `admissionReviewVersions` that the server knows.
    pub fn negotiate(versions: &[String]) -> Option<ReviewVersion> {
        versions.iter().find_map(|v| match v.as_str() {
            "v1" => Some(ReviewVersion::V1),
            "v1beta1" => Some(ReviewVersion::V1beta1),
            _ => None,
        })
    }

    fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "admission.k8s.io/v1",
            ReviewVersion::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// A fresh random (version 4) UUID for `request.uid`.
pub(super) fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    // An OS without a random source cannot run the server at all; fall back to the clock
    // rather than fail an admission over it.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The request body: an AdmissionReview carrying the request as the real server fills it.
pub(super) fn build_request(
    version: ReviewVersion,
    uid: &str,
    attributes: &AdmissionAttributes,
    object: &Value,
    old_object: Option<&Value>,
) -> Value {
    let kind =
        json!({"group": attributes.group, "version": attributes.version, "kind": attributes.kind});
    let resource = json!({"group": attributes.group, "version": attributes.version, "resource": attributes.resource});
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    request.insert("kind".into(), kind.clone());
    request.insert("resource".into(), resource.clone());
    if let Some(sub) = attributes.subresource.as_deref().filter(|s| !s.is_empty()) {
        request.insert("subResource".into(), json!(sub));
    }
    request.insert("requestKind".into(), kind);
    request.insert("requestResource".into(), resource);
    if let Some(sub) = attributes.subresource.as_deref().filter(|s| !s.is_empty()) {
        request.insert("requestSubResource".into(), json!(sub));
    }
    if !attributes.name.is_empty() {
        request.insert("name".into(), json!(attributes.name));
    }
    if !attributes.namespace().is_empty() {
        request.insert("namespace".into(), json!(attributes.namespace()));
    }
    request.insert("operation".into(), json!(attributes.operation.as_str()));
    let mut user = Map::new();
    if !attributes.username.is_empty() {
        user.insert("username".into(), json!(attributes.username));
    }
    if !attributes.groups.is_empty() {
        user.insert("groups".into(), json!(attributes.groups));
    }
    request.insert("userInfo".into(), Value::Object(user));
    request.insert("object".into(), object.clone());
    request.insert(
        "oldObject".into(),
        old_object.cloned().unwrap_or(Value::Null),
    );
    request.insert("dryRun".into(), json!(attributes.dry_run));
    request.insert("options".into(), operation_options(attributes));
    json!({
        "kind": "AdmissionReview",
        "apiVersion": version.api_version(),
        "request": request,
    })
}

fn operation_options(attributes: &AdmissionAttributes) -> Value {
    let kind = match attributes.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => return Value::Null,
    };
    let mut options = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if attributes.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    options
}

/// What the webhook answered, once decoded and verified.
pub(super) struct Verdict {
    pub allowed: bool,
    pub warnings: Vec<String>,
    pub patch: Vec<u8>,
    pub patch_type: String,
    pub result: Option<Value>,
}

/// Why a response could not be used: a decoding failure (reported as a failed call) or
/// an invalid review (reported as an invalid response), as the real server separates them.
pub(super) enum ResponseError {
    Decode(String),
    Invalid(String),
}

/// Decodes a 2xx response body and verifies it like `VerifyAdmissionResponse`.
pub(super) fn verify_response(
    version: ReviewVersion,
    uid: &str,
    body: &[u8],
) -> Result<Verdict, ResponseError> {
    let review: Value = serde_json::from_slice(body).map_err(|e| {
        ResponseError::Decode(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let Some(review) = review.as_object() else {
        return Err(ResponseError::Decode(format!(
            "couldn't get version/kind; json parse error: expected a JSON object, got {review}"
        )));
    };
    let text = |o: &Map<String, Value>, key: &str| {
        o.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
    };
    let (api_version, kind) = (text(review, "apiVersion"), text(review, "kind"));
    if kind.is_empty() {
        return Err(ResponseError::Decode(format!(
            "Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body).trim()
        )));
    }
    let response = match review.get("response") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => Some(r),
        Some(other) => {
            return Err(ResponseError::Decode(format!(
                "json: cannot unmarshal {} into Go struct field AdmissionReview.response of type AdmissionResponse",
                json_type(other)
            )));
        }
    };
    let patch = match response.and_then(|r| r.get("patch")) {
        None => Vec::new(),
        Some(patch) => decode_go_bytes(patch).map_err(ResponseError::Decode)?,
    };
    let patch_type = response
        .and_then(|r| r.get("patchType"))
        .filter(|v| !v.is_null());
    let patch_type = match patch_type {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ResponseError::Decode(format!(
                "json: cannot unmarshal {} into Go struct field AdmissionResponse.response.patchType of type v1.PatchType",
                json_type(other)
            )));
        }
    };
    let Some(response) = response else {
        return Err(ResponseError::Invalid("webhook response was absent".into()));
    };
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let result = response.get("status").filter(|v| !v.is_null()).cloned();
    let warnings = response
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match version {
        ReviewVersion::V1 => {
            let got_uid = text(response, "uid");
            if got_uid != uid {
                return Err(ResponseError::Invalid(format!(
                    "expected response.uid={}, got {}",
                    go_quote(uid),
                    go_quote(&got_uid)
                )));
            }
            if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
                return Err(ResponseError::Invalid(format!(
                    "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
                )));
            }
            match (&patch_type, patch.is_empty()) {
                (None, false) => {
                    return Err(ResponseError::Invalid(
                        "webhook returned response.patch but not response.patchType".into(),
                    ));
                }
                (Some(_), true) => {
                    return Err(ResponseError::Invalid(
                        "webhook returned response.patchType but not response.patch".into(),
                    ));
                }
                (Some(t), false) if t.is_empty() => {
                    return Err(ResponseError::Invalid(format!(
                        "webhook returned invalid response.patchType of {}",
                        go_quote(t)
                    )));
                }
                _ => {}
            }
            Ok(Verdict {
                allowed,
                warnings,
                patch,
                patch_type: patch_type.unwrap_or_default(),
                result,
            })
        }
        // v1beta1 responses were never checked for uid, kind or patchType.
        ReviewVersion::V1beta1 => Ok(Verdict {
            allowed,
            warnings,
            patch_type: if patch.is_empty() {
                String::new()
            } else {
                "JSONPatch".into()
            },
            patch,
            result,
        }),
    }
}

/// Decodes a JSON value into bytes the way Go's `[]byte` field does: a base64 string,
/// or an array of numbers 0..=255 (what kube-rs sends), or null.
fn decode_go_bytes(value: &Value) -> Result<Vec<u8>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s.replace(['\r', '\n'], ""))
            .map_err(|e| match e {
                base64::DecodeError::InvalidByte(offset, _)
                | base64::DecodeError::InvalidLastSymbol(offset, _) => {
                    format!("illegal base64 data at input byte {offset}")
                }
                _ => format!("illegal base64 data at input byte {}", s.len()),
            }),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_u64()
                    .filter(|n| *n <= 255)
                    .map(|n| n as u8)
                    .ok_or_else(|| {
                        format!(
                            "json: cannot unmarshal {} into Go struct field AdmissionResponse.response.patch of type uint8",
                            match item {
                                Value::Number(n) => format!("number {n}"),
                                other => json_type(other).to_owned(),
                            }
                        )
                    })
            })
            .collect(),
        other => Err(format!(
            "json: cannot unmarshal {} into Go struct field AdmissionResponse.response.patch of type []uint8",
            json_type(other)
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_response(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})).unwrap()
    }

    #[test]
    fn patch_is_accepted_as_base64_string_and_as_byte_array() {
        let patch = br#"[{"op":"add","path":"/metadata/labels/a","value":"b"}]"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(patch);
        let bytes: Vec<u8> = patch.to_vec();
        for encoded in [json!(b64), json!(bytes)] {
            let body = v1_response(
                json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": encoded}),
            );
            let verdict = verify_response(ReviewVersion::V1, "u1", &body)
                .ok()
                .unwrap();
            assert_eq!(verdict.patch, patch);
            assert_eq!(verdict.patch_type, "JSONPatch");
        }
    }

    #[test]
    fn response_with_another_uid_is_invalid() {
        let body = v1_response(json!({"uid": "other", "allowed": true}));
        match verify_response(ReviewVersion::V1, "mine", &body) {
            Err(ResponseError::Invalid(m)) => {
                assert_eq!(m, "expected response.uid=\"mine\", got \"other\"")
            }
            _ => panic!("a foreign uid must be rejected"),
        }
    }

    #[test]
    fn patch_without_patch_type_is_invalid() {
        let body = v1_response(json!({"uid": "u", "allowed": true, "patch": "W10="}));
        match verify_response(ReviewVersion::V1, "u", &body) {
            Err(ResponseError::Invalid(m)) => assert_eq!(
                m,
                "webhook returned response.patch but not response.patchType"
            ),
            _ => panic!("patch without patchType must be rejected"),
        }
    }

    #[test]
    fn bad_base64_and_out_of_range_bytes_fail_to_decode() {
        let body = v1_response(
            json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": "!!!"}),
        );
        assert!(
            matches!(verify_response(ReviewVersion::V1, "u", &body), Err(ResponseError::Decode(m)) if m.starts_with("illegal base64 data at input byte 0"))
        );
        let body = v1_response(
            json!({"uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": [91, 300]}),
        );
        assert!(
            matches!(verify_response(ReviewVersion::V1, "u", &body), Err(ResponseError::Decode(m)) if m.contains("cannot unmarshal number 300"))
        );
    }

    #[test]
    fn wrong_api_version_is_invalid() {
        let body = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}})).unwrap();
        match verify_response(ReviewVersion::V1, "u", &body) {
            Err(ResponseError::Invalid(m)) => assert_eq!(
                m,
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
            ),
            _ => panic!("a v1beta1 answer to a v1 review must be rejected"),
        }
    }

    #[test]
    fn request_carries_what_the_real_server_sends() {
        let attributes = AdmissionAttributes {
            operation: Operation::Create,
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            name: "web".into(),
            namespace: Some("team".into()),
            dry_run: true,
            username: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        };
        let review = build_request(
            ReviewVersion::V1,
            "uid-1",
            &attributes,
            &json!({"kind": "Pod"}),
            None,
        );
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        let r = &review["request"];
        assert_eq!(r["uid"], "uid-1");
        assert_eq!(
            r["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            r["requestResource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(r["operation"], "CREATE");
        assert_eq!(r["namespace"], "team");
        assert_eq!(r["userInfo"]["groups"][0], "system:masters");
        assert_eq!(r["oldObject"], Value::Null);
        assert_eq!(r["dryRun"], true);
        assert_eq!(
            r["options"],
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]})
        );
        assert!(r.get("subResource").is_none());
    }

    #[test]
    fn uids_are_fresh_version_4_uuids() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
