//! Velero's backups seen as vbackup's records: listed, described and restored by the same
//! commands as vbackup's own.

use std::io::Read;
use std::time::Duration;

use flate2::read::GzDecoder;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::duration::parse_go_duration;
use super::types::{Backup, PodVolumeBackup, Results};
use crate::backups::record::{API_VERSION, BackupRecord, BackupStatus, Phase, Tally};
use crate::backups::{BackupSummary, VolumeRecord};
use crate::policy::Method;
use crate::resources::archive::{self, UnpackedArchive};
use crate::resources::request::BackupRequest;
use crate::resources::sanitize::sanitize;
use crate::resources::types::ObjectRef;
use crate::store::{Store, layout};
use crate::{Error, Result};

/// Why a kopia-era volume cannot come back through vbackup.
pub const KOPIA_UNREADABLE: &str =
    "kopia repository, not readable by vbackup; restore it with Velero ≤ 1.18";

/// Compressed side files (pod volume lists, results) are small; more is damage.
const MAX_SIDE_FILE_BYTES: u64 = 64 << 20;

/// The names of the Velero backups in the bucket (those with a `velero-backup.json`).
pub async fn backup_names(store: &Store) -> Result<Vec<String>> {
    let keys = store.list(layout::BACKUPS).await?;
    let mut names: Vec<String> = keys
        .iter()
        .filter_map(|k| k.key.strip_prefix(layout::BACKUPS))
        .filter_map(|rest| rest.strip_suffix("/velero-backup.json"))
        .filter(|name| !name.contains('/'))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// Every Velero backup in the bucket, as `backup get` lists them.
pub(crate) async fn backups(store: &Store) -> Result<Vec<BackupSummary>> {
    let mut out = Vec::new();
    for name in backup_names(store).await? {
        if let Some(record) = backup_opt(store, &name).await? {
            out.push(BackupSummary::Recorded(Box::new(record)));
        }
    }
    Ok(out)
}

/// One Velero backup as a vbackup record; `None` when the bucket has no such backup.
pub(crate) async fn backup_opt(store: &Store, name: &str) -> Result<Option<BackupRecord>> {
    let key = layout::velero_backup_metadata(name);
    let bytes = match store.get_bytes(&key).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let backup: Backup = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Corrupt(format!(
            "Velero's record of backup {name} ({key}) is unreadable: {e}"
        ))
    })?;
    let pvbs: Vec<PodVolumeBackup> = read_gz_json(
        store,
        &layout::velero_backup_file(name, "-podvolumebackups.json.gz"),
    )
    .await?
    .unwrap_or_default();
    let results: Results = read_gz_json(store, &layout::velero_backup_file(name, "-results.gz"))
        .await?
        .unwrap_or_default();
    let archive_bytes = store
        .head(&layout::velero_backup_file(name, ".tar.gz"))
        .await?
        .unwrap_or(0);
    Ok(Some(to_record(
        name,
        store.name(),
        backup,
        &pvbs,
        &results,
        archive_bytes,
    )))
}

/// The backup's objects, unpacked, with what the API server owns stripped as Velero's own
/// restore does (server metadata and status).
pub(crate) async fn archive(store: &Store, name: &str) -> Result<UnpackedArchive> {
    let key = layout::velero_backup_file(name, ".tar.gz");
    let reader = store.get(&key).await.map_err(|e| {
        if e.is_not_found() {
            Error::Corrupt(format!(
                "Velero backup {name} has no object archive ({key} is missing): the backup is \
                 incomplete; pick another backup"
            ))
        } else {
            e
        }
    })?;
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let backup = name.to_string();
    tokio::task::spawn_blocking(move || {
        archive::unpack_foreign(bridge, &backup, &|object| sanitize(object, true))
    })
    .await
    .map_err(|e| Error::Internal(format!("archive reader failed: {e}")))?
}

