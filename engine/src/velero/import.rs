//! `velero import`: chosen Velero backups copied into a vbackup location, so the Velero
//! bucket can be retired. Each backup's objects are re-packed into vbackup's (encrypted)
//! archive, its restic volume snapshots are copied into the destination's per-namespace
//! repositories (opened or created with their sealed keys, as backups do), and its record
//! is written last, under the same name unless a prefix is asked for.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backups::record::Phase;
use crate::backups::{BackupRecord, Catalog, ItemLog, VolumeRecord};
use crate::keys::LocationKey;
use crate::keys::stream::Sealer;
use crate::repo::{RepoOptions, VolumeRepo};
use crate::resources::archive::{ArchiveWriter, UnpackedArchive};
use crate::resources::backup::write_record;
use crate::resources::request::validate_name;
use crate::resources::types::ObjectRef;
use crate::store::{Format, Store, layout};
use crate::{Error, Result};

/// The label every imported backup carries, with the value `velero`.
pub const IMPORTED_FROM_LABEL: &str = "vbackup.io/imported-from";
/// The label naming the Velero backup an imported backup was copied from.
pub const VELERO_BACKUP_LABEL: &str = "vbackup.io/velero-backup";
/// The snapshot tag naming the Velero snapshot a volume was copied from (`TAG=ID`).
const ORIGIN_TAG: &str = "velero-snapshot";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Put before each Velero backup's name to name the imported backup (`""`: same name).
    pub rename_prefix: String,
    /// How the destination's repositories are opened.
    pub repo: RepoOptions,
}

/// What happened to one Velero backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedBackup {
    /// The Velero backup.
    pub velero_backup: String,
    /// The backup in the destination.
    pub backup: String,
    /// False when an earlier import had brought it over already (nothing was written).
    pub imported: bool,
    /// The imported record's phase.
    pub phase: Phase,
    /// Objects in the re-packed archive.
    pub objects: u64,
    /// The backup's pod volumes.
    pub volumes: Vec<ImportedVolume>,
}

impl ImportedBackup {
    /// True when every volume with data came over.
    pub fn complete(&self) -> bool {
        self.volumes.iter().all(|v| v.error.is_none())
    }
}

/// What happened to one pod volume of a Velero backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedVolume {
    /// Namespace of the claim.
    pub namespace: String,
    /// The claim (or `POD/VOLUME` when the volume was not a claim's).
    pub name: String,
    /// The snapshot in the destination's repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// False when the snapshot was there already from an earlier import.
    pub copied: bool,
    /// Why the volume's data did not come over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Imports the Velero backups `names` of `source` (a Velero-format location) into `dest`
/// (a writable vbackup location whose key is `key`). Every name is checked before anything
/// is written; backups imported before are skipped.
pub async fn import(
    source: &Store,
    dest: &Store,
    key: &LocationKey,
    names: &[String],
    options: &ImportOptions,
) -> Result<Vec<ImportedBackup>> {
    check_locations(source, dest)?;
    if names.is_empty() {
        return Err(Error::BadInput(
            "name at least one Velero backup to import (`kubectl vbackup backup get \
             --storage-location LOCATION` lists them)"
                .into(),
        ));
    }
    let velero = Catalog::new(source.clone());
    let mut records = Vec::with_capacity(names.len());
    for name in names {
        let target = format!("{}{name}", options.rename_prefix);
        validate_name(&target, "backup")?;
        records.push((name, target, velero.backup(name).await?));
    }
    let mut repos = Repos::default();
    let mut out = Vec::with_capacity(records.len());
    for (name, target, record) in records {
        out.push(
            import_one(
                source, dest, key, name, &target, record, options, &mut repos,
            )
            .await?,
        );
    }
    Ok(out)
}

/// Refuses a source that is not a Velero bucket and a destination that is not a writable
/// vbackup location.
pub fn check_locations(source: &Store, dest: &Store) -> Result<()> {
    if source.format() != Format::Velero {
        return Err(Error::BadInput(format!(
            "location {} is not a Velero bucket: import reads from a location created with \
             `--format velero`",
            source.name()
        )));
    }
    if dest.format() != Format::Vbackup {
        return Err(Error::BadInput(format!(
            "location {} is a Velero bucket (read only): import into a vbackup location",
            dest.name()
        )));
    }
    dest.ensure_writable()
}

