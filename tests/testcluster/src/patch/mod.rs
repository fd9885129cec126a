//! PATCH bodies: JSON patch, JSON merge patch, strategic merge patch and server-side apply.

pub mod apply;
pub mod strategic;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;
use serde_json::Value;

/// The patch formats the server accepts, named by their content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

const ACCEPTED: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

impl PatchType {
    /// The patch type of a request's Content-Type.
    pub fn from_content_type(content_type: &str, rt: &ResourceType) -> ApiResult<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let accepted = if rt.custom {
            ACCEPTED.to_string()
        } else {
            format!("{ACCEPTED}, application/strategic-merge-patch+json")
        };
        match media {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" if !rt.custom => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(&accepted)),
        }
    }
}

/// Parses a JSON body, answering `400 BadRequest` as the real server does.
pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a non-apply patch to `current`, returning the patched object.
pub fn patch_object(
    rt: &ResourceType,
    current: &Value,
    ty: PatchType,
    body: &[u8],
) -> ApiResult<Value> {
    let mut out = current.clone();
    match ty {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Merge => {
            let patch = parse_json(body)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal non-object into a merge patch",
                ));
            }
            json_patch::merge(&mut out, &patch);
        }
        PatchType::Strategic => {
            let patch = parse_json(body)?;
            strategic::merge(rt, &mut out, &patch)?;
        }
        PatchType::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server-side apply",
            ));
        }
    }
    if !out.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    Ok(out)
}
