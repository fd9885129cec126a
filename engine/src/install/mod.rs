//! What `kubectl vbackup install` puts in a cluster, built as typed objects so the plugin,
//! the schedules and the generated `manifests/` share one definition; and the server-side
//! apply (field manager [`FIELD_MANAGER`]) that installs, upgrades and uninstalls it.

pub mod apply;
pub mod certs;
pub mod rbac;
pub mod ready;
pub mod webhook;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use crate::{Error, Result};

/// Field manager of every object vbackup applies (server-side apply).
pub const FIELD_MANAGER: &str = "vbackup";
/// `app.kubernetes.io/part-of` of everything vbackup creates.
pub const PART_OF: &str = "vbackup";

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// vbackup's namespace.
    pub namespace: String,
    /// The image (`kubectl-vbackup` + `vbackup-webhook`).
    pub image: String,
    /// cert-manager issues the webhook's certificate and injects its CA.
    pub cert_manager: bool,
}

/// A typed object as an apply body (apply needs `apiVersion` and `kind`).
pub fn typed(object: impl serde::Serialize, api_version: &str, kind: &str) -> Result<Value> {
    let mut v = serde_json::to_value(object)
        .map_err(|e| Error::Internal(format!("cannot encode a {kind}: {e}")))?;
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

/// Everything install applies, in the order it is applied. `tls`: the generated serving
/// certificate (its Secret and `caBundle`); `None` for `manifests/` and dry runs (the
/// certificate is made at install time) or with cert-manager.
pub fn objects(opts: &InstallOptions, tls: Option<&certs::Bundle>) -> Result<Vec<Value>> {
    let ns = opts.namespace.as_str();
    const RBAC: &str = "rbac.authorization.k8s.io/v1";
    let mut out = vec![typed(
        Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                labels: Some(
                    [("app.kubernetes.io/part-of".to_string(), PART_OF.to_string())].into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
        "v1",
        "Namespace",
    )?];
    for (_, crd) in crate::crds::all() {
        out.push(typed(
            crd,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
        )?);
    }
    for account in [
        rbac::BACKUP_SERVICE_ACCOUNT,
        rbac::VERIFY_SERVICE_ACCOUNT,
        rbac::WEBHOOK_ACCOUNT,
    ] {
        out.push(typed(
            rbac::service_account(account, ns),
            "v1",
            "ServiceAccount",
        )?);
    }
    for role in [
        rbac::backup_cluster_role(),
        rbac::restore_cluster_role(),
        rbac::verify_cluster_role(),
        rbac::webhook_cluster_role(),
    ] {
        out.push(typed(role, RBAC, "ClusterRole")?);
    }
    for (name, role, account) in [
        (
            rbac::BACKUP_ROLE,
            rbac::BACKUP_ROLE,
            rbac::BACKUP_SERVICE_ACCOUNT,
        ),
        (
            rbac::VERIFY_BACKUP_BINDING,
            rbac::BACKUP_ROLE,
            rbac::VERIFY_SERVICE_ACCOUNT,
        ),
        (
            rbac::VERIFY_ROLE,
            rbac::VERIFY_ROLE,
            rbac::VERIFY_SERVICE_ACCOUNT,
        ),
        (
            rbac::WEBHOOK_ACCOUNT,
            rbac::WEBHOOK_ACCOUNT,
            rbac::WEBHOOK_ACCOUNT,
        ),
    ] {
        out.push(typed(
            rbac::named_binding(name, role, account, ns),
            RBAC,
            "ClusterRoleBinding",
        )?);
    }
    out.push(typed(rbac::webhook_role(ns), RBAC, "Role")?);
    out.push(typed(
        rbac::role_binding(rbac::WEBHOOK_ACCOUNT, rbac::WEBHOOK_ACCOUNT, ns),
        RBAC,
        "RoleBinding",
    )?);
    if let Some(bundle) = tls {
        out.push(typed(certs::secret(ns, bundle), "v1", "Secret")?);
    }
    if opts.cert_manager {
        out.extend(cert_manager_objects(ns));
    }
    out.push(typed(webhook::service(ns), "v1", "Service")?);
    out.push(typed(
        webhook::deployment(ns, &opts.image),
        "apps/v1",
        "Deployment",
    )?);
    out.push(typed(
        webhook::disruption_budget(ns),
        "policy/v1",
        "PodDisruptionBudget",
    )?);
    let mut configuration = typed(
        webhook::configuration(ns, tls.map(|b| b.ca_pem.as_str())),
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    )?;
    if tls.is_none() && !opts.cert_manager {
        // Without a certificate yet: no caBundle and no injection; `kubectl vbackup install`
        // (or cert-manager) fills it, and failurePolicy Ignore keeps pods flowing meanwhile.
        if let Some(m) = configuration["metadata"].as_object_mut() {
            m.remove("annotations");
        }
    }
    out.push(configuration);
    Ok(out)
}

/// A self-signed Issuer and the Certificate cert-manager keeps in the TLS Secret.
fn cert_manager_objects(ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": "vbackup-selfsigned", "namespace": ns,
                         "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {"selfSigned": {}}
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": webhook::TLS_SECRET, "namespace": ns,
                         "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {
                "secretName": webhook::TLS_SECRET,
                "dnsNames": webhook::dns_names(ns),
                "issuerRef": {"name": "vbackup-selfsigned", "kind": "Issuer"}
            }
        }),
    ]
}

