//! Every custom resource vbackup defines, as CRD manifests generated from the Rust types.
//!
//! `manifests/crds/` holds these rendered as YAML; a test fails when they are stale.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::policy::BackupPolicy;
use crate::store::BackupStorageLocation;

/// Every CRD vbackup needs, with the file name it has under `manifests/crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "backupstoragelocations.vbackup.io.yaml",
            BackupStorageLocation::crd(),
        ),
        ("backuppolicies.vbackup.io.yaml", BackupPolicy::crd()),
    ]
}

/// One CRD as the YAML document kept in `manifests/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> crate::Result<String> {
    let yaml = serde_saphyr::to_string(crd)
        .map_err(|e| crate::Error::Internal(format!("cannot render CRD as YAML: {e}")))?;
    Ok(format!(
        "# Generated from the Rust types by vbackup-engine; do not edit.\n# Regenerate: VBACKUP_UPDATE_CRDS=1 cargo test -p vbackup-engine --test crds\n{yaml}"
    ))
}