/// Names each restic volume by its claim, read from the backed-up pod: Velero records the
/// pod and its volume, vbackup restores claims. Volumes that are not claims, and second
/// copies of a claim several pods shared, get a message instead of a snapshot.
pub(crate) fn resolve_claims(volumes: &mut [VolumeRecord], archive: &UnpackedArchive) {
    let mut seen = std::collections::BTreeSet::new();
    for v in volumes.iter_mut() {
        let Some((pod, volume)) = v.pods.first().and_then(|p| p.split_once('/')) else {
            continue;
        };
        let (pod, volume) = (pod.to_string(), volume.to_string());
        let object = archive
            .read(&ObjectRef::namespaced("pods", &v.namespace, &pod))
            .ok();
        let claim = object.as_ref().and_then(|o| claim_of(o, &volume));
        match claim {
            Some(claim) if seen.insert((v.namespace.clone(), claim.clone())) => v.name = claim,
            Some(claim) => {
                v.name = claim.clone();
                v.phase = "Skipped".into();
                v.snapshot = None;
                v.message = Some(format!(
                    "claim {claim} was copied more than once (one copy per pod); restored once"
                ));
            }
            None if v.snapshot.is_some() => {
                v.snapshot = None;
                v.message = Some(match object {
                    Some(_) => format!(
                        "volume {volume} of pod {pod} is not a PersistentVolumeClaim: vbackup \
                         restores claim data only (copy it back with `kubectl vbackup snapshot \
                         restore`)"
                    ),
                    None => format!(
                        "pod {pod} is not in the backup's objects, so the claim behind its \
                         volume {volume} is unknown"
                    ),
                });
            }
            None => {}
        }
    }
}

/// The claim behind `volume` in a pod object.
fn claim_of(pod: &Value, volume: &str) -> Option<String> {
    pod.pointer("/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(volume))?
        .pointer("/persistentVolumeClaim/claimName")?
        .as_str()
        .map(str::to_string)
}

async fn read_gz_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
) -> Result<Option<T>> {
    let bytes = match store.get_bytes(key).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut json = Vec::new();
    GzDecoder::new(&bytes[..])
        .take(MAX_SIDE_FILE_BYTES)
        .read_to_end(&mut json)
        .map_err(|e| Error::Corrupt(format!("{key} is not a readable gzip file: {e}")))?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("{key} is unreadable: {e}")))
}

fn to_record(
    name: &str,
    location: &str,
    backup: Backup,
    pvbs: &[PodVolumeBackup],
    results: &Results,
    archive_bytes: u64,
) -> BackupRecord {
    let spec = backup.spec;
    let status = backup.status;
    let mut request = BackupRequest::new(name);
    request.namespaces.include = spec.included_namespaces.unwrap_or_default();
    request.namespaces.exclude = spec.excluded_namespaces.unwrap_or_default();
    request.resources.include = spec.included_resources.unwrap_or_default();
    request.resources.exclude = spec.excluded_resources.unwrap_or_default();
    request.selector = spec
        .label_selector
        .as_ref()
        .map(selector_text)
        .unwrap_or_default();
    request.include_cluster_resources = match spec.include_cluster_resources {
        None => crate::resources::request::ClusterResources::Auto,
        Some(true) => crate::resources::request::ClusterResources::True,
        Some(false) => crate::resources::request::ClusterResources::False,
    };
    request.storage_location = spec.storage_location.clone();
    request.ttl = spec
        .ttl
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(Duration::ZERO);
    request.labels = backup.metadata.labels;

    let phase = match status.phase.as_deref() {
        Some("Completed") => Phase::Completed,
        Some("PartiallyFailed") => Phase::PartiallyFailed,
        Some("Failed" | "FailedValidation") => Phase::Failed,
        _ => Phase::Incomplete,
    };
    let failure = status.failure_reason.clone().or_else(|| {
        status
            .validation_errors
            .as_ref()
            .filter(|e| !e.is_empty())
            .map(|e| e.join("; "))
    });
    let mut tally = Tally {
        error_count: status.errors.unwrap_or(0),
        ..Tally::default()
    };
    for line in results.errors.lines() {
        tally.warn(format!("error: {line}"));
    }
    for line in results.warnings.lines() {
        tally.warn(line);
    }
    if tally.warnings.is_empty() && status.warnings.unwrap_or(0) > 0 {
        tally.warn(format!(
            "{} warnings (Velero's results file is missing)",
            status.warnings.unwrap_or(0)
        ));
    }
    BackupRecord {
        api_version: API_VERSION.into(),
        kind: "Backup".into(),
        spec: request,
        status: BackupStatus {
            phase,
            failure,
            started: status
                .start_timestamp
                .or(backup.metadata.creation_timestamp)
                .unwrap_or_default(),
            completed: status.completion_timestamp,
            expires: status.expiration.unwrap_or_default(),
            location: location.to_string(),
            cluster_version: format!(
                "Velero backup format {}",
                status.format_version.as_deref().unwrap_or("1.0")
            ),
            tally,
            skipped: Vec::new(),
            archive_bytes,
            volumes: pvbs.iter().map(volume_record).collect(),
        },
    }
}