/// Objects as one multi-document YAML stream.
pub fn to_yaml(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(o)
                .map_err(|e| Error::Internal(format!("cannot render YAML: {e}")))?,
        );
    }
    Ok(out)
}

/// `manifests/install.yaml`: what `kubectl apply -k manifests/` installs (no certificate:
/// `kubectl vbackup install` or cert-manager makes it).
pub fn manifest() -> Result<String> {
    let opts = InstallOptions {
        namespace: crate::store::SYSTEM_NAMESPACE.into(),
        image: crate::volumes::step::default_image(),
        cert_manager: false,
    };
    let objects: Vec<Value> = objects(&opts, None)?
        .into_iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .collect();
    Ok(format!(
        "# Generated from the Rust types by vbackup-engine; do not edit.\n# Regenerate: VBACKUP_UPDATE_MANIFESTS=1 cargo test -p vbackup-engine --test manifests\n{}",
        to_yaml(&objects)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> InstallOptions {
        InstallOptions {
            namespace: "vbackup-system".into(),
            image: "ghcr.io/vbackup/vbackup:1".into(),
            cert_manager: false,
        }
    }

    #[test]
    fn install_orders_namespace_crds_and_rbac_before_the_webhook() {
        let bundle = certs::generate("vbackup-system").unwrap();
        let objs = objects(&opts(), Some(&bundle)).unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "Namespace");
        assert_eq!(kinds[1], "CustomResourceDefinition");
        assert_eq!(*kinds.last().unwrap(), "MutatingWebhookConfiguration");
        let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
        assert!(pos("Secret") < pos("Deployment"));
        let mwc = objs.last().unwrap();
        let hook = &mwc["webhooks"][0];
        assert_eq!(hook["name"], "pods.vbackup.io");
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate");
        assert!(hook["clientConfig"]["caBundle"].is_string());
        let d = &objs[pos("Deployment")];
        assert_eq!(d["spec"]["replicas"], 2);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], 8443);
        assert_eq!(
            d["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
    }

    #[test]
    fn cert_manager_injects_the_ca_and_no_key_is_generated() {
        let mut o = opts();
        o.cert_manager = true;
        let objs = objects(&o, None).unwrap();
        assert!(objs.iter().all(|o| o["kind"] != "Secret"));
        assert!(objs.iter().any(|o| o["kind"] == "Certificate"));
        let mwc = objs.last().unwrap();
        assert_eq!(
            mwc["metadata"]["annotations"][webhook::CERT_MANAGER_INJECT],
            "vbackup-system/vbackup-webhook-tls"
        );
    }
}
