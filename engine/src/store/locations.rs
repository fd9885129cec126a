//! `BackupStorageLocation` objects in the cluster: find, create, check, open.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use super::key_secret::{self, KeySecrets};
use super::location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, BackupStorageLocationStatus,
    Format, LocationPhase, Provider,
};
use super::s3::{S3Backend, S3Credentials};
use super::{LocationCheck, ObjectBackend, Store, credentials, fs::FsBackend};
use crate::keys::{self, LocationKey, RepoPassword};
use crate::repo::{self, LocationRepos, RepoOptions, VolumeRepo};
use crate::{Error, Result};

const FIELD_MANAGER: &str = "kubectl-vbackup";

/// The storage locations of one cluster, kept in vbackup's system namespace.
#[derive(Clone)]
pub struct Locations {
    client: Client,
    namespace: String,
    api: Api<BackupStorageLocation>,
    keys: KeySecrets,
}

/// What `Locations::create` made.
#[derive(Debug)]
pub struct Created {
    /// The saved location.
    pub location: BackupStorageLocation,
    /// What the check found; `None` when it was skipped.
    pub check: Option<LocationCheck>,
    /// Where the location key came from.
    pub key: KeyOrigin,
}

/// Where a new location's key came from.
#[derive(Debug)]
pub enum KeyOrigin {
    /// Freshly generated: show it to the user once, it is not shown again.
    Generated(LocationKey),
    /// Given by the user (`--key-file`), and it opens every repository already there.
    Imported,
    /// Kept from a key Secret left by an earlier location of the same name.
    Existing,
    /// A Velero bucket: read with Velero's own repository password, no location key.
    NotNeeded,
}

