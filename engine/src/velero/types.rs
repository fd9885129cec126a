//! The parts of Velero's objects (velero.io/v1) that vbackup reads from a bucket.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

/// `velero-backup.json`: a `Backup` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Backup {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: BackupSpec,
    #[serde(default)]
    pub status: BackupStatus,
}

/// The metadata vbackup shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
}

/// What the Velero backup was asked to do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupSpec {
    #[serde(default)]
    pub included_namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub excluded_namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub included_resources: Option<Vec<String>>,
    #[serde(default)]
    pub excluded_resources: Option<Vec<String>>,
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    #[serde(default)]
    pub include_cluster_resources: Option<bool>,
    #[serde(default)]
    pub storage_location: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
}

/// How the Velero backup ended.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub format_version: Option<String>,
    #[serde(default)]
    pub expiration: Option<String>,
    #[serde(default)]
    pub start_timestamp: Option<String>,
    #[serde(default)]
    pub completion_timestamp: Option<String>,
    #[serde(default)]
    pub errors: Option<u64>,
    #[serde(default)]
    pub warnings: Option<u64>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub validation_errors: Option<Vec<String>>,
}

/// One entry of `<name>-podvolumebackups.json.gz`: a pod volume copied by restic or kopia.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodVolumeBackup {
    #[serde(default)]
    pub spec: PodVolumeBackupSpec,
    #[serde(default)]
    pub status: PodVolumeBackupStatus,
}

/// Which pod volume, and where its data went.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodVolumeBackupSpec {
    #[serde(default)]
    pub pod: PodRef,
    #[serde(default)]
    pub volume: String,
    /// `restic` or `kopia`; absent before Velero 1.10, when restic was the only one.
    #[serde(default)]
    pub uploader_type: Option<String>,
}

/// The pod a volume belonged to.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PodRef {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

/// How the copy of a pod volume ended.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodVolumeBackupStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, rename = "snapshotID")]
    pub snapshot_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub progress: Option<Progress>,
    #[serde(default)]
    pub start_timestamp: Option<String>,
    #[serde(default)]
    pub completion_timestamp: Option<String>,
}

/// Bytes copied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Progress {
    #[serde(default)]
    pub total_bytes: Option<u64>,
}

/// `<name>-results.gz`: the messages of errors and warnings.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Results {
    #[serde(default)]
    pub errors: ResultSet,
    #[serde(default)]
    pub warnings: ResultSet,
}

/// Messages by scope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultSet {
    #[serde(default)]
    pub velero: Vec<String>,
    #[serde(default)]
    pub cluster: Vec<String>,
    #[serde(default)]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl ResultSet {
    /// Every message, prefixed with its scope.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.velero.iter().map(|m| format!("velero: {m}")).collect();
        out.extend(self.cluster.iter().map(|m| format!("cluster: {m}")));
        for (ns, messages) in &self.namespaces {
            out.extend(messages.iter().map(|m| format!("namespace {ns}: {m}")));
        }
        out
    }
}