/// The repositories opened so far, by namespace: each is opened (scrypt, index) once.
#[derive(Default)]
struct Repos {
    source: BTreeMap<String, VolumeRepo>,
    dest: BTreeMap<String, VolumeRepo>,
}

#[allow(clippy::too_many_arguments)]
async fn import_one(
    source: &Store,
    dest: &Store,
    key: &LocationKey,
    name: &str,
    target: &str,
    mut record: BackupRecord,
    options: &ImportOptions,
    repos: &mut Repos,
) -> Result<ImportedBackup> {
    let ours = Catalog::new(dest.clone());
    if let Some(existing) = imported_before(&ours, name, target).await? {
        return Ok(summary(name, &existing, false));
    }
    let velero = Catalog::new(source.clone());
    let unpacked = velero.archive(name).await?;
    super::catalog::resolve_claims(&mut record.status.volumes, &unpacked).await;
    let (archive_bytes, log) = repack(dest, target, &unpacked, name).await?;

    let mut volumes = Vec::new();
    for v in &mut record.status.volumes {
        let mut outcome = ImportedVolume {
            namespace: v.namespace.clone(),
            name: v.name.clone(),
            snapshot: None,
            copied: false,
            error: None,
        };
        let Some(snapshot) = v.snapshot.clone() else {
            outcome.error = missing_data(v);
            volumes.push(outcome);
            continue;
        };
        let copied = copy_volume(source, dest, key, repos, options, v, &snapshot, target).await;
        match copied {
            Ok(c) => {
                v.snapshot = Some(c.snapshot_id.clone());
                // Velero's record has the bytes; restic ≥ 0.17 snapshots also count files.
                v.files = c.files;
                outcome.snapshot = Some(c.snapshot_id);
                outcome.copied = c.copied;
            }
            Err(e) => {
                let message = format!("copying Velero snapshot {snapshot} failed: {e}");
                v.phase = "Failed".into();
                v.snapshot = None;
                v.message = Some(message.clone());
                record
                    .status
                    .tally
                    .warn(format!("volume {}/{}: {message}", v.namespace, v.name));
                if record.status.phase == Phase::Completed {
                    record.status.phase = Phase::PartiallyFailed;
                }
                outcome.error = Some(message);
            }
        }
        volumes.push(outcome);
    }

    record.spec.name = target.to_string();
    record
        .spec
        .labels
        .insert(IMPORTED_FROM_LABEL.into(), "velero".into());
    record
        .spec
        .labels
        .insert(VELERO_BACKUP_LABEL.into(), name.to_string());
    record.spec.storage_location = Some(dest.name().to_string());
    record.status.location = dest.name().to_string();
    record.status.archive_bytes = archive_bytes;
    for object in &unpacked.objects {
        record.status.tally.count(&object.resource);
    }
    write_record(dest, &record, log).await?;
    let mut done = summary(name, &record, true);
    done.volumes = volumes;
    Ok(done)
}

