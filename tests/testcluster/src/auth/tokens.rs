//! ServiceAccount tokens: JWTs shaped like kube-apiserver's (issuer, audiences, the
//! `kubernetes.io` claim with the account and the pod a token is bound to), signed with a
//! per-cluster HMAC key so nobody outside the cluster can mint one. The key lives in the state
//! directory when there is one, so tokens survive a restart as a real cluster's do.

use anyhow::Context;
use aws_lc_rs::hmac;
use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;

/// The issuer and default audience of every token, as kubeadm clusters configure them.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What the kubelet asks for in the `kube-api-access-*` volume; the server extends such
/// tokens to a year (`--service-account-extend-token-expiration`) and warns after this.
pub const KUBELET_EXPIRATION_SECONDS: i64 = 3607;

const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;

const KEY_FILE: &str = "serviceaccount-signing.key";

/// The object a token is bound to (its lifetime ends with the object's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    /// Pod name.
    pub name: String,
    /// Pod uid.
    pub uid: String,
}

/// What a token says: who, for whom, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's uid.
    pub uid: String,
    /// The pod the token is bound to, if any.
    pub pod: Option<BoundPod>,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Expiry (Unix seconds).
    pub expires: i64,
    /// Token id (`jti`).
    pub id: String,
}

/// Signs and verifies ServiceAccount tokens.
pub struct TokenIssuer {
    key: hmac::Key,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenIssuer {
    /// The issuer of a cluster: its key is read from (or written to) `state_dir`, or random.
    pub fn open(state_dir: Option<&Path>) -> anyhow::Result<TokenIssuer> {
        let fresh = || {
            let mut k = [0u8; 32];
            getrandom::fill(&mut k)
                .map_err(|e| anyhow::anyhow!("no randomness for the token signing key: {e}"))?;
            anyhow::Ok(k.to_vec())
        };
        let secret = match state_dir {
            None => fresh()?,
            Some(dir) => {
                let path = dir.join(KEY_FILE);
                match std::fs::read(&path) {
                    Ok(k) if k.len() >= 32 => k,
                    _ => {
                        let k = fresh()?;
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                        std::fs::write(&path, &k)
                            .with_context(|| format!("writing {}", path.display()))?;
                        use std::os::unix::fs::PermissionsExt;
                        let _ =
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                        k
                    }
                }
            }
        };
        Ok(TokenIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// A signed token for `claims`, issued now.
    pub fn issue(&self, claims: &TokenClaims, warn_after: Option<i64>) -> String {
        let now = jiff::Timestamp::now().as_second();
        let mut k8s = json!({
            "namespace": claims.namespace,
            "serviceaccount": {"name": claims.name, "uid": claims.uid},
        });
        if let Some(p) = &claims.pod {
            k8s["pod"] = json!({"name": p.name, "uid": p.uid});
        }
        if let Some(w) = warn_after {
            k8s["warnafter"] = json!(w);
        }
        let payload = json!({
            "aud": claims.audiences, "exp": claims.expires, "iat": now, "nbf": now,
            "iss": ISSUER, "jti": claims.id, "kubernetes.io": k8s,
            "sub": super::service_account_user(&claims.namespace, &claims.name),
        });
        let signing_input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "typ": "JWT"}).to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", b64(tag.as_ref()))
    }

    /// The claims of a token this cluster signed and that has not expired; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .ok()?;
        hmac::verify(&self.key, signing_input.as_bytes(), &sig).ok()?;
        let (_, payload) = signing_input.split_once('.')?;
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()?,
        )
        .ok()?;
        let now = jiff::Timestamp::now().as_second();
        let expires = payload.get("exp").and_then(Value::as_i64)?;
        if expires <= now || payload.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return None;
        }
        let k8s = payload.get("kubernetes.io")?;
        let text = |p: &str| k8s.pointer(p).and_then(Value::as_str).map(str::to_string);
        let pod = match (text("/pod/name"), text("/pod/uid")) {
            (Some(name), Some(uid)) => Some(BoundPod { name, uid }),
            _ => None,
        };
        Some(TokenClaims {
            namespace: text("/namespace")?,
            name: text("/serviceaccount/name")?,
            uid: text("/serviceaccount/uid")?,
            pod,
            audiences: payload
                .get("aud")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            expires,
            id: payload
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// The expiry of a token requested for `seconds`, and when it starts warning: the kubelet's
/// 3607-second pod tokens are extended to a year, as kube-apiserver does by default.
pub fn lifetime(seconds: i64, bound_to_pod: bool) -> (i64, Option<i64>) {
    let now = jiff::Timestamp::now().as_second();
    if bound_to_pod && seconds == KUBELET_EXPIRATION_SECONDS {
        (now + EXTENDED_EXPIRATION_SECONDS, Some(now + seconds))
    } else {
        (now + seconds, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            namespace: "a".into(),
            name: "b".into(),
            uid: "u".into(),
            pod: Some(BoundPod {
                name: "p".into(),
                uid: "pu".into(),
            }),
            audiences: vec![ISSUER.into()],
            expires: jiff::Timestamp::now().as_second() + 60,
            id: "j".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_forged_ones_do_not() {
        let issuer = TokenIssuer::open(None).unwrap();
        let token = issuer.issue(&claims(), None);
        assert_eq!(issuer.verify(&token), Some(claims()));
        let other = TokenIssuer::open(None).unwrap();
        assert_eq!(other.verify(&token), None, "another cluster's key");
        let mut tampered = token.clone();
        tampered.insert(token.len() / 2, 'x');
        assert_eq!(issuer.verify(&tampered), None);
        let mut old = claims();
        old.expires -= 120;
        assert_eq!(issuer.verify(&issuer.issue(&old, None)), None, "expired");
    }
}