impl Locations {
    /// Locations in `namespace` (normally [`super::location::SYSTEM_NAMESPACE`]).
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        let api = Api::namespaced(client.clone(), &namespace);
        let keys = KeySecrets::new(client.clone(), &namespace);
        Locations {
            client,
            namespace,
            api,
            keys,
        }
    }

    /// Fails with [`Error::CrdMissing`] when the cluster does not know the resource.
    pub async fn ensure_crd(&self) -> Result<()> {
        let api_version = BackupStorageLocation::api_version(&());
        match self.client.list_api_group_resources(&api_version).await {
            Ok(list)
                if list
                    .resources
                    .iter()
                    .any(|r| r.name == BackupStorageLocation::plural(&())) =>
            {
                Ok(())
            }
            Ok(_) => Err(Error::CrdMissing {
                kind: "BackupStorageLocation",
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::CrdMissing {
                kind: "BackupStorageLocation",
            }),
            Err(e) => Err(Error::kube("cannot reach the Kubernetes API")(e)),
        }
    }

    /// One location by name.
    pub async fn get(&self, name: &str) -> Result<BackupStorageLocation> {
        self.ensure_crd().await?;
        self.api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("cannot read location {name}")))?
            .ok_or_else(|| Error::LocationNotFound {
                name: name.into(),
                namespace: self.namespace.clone(),
            })
    }

    /// Every location, sorted by name.
    pub async fn list(&self) -> Result<Vec<BackupStorageLocation>> {
        self.ensure_crd().await?;
        let mut items = self
            .api
            .list(&Default::default())
            .await
            .map_err(Error::kube("cannot list locations"))?
            .items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items)
    }

    /// The named location; when `name` is `None`, the default one, or the only one.
    pub async fn resolve(&self, name: Option<&str>) -> Result<BackupStorageLocation> {
        if let Some(name) = name {
            return self.get(name).await;
        }
        let all = self.list().await?;
        let mut defaults = all.iter().filter(|l| l.spec.default);
        match (defaults.next(), defaults.next(), all.len()) {
            (Some(only), None, _) => Ok(only.clone()),
            (Some(_), Some(_), _) => Err(Error::BadInput(
                "several storage locations are marked default: pass --storage-location NAME".into(),
            )),
            // A single location is unambiguous even when nobody marked it default.
            (None, _, 1) => Ok(all[0].clone()),
            (None, _, 0) => Err(Error::BadInput(
                "no storage location: create one with `kubectl vbackup location create`".into(),
            )),
            (None, _, _) => Err(Error::BadInput(
                "no default storage location: pass --storage-location NAME, or mark one with \
                 `kubectl vbackup location create … --default`"
                    .into(),
            )),
        }
    }

    /// Validates `spec`, optionally checks the store works, then creates the location and,
    /// unless one exists already, its key Secret.
    ///
    /// Nothing is created when validation or the check fails, so a typo never leaves a
    /// half-configured location behind. With the check on, the key (given, kept or new) must
    /// open every repository already in the store, so one location never mixes keys.
    pub async fn create(
        &self,
        name: &str,
        spec: BackupStorageLocationSpec,
        check: bool,
        key: Option<LocationKey>,
    ) -> Result<Created> {
        spec.validate()?;
        self.ensure_crd().await?;
        if spec.format == Format::Velero {
            return self.create_velero(name, spec, check).await;
        }
        self.ensure_absent(name).await?;
        let mut location = BackupStorageLocation::new(name, spec);
        location.metadata.namespace = Some(self.namespace.clone());
        let existing = self.keys.read(name, key_secret::CURRENT).await?;
        let never_shown = existing.is_some() && self.keys.never_shown(name).await?;
        let (key, origin) = match (key, &existing) {
            (Some(given), _) => (given, KeyOrigin::Imported),
            // Left by a create that stopped before the location existed: the user never saw it.
            (None, Some(kept)) if never_shown => (kept.clone(), KeyOrigin::Generated(kept.clone())),
            (None, Some(kept)) => (kept.clone(), KeyOrigin::Existing),
            (None, None) => {
                let fresh = LocationKey::generate()?;
                (fresh.clone(), KeyOrigin::Generated(fresh))
            }
        };
        let report = if check {
            if let Provider::Filesystem = location.spec.provider
                && location.spec.access_mode == AccessMode::ReadWrite
                && let Some(fs) = &location.spec.filesystem
            {
                tokio::fs::create_dir_all(&fs.path)
                    .await
                    .map_err(Error::io("create directory", &fs.path))?;
            }
            let store = self.open(&location).await?;
            let report = store.check().await?;
            if let Err(e) = verify_key(&store, &key).await {
                return Err(match (&origin, e) {
                    (KeyOrigin::Generated(_), Error::WrongLocationKey { .. }) => {
                        Error::BadInput(format!(
                            "{} already holds volume repositories sealed with another key: pass \
                         --key-file FILE with the key printed when that location was first created",
                            store.url()
                        ))
                    }
                    (_, e) => e,
                });
            }
            Some(report)
        } else {
            None
        };
        self.ensure_namespace().await?;
        let generated = matches!(origin, KeyOrigin::Generated(_));
        let wrote_key = !matches!(origin, KeyOrigin::Existing);
        if wrote_key {
            // A generated key stays marked "not shown" until the location exists, so a create
            // stopped in between (killed, or the API refusing the location) shows it on retry.
            self.keys
                .write(
                    name,
                    key_secret::CURRENT,
                    &key,
                    &[key_secret::PENDING],
                    generated,
                )
                .await?;
        }
        let created = match self.create_object(name, &location).await {
            Ok(created) => created,
            Err(e) => {
                // The key and the location are one thing to the user: undo the key this call
                // wrote, so a retry starts from the state before it.
                let previous = existing.as_ref().map(|k| (k, never_shown));
                if wrote_key && let Err(undo) = self.keys.restore(name, previous).await {
                    tracing::warn!(location = name, error = %undo, "cannot undo the key Secret");
                }
                return Err(e);
            }
        };
        if generated && let Err(e) = self.keys.mark_shown(name).await {
            // Harmless: the key is shown again by the next create of this name.
            tracing::warn!(location = name, error = %e, "cannot mark the location key as shown");
        }
        Ok(self.created(name, created, report, origin).await)
    }

    /// Refuses a name already taken: create never replaces a location.
    async fn ensure_absent(&self, name: &str) -> Result<()> {
        let existing = self
            .api
            .get_opt(name)
            .await
            .map_err(Error::kube("cannot read locations"))?;
        match existing {
            Some(_) => Err(Error::BadInput(format!(
                "storage location {name} already exists: delete it first or pick another name"
            ))),
            None => Ok(()),
        }
    }

    /// The result of a create, with the passed check recorded on the location's status.
    async fn created(
        &self,
        name: &str,
        created: BackupStorageLocation,
        report: Option<LocationCheck>,
        key: KeyOrigin,
    ) -> Created {
        let location = match report {
            Some(_) => self.record_check(name, &Ok(())).await.unwrap_or(created),
            None => created,
        };
        Created {
            location,
            check: report,
            key,
        }
    }

    /// Creates the location object, first making it the only default when it is one.
    async fn create_object(
        &self,
        name: &str,
        location: &BackupStorageLocation,
    ) -> Result<BackupStorageLocation> {
        if location.spec.default {
            self.clear_other_defaults(name).await?;
        }
        self.api
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                location,
            )
            .await
            .map_err(Error::kube(format!("cannot create location {name}")))
    }

    /// The location's key, from its Secret.
    pub async fn key(&self, name: &str) -> Result<LocationKey> {
        self.keys.current(name).await
    }

    /// Makes `key` the location's key after checking it opens every repository in the store
    /// (a new cluster reading an old cluster's backups); returns those namespaces.
    pub async fn import_key(&self, name: &str, key: &LocationKey) -> Result<Vec<String>> {
        let location = self.get(name).await?;
        let store = self.open(&location).await?;
        let namespaces = verify_key(&store, key).await?;
        self.keys
            .write(
                name,
                key_secret::CURRENT,
                key,
                &[key_secret::PENDING],
                false,
            )
            .await?;
        Ok(namespaces)
    }

    /// Replaces the location key with a new one and re-seals every repository password with
    /// it; returns the new key (to show once) and the re-sealed namespaces.
    ///
    /// The new key is saved as pending before any repository is touched, so an interrupted
    /// rotation resumes with the same key when run again.
    pub async fn rotate_key(&self, name: &str) -> Result<(LocationKey, Vec<String>)> {
        let location = self.get(name).await?;
        let store = self.open(&location).await?;
        store.ensure_writable()?;
        let old = self.keys.current(name).await?;
        let new = match self.keys.read(name, key_secret::PENDING).await? {
            Some(pending) => pending,
            None => {
                let fresh = LocationKey::generate()?;
                self.keys
                    .write(name, key_secret::PENDING, &fresh, &[], false)
                    .await?;
                fresh
            }
        };
        let namespaces = repo::rotate_location_key(&store, &old, &new).await?;
        reseal_archive_key(&store, &old, &new).await?;
        self.keys
            .write(
                name,
                key_secret::CURRENT,
                &new,
                &[key_secret::PENDING],
                false,
            )
            .await?;
        Ok((new, namespaces))
    }

    /// Every namespace repository of the location behind `store`, each opened once for the
    /// whole operation. Refused on a ReadOnly location: what they are opened for writes.
    pub async fn repositories(&self, store: &Store) -> Result<LocationRepos> {
        store.ensure_writable()?;
        let namespaces = repo::list_repositories(store).await?;
        // A location without repositories needs no key (it may never have had volume data).
        let key = match namespaces.is_empty() {
            true => None,
            false => Some(self.keys.current(store.name()).await?),
        };
        Ok(LocationRepos::new(store, namespaces, key))
    }

    /// The password of a namespace's repository, for the stock `restic`/`rustic` tools.
    pub async fn repo_password(&self, name: &str, namespace: &str) -> Result<RepoPassword> {
        let location = self.get(name).await?;
        let store = self.open(&location).await?;
        let key = self.keys.current(name).await?;
        let repo = VolumeRepo::open(&store, namespace, &key, RepoOptions::default()).await?;
        if store.ensure_writable().is_ok() {
            repo.ensure_password_key().await?;
        }
        Ok(repo.password().clone())
    }

    /// Deletes the location object; the data in the store is left untouched.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.get(name).await?;
        self.api
            .delete(name, &DeleteParams::default())
            .await
            .map_err(Error::kube(format!("cannot delete location {name}")))?;
        Ok(())
    }

    /// Switches a location between `ReadWrite` and `ReadOnly`.
    pub async fn set_access_mode(
        &self,
        name: &str,
        mode: AccessMode,
    ) -> Result<BackupStorageLocation> {
        let location = self.get(name).await?;
        if location.spec.format == Format::Velero && mode == AccessMode::ReadWrite {
            return Err(Error::BadInput(format!(
                "location {name} is a Velero bucket: vbackup only reads it, it stays ReadOnly"
            )));
        }
        self.api
            .patch(
                name,
                &self.patch_params(),
                &Patch::Merge(json!({ "spec": { "accessMode": mode } })),
            )
            .await
            .map_err(Error::kube(format!("cannot update location {name}")))
    }

    /// Makes a location the only default one.
    pub async fn set_default(&self, name: &str) -> Result<BackupStorageLocation> {
        self.get(name).await?;
        self.clear_other_defaults(name).await?;
        self.api
            .patch(
                name,
                &self.patch_params(),
                &Patch::Merge(json!({ "spec": { "default": true } })),
            )
            .await
            .map_err(Error::kube(format!("cannot update location {name}")))
    }

    /// Checks a location (reachability, bucket, probe round trip when writable) and records
    /// the outcome in its status.
    pub async fn check(
        &self,
        name: &str,
    ) -> Result<(BackupStorageLocation, Result<LocationCheck>)> {
        let location = self.get(name).await?;
        let outcome = match self.open(&location).await {
            Ok(store) => store.check().await,
            Err(e) => Err(e),
        };
        let as_unit = outcome.as_ref().map(drop).map_err(ToString::to_string);
        let updated = self.record_check(name, &as_unit).await?;
        Ok((updated, outcome))
    }

    /// Opens the object store a location points at, reading its credentials Secret.
    pub async fn open(&self, location: &BackupStorageLocation) -> Result<Store> {
        let name = location.metadata.name.clone().unwrap_or_default();
        let spec = &location.spec;
        spec.validate()?;
        let backend: Arc<dyn ObjectBackend> = match (spec.provider, &spec.s3, &spec.filesystem) {
            (Provider::S3, Some(s3), _) => {
                let creds = self.credentials(location).await?.ok_or_else(|| {
                    Error::Internal(format!(
                        "location {name}: no credentials for an S3 location"
                    ))
                })?;
                Arc::new(S3Backend::new(s3, creds)?)
            }
            (Provider::Filesystem, _, Some(fs)) => Arc::new(FsBackend::new(&fs.path)),
            _ => {
                return Err(Error::BadInput(format!(
                    "location {name} is incomplete: recreate it"
                )));
            }
        };
        let store = Store::new(&name, backend, spec.access_mode);
        match spec.format {
            // Archives and item logs are encrypted with the location key; a location without
            // one (being imported) still lists and describes.
            Format::Vbackup => Ok(match self.keys.read(&name, key_secret::CURRENT).await? {
                Some(key) => store.with_key(key),
                None => store,
            }),
            Format::Velero => Ok(store.into_velero(self.velero_repo_password(location).await?)),
        }
    }

    /// The S3 credentials of a location, from its Secret (`None` for a directory).
    pub async fn credentials(
        &self,
        location: &BackupStorageLocation,
    ) -> Result<Option<S3Credentials>> {
        let name = location.metadata.name.clone().unwrap_or_default();
        let Some(s3) = &location.spec.s3 else {
            return Ok(None);
        };
        let secret_name = s3.credentials_secret.as_ref().map(|s| s.name.as_str()).ok_or_else(|| {
            Error::BadInput(format!(
                "location {name} has no credentials Secret: recreate it with --credentials-secret NAME"
            ))
        })?;
        let secret = self.secret(secret_name).await?;
        credentials::from_secret_data(secret_name, &secret.data.unwrap_or_default()).map(Some)
    }

    /// The password of a Velero bucket's restic repositories: the `repository-password` of
    /// the location's Secret, else Velero's built-in default.
    async fn velero_repo_password(&self, location: &BackupStorageLocation) -> Result<RepoPassword> {
        let Some(secret_ref) = &location.spec.repository_password_secret else {
            return Ok(RepoPassword::from_text(
                crate::velero::DEFAULT_REPO_PASSWORD.into(),
            ));
        };
        let secret = self.secret(&secret_ref.name).await?;
        let data = secret.data.unwrap_or_default();
        let value = data.get(crate::velero::REPO_PASSWORD_KEY).ok_or_else(|| {
            Error::BadInput(format!(
                "Secret {} has no key {}: Velero keeps the repository password there \
                 (copy Velero's velero-repo-credentials Secret into namespace {})",
                secret_ref.name,
                crate::velero::REPO_PASSWORD_KEY,
                self.namespace
            ))
        })?;
        let text = String::from_utf8(value.0.clone()).map_err(|_| {
            Error::BadInput(format!(
                "Secret {}: {} is not text",
                secret_ref.name,
                crate::velero::REPO_PASSWORD_KEY
            ))
        })?;
        Ok(RepoPassword::from_text(
            text.trim_end_matches('\n').to_string(),
        ))
    }

    /// Creates a read-only location over a Velero bucket: no location key (Velero's
    /// repositories have their own password); the check reads the bucket's backup list.
    async fn create_velero(
        &self,
        name: &str,
        spec: BackupStorageLocationSpec,
        check: bool,
    ) -> Result<Created> {
        self.ensure_absent(name).await?;
        let mut location = BackupStorageLocation::new(name, spec);
        location.metadata.namespace = Some(self.namespace.clone());
        let report = if check {
            let store = self.open(&location).await?;
            let report = store.check().await?;
            crate::velero::catalog::backup_names(&store).await?;
            Some(report)
        } else {
            None
        };
        self.ensure_namespace().await?;
        let created = self.create_object(name, &location).await?;
        Ok(self
            .created(name, created, report, KeyOrigin::NotNeeded)
            .await)
    }

    async fn secret(&self, name: &str) -> Result<Secret> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        secrets.get_opt(name).await.map_err(Error::kube(format!("cannot read Secret {name}")))?.ok_or_else(|| {
            Error::BadInput(format!(
                "Secret {name} not found in namespace {ns}: create it with `kubectl create secret \
                 generic {name} -n {ns} --from-literal=AWS_ACCESS_KEY_ID=… \
                 --from-literal=AWS_SECRET_ACCESS_KEY=…`",
                ns = self.namespace
            ))
        })
    }

    async fn record_check(
        &self,
        name: &str,
        outcome: &std::result::Result<(), String>,
    ) -> Result<BackupStorageLocation> {
        let status = BackupStorageLocationStatus {
            phase: Some(if outcome.is_ok() {
                LocationPhase::Available
            } else {
                LocationPhase::Unavailable
            }),
            last_validation_time: Some(
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            ),
            message: Some(match outcome {
                Ok(()) => "reachable; probe object written, read back and deleted".into(),
                Err(e) => e.clone(),
            }),
        };
        self.api
            .patch_status(
                name,
                &self.patch_params(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .map_err(Error::kube(format!(
                "cannot record the check of location {name}"
            )))
    }

    async fn clear_other_defaults(&self, keep: &str) -> Result<()> {
        for other in self.list().await? {
            let other_name = other.metadata.name.clone().unwrap_or_default();
            if other.spec.default && other_name != keep {
                self.api
                    .patch(
                        &other_name,
                        &self.patch_params(),
                        &Patch::Merge(json!({ "spec": { "default": false } })),
                    )
                    .await
                    .map_err(Error::kube(format!(
                        "cannot unset default on location {other_name}"
                    )))?;
            }
        }
        Ok(())
    }

    async fn ensure_namespace(&self) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces
            .get_opt(&self.namespace)
            .await
            .map_err(Error::kube("cannot read namespaces"))?
            .is_none()
        {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(self.namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match namespaces.create(&PostParams::default(), &ns).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => {
                    return Err(Error::kube(format!(
                        "cannot create namespace {}",
                        self.namespace
                    ))(e));
                }
            }
        }
        Ok(())
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        }
    }
}

