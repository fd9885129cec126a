//! Streaming dumps: a command's stdout, read through `pods/exec`, goes straight into the
//! namespace's repository as one file (`<pod>-<container><ext>`) — never through the volume
//! or the plugin's memory (the exec stream and the chunker have bounded buffers). On restore
//! the file is fed back on the stdin of the pod's restore command.
//!
//! Honest status: a non-zero exit (a command killed with its container included), an empty
//! dump, or an exec stream that ends before the command's exit is reported fails the dump
//! and forgets what was stored of it; stderr is kept for the log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::annotations::{
    BACKUP_COMMAND, BACKUP_COMMAND_CONTAINER, FILE_EXTENSION, K8UP_BACKUP_COMMAND,
    K8UP_BACKUP_COMMAND_CONTAINER, K8UP_FILE_EXTENSION, RESTORE_COMMAND, parse_command,
};
use super::exec::{Captured, Exit, capture_stream, exit_code_text, exit_of, session};
use crate::repo::{StreamBackup, VolumeRepo};

/// Phase of a dump that is in the repository.
pub const COMPLETED: &str = "Completed";
/// Phase of a dump that failed (the message says why).
pub const FAILED: &str = "Failed";

/// A dump a pod asks for in its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRequest {
    /// The container (`None`: the first).
    pub container: Option<String>,
    /// The command, or why it could not be read.
    pub command: Result<Vec<String>, String>,
    /// The file's extension, with its dot (may be empty).
    pub extension: String,
    /// The annotation it came from.
    pub origin: &'static str,
}

/// A command line as the dump annotations take it: a JSON array of strings, or a shell
/// command line run with `/bin/sh -c` (as K8up runs `k8up.io/backupcommand`).
pub fn parse_shell_command(value: &str) -> Result<Vec<String>, String> {
    if value.trim_start().starts_with('[') {
        return parse_command(value);
    }
    parse_command(value).map(|_| vec!["/bin/sh".into(), "-c".into(), value.trim().into()])
}

/// The dump a pod's annotations ask for: vbackup's keys, else K8up's.
pub fn dump_request(annotations: &BTreeMap<String, String>) -> Option<DumpRequest> {
    let (command, container, extension) = if annotations.contains_key(BACKUP_COMMAND) {
        (BACKUP_COMMAND, BACKUP_COMMAND_CONTAINER, FILE_EXTENSION)
    } else {
        (
            K8UP_BACKUP_COMMAND,
            K8UP_BACKUP_COMMAND_CONTAINER,
            K8UP_FILE_EXTENSION,
        )
    };
    let value = annotations.get(command)?;
    Some(DumpRequest {
        container: annotations
            .get(container)
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty()),
        command: parse_shell_command(value).map_err(|m| format!("annotation {command} {m}")),
        extension: annotations
            .get(extension)
            .map(|e| e.trim().to_string())
            .unwrap_or_default(),
        origin: command,
    })
}

/// The restore command a pod's annotations give, if any.
pub fn restore_command(
    annotations: &BTreeMap<String, String>,
) -> Option<Result<Vec<String>, String>> {
    annotations
        .get(RESTORE_COMMAND)
        .map(|v| parse_shell_command(v).map_err(|m| format!("annotation {RESTORE_COMMAND} {m}")))
}

/// One dump's outcome, kept in the backup's record (restores read it back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpRecord {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod the dump was taken from.
    pub pod: String,
    /// Its workload (`StatefulSet/db`, `Deployment/shop`…), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The container the command ran in.
    pub container: String,
    /// The file's name in the snapshot.
    pub file: String,
    /// `Completed` or `Failed`.
    pub phase: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The snapshot holding the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The dump's size.
    #[serde(default)]
    pub bytes: u64,
    /// How long it took.
    #[serde(default)]
    pub duration_seconds: u64,
    /// The command's stderr (truncated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl DumpRecord {
    /// The snapshot label of a pod's dump.
    pub fn volume_label(&self) -> String {
        format!("dump/{}", self.pod)
    }
}

/// How long a dump may send nothing before it is given up.
const STALL: Duration = Duration::from_secs(600);

/// Streams `command`'s stdout into `repo` as `record.file`; fills in the record.
pub async fn stream_dump(
    pods: &Api<Pod>,
    repo: &VolumeRepo,
    backup: &str,
    command: &[String],
    mut record: DumpRecord,
) -> DumpRecord {
    let started = Instant::now();
    let outcome = stream(pods, repo, backup, command, &record).await;
    record.duration_seconds = started.elapsed().as_secs();
    match outcome {
        Ok((snapshot, bytes, stderr)) => {
            record.phase = COMPLETED.into();
            record.snapshot = Some(snapshot);
            record.bytes = bytes;
            record.stderr = stderr.text();
        }
        Err((message, stderr)) => {
            record.phase = FAILED.into();
            record.message = Some(message);
            record.stderr = stderr.text();
        }
    }
    record
}

type Streamed = Result<(String, u64, Captured), (String, Captured)>;

