//! Service-account token Secrets: the token belongs to the old service account (its uid is
//! in an annotation), and the tokens controller deletes a token Secret whose uid does not
//! match. Dropping the uid and the generated data lets the new cluster fill in a fresh token.

use serde_json::Value;

use super::{ActionContext, ActionOutcome, ItemAction, remove};

/// Secret type of service-account tokens.
pub const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation naming the service account's uid.
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// Resets service-account token Secrets so the new cluster issues their token.
pub struct TokenSecret;

impl ItemAction for TokenSecret {
    fn name(&self) -> &'static str {
        "service-account token secret"
    }

    fn applies_to(&self, resource: &str) -> bool {
        resource == "secrets"
    }

    fn apply(&self, object: &mut Value, _ctx: &ActionContext<'_>) -> Result<ActionOutcome, String> {
        if object["type"] != TOKEN_TYPE {
            return Ok(ActionOutcome::Restore);
        }
        if let Some(annotations) = object.pointer_mut("/metadata/annotations") {
            remove(annotations, UID_ANNOTATION);
        }
        if let Some(data) = object.get_mut("data") {
            for key in ["token", "ca.crt", "namespace"] {
                remove(data, key);
            }
        }
        Ok(ActionOutcome::Restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::RestoreRequest;
    use serde_json::json;

    #[test]
    fn token_secret_loses_the_old_uid_and_token_and_keeps_the_rest() {
        let r = RestoreRequest::new("r", "b");
        let mut s = json!({"type": TOKEN_TYPE,
            "metadata": {"name": "t", "annotations": {UID_ANNOTATION: "old", "kubernetes.io/service-account.name": "app"}},
            "data": {"token": "dG9r", "ca.crt": "Y2E=", "namespace": "bnM=", "extra": "eA=="}});
        TokenSecret
            .apply(&mut s, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(
            s["metadata"]["annotations"],
            json!({"kubernetes.io/service-account.name": "app"})
        );
        assert_eq!(s["data"], json!({"extra": "eA=="}));
    }

    #[test]
    fn other_secrets_are_untouched() {
        let r = RestoreRequest::new("r", "b");
        let original = json!({"type": "Opaque", "metadata": {"name": "s", "annotations": {UID_ANNOTATION: "x"}}, "data": {"token": "dG9r"}});
        let mut s = original.clone();
        TokenSecret
            .apply(&mut s, &ActionContext { request: &r })
            .unwrap();
        assert_eq!(s, original);
    }
}
