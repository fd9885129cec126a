//! The webhook's serving certificate without cert-manager: a CA and a leaf for the Service's
//! DNS names, made with rcgen, kept in the Secret `vbackup-webhook-tls` (`tls.crt`,
//! `tls.key`, `ca.crt`); the CA goes into the webhook configuration's `caBundle`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::webhook::{TLS_SECRET, dns_names};
use crate::{Error, Result};

/// How long the certificates are valid; `install` renews them when less than
/// [`RENEW_BEFORE_DAYS`] remain.
pub const VALID_DAYS: i64 = 825;
/// Re-running `install` this close to expiry makes new certificates.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// PEM material of the webhook's TLS.
#[derive(Clone)]
pub struct Bundle {
    /// The CA (for `caBundle`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// Its key (never printed or logged).
    pub key_pem: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").finish_non_exhaustive()
    }
}

fn err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Internal(format!("cannot make the webhook's {what}: {e}"))
}

/// A new CA and a leaf for the webhook Service in `namespace`.
pub fn generate(namespace: &str) -> Result<Bundle> {
    let now = time_now();
    let until = now + std::time::Duration::from_secs(VALID_DAYS as u64 * 86400);
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("vbackup-webhook-ca.{namespace}"),
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now.into();
    ca.not_after = until.into();
    let ca_cert = ca.self_signed(&ca_key).map_err(err("CA"))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err("key"))?;
    let mut leaf = CertificateParams::new(dns_names(namespace)).map_err(err("certificate"))?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{namespace}.svc", super::webhook::SERVICE),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now.into();
    leaf.not_after = until.into();
    let cert = leaf.signed_by(&key, &issuer).map_err(err("certificate"))?;
    Ok(Bundle {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn time_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// The Secret the webhook mounts.
pub fn secret(namespace: &str, bundle: &Bundle) -> Secret {
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(bundle.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(bundle.key_pem.clone().into_bytes()),
        ),
        (
            "ca.crt".to_string(),
            ByteString(bundle.ca_pem.clone().into_bytes()),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(TLS_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_string(),
                super::PART_OF.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The bundle an existing Secret holds, when it is complete and not close to expiry (so a
/// re-run of `install` keeps the certificate the running webhook serves).
pub fn reusable(secret: &Secret) -> Option<Bundle> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    let bundle = Bundle {
        ca_pem: text("ca.crt")?,
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
    };
    let created = secret.metadata.creation_timestamp.as_ref()?.0;
    let age_days = jiff::Timestamp::now().duration_since(created).as_hours() / 24;
    (age_days < VALID_DAYS - RENEW_BEFORE_DAYS).then_some(bundle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::*;

    #[test]
    fn the_leaf_verifies_for_every_service_name_against_the_ca_and_nothing_else() {
        let b = generate("vbackup-system").unwrap();
        let ca = CertificateDer::from_pem_slice(b.ca_pem.as_bytes()).unwrap();
        let leaf = CertificateDer::from_pem_slice(b.cert_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let check = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        };
        for name in dns_names("vbackup-system") {
            check(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(check("vbackup-webhook.other.svc").is_err());
        let s = secret("vbackup-system", &b);
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert!(!format!("{b:?}").contains("PRIVATE"));
    }
}
