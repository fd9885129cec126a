//! The `BackupStorageLocation` custom resource: where a cluster's backups go.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Namespace where vbackup's own objects (locations, keys, schedules) live.
pub const SYSTEM_NAMESPACE: &str = "vbackup-system";

/// Where backups are stored and how this cluster may use it.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "vbackup.io",
    version = "v1alpha1",
    kind = "BackupStorageLocation",
    namespaced,
    status = "BackupStorageLocationStatus",
    shortname = "bsl",
    category = "vbackup",
    doc = "Where a cluster's backups are stored, and whether this cluster may write there.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Access","type":"string","jsonPath":".spec.accessMode"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationSpec {
    /// Which kind of store: `s3` (any S3-compatible service) or `filesystem`.
    pub provider: Provider,
    /// S3 settings; required when provider is `s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// Directory settings; required when provider is `filesystem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemSpec>,
    /// `ReadWrite`, or `ReadOnly` for a cluster that only restores (migration, DR drills).
    #[serde(default)]
    pub access_mode: AccessMode,
    /// The location used when a command names none.
    #[serde(default)]
    pub default: bool,
    /// Whose layout the location holds: `vbackup` (the default), or `velero` for a Velero
    /// bucket that vbackup only reads (its backups and restic-era volume data).
    #[serde(default, skip_serializing_if = "Format::is_vbackup")]
    pub format: Format,
    /// For `velero` locations: the Secret (key `repository-password`) with the password of
    /// Velero's restic repositories; Velero's own default password when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_password_secret: Option<SecretRef>,
}

/// The layout of the backups in a location.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// vbackup's own layout.
    #[default]
    Vbackup,
    /// A Velero bucket (`backups/<name>/velero-backup.json`, `restic/<namespace>/`): read only.
    Velero,
}

impl Format {
    fn is_vbackup(&self) -> bool {
        *self == Format::Vbackup
    }
}

/// The kind of object store behind a location.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any S3-compatible service: AWS, OVHcloud, Scaleway, MinIO…
    S3,
    /// A local directory: the embedded default, for trying vbackup and for tests.
    Filesystem,
}

/// An S3 bucket (and optional prefix) on some endpoint.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Bucket name; it must exist.
    pub bucket: String,
    /// Folder inside the bucket, so several clusters or tools can share one bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Region (e.g. `gra` for OVHcloud, `fr-par` for Scaleway); `us-east-1` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL for non-AWS services, e.g. `https://s3.gra.io.cloud.ovh.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (MinIO and most
    /// self-hosted services need this).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret (in the location's namespace) holding the access key; never inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
}

/// A directory on the machine (or in the pod) that runs vbackup.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemSpec {
    /// Absolute path of the directory.
    pub path: String,
    /// How pods (the movers that copy volume data) reach the directory; without it only the
    /// machine running the plugin can, and volume data cannot be backed up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_access: Option<PodAccess>,
}

/// How a pod mounts a filesystem location: exactly one of the two.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodAccess {
    /// The same directory on the node (one-node clusters, the demo); Pod Security's baseline
    /// level forbids hostPath volumes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_path: bool,
    /// An NFS export holding the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsExport>,
}

/// An NFS export.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NfsExport {
    /// The NFS server.
    pub server: String,
    /// The exported path.
    pub path: String,
}

impl FilesystemSpec {
    /// The volume that gives a pod this directory, when pods can reach it.
    pub fn pod_volume(&self) -> Option<k8s_openapi::api::core::v1::Volume> {
        use k8s_openapi::api::core::v1::{HostPathVolumeSource, NFSVolumeSource, Volume};
        let mut volume = Volume {
            name: "location".into(),
            ..Default::default()
        };
        let access = self.pod_access.as_ref()?;
        if let Some(nfs) = &access.nfs {
            volume.nfs = Some(NFSVolumeSource {
                server: nfs.server.clone(),
                path: nfs.path.clone(),
                read_only: None,
            });
        } else if access.host_path {
            volume.host_path = Some(HostPathVolumeSource {
                path: self.path.clone(),
                type_: Some("Directory".into()),
            });
        } else {
            return None;
        }
        Some(volume)
    }
}

/// A reference to a Secret in the location's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// Whether this cluster may write to a location.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    /// Backups, restore records and repository maintenance are written.
    #[default]
    ReadWrite,
    /// Nothing is ever written: the cluster only reads backups.
    ReadOnly,
}

