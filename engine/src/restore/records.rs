//! Where restore records go: the location's `restores/` folder, or — when the location is
//! ReadOnly, so restoring writes nothing to the bucket — a ConfigMap in vbackup's namespace.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::backups::Catalog;
use crate::backups::itemlog::ItemLog;
use crate::backups::record::RestoreRecord;
use crate::store::{AccessMode, Store, layout};
use crate::{Error, Result};

/// Label on the ConfigMaps that hold restore records.
pub const RECORD_LABEL: &str = "vbackup.io/restore-record";
const RECORD_KEY: &str = "vbackup-restore.json";
const LOG_KEY: &str = "log.jsonl.gz";
/// ConfigMaps hold at most 1 MiB; a longer log is left out of an in-cluster record.
const MAX_IN_CLUSTER_LOG: usize = 900 * 1024;

/// The restore records of a location, wherever they are kept.
#[derive(Clone)]
pub struct RestoreRecords {
    store: Store,
    configmaps: Api<ConfigMap>,
}

impl RestoreRecords {
    /// Records for `store`, with in-cluster records in `namespace`.
    pub fn new(client: &Client, namespace: &str, store: Store) -> Self {
        RestoreRecords {
            store,
            configmaps: Api::namespaced(client.clone(), namespace),
        }
    }

    fn in_cluster(&self) -> bool {
        self.store.access_mode() == AccessMode::ReadOnly
    }

    fn configmap_name(name: &str) -> String {
        format!("vbackup-restore-{name}")
    }

    /// True when a record of that name exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.get_opt(name).await?.is_some())
    }

    /// `base`, or `base-2`, `base-3`… when a record of that name exists already (two
    /// restores started within the same second get distinct default names).
    pub async fn unused_name(&self, base: &str) -> Result<String> {
        let mut name = base.to_string();
        let mut n = 1;
        while self.exists(&name).await? {
            n += 1;
            name = format!("{base}-{n}");
        }
        Ok(name)
    }

    /// Saves a record and its item log.
    pub async fn save(&self, record: &RestoreRecord, log: ItemLog) -> Result<()> {
        let name = &record.spec.name;
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal(e.to_string()))?;
        if !self.in_cluster() {
            let mut record = record.clone();
            let logged = log.upload(&self.store, &layout::restore_log(name)).await;
            if let Err(e) = logged {
                record
                    .status
                    .tally
                    .warn(format!("the item log could not be written: {e}"));
            }
            let json =
                serde_json::to_vec_pretty(&record).map_err(|e| Error::Internal(e.to_string()))?;
            return self.store.put(&layout::restore_metadata(name), json).await;
        }
        let log_bytes = log.into_bytes().await?;
        let mut binary = BTreeMap::new();
        if log_bytes.len() <= MAX_IN_CLUSTER_LOG {
            binary.insert(LOG_KEY.to_string(), ByteString(log_bytes));
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(Self::configmap_name(name)),
                labels: Some([(RECORD_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            data: Some(
                [(
                    RECORD_KEY.to_string(),
                    String::from_utf8_lossy(&json).into_owned(),
                )]
                .into(),
            ),
            binary_data: Some(binary),
            ..Default::default()
        };
        self.configmaps
            .create(&PostParams::default(), &cm)
            .await
            .map_err(Error::kube(format!(
                "cannot save the record of restore {name} in the cluster"
            )))?;
        Ok(())
    }

    /// One record.
    pub async fn get_opt(&self, name: &str) -> Result<Option<RestoreRecord>> {
        if let Some(r) = Catalog::new(self.store.clone()).restore_opt(name).await? {
            return Ok(Some(r));
        }
        let cm = self
            .configmaps
            .get_opt(&Self::configmap_name(name))
            .await
            .map_err(Error::kube("cannot read restore records"))?;
        cm.map(|cm| parse_configmap(&cm)).transpose()
    }

    /// One record, or a clear error.
    pub async fn get(&self, name: &str) -> Result<RestoreRecord> {
        self.get_opt(name)
            .await?
            .ok_or_else(|| Error::RestoreNotFound { name: name.into() })
    }

    /// Every record, from the location and the cluster, by name.
    pub async fn list(&self) -> Result<Vec<RestoreRecord>> {
        let mut out = Catalog::new(self.store.clone()).restores().await?;
        let cms = self
            .configmaps
            .list(&ListParams::default().labels(&format!("{RECORD_LABEL}=true")))
            .await
            .map_err(Error::kube("cannot list restore records"))?;
        for cm in cms {
            let r = parse_configmap(&cm)?;
            if !out.iter().any(|o| o.spec.name == r.spec.name) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// The item log, gzip-compressed (decrypted), if kept.
    pub async fn log_gz(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let key = layout::restore_log(name);
        match self.store.get_bytes(&key).await {
            Ok(b) => {
                let mut plain = Vec::new();
                let archive_key = self.store.archive_key().await?;
                crate::keys::stream::open(std::io::Cursor::new(b), archive_key.as_ref(), &key)
                    .and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut plain))
                    .map_err(|e| {
                        Error::Corrupt(format!("the log of restore {name} is damaged: {e}"))
                    })?;
                return Ok(Some(plain));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let cm = self
            .configmaps
            .get_opt(&Self::configmap_name(name))
            .await
            .map_err(Error::kube("cannot read restore records"))?;
        Ok(cm
            .and_then(|cm| cm.binary_data)
            .and_then(|mut b| b.remove(LOG_KEY))
            .map(|b| b.0))
    }

    /// Deletes a record (never the restored objects).
    pub async fn delete(&self, name: &str) -> Result<()> {
        if !self.exists(name).await? {
            return Err(Error::RestoreNotFound { name: name.into() });
        }
        if Catalog::new(self.store.clone())
            .restore_opt(name)
            .await?
            .is_some()
        {
            self.store.delete_prefix(&layout::restore_dir(name)).await?;
        }
        match self
            .configmaps
            .delete(&Self::configmap_name(name), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(format!(
                "cannot delete the record of restore {name}"
            ))(e)),
        }
    }
}

fn parse_configmap(cm: &ConfigMap) -> Result<RestoreRecord> {
    let json = cm
        .data
        .as_ref()
        .and_then(|d| d.get(RECORD_KEY))
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "restore record ConfigMap {} has no {RECORD_KEY}",
                cm.metadata.name.clone().unwrap_or_default()
            ))
        })?;
    serde_json::from_str(json)
        .map_err(|e| Error::Corrupt(format!("unreadable restore record: {e}")))
}