/// Checks `key` unseals every repository password in the store and its archive key;
/// returns the repositories' namespaces.
async fn verify_key(store: &Store, key: &LocationKey) -> Result<Vec<String>> {
    let namespaces = repo::list_repositories(store).await?;
    for ns in &namespaces {
        let sealed_key = super::layout::repo_sealed_key(ns);
        let sealed = store.get_bytes(&sealed_key).await?;
        if keys::unseal(key, ns, &sealed).is_err() {
            return Err(Error::WrongLocationKey {
                namespace: ns.clone(),
                location: store.name().to_string(),
                key_object: sealed_key,
            });
        }
    }
    match store.get_bytes(super::layout::ARCHIVE_KEY).await {
        Ok(sealed) if keys::stream::unseal_archive_key(key, &sealed).is_none() => {
            return Err(super::wrong_archive_key(store.name()));
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    Ok(namespaces)
}

/// Re-seals the location's archive key with `new` (done already when `new` opens it, so an
/// interrupted rotation resumes).
async fn reseal_archive_key(store: &Store, old: &LocationKey, new: &LocationKey) -> Result<()> {
    let sealed = match store.get_bytes(super::layout::ARCHIVE_KEY).await {
        Ok(sealed) => sealed,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if keys::stream::unseal_archive_key(new, &sealed).is_some() {
        return Ok(());
    }
    let archive_key = keys::stream::unseal_archive_key(old, &sealed)
        .ok_or_else(|| super::wrong_archive_key(store.name()))?;
    let resealed = keys::stream::seal_archive_key(new, &archive_key)?;
    store.put(super::layout::ARCHIVE_KEY, resealed).await
}
