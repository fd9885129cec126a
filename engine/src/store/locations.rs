//! `BackupStorageLocation` objects in the cluster: find, create, check, open.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use super::location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, BackupStorageLocationStatus,
    LocationPhase, Provider,
};
use super::{CheckReport, ObjectBackend, Store, credentials, fs::FsBackend, s3::S3Backend};
use crate::{Error, Result};

const FIELD_MANAGER: &str = "kubectl-vbackup";

/// The storage locations of one cluster, kept in vbackup's system namespace.
#[derive(Clone)]
pub struct Locations {
    client: Client,
    namespace: String,
    api: Api<BackupStorageLocation>,
}

impl Locations {
    /// Locations in `namespace` (normally [`super::location::SYSTEM_NAMESPACE`]).
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        let api = Api::namespaced(client.clone(), &namespace);
        Locations {
            client,
            namespace,
            api,
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
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "storage location {name} not found in namespace {}: list them with \
                     `kubectl vbackup location get`",
                    self.namespace
                ))
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

    /// The named location, or the default one when `name` is `None`.
    pub async fn resolve(&self, name: Option<&str>) -> Result<BackupStorageLocation> {
        if let Some(name) = name {
            return self.get(name).await;
        }
        let defaults: Vec<_> = self
            .list()
            .await?
            .into_iter()
            .filter(|l| l.spec.default)
            .collect();
        match defaults.len() {
            1 => Ok(defaults.into_iter().next().expect("one element")),
            0 => Err(Error::Invalid(
                "no default storage location: pass --storage-location NAME, or mark one with \
                 `kubectl vbackup location create … --default`"
                    .into(),
            )),
            _ => Err(Error::Invalid(
                "several storage locations are marked default: pass --storage-location NAME".into(),
            )),
        }
    }

    /// Validates `spec`, optionally checks the store works, then creates the location.
    ///
    /// Nothing is created when validation or the check fails, so a typo never leaves a
    /// half-configured location behind.
    pub async fn create(
        &self,
        name: &str,
        spec: BackupStorageLocationSpec,
        check: bool,
    ) -> Result<(BackupStorageLocation, Option<CheckReport>)> {
        spec.validate()?;
        self.ensure_crd().await?;
        if self
            .api
            .get_opt(name)
            .await
            .map_err(Error::kube("cannot read locations"))?
            .is_some()
        {
            return Err(Error::Invalid(format!(
                "storage location {name} already exists: delete it first or pick another name"
            )));
        }
        let mut location = BackupStorageLocation::new(name, spec);
        location.metadata.namespace = Some(self.namespace.clone());
        let report = if check {
            let store = self.open(&location).await?;
            if let Provider::Filesystem = location.spec.provider
                && location.spec.access_mode == AccessMode::ReadWrite
                && let Some(fs) = &location.spec.filesystem
            {
                tokio::fs::create_dir_all(&fs.path)
                    .await
                    .map_err(Error::io("create directory", &fs.path))?;
            }
            Some(store.check().await?)
        } else {
            None
        };
        self.ensure_namespace().await?;
        if location.spec.default {
            self.clear_other_defaults(name).await?;
        }
        let created = self
            .api
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &location,
            )
            .await
            .map_err(Error::kube(format!("cannot create location {name}")))?;
        let created = match report {
            Some(_) => self.record_check(name, &Ok(())).await.unwrap_or(created),
            None => created,
        };
        Ok((created, report))
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
        self.get(name).await?;
        self.api
            .patch(
                name,
                &self.patch_params(),
                &Patch::Merge(json!({ "spec": { "accessMode": mode } })),
            )
            .await
            .map_err(Error::kube(format!("cannot update location {name}")))
    }

    /// Checks a location (reachability, bucket, probe round trip when writable) and records
    /// the outcome in its status.
    pub async fn check(&self, name: &str) -> Result<(BackupStorageLocation, Result<CheckReport>)> {
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
                let secret_name = s3.credentials_secret.as_ref().map(|s| s.name.as_str()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "location {name} has no credentials Secret: recreate it with --credentials-secret NAME"
                    ))
                })?;
                let secret = self.secret(secret_name).await?;
                let creds =
                    credentials::from_secret_data(secret_name, &secret.data.unwrap_or_default())?;
                Arc::new(S3Backend::new(s3, creds)?)
            }
            (Provider::Filesystem, _, Some(fs)) => Arc::new(FsBackend::new(&fs.path)),
            _ => {
                return Err(Error::Invalid(format!(
                    "location {name} is incomplete: recreate it"
                )));
            }
        };
        Ok(Store::new(name, backend, spec.access_mode))
    }

    async fn secret(&self, name: &str) -> Result<Secret> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        secrets.get_opt(name).await.map_err(Error::kube(format!("cannot read Secret {name}")))?.ok_or_else(|| {
            Error::Invalid(format!(
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
