//! Each repository's sealed password (`repos/<ns>/vbackup-key.sealed`): created once, by
//! whichever writer comes first, and read by everyone after.

use rustic_core::repofile::MasterKey;
use tracing::{debug, info};

use super::validate_namespace;
use crate::keys::{self, LocationKey, RepoPassword, RepoSecrets, UnsealError};
use crate::store::{Store, layout};
use crate::{Error, Result};

/// The namespace's secrets: unsealed from the store or, when the namespace has no
/// repository yet, created with a fresh random password and master key.
///
/// Creation goes through [`Store::create_once`] (a conditional write, the stored object read
/// back whatever happened), so concurrent first backups of one namespace (two movers, two
/// clusters) all end up with the same secrets.
pub(crate) async fn load_or_create(
    store: &Store,
    namespace: &str,
    key: &LocationKey,
) -> Result<RepoSecrets> {
    let sealed_key = layout::repo_sealed_key(namespace);
    if store.head(&sealed_key).await?.is_some() {
        return unseal_stored(store, namespace, key).await;
    }
    store.ensure_writable()?;
    if store.head(&layout::repo_config(namespace)).await?.is_some() {
        return Err(Error::Repo {
            op: "open",
            namespace: namespace.into(),
            detail: format!(
                "{} has a repository but no {sealed_key}; it was not created by vbackup or its \
                 sealed password was deleted: restore that file",
                layout::repo_dir(namespace)
            ),
        });
    }
    // Seal first: a crash after this leaves a password and no repository (the next call
    // creates it), never a repository nobody can open.
    let master_key = serde_json::to_string(&MasterKey::new())
        .map_err(|e| Error::Internal(format!("encoding a new master key failed: {e}")))?;
    let fresh = RepoSecrets {
        password: RepoPassword::generate()?,
        master_key: Some(master_key),
    };
    let (created, sealed) = store
        .create_once(&sealed_key, keys::seal(key, namespace, &fresh)?)
        .await
        // Not found: the winner never finished its write.
        .map_err(|e| missing_if_not_found(e, store, namespace))?;
    if created {
        info!(namespace, "sealed a new repository password");
    } else {
        debug!(
            namespace,
            "another writer sealed the repository password first"
        );
    }
    // What is stored, not what this call sealed: where two writers raced, it is the one
    // both use.
    keys::unseal(key, namespace, &sealed).map_err(|e| unseal_error(store, namespace, e))
}

/// The repository password of a namespace, unsealed with `key` (for `repo password NS`).
pub async fn reveal_password(
    store: &Store,
    namespace: &str,
    key: &LocationKey,
) -> Result<RepoPassword> {
    validate_namespace(namespace)?;
    Ok(unseal_stored(store, namespace, key).await?.password)
}

/// Namespaces that have a repository (a sealed password) in the location.
pub async fn list_repositories(store: &Store) -> Result<Vec<String>> {
    let objects = store.list(layout::REPOS).await?;
    let namespaces = layout::child_names(layout::REPOS, objects.iter().map(|o| o.key.as_str()));
    Ok(namespaces
        .into_iter()
        .filter(|ns| {
            let sealed = layout::repo_sealed_key(ns);
            objects.iter().any(|o| o.key == sealed)
        })
        .collect())
}

/// Re-seals every repository password of the location with `new`; returns the namespaces.
///
/// Every password is unsealed before anything is written, so a wrong `old` key changes
/// nothing. A repository already sealed with `new` (a re-run after an interruption) is
/// accepted as is.
pub async fn rotate_location_key(
    store: &Store,
    old: &LocationKey,
    new: &LocationKey,
) -> Result<Vec<String>> {
    store.ensure_writable()?;
    let namespaces = list_repositories(store).await?;
    let mut resealed = Vec::with_capacity(namespaces.len());
    for ns in &namespaces {
        let sealed = store.get_bytes(&layout::repo_sealed_key(ns)).await?;
        let secrets = match keys::unseal(old, ns, &sealed) {
            Ok(secrets) => Some(secrets),
            Err(_) if keys::unseal(new, ns, &sealed).is_ok() => None,
            Err(e) => return Err(unseal_error(store, ns, e)),
        };
        resealed.push((ns.clone(), secrets));
    }
    for (ns, secrets) in &resealed {
        if let Some(secrets) = secrets {
            store
                .put(&layout::repo_sealed_key(ns), keys::seal(new, ns, secrets)?)
                .await?;
        }
    }
    Ok(namespaces)
}

/// The secrets sealed next to the namespace's repository.
pub(crate) async fn unseal_stored(
    store: &Store,
    namespace: &str,
    key: &LocationKey,
) -> Result<RepoSecrets> {
    let sealed = store
        .get_bytes(&layout::repo_sealed_key(namespace))
        .await
        .map_err(|e| missing_if_not_found(e, store, namespace))?;
    keys::unseal(key, namespace, &sealed).map_err(|e| unseal_error(store, namespace, e))
}

/// A missing sealed password means the namespace has no repository (yet).
fn missing_if_not_found(e: Error, store: &Store, namespace: &str) -> Error {
    if !e.is_not_found() {
        return e;
    }
    Error::RepoMissing {
        namespace: namespace.into(),
        location: store.name().into(),
        key_object: layout::repo_sealed_key(namespace),
    }
}

fn unseal_error(store: &Store, namespace: &str, err: UnsealError) -> Error {
    match err {
        UnsealError::WrongKey => Error::WrongLocationKey {
            namespace: namespace.into(),
            location: store.name().into(),
            key_object: layout::repo_sealed_key(namespace),
        },
        UnsealError::Format => Error::Corrupt(format!(
            "{} in location {} is not a vbackup sealed password (unknown format or truncated)",
            layout::repo_sealed_key(namespace),
            store.name()
        )),
    }
}