/// What the last validation of a location found.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocationStatus {
    /// `Available` or `Unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LocationPhase>,
    /// When the location was last checked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation_time: Option<String>,
    /// What the last check found, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Result of the last validation.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LocationPhase {
    /// The last check succeeded.
    Available,
    /// The last check failed; the message says why.
    Unavailable,
}

impl std::fmt::Display for AccessMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessMode::ReadWrite => "ReadWrite",
            AccessMode::ReadOnly => "ReadOnly",
        })
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::S3 => "s3",
            Provider::Filesystem => "filesystem",
        })
    }
}

impl BackupStorageLocationSpec {
    /// Checks the spec is complete and well-formed, without touching the network.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error::BadInput;
        if self.format == Format::Velero && self.access_mode != AccessMode::ReadOnly {
            return Err(BadInput(
                "a velero-format location is read only: vbackup never writes into Velero's bucket \
                 (drop --access-mode or set it to ReadOnly)"
                    .into(),
            ));
        }
        if self.repository_password_secret.is_some() && self.format != Format::Velero {
            return Err(BadInput(
                "--repository-password-secret is for --format velero locations".into(),
            ));
        }
        match self.provider {
            Provider::S3 => {
                let s3 = self.s3.as_ref().ok_or_else(|| {
                    BadInput("provider s3 needs a bucket: add --bucket NAME".into())
                })?;
                if s3.bucket.trim().is_empty() {
                    return Err(BadInput(
                        "provider s3 needs a bucket: add --bucket NAME".into(),
                    ));
                }
                if let Some(endpoint) = &s3.endpoint {
                    super::s3::validate_endpoint(endpoint)?;
                }
                if self.filesystem.is_some() {
                    return Err(BadInput("--path is for provider filesystem, not s3".into()));
                }
            }
            Provider::Filesystem => {
                let fs = self.filesystem.as_ref().ok_or_else(|| {
                    BadInput("provider filesystem needs a directory: add --path DIR".into())
                })?;
                if !std::path::Path::new(&fs.path).is_absolute() {
                    return Err(BadInput(format!(
                        "--path {:?} must be an absolute directory path",
                        fs.path
                    )));
                }
                if self.s3.is_some() {
                    return Err(BadInput(
                        "--bucket, --endpoint and the other S3 flags are for provider s3".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where the location points, for tables and messages (no secrets).
    pub fn url(&self) -> String {
        match (&self.s3, &self.filesystem) {
            (Some(s3), _) => {
                let prefix = s3.prefix.as_deref().unwrap_or("").trim_matches('/');
                let base = format!("s3://{}/{prefix}", s3.bucket);
                match &s3.endpoint {
                    Some(endpoint) => format!("{base} at {endpoint}"),
                    None => base,
                }
            }
            (None, Some(fs)) => format!("file://{}", fs.path),
            (None, None) => String::from("(incomplete)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, endpoint: Option<&str>) -> BackupStorageLocationSpec {
        BackupStorageLocationSpec {
            provider: Provider::S3,
            s3: Some(S3Spec {
                bucket: bucket.into(),
                prefix: None,
                region: None,
                endpoint: endpoint.map(Into::into),
                force_path_style: true,
                credentials_secret: None,
            }),
            filesystem: None,
            access_mode: AccessMode::ReadWrite,
            default: false,
            format: Default::default(),
            repository_password_secret: None,
        }
    }

    #[test]
    fn s3_location_needs_a_bucket_and_a_valid_endpoint() {
        assert!(
            s3("backups", Some("https://s3.gra.io.cloud.ovh.net"))
                .validate()
                .is_ok()
        );
        assert!(
            s3("", None)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--bucket")
        );
        let err = s3("backups", Some("s3.example.com"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid URL"), "{err}");
    }

    #[test]
    fn filesystem_location_needs_an_absolute_path() {
        let mut spec = BackupStorageLocationSpec {
            provider: Provider::Filesystem,
            s3: None,
            filesystem: Some(FilesystemSpec {
                path: "relative/dir".into(),
                pod_access: None,
            }),
            access_mode: AccessMode::ReadOnly,
            default: true,
            format: Default::default(),
            repository_password_secret: None,
        };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        spec.filesystem = Some(FilesystemSpec {
            path: "/var/backups".into(),
            pod_access: None,
        });
        assert!(spec.validate().is_ok());
        assert_eq!(spec.url(), "file:///var/backups");
    }

    #[test]
    fn spec_serialises_with_kubernetes_field_names() {
        let json = serde_json::to_value(s3("b", None)).unwrap();
        assert_eq!(json["accessMode"], "ReadWrite");
        assert_eq!(json["s3"]["forcePathStyle"], true);
        assert_eq!(json["provider"], "s3");
    }
}
