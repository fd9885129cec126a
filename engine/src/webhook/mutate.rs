//! `POST /mutate`: an `admission.k8s.io/v1` AdmissionReview for a pod in, the review's answer
//! out. The answer always admits the pod: anything this webhook cannot handle leaves the pod
//! unchanged with a warning, because a backup tool must never stop an application from starting.

use std::collections::BTreeMap;

use base64::Engine as _;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use super::validate::hook_annotation_warnings;
use crate::policy::admission::{Untouched, admission_annotations};
use crate::policy::backup_policy::{AppliedPolicy, BackupPolicy, select_policy};

/// Largest body read, as the API server's own limit on a request (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the webhook knows about the cluster besides the request.
pub trait ClusterView {
    /// Labels of a namespace; `None` when it is not known (yet).
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
    /// The policy for a pod with these labels in a namespace with these labels.
    fn policy_for(
        &self,
        namespace_labels: &BTreeMap<String, String>,
        pod_labels: &BTreeMap<String, String>,
    ) -> AppliedPolicy;
}

/// A fixed view: the given policies and namespaces (tests, and a webhook without a cluster).
#[derive(Debug, Clone, Default)]
pub struct StaticView {
    /// BackupPolicies.
    pub policies: Vec<BackupPolicy>,
    /// Namespaces' labels, by name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl ClusterView for StaticView {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(namespace).cloned()
    }

    fn policy_for(
        &self,
        namespace_labels: &BTreeMap<String, String>,
        pod_labels: &BTreeMap<String, String>,
    ) -> AppliedPolicy {
        select_policy(&self.policies, namespace_labels, pod_labels)
    }
}

/// How a request ended, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted with a patch of this many operations.
    Patched(usize),
    /// Admitted unchanged, for this reason (already annotated, excluded, not a pod CREATE…).
    Unchanged(String),
    /// Admitted unchanged because something went wrong; the reason is in the warnings.
    Failed(String),
    /// Not an AdmissionReview at all: answered 400.
    BadRequest(String),
}

impl Outcome {
    /// The metric label: `patched`, `unchanged`, `error` or `bad_request`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Patched(_) => "patched",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Failed(_) => "error",
            Outcome::BadRequest(_) => "bad_request",
        }
    }
}

/// The HTTP answer to one `/mutate` request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// 200, or 400 when the body is not an AdmissionReview.
    pub status: u16,
    /// JSON: the AdmissionReview answer, or a `{"error": …}` object.
    pub body: Vec<u8>,
    /// How it ended.
    pub outcome: Outcome,
    /// The request was a dry run (nothing the webhook does is persisted either way).
    pub dry_run: bool,
}

/// Answers one `/mutate` request body.
pub fn mutate(body: &[u8], view: &dyn ClusterView) -> Reply {
    let review = match serde_json::from_slice::<AdmissionReview<Pod>>(body) {
        Ok(review) => review,
        Err(pod_error) => return unreadable_pod(body, &pod_error),
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return bad_request("the AdmissionReview carries no request"),
    };
    let dry_run = request.dry_run;
    let response = AdmissionResponse::from(&request);
    let (response, outcome) = decide(&request, response, view);
    Reply {
        status: 200,
        body: review_json(response),
        outcome,
        dry_run,
    }
}

