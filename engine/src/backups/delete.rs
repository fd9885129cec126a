//! Deleting a backup, in the order that keeps a failed delete retryable: its volume
//! snapshots first (if that fails, the backup is still listed and the delete can simply run
//! again), then its archive, log and metadata.

use serde::Serialize;

use super::Catalog;
use super::find::find_backup;
use crate::Result;
use crate::repo::LocationRepos;
use crate::store::{Locations, Store};

/// What deleting one backup removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedBackup {
    /// Objects deleted from the location (metadata, archive, log…).
    pub objects: usize,
    /// Volume snapshots forgotten.
    pub snapshots: usize,
}

/// Deletes backup `name` from the location behind `catalog`, whose repositories are `repos`
/// (opened once when many backups are deleted).
pub async fn delete_with(
    repos: &mut LocationRepos,
    catalog: &Catalog,
    name: &str,
) -> Result<DeletedBackup> {
    let forgotten = repos.forget_backup(name).await?;
    let objects = catalog.delete_backup(name).await?;
    Ok(DeletedBackup {
        objects,
        snapshots: forgotten.iter().map(|(_, ids)| ids.len()).sum(),
    })
}

/// Deletes backup `name` from the named location, or from the first location that has it;
/// returns the location's store and what was removed. A backup without metadata (its
/// writer died) is found only in a named location.
pub async fn delete_backup(
    locations: &Locations,
    name: &str,
    location: Option<&str>,
) -> Result<(Store, DeletedBackup)> {
    let store = match find_backup(locations, name, location).await {
        Ok((store, _)) => store,
        Err(e) => match location {
            Some(l) => locations.open(&locations.get(l).await?).await?,
            None => return Err(e),
        },
    };
    let mut repos = locations.repositories(&store).await?;
    let deleted = delete_with(&mut repos, &Catalog::new(store.clone()), name).await?;
    Ok((store, deleted))
}
