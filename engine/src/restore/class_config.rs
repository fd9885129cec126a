//! Storage-class mappings kept in the cluster, Velero's layout: a ConfigMap in vbackup's
//! namespace labelled `vbackup.io/change-storage-class` (or Velero's
//! `velero.io/change-storage-class`) whose data maps old class → new class.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::{Error, Result};

/// Labels that mark a storage-class mapping ConfigMap.
pub const LABELS: [&str; 2] = [
    "vbackup.io/change-storage-class",
    "velero.io/change-storage-class",
];

/// Reads every mapping ConfigMap in `namespace`; later ConfigMaps (by name) win.
pub async fn read(client: &Client, namespace: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut maps = Vec::new();
    for label in LABELS {
        let list = api
            .list(&ListParams::default().labels(label))
            .await
            .map_err(Error::kube(format!(
                "cannot read storage-class mapping ConfigMaps in {namespace}"
            )))?;
        maps.extend(list.items);
    }
    maps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = BTreeMap::new();
    for cm in maps {
        merge(&mut out, cm.data.unwrap_or_default());
    }
    Ok(out)
}

/// Adds a ConfigMap's `old: new` entries, ignoring empty values.
pub fn merge(into: &mut BTreeMap<String, String>, data: BTreeMap<String, String>) {
    into.extend(
        data.into_iter()
            .filter(|(k, v)| !k.is_empty() && !v.trim().is_empty())
            .map(|(k, v)| (k, v.trim().to_string())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_entries_become_mappings_and_blank_values_are_ignored() {
        let mut m = BTreeMap::new();
        merge(
            &mut m,
            [
                ("standard".to_string(), "fast ".to_string()),
                ("old".to_string(), " ".to_string()),
            ]
            .into(),
        );
        assert_eq!(
            m,
            BTreeMap::from([("standard".to_string(), "fast".to_string())])
        );
    }
}
