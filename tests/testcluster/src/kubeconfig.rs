//! The kubeconfig written for clients (kubectl, kube::Client) of a test cluster.

use base64::Engine;
use serde_json::json;

/// The name of the cluster, user and context in the kubeconfig.
pub const CONTEXT: &str = "vbackup-testcluster";

/// A kubeconfig (YAML) pointing at `url`, trusting `ca_pem` when serving TLS.
pub fn render(url: &str, ca_pem: Option<&str>) -> anyhow::Result<String> {
    let mut cluster = json!({"server": url});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": "vbackup-testcluster-admin"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    });
    Ok(serde_saphyr::to_string(&config)?)
}