/// The destination's record of `target` when an earlier import wrote it; an error when the
/// name is taken by another backup.
async fn imported_before(ours: &Catalog, name: &str, target: &str) -> Result<Option<BackupRecord>> {
    let existing = match ours.backup(target).await {
        Ok(record) => record,
        Err(Error::BackupNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let labels = &existing.spec.labels;
    if labels.get(IMPORTED_FROM_LABEL).map(String::as_str) == Some("velero")
        && labels.get(VELERO_BACKUP_LABEL).map(String::as_str) == Some(name)
    {
        return Ok(Some(existing));
    }
    Err(Error::BadInput(format!(
        "location {} has a backup named {target} already, not imported from Velero backup \
         {name}: import under another name with --rename-prefix",
        ours.store().name()
    )))
}

fn summary(name: &str, record: &BackupRecord, imported: bool) -> ImportedBackup {
    ImportedBackup {
        velero_backup: name.to_string(),
        backup: record.name().to_string(),
        imported,
        phase: record.status.phase,
        objects: record.status.tally.total(),
        volumes: record
            .status
            .volumes
            .iter()
            .map(|v| ImportedVolume {
                namespace: v.namespace.clone(),
                name: v.name.clone(),
                snapshot: v.snapshot.clone(),
                copied: false,
                error: missing_data(v),
            })
            .collect(),
    }
}

/// Why a volume has no data to restore (a kopia volume, a copy Velero did not finish);
/// `None` for volumes with data and for second copies of a shared claim.
fn missing_data(v: &VolumeRecord) -> Option<String> {
    if v.snapshot.is_some() || v.phase == "Skipped" {
        return None;
    }
    Some(
        v.message
            .clone()
            .unwrap_or_else(|| format!("Velero's copy of this volume ended {}", v.phase)),
    )
}

/// Writes the objects of `unpacked` as vbackup's archive of `target`, encrypted with the
/// location's archive key; returns the archive's size and the item log.
async fn repack(
    dest: &Store,
    target: &str,
    unpacked: &UnpackedArchive,
    velero_backup: &str,
) -> Result<(u64, ItemLog)> {
    let object_key = layout::backup_resources(target);
    let sealer = match dest.archive_key().await? {
        Some(key) => Some(Sealer::new(&key, &object_key)?),
        None => None,
    };
    let (pipe, mut reader) = tokio::io::duplex(256 * 1024);
    let upload_store = dest.clone();
    let upload =
        tokio::spawn(async move { upload_store.put_stream(&object_key, &mut reader).await });
    let mtime = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or_default();
    let reason = format!("imported from Velero backup {velero_backup}");
    let mut log = ItemLog::new();
    let mut archive = ArchiveWriter::new(pipe, target, mtime, sealer).await?;
    for object in &unpacked.objects {
        if let Err(e) = add_object(&mut archive, unpacked, object).await {
            // Stop the upload while the pipe is open, so no truncated archive is stored.
            upload.abort();
            let _ = upload.await;
            return Err(e);
        }
        log.record(object, "backed-up", Some(&reason));
    }
    let finished = archive.finish().await;
    // The upload's own error says more than the pipe's when it stopped first.
    let uploaded = upload
        .await
        .map_err(|e| Error::Internal(format!("the archive upload stopped: {e}")))?;
    finished?;
    Ok((uploaded?, log))
}

async fn add_object<W: tokio::io::AsyncWrite + Unpin>(
    archive: &mut ArchiveWriter<W>,
    unpacked: &UnpackedArchive,
    object: &ObjectRef,
) -> Result<()> {
    let value = unpacked.read(object).await?;
    let json = serde_json::to_vec(&value).map_err(|e| Error::Internal(e.to_string()))?;
    archive.add(object, &json).await
}

#[allow(clippy::too_many_arguments)]
async fn copy_volume(
    source: &Store,
    dest: &Store,
    key: &LocationKey,
    repos: &mut Repos,
    options: &ImportOptions,
    volume: &VolumeRecord,
    snapshot: &str,
    target: &str,
) -> Result<crate::repo::CopiedSnapshot> {
    let ns = &volume.namespace;
    if !repos.source.contains_key(ns) {
        let repo = VolumeRepo::open_existing(source, ns, None, RepoOptions::default()).await?;
        repos.source.insert(ns.clone(), repo);
    }
    if !repos.dest.contains_key(ns) {
        let (repo, _) = VolumeRepo::open_or_init(dest, ns, key, options.repo.clone()).await?;
        repos.dest.insert(ns.clone(), repo);
    }
    let (Some(from), Some(into)) = (repos.source.get(ns), repos.dest.get(ns)) else {
        return Err(Error::Internal(format!("repositories of {ns} not opened")));
    };
    let label = format!("pvc/{}", volume.name);
    into.import_snapshot(from, snapshot, &label, target, ORIGIN_TAG)
        .await
}
