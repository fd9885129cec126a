//! Single files and folders from a backed-up volume: listed and restored straight from the
//! location (no pod), or put back into the claim in place through a mover.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use super::job::{MoverJob, MoverResult, Work};
use super::launch::run_mover;
use super::mover_pod::{Direction, MoverPod, PodSecurityLevel, VOLUME_MOUNT, identity, mover_name};
use super::step::{COMPLETED, MoverStep};
use crate::backups::{BackupRecord, VolumeRecord};
use crate::cluster::list_all;
use crate::keys::RepoSecrets;
use crate::repo::EntryKind;
use crate::{Error, Result};

/// The copied volume of claim `namespace/claim` in a backup, with a clear error when the backup
/// has none (never copied, failed, kept as a CSI snapshot only).
pub fn copied_volume<'a>(
    record: &'a BackupRecord,
    namespace: &str,
    claim: &str,
) -> Result<&'a VolumeRecord> {
    let backup = record.name();
    let v = record
        .status
        .volumes
        .iter()
        .find(|v| v.namespace == namespace && v.name == claim)
        .ok_or_else(|| {
            let known: Vec<String> = record
                .status
                .volumes
                .iter()
                .filter(|v| v.snapshot.is_some())
                .map(|v| format!("{}/{}", v.namespace, v.name))
                .collect();
            Error::BadInput(format!(
                "backup {backup} has no volume for claim {namespace}/{claim}; it has: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })?;
    if v.phase != COMPLETED || v.snapshot.is_none() {
        return Err(Error::BadInput(format!(
            "backup {backup} did not copy claim {namespace}/{claim} into the location ({}{})",
            v.phase,
            v.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )));
    }
    Ok(v)
}

/// Where a restored `path` lands inside the volume root: a folder onto itself, a file into
/// its parent folder.
pub fn target_in_volume(path: &str, kind: EntryKind) -> String {
    let path = path.trim_matches('/');
    let dir = if kind == EntryKind::Dir {
        path
    } else {
        path.rsplit_once('/').map_or("", |(parent, _)| parent)
    };
    if dir.is_empty() {
        VOLUME_MOUNT.to_string()
    } else {
        format!("{VOLUME_MOUNT}/{dir}")
    }
}

impl MoverStep {
    /// Proves pods reach the location: a probe mover in `namespace` writes, reads back and
    /// deletes an object (`location check --from-cluster`).
    pub async fn probe(&self, client: &Client, namespace: &str) -> Result<()> {
        let (store, location_volume) =
            super::step::mover_access(&self.location, self.credentials.as_ref())?;
        let ns_labels = super::plan::namespace_labels(client, namespace).await?;
        let mover = MoverPod {
            name: mover_name()?,
            namespace: namespace.into(),
            image: self.settings.image.clone(),
            claim: None,
            direction: Direction::Probe,
            node: None,
            tolerations: Vec::new(),
            identity: identity(
                Direction::Probe,
                PodSecurityLevel::of_namespace(&ns_labels),
                &Default::default(),
            ),
            location_volume,
            operation: "location-check".into(),
        };
        let job = MoverJob {
            location: self.location.metadata.name.clone().unwrap_or_default(),
            store,
            access_mode: self.location.spec.access_mode,
            format: self.location.spec.format,
            namespace: namespace.into(),
            repo_password: String::new(),
            master_key: None,
            work: Work::Probe,
            stall_seconds: 60,
        };
        let result = run_mover(
            client,
            &mover,
            &job,
            None,
            self.settings.timeouts,
            &self.cancel,
        )
        .await?;
        match result.error {
            Some(e) => Err(Error::BadInput(format!(
                "pods cannot use location {}: {e}",
                job.location
            ))),
            None => Ok(()),
        }
    }

    /// Puts `path` of a snapshot back into claim `namespace/claim` in place, through a mover
    /// on the node of a pod using the claim (if any).
    #[allow(clippy::too_many_arguments)]
    pub async fn restore_path_into_claim(
        &self,
        client: &Client,
        namespace: &str,
        claim: &str,
        repo_namespace: &str,
        secrets: &RepoSecrets,
        snapshot: &str,
        path: &str,
        kind: EntryKind,
    ) -> Result<MoverResult> {
        let (store, location_volume) =
            super::step::mover_access(&self.location, self.credentials.as_ref())?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let user = list_all(&pods, ListParams::default())
            .await
            .map_err(Error::kube(format!("cannot list pods in {namespace}")))?
            .into_iter()
            .find(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.volumes.as_ref())
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.persistent_volume_claim
                                .as_ref()
                                .is_some_and(|c| c.claim_name == claim)
                        })
                    })
            });
        let ns_labels = super::plan::namespace_labels(client, namespace).await?;
        let app = user
            .as_ref()
            .map(super::mover_pod::AppSecurity::of_pod)
            .unwrap_or_default();
        let mover = MoverPod {
            name: mover_name()?,
            namespace: namespace.into(),
            image: self.settings.image.clone(),
            claim: Some(claim.into()),
            direction: Direction::Restore,
            node: user
                .as_ref()
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.clone()),
            tolerations: user
                .as_ref()
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default(),
            identity: identity(
                Direction::Restore,
                PodSecurityLevel::of_namespace(&ns_labels),
                &app,
            ),
            location_volume,
            operation: "snapshot-restore".into(),
        };
        let job = MoverJob {
            location: self.location.metadata.name.clone().unwrap_or_default(),
            store,
            access_mode: self.location.spec.access_mode,
            format: self.location.spec.format,
            namespace: repo_namespace.into(),
            repo_password: secrets.password.reveal().to_string(),
            master_key: secrets.master_key.clone(),
            work: Work::Restore {
                snapshot: snapshot.into(),
                target: target_in_volume(path, kind),
                path: Some(path.into()),
            },
            stall_seconds: self
                .settings
                .timeouts
                .stall
                .as_secs()
                .saturating_sub(60)
                .max(30),
        };
        let progress = self
            .observer
            .started(namespace, claim, crate::policy::Method::FsBackup);
        let result = run_mover(
            client,
            &mover,
            &job,
            progress,
            self.settings.timeouts,
            &self.cancel,
        )
        .await?;
        match &result.error {
            Some(e) => Err(Error::Repo {
                op: "restore",
                namespace: repo_namespace.into(),
                detail: e.clone(),
            }),
            None => Ok(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_in_their_folder_and_folders_onto_themselves() {
        assert_eq!(
            target_in_volume("files/a.txt", EntryKind::File),
            "/vbackup/volume/files"
        );
        assert_eq!(
            target_in_volume("/a.txt", EntryKind::File),
            "/vbackup/volume"
        );
        assert_eq!(
            target_in_volume("files/d01/", EntryKind::Dir),
            "/vbackup/volume/files/d01"
        );
    }
}
