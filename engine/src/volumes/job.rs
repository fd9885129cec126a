//! The contract between the plugin and a mover pod: the job it is given (in a short-lived
//! Secret), the progress lines it prints, and the result it leaves as its termination message.

use serde::{Deserialize, Serialize};

use crate::store::location::{AccessMode, Format, S3Spec};

/// The job a mover runs; read from the file its Secret is mounted at. Holds secrets: never
/// logged, never printed (`Debug` shows no secret).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoverJob {
    /// The location's name, for messages.
    pub location: String,
    /// How the mover reaches the location.
    pub store: StoreAccess,
    /// The location's access mode (a ReadOnly location is only read).
    #[serde(default)]
    pub access_mode: AccessMode,
    /// The layout of the location (a Velero bucket keeps repositories elsewhere).
    #[serde(default)]
    pub format: Format,
    /// The namespace whose repository is used.
    pub namespace: String,
    /// The repository's password.
    pub repo_password: String,
    /// The repository's master key (JSON), so the mover skips the password's key derivation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    /// What to do.
    pub work: Work,
    /// Give up when nothing moves for this many seconds.
    pub stall_seconds: u64,
}

impl std::fmt::Debug for MoverJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoverJob")
            .field("location", &self.location)
            .field("namespace", &self.namespace)
            .field("work", &self.work)
            .finish_non_exhaustive()
    }
}

/// How a mover reaches the object store.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StoreAccess {
    /// An S3 bucket, with the location's credentials.
    S3 {
        /// Bucket, prefix, endpoint, region, addressing.
        spec: S3Spec,
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// Session token of temporary credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
    /// A directory mounted into the mover (hostPath or NFS) at this path.
    Filesystem {
        /// Mount path inside the mover.
        path: String,
    },
}

/// The operation of a mover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Work {
    /// Copies a mounted volume into a new snapshot.
    Backup {
        /// Where the volume is mounted in the mover.
        source: String,
        /// The snapshot label (`pvc/NAME`).
        volume: String,
        /// The vbackup backup the snapshot belongs to.
        backup: String,
        /// gitignore-style patterns relative to the volume root, not copied.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        excludes: Vec<String>,
    },
    /// Writes a snapshot (or one path of it) into a mounted volume.
    Restore {
        /// Snapshot id.
        snapshot: String,
        /// Where the volume is mounted in the mover.
        target: String,
        /// Only this path inside the volume (`None`: everything).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Writes, reads back and deletes a probe object: proves pods reach the location.
    Probe,
}

/// A progress line a mover prints on stdout (one JSON object per line). Anything else on the
/// mover's output is log text and ignored by the reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressLine {
    /// Marks the line as vbackup's (`1`).
    pub vbackup_progress: u8,
    /// Bytes processed so far.
    pub bytes: u64,
    /// Bytes expected in all, 0 while unknown.
    pub total: u64,
    /// Files processed so far.
    pub files: u64,
}

impl ProgressLine {
    /// Parses a line of mover output, `None` when it is not a progress line.
    pub fn parse(line: &str) -> Option<ProgressLine> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str::<ProgressLine>(line)
            .ok()
            .filter(|p| p.vbackup_progress == 1)
    }
}

/// What a mover leaves as its termination message (the kubelet keeps the last 4096 bytes:
/// [`MoverResult::to_message`] stays below that).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoverResult {
    /// The error, when the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The new snapshot (backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Files in the snapshot, or written by the restore.
    #[serde(default)]
    pub files: u64,
    /// Bytes in the snapshot, or written by the restore.
    #[serde(default)]
    pub bytes: u64,
    /// New data stored in the repository (compressed, encrypted).
    #[serde(default)]
    pub bytes_added: u64,
    /// Entries that could not be read or written, in all.
    #[serde(default)]
    pub warning_count: u64,
    /// The first of them, each naming the path and the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Room a termination message may use (the kubelet keeps 4096 bytes).
pub const MESSAGE_LIMIT: usize = 4096;

impl MoverResult {
    /// The result as one JSON line that fits the termination message: warnings, then the
    /// error's tail, are shortened until it does.
    pub fn to_message(&self) -> String {
        let mut result = self.clone();
        loop {
            let text = serde_json::to_string(&result).unwrap_or_else(|_| "{}".into());
            if text.len() <= MESSAGE_LIMIT - 96 {
                return text;
            }
            if result.warnings.pop().is_some() {
                continue;
            }
            match &mut result.error {
                Some(e) if e.len() > 256 => {
                    let mut cut = e.len() / 2;
                    while !e.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.truncate(cut);
                    e.push('…');
                }
                _ => return r#"{"error":"mover result too large to report"}"#.into(),
            }
        }
    }

    /// Reads a termination message; `None` when it is not a mover result.
    pub fn parse(message: &str) -> Option<MoverResult> {
        serde_json::from_str(message.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_told_apart_from_log_text() {
        let line = serde_json::to_string(&ProgressLine {
            vbackup_progress: 1,
            bytes: 10,
            total: 20,
            files: 3,
        })
        .unwrap();
        assert_eq!(ProgressLine::parse(&line).map(|p| p.files), Some(3));
        assert_eq!(ProgressLine::parse("2026-12-02 WARN something"), None);
        assert_eq!(ProgressLine::parse(r#"{"bytes": 1}"#), None);
    }

    #[test]
    fn a_result_always_fits_the_termination_message() {
        let result = MoverResult {
            error: Some("e".repeat(10_000)),
            warnings: (0..500)
                .map(|i| format!("/data/file-{i}: permission denied"))
                .collect(),
            warning_count: 500,
            ..Default::default()
        };
        let text = result.to_message();
        assert!(text.len() < MESSAGE_LIMIT, "{}", text.len());
        let back = MoverResult::parse(&text).unwrap();
        assert_eq!(back.warning_count, 500);
        assert!(back.error.unwrap().starts_with("eee"));
    }

    #[test]
    fn job_debug_shows_no_secret() {
        let job = MoverJob {
            location: "l".into(),
            store: StoreAccess::S3 {
                spec: S3Spec {
                    bucket: "b".into(),
                    prefix: None,
                    region: None,
                    endpoint: None,
                    force_path_style: true,
                    credentials_secret: None,
                },
                access_key_id: "AKIA".into(),
                secret_access_key: "very-secret".into(),
                session_token: None,
            },
            access_mode: AccessMode::ReadWrite,
            format: Format::Vbackup,
            namespace: "app".into(),
            repo_password: "repo-secret".into(),
            master_key: Some("{\"mac\":\"k\"}".into()),
            work: Work::Probe,
            stall_seconds: 300,
        };
        let debug = format!("{job:?}");
        assert!(
            !debug.contains("very-secret")
                && !debug.contains("repo-secret")
                && !debug.contains("mac")
        );
    }
}