fn decide(
    request: &AdmissionRequest<Pod>,
    response: AdmissionResponse,
    view: &dyn ClusterView,
) -> (AdmissionResponse, Outcome) {
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.sub_resource.is_some() || request.operation != Operation::Create {
        let what = format!(
            "{} {}{}",
            operation_name(&request.operation),
            request.kind.kind,
            request
                .sub_resource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        return (
            response,
            Outcome::Unchanged(format!("{what} is not a pod creation")),
        );
    }
    let Some(pod) = request.object.as_ref() else {
        return failed(response, "the AdmissionReview carries no pod object");
    };
    let mut warnings: Vec<String> = hook_annotation_warnings(pod)
        .into_iter()
        .map(|w| format!("vbackup: {w}"))
        .collect();
    let namespace = request
        .namespace
        .as_deref()
        .or(pod.metadata.namespace.as_deref())
        .unwrap_or_default();
    let namespace_labels = view.namespace_labels(namespace).unwrap_or_default();
    let empty = BTreeMap::new();
    let pod_labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let policy = view.policy_for(&namespace_labels, pod_labels);
    let (response, outcome) = match admission_annotations(pod, &namespace_labels, &policy) {
        Err(Untouched::AlreadyAnnotated) => {
            (response, Outcome::Unchanged("already annotated".into()))
        }
        Err(Untouched::Excluded(why)) => (response, Outcome::Unchanged(why)),
        Ok(added) if added.is_empty() => (response, Outcome::Unchanged("nothing to add".into())),
        Ok(added) => {
            let patch = annotation_patch(pod.metadata.annotations.is_some(), &added);
            let operations = patch.0.len();
            match response.clone().with_patch(patch) {
                Ok(patched) => (patched, Outcome::Patched(operations)),
                Err(e) => {
                    let (mut r, outcome) =
                        failed(response, &format!("cannot encode the patch: {e}"));
                    warnings.extend(r.warnings.take().unwrap_or_default());
                    (r, outcome)
                }
            }
        }
    };
    let mut response = response;
    if !warnings.is_empty() {
        response
            .warnings
            .get_or_insert_with(Vec::new)
            .extend(warnings);
    }
    (response, outcome)
}

/// The JSON patch adding `added` to the pod's annotations: the whole map when the pod has
/// none (an `add` below a missing map fails), else one `add` per key, `/` escaped as `~1`.
pub fn annotation_patch(has_annotations: bool, added: &BTreeMap<String, String>) -> Patch {
    let add = |path: PointerBuf, value: Value| PatchOperation::Add(AddOperation { path, value });
    if !has_annotations {
        let map = added
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let path = PointerBuf::from_tokens(["metadata", "annotations"]);
        return Patch(vec![add(path, Value::Object(map))]);
    }
    Patch(
        added
            .iter()
            .map(|(k, v)| {
                let path = PointerBuf::from_tokens(["metadata", "annotations", k.as_str()]);
                add(path, Value::String(v.clone()))
            })
            .collect(),
    )
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn failed(mut response: AdmissionResponse, why: &str) -> (AdmissionResponse, Outcome) {
    response.warnings.get_or_insert_with(Vec::new).push(format!(
        "vbackup: the pod was admitted without backup annotations: {why}; \
         backups still apply the default policy to it"
    ));
    (response, Outcome::Failed(why.to_string()))
}

/// A body that is an AdmissionReview but whose object is not a pod this webhook can read is
/// admitted unchanged; anything else is a 400.
fn unreadable_pod(body: &[u8], pod_error: &serde_json::Error) -> Reply {
    let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) else {
        return bad_request(&format!(
            "the body is not an admission.k8s.io/v1 AdmissionReview: {pod_error}"
        ));
    };
    let Ok(request) =
        <AdmissionReview<DynamicObject> as TryInto<AdmissionRequest<_>>>::try_into(review)
    else {
        return bad_request("the AdmissionReview carries no request");
    };
    let dry_run = request.dry_run;
    let (response, outcome) = failed(
        AdmissionResponse::from(&request),
        &format!("its object cannot be read as a pod ({pod_error})"),
    );
    Reply {
        status: 200,
        body: review_json(response),
        outcome,
        dry_run,
    }
}

fn bad_request(why: &str) -> Reply {
    Reply {
        status: 400,
        body: serde_json::to_vec(&serde_json::json!({ "error": why })).unwrap_or_default(),
        outcome: Outcome::BadRequest(why.to_string()),
        dry_run: false,
    }
}

/// The answer as JSON, with the patch base64-encoded as the API server's Go `[]byte`
/// expects (kube serialises it as an array of numbers, which only lenient decoders accept).
/// The patch is taken out before serialising: as a JSON value it was one number per byte,
/// built and dropped on every admission (a sixth of the webhook's CPU in a profile).
fn review_json(mut response: AdmissionResponse) -> Vec<u8> {
    let patch = response
        .patch
        .take()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let mut review = match serde_json::to_value(response.into_review()) {
        Ok(v) => v,
        // Plain strings, numbers and maps always serialise; keep a valid answer regardless.
        Err(_) => Value::Null,
    };
    if let (Some(patch), Some(r)) = (patch, review.get_mut("response")) {
        r["patch"] = Value::String(patch);
    }
    serde_json::to_vec(&review).unwrap_or_default()
}
