//! Finding backups across the storage locations of a cluster.

use super::{BackupRecord, Catalog};
use crate::store::{Locations, Store};
use crate::{Error, Result};

/// The stores of the named location, or of every location.
pub async fn stores(locations: &Locations, name: Option<&str>) -> Result<Vec<Store>> {
    let list = match name {
        Some(n) => vec![locations.get(n).await?],
        None => locations.list().await?,
    };
    let mut out = Vec::with_capacity(list.len());
    for l in &list {
        out.push(locations.open(l).await?);
    }
    Ok(out)
}

/// Finds backup `name` in the named location, or in the first location that has it.
pub async fn find_backup(
    locations: &Locations,
    name: &str,
    location: Option<&str>,
) -> Result<(Store, BackupRecord)> {
    if let Some(l) = location {
        let store = locations.open(&locations.get(l).await?).await?;
        let record = Catalog::new(store.clone()).backup(name).await?;
        return Ok((store, record));
    }
    for store in stores(locations, None).await? {
        let catalog = Catalog::new(store.clone());
        if catalog.backup_exists(name).await? {
            let record = catalog.backup(name).await?;
            return Ok((store, record));
        }
    }
    Err(Error::BackupNotFound {
        name: name.to_string(),
        location: None,
    })
}