async fn stream(
    pods: &Api<Pod>,
    repo: &VolumeRepo,
    backup: &str,
    command: &[String],
    record: &DumpRecord,
) -> Streamed {
    let container = record.container.as_str();
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(&record.pod, command, &params)
        .await
        .map_err(|e| {
            (
                format!("cannot exec in container {container}: {e}"),
                Captured::default(),
            )
        })?;
    let (Some(stdout), Some(stderr), Some(status)) =
        (process.stdout(), process.stderr(), process.take_status())
    else {
        return Err((
            "the exec session has no output streams".into(),
            Captured::default(),
        ));
    };
    let (status, stdout, stderr) = session(status, stdout, stderr);
    let request = StreamBackup {
        file_name: record.file.clone(),
        volume: record.volume_label(),
        backup: backup.to_string(),
        progress: None,
        stall_after: Some(STALL),
    };
    let (stored, stderr, status) = tokio::join!(
        repo.backup_stream(request, stdout),
        capture_stream(stderr),
        status
    );
    let _ = process.join().await;
    let summary = stored.map_err(|e| (format!("storing the dump failed: {e}"), stderr.clone()))?;
    let failure = match exit_of(status, container) {
        Exit::Code(0) if summary.bytes_total == 0 => {
            "the dump command wrote nothing to stdout: an empty dump is not a backup".to_string()
        }
        Exit::Code(0) => return Ok((summary.snapshot_id, summary.bytes_total, stderr)),
        Exit::Code(c @ (126 | 127)) => {
            format!("command not found in container {container} (exit {c}): fix the dump command")
        }
        Exit::Code(c) => format!(
            "the dump command {} after {} bytes; the dump is not usable",
            exit_code_text(c),
            summary.bytes_total
        ),
        Exit::TimedOut(_) => "the dump command timed out".into(),
        Exit::Failed(why) => format!(
            "{why}, after {} bytes; the dump is incomplete",
            summary.bytes_total
        ),
    };
    // What was read is stored already: forget it, so no torn dump is ever restored.
    let failure = match repo.forget_snapshot(&summary.snapshot_id).await {
        Ok(()) => failure,
        Err(e) => format!(
            "{failure} (its partial snapshot {} could not be forgotten: {e}; `backup delete` \
             removes it)",
            summary.snapshot_id
        ),
    };
    Err((failure, stderr))
}

/// Feeds the dump `record` on the stdin of `command` in `pod`/`container`, closing stdin at
/// the end so clients such as `psql` and `mariadb` finish.
pub async fn feed_restore(
    pods: &Api<Pod>,
    repo: &VolumeRepo,
    pod: &str,
    container: &str,
    command: &[String],
    record: &DumpRecord,
) -> Result<(u64, String), String> {
    let snapshot = record
        .snapshot
        .clone()
        .ok_or_else(|| "the dump has no snapshot".to_string())?;
    let params = AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(pod, command, &params)
        .await
        .map_err(|e| format!("cannot exec in container {container}: {e}"))?;
    let (Some(mut stdin), Some(stdout), Some(stderr), Some(status)) = (
        process.stdin(),
        process.stdout(),
        process.stderr(),
        process.take_status(),
    ) else {
        return Err("the exec session has no streams".into());
    };
    let (status, stdout, stderr) = session(status, stdout, stderr);
    // The repository writes synchronously into one end of a pipe; the other end is copied
    // to the command's stdin, which is closed when the dump is done.
    let (pipe_in, mut pipe_out) = tokio::io::duplex(64 * 1024);
    let writer = tokio_util::io::SyncIoBridge::new(pipe_in);
    let dumped = repo.dump(&snapshot, &record.file, writer);
    let copied = async {
        let n = tokio::io::copy(&mut pipe_out, &mut stdin).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
        n
    };
    let (dumped, copied, out, err, status) = tokio::join!(
        dumped,
        copied,
        capture_stream(stdout),
        capture_stream(stderr),
        status
    );
    let _ = process.join().await;
    let output = [out.text(), err.text()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    // The command's own failure says most (a broken pipe only follows from it).
    match exit_of(status, container) {
        Exit::Code(0) => {
            let bytes =
                dumped.map_err(|e| format!("reading the dump from the repository failed: {e}"))?;
            copied.map_err(|e| format!("feeding the dump to container {container} failed: {e}"))?;
            Ok((bytes, output))
        }
        Exit::Code(c @ (126 | 127)) => Err(format!(
            "command not found in container {container} (exit {c}): fix {RESTORE_COMMAND}; output: {output}"
        )),
        Exit::Code(c) => Err(format!(
            "the restore command exited with code {c}; output: {output}"
        )),
        Exit::TimedOut(_) => Err("the restore command timed out".into()),
        Exit::Failed(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn vbackup_and_k8up_dump_annotations() {
        let r = dump_request(&map(&[
            (BACKUP_COMMAND, r#"["pg_dumpall","--clean"]"#),
            (BACKUP_COMMAND_CONTAINER, "db"),
            (FILE_EXTENSION, ".sql"),
        ]))
        .unwrap();
        assert_eq!(r.command.unwrap(), ["pg_dumpall", "--clean"]);
        assert_eq!(
            (r.container.as_deref(), r.extension.as_str()),
            (Some("db"), ".sql")
        );
        let r = dump_request(&map(&[
            (K8UP_BACKUP_COMMAND, "mysqldump -uroot --all-databases"),
            (K8UP_BACKUP_COMMAND_CONTAINER, "mariadb"),
            (K8UP_FILE_EXTENSION, ".sql"),
        ]))
        .unwrap();
        assert_eq!(
            r.command.unwrap(),
            ["/bin/sh", "-c", "mysqldump -uroot --all-databases"]
        );
        assert_eq!(r.origin, K8UP_BACKUP_COMMAND);
        assert!(dump_request(&map(&[(FILE_EXTENSION, ".sql")])).is_none());
        let bad = dump_request(&map(&[(BACKUP_COMMAND, "[\"x\"")])).unwrap();
        assert!(
            bad.command
                .unwrap_err()
                .starts_with("annotation vbackup.io/backup-command is not a JSON array")
        );
        let restore = restore_command(&map(&[(RESTORE_COMMAND, "psql -U postgres")])).unwrap();
        assert_eq!(restore.unwrap(), ["/bin/sh", "-c", "psql -U postgres"]);
    }
}
