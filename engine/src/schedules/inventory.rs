//! What `status`, `coverage` and the backup metrics read: the schedules, every record of every
//! location, and the coverage of namespaces. One reader, so the plugin's commands and the
//! metrics the webhook serves never disagree.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};

use super::coverage::{self, Scope, VolumeCoverage};
use super::{Schedule, Schedules};
use crate::backups::{BackupRecord, BackupSummary, Catalog, RestoreRecord};
use crate::policy::ResourcePolicies;
use crate::store::Locations;
use crate::volumes::plan::gather;
use crate::{Error, Result};

/// The schedules and the records of every location.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every schedule, by name.
    pub schedules: Vec<Schedule>,
    /// Every backup with metadata, with its location's name (folders without metadata, still
    /// running or abandoned, are left out).
    pub backups: Vec<(String, BackupRecord)>,
    /// Every restore record, with its location's name (read only when asked for).
    pub restores: Vec<(String, RestoreRecord)>,
}

impl Inventory {
    /// Reads the schedules and the locations of vbackup's `namespace`; restore records too
    /// when `with_restores`.
    pub async fn read(client: &Client, namespace: &str, with_restores: bool) -> Result<Inventory> {
        let schedules = Schedules::new(client.clone(), namespace).list().await?;
        let locations = Locations::new(client.clone(), namespace);
        let mut backups = Vec::new();
        let mut restores = Vec::new();
        for location in locations.list().await? {
            let catalog = Catalog::new(locations.open(&location).await?);
            let name = catalog.store().name().to_string();
            for summary in catalog.backups().await? {
                if let BackupSummary::Recorded(r) = summary {
                    backups.push((name.clone(), *r));
                }
            }
            if with_restores {
                for r in catalog.restores().await? {
                    restores.push((name.clone(), r));
                }
            }
        }
        Ok(Inventory {
            schedules,
            backups,
            restores,
        })
    }

    /// How many successful (`Completed`) backups schedule `name` has made.
    pub fn successful_backups(&self, name: &str) -> usize {
        self.backups
            .iter()
            .filter(|(_, b)| {
                b.status.phase == crate::backups::Phase::Completed
                    && b.spec.labels.get(super::SCHEDULE_LABEL).map(String::as_str) == Some(name)
            })
            .count()
    }

    /// The coverage of `namespaces` at `now`: each schedule's volume policies (its
    /// `--resource-policies-configmap` in vbackup's `namespace`) applied to what the
    /// namespaces hold now, judged against the backups' history.
    pub async fn coverage(
        &self,
        client: &Client,
        namespace: &str,
        namespaces: &[String],
        now: Timestamp,
    ) -> Result<Vec<VolumeCoverage>> {
        let mut policies = Vec::with_capacity(self.schedules.len());
        for s in &self.schedules {
            let name = s
                .spec
                .template
                .volumes
                .resource_policies_configmap
                .as_deref();
            policies.push(ResourcePolicies::read(client, namespace, name).await?);
        }
        let scopes: Vec<Scope<'_>> = self
            .schedules
            .iter()
            .zip(&policies)
            .map(|(schedule, p)| Scope {
                schedule,
                policies: p.as_ref(),
            })
            .collect();
        let history = coverage::history(self.backups.iter().map(|(_, r)| r));
        let mut rows = Vec::new();
        for ns in namespaces {
            let state = gather(client, ns, None).await?;
            rows.extend(coverage::assess(&state, &scopes, &history, now));
        }
        Ok(rows)
    }
}

/// Every namespace of the cluster but `except` (vbackup's own).
pub async fn namespaces_except(client: &Client, except: &str) -> Result<Vec<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("cannot list namespaces"))?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n != except)
        .collect())
}
