//! The Secret that holds a location's key in the cluster.
//!
//! The key never leaves the Secret except when `location create` or `rotate-key` prints it
//! once, for safekeeping outside the cluster. A rotation in progress keeps the next key in
//! a second field, so an interrupted rotation resumes with the same key instead of stranding
//! repositories sealed with a key nobody has.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::keys::LocationKey;
use crate::{Error, Result};

/// Field of the Secret holding the current key, in its printable form.
pub const CURRENT: &str = "location-key";
/// Field holding the next key while a rotation is under way.
pub const PENDING: &str = "pending-location-key";
/// Annotation on a key Secret whose generated key has not been handed to the user yet.
pub const NOT_SHOWN: &str = "vbackup.io/location-key-not-shown";

/// The name of the key Secret of a location.
pub fn secret_name(location: &str) -> String {
    format!("{location}-location-key")
}

/// Reads and writes the key Secrets of one namespace.
#[derive(Clone)]
pub struct KeySecrets {
    api: Api<Secret>,
    namespace: String,
}

impl KeySecrets {
    /// Key Secrets in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        KeySecrets {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
        }
    }

    /// The field `field` of the location's key Secret, if the Secret and field exist.
    pub async fn read(&self, location: &str, field: &str) -> Result<Option<LocationKey>> {
        let name = secret_name(location);
        let secret = self
            .api
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("cannot read Secret {name}")))?;
        let Some(value) = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(field))
        else {
            return Ok(None);
        };
        let text = String::from_utf8(value.0)
            .map_err(|_| Error::Corrupt(format!("field {field} of Secret {name} is not text")))?;
        LocationKey::parse(&text)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("field {field} of Secret {name}: {e}")))
    }

    /// The current key, or an error that says how to import it.
    pub async fn current(&self, location: &str) -> Result<LocationKey> {
        self.read(location, CURRENT).await?.ok_or_else(|| {
            Error::BadInput(format!(
                "location {location} has no key in Secret {}/{}: import the key printed when the \
                 location was created with `kubectl vbackup location import-key {location} --key-file FILE`",
                self.namespace,
                secret_name(location)
            ))
        })
    }

    /// True when the location's key Secret is marked [`NOT_SHOWN`].
    pub async fn never_shown(&self, location: &str) -> Result<bool> {
        let name = secret_name(location);
        let secret = self
            .api
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("cannot read Secret {name}")))?;
        Ok(secret
            .and_then(|s| s.metadata.annotations)
            .is_some_and(|a| a.contains_key(NOT_SHOWN)))
    }

    /// Removes the [`NOT_SHOWN`] mark.
    pub async fn mark_shown(&self, location: &str) -> Result<()> {
        let name = secret_name(location);
        let patch = json!({ "metadata": { "annotations": { NOT_SHOWN: null } } });
        self.api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(Error::kube(format!("cannot update Secret {name}")))?;
        Ok(())
    }

    /// Sets `field` to `key` (creating the Secret if needed), removes the `remove` fields and
    /// sets or clears the [`NOT_SHOWN`] mark.
    pub async fn write(
        &self,
        location: &str,
        field: &str,
        key: &LocationKey,
        remove: &[&str],
        not_shown: bool,
    ) -> Result<()> {
        let name = secret_name(location);
        let exists = self
            .api
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("cannot read Secret {name}")))?;
        if exists.is_none() {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace.clone()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/part-of".into(),
                        "vbackup".into(),
                    )])),
                    annotations: not_shown
                        .then(|| BTreeMap::from([(NOT_SHOWN.into(), "true".into())])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    field.to_string(),
                    ByteString(key.to_text().into_bytes()),
                )])),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            self.api
                .create(&PostParams::default(), &secret)
                .await
                .map_err(Error::kube(format!("cannot create Secret {name}")))?;
            return Ok(());
        }
        let mut data = serde_json::Map::new();
        data.insert(field.into(), json!(base64_text(key)));
        for field in remove {
            data.insert((*field).into(), serde_json::Value::Null);
        }
        let mark = not_shown.then_some("true");
        let patch = json!({ "metadata": { "annotations": { NOT_SHOWN: mark } }, "data": data });
        self.api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(Error::kube(format!("cannot update Secret {name}")))?;
        Ok(())
    }

    /// Puts the current key back to `previous` (with its [`NOT_SHOWN`] mark), deleting the
    /// Secret when there was none.
    pub async fn restore(
        &self,
        location: &str,
        previous: Option<(&LocationKey, bool)>,
    ) -> Result<()> {
        if let Some((previous, not_shown)) = previous {
            return self
                .write(location, CURRENT, previous, &[PENDING], not_shown)
                .await;
        }
        let name = secret_name(location);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(format!("cannot delete Secret {name}"))(e)),
        }
    }
}

fn base64_text(key: &LocationKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.to_text())
}