fn volume_record(pvb: &PodVolumeBackup) -> VolumeRecord {
    let label = format!("{}/{}", pvb.spec.pod.name, pvb.spec.volume);
    let phase = pvb.status.phase.as_deref().unwrap_or("Unknown");
    let mut v = VolumeRecord::new(pvb.spec.pod.namespace.as_str(), label.as_str(), phase);
    v.pods = vec![label];
    v.method = Some(Method::FsBackup);
    v.bytes = pvb
        .status
        .progress
        .as_ref()
        .and_then(|p| p.total_bytes)
        .unwrap_or(0);
    v.message = pvb.status.message.clone().filter(|m| !m.is_empty());
    let time = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    if let (Some(start), Some(end)) = (
        time(&pvb.status.start_timestamp),
        time(&pvb.status.completion_timestamp),
    ) {
        v.duration_seconds = end.duration_since(start).as_secs().max(0) as u64;
    }
    match pvb.spec.uploader_type.as_deref() {
        Some("kopia") => v.message = Some(KOPIA_UNREADABLE.into()),
        _ => v.snapshot = pvb.status.snapshot_id.clone().filter(|s| !s.is_empty()),
    }
    v
}

/// A label selector in `-l` syntax.
fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backup(value: Value) -> Backup {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_velero_record_reads_as_vbackup_record() {
        let b = backup(json!({
            "kind": "Backup", "apiVersion": "velero.io/v1",
            "metadata": {"name": "nightly", "labels": {"velero.io/schedule-name": "daily"},
                         "creationTimestamp": "2024-03-01T02:00:00Z"},
            "spec": {"includedNamespaces": ["shop"], "excludedResources": ["events"],
                     "labelSelector": {"matchLabels": {"app": "web"},
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                     "storageLocation": "default", "ttl": "720h0m0s"},
            "status": {"phase": "PartiallyFailed", "formatVersion": "1.1.0", "errors": 1, "warnings": 1,
                       "expiration": "2024-03-31T02:00:00Z", "startTimestamp": "2024-03-01T02:00:01Z",
                       "completionTimestamp": "2024-03-01T02:03:00Z"}
        }));
        let pvbs: Vec<PodVolumeBackup> = serde_json::from_value(json!([
            {"spec": {"pod": {"namespace": "shop", "name": "db-0"}, "volume": "data",
                      "uploaderType": "restic", "tags": {"backup": "nightly"}},
             "status": {"phase": "Completed", "snapshotID": "ab12cd34", "progress": {"totalBytes": 42},
                        "startTimestamp": "2024-03-01T02:00:05Z", "completionTimestamp": "2024-03-01T02:01:05Z"}},
            {"spec": {"pod": {"namespace": "shop", "name": "web-1"}, "volume": "uploads", "uploaderType": "kopia"},
             "status": {"phase": "Completed", "snapshotID": "k0p1a"}}
        ]))
        .unwrap();
        let results: Results = serde_json::from_value(json!({
            "errors": {"namespaces": {"shop": ["pod shop/x: exec failed"]}},
            "warnings": {"velero": ["volume snapshot skipped"]}
        }))
        .unwrap();
        let r = to_record("nightly", "old", b, &pvbs, &results, 1234);
        assert_eq!(r.spec.name, "nightly");
        assert_eq!(r.spec.namespaces.include, ["shop"]);
        assert_eq!(r.spec.resources.exclude, ["events"]);
        assert_eq!(r.spec.selector, "app=web,tier in (a,b)");
        assert_eq!(r.spec.ttl, Duration::from_secs(720 * 3600));
        assert_eq!(r.spec.labels["velero.io/schedule-name"], "daily");
        assert_eq!(r.status.phase, Phase::PartiallyFailed);
        assert_eq!(r.status.tally.error_count, 1);
        assert_eq!(
            r.status.tally.warnings,
            [
                "error: namespace shop: pod shop/x: exec failed",
                "velero: volume snapshot skipped"
            ]
        );
        assert_eq!(r.status.expires, "2024-03-31T02:00:00Z");
        assert_eq!(r.status.started, "2024-03-01T02:00:01Z");
        assert_eq!(r.status.location, "old");
        assert_eq!(r.status.archive_bytes, 1234);
        let [db, web] = &r.status.volumes[..] else {
            panic!("two volumes expected: {:?}", r.status.volumes)
        };
        assert_eq!(db.snapshot.as_deref(), Some("ab12cd34"));
        assert_eq!(db.bytes, 42);
        assert_eq!(db.duration_seconds, 60);
        assert_eq!(db.pods, ["db-0/data"]);
        assert_eq!(web.snapshot, None);
        assert_eq!(web.message.as_deref(), Some(KOPIA_UNREADABLE));
    }

    #[test]
    fn phases_velero_never_finished_are_incomplete() {
        for (velero, ours) in [
            ("InProgress", Phase::Incomplete),
            ("FailedValidation", Phase::Failed),
            ("Completed", Phase::Completed),
        ] {
            let b = backup(json!({"status": {"phase": velero}}));
            let r = to_record("b", "old", b, &[], &Results::default(), 0);
            assert_eq!(r.status.phase, ours, "{velero}");
        }
    }

    #[test]
    fn claims_are_found_through_the_backed_up_pods() {
        let pod = |name: &str, volumes: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
                   "spec": {"volumes": volumes}})
        };
        let objects = [
            pod(
                "db-0",
                json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]),
            ),
            pod(
                "web-1",
                json!([{"name": "shared", "persistentVolumeClaim": {"claimName": "uploads"}},
                                {"name": "cache", "emptyDir": {}}]),
            ),
            pod(
                "web-2",
                json!([{"name": "shared", "persistentVolumeClaim": {"claimName": "uploads"}}]),
            ),
        ];
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for o in &objects {
            let data = serde_json::to_vec(o).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            let path = format!(
                "resources/pods/namespaces/shop/{}.json",
                o["metadata"]["name"].as_str().unwrap()
            );
            tar.append_data(&mut h, path, &data[..]).unwrap();
        }
        let gz = tar.into_inner().unwrap().finish().unwrap();
        let unpacked = archive::unpack_foreign(&gz[..], "b", &|o| sanitize(o, true)).unwrap();
        let volume = |pod: &str, vol: &str| {
            let label = format!("{pod}/{vol}");
            let mut v = VolumeRecord::new("shop", label.as_str(), "Completed");
            v.pods = vec![label];
            v.snapshot = Some("s".into());
            v
        };
        let mut volumes = vec![
            volume("db-0", "data"),
            volume("web-1", "shared"),
            volume("web-2", "shared"),
            volume("web-1", "cache"),
            volume("gone", "data"),
        ];
        resolve_claims(&mut volumes, &unpacked);
        assert_eq!(volumes[0].name, "data-db-0");
        assert_eq!(volumes[0].snapshot.as_deref(), Some("s"));
        assert_eq!(volumes[1].name, "uploads");
        assert_eq!(volumes[2].phase, "Skipped");
        assert!(volumes[3].snapshot.is_none());
        assert!(
            volumes[3]
                .message
                .as_deref()
                .unwrap()
                .contains("not a PersistentVolumeClaim")
        );
        assert!(
            volumes[4]
                .message
                .as_deref()
                .unwrap()
                .contains("not in the backup's objects")
        );
    }
}
