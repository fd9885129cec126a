//! Scheduled backups. A schedule is a CronJob in the vbackup namespace whose
//! [`SPEC_ANNOTATION`] holds its [`ScheduleSpec`]; each run is `kubectl-vbackup backup create
//! --from-schedule NAME` in the image, as the `vbackup-backup` ServiceAccount, which names the
//! backup `<schedule>-<yyyyMMddHHmmss>` and then runs gc with the schedule's retention.

pub mod coverage;
pub mod cron;
pub mod cronjob;
pub mod inventory;
pub mod metrics;
pub mod retention;
pub mod spec;
pub mod status;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub use cron::CronSchedule;
pub use spec::{MoverOptions, Retention, SCHEDULE_LABEL, SPEC_ANNOTATION, ScheduleSpec};

use crate::install::{FIELD_MANAGER, rbac, typed};
use crate::store::BackupStorageLocation;
use crate::{Error, Result};

/// A schedule as read from its CronJob.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Its name (the CronJob's).
    pub name: String,
    /// What it does.
    pub spec: ScheduleSpec,
    /// The image its runs use.
    pub image: String,
    /// Paused (the CronJob is suspended).
    pub paused: bool,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// When the CronJob controller last started a run.
    pub last_schedule: Option<Timestamp>,
}

impl Schedule {
    fn from_cron_job(cj: &CronJob) -> Result<Schedule> {
        let name = cj.metadata.name.clone().unwrap_or_default();
        let text = cj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_ANNOTATION))
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "CronJob {name} is not a vbackup schedule (no {SPEC_ANNOTATION} annotation)"
                ))
            })?;
        let spec: ScheduleSpec = serde_json::from_str(text).map_err(|e| {
            Error::Corrupt(format!(
                "the {SPEC_ANNOTATION} annotation of CronJob {name} is unreadable ({e}): \
                 delete the schedule and create it again"
            ))
        })?;
        let cron_spec = &cj.spec;
        let image = cron_spec
            .job_template
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        Ok(Schedule {
            name,
            spec,
            image,
            paused: cron_spec.suspend == Some(true),
            created: cj.metadata.creation_timestamp.as_ref().map(|t| t.0),
            last_schedule: cj
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0),
        })
    }

    /// The next run after `now` (none while paused).
    pub fn next_run(&self, now: Timestamp) -> Option<Timestamp> {
        if self.paused {
            return None;
        }
        self.spec.cron().ok()?.next_after(now)
    }
}

/// The schedules of one cluster, in the vbackup namespace.
pub struct Schedules {
    client: Client,
    namespace: String,
    api: Api<CronJob>,
}

impl Schedules {
    /// Schedules in `namespace` (normally `vbackup-system`).
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        let api = Api::namespaced(client.clone(), &namespace);
        Schedules {
            client,
            namespace,
            api,
        }
    }

    /// Creates schedule `name` running `image` and writing to `location`, and the backup
    /// ServiceAccount with its binding to the backup ClusterRole (nothing else); refused when
    /// the name is taken or the run could not reach the location.
    pub async fn create(
        &self,
        name: &str,
        spec: &ScheduleSpec,
        image: &str,
        location: &BackupStorageLocation,
    ) -> Result<Schedule> {
        spec.validate(name)?;
        let location_name = location.metadata.name.clone().unwrap_or_default();
        let mount = match &location.spec.filesystem {
            None => None,
            Some(fs) => Some((
                fs.pod_volume().ok_or_else(|| {
                    Error::BadInput(format!(
                        "location {location_name} is a directory only this machine reaches: \
                         scheduled runs happen in a pod; use an S3 location, or give the \
                         location --pod-access"
                    ))
                })?,
                fs.path.clone(),
            )),
        };
        let mut spec = spec.clone();
        // Pinned: the runs keep writing where the schedule was made to write.
        spec.template.storage_location = Some(location_name);
        self.ensure_run_account(spec.verify_every > 0).await?;
        let cj = cronjob::cron_job(name, &self.namespace, &spec, image, mount)?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.api.create(&params, &cj).await {
            Ok(created) => Schedule::from_cron_job(&created),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::BadInput(format!(
                "schedule {name} already exists: delete it first (`kubectl vbackup schedule \
                 delete {name}`) or choose another name"
            ))),
            Err(e) => Err(Error::kube(format!(
                "cannot create the CronJob of schedule {name}"
            ))(e)),
        }
    }

    /// Applies the ServiceAccount scheduled runs use, its ClusterRoles and the bindings
    /// between them (server-side apply: safe to repeat, and what `install` applies too):
    /// the backup account, or with `verifies` the verify account (backup and verify roles).
    pub async fn ensure_run_account(&self, verifies: bool) -> Result<()> {
        let (account, roles, bindings) = rbac::run_account(verifies);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let sa: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        sa.patch(
            account,
            &params,
            &Patch::Apply(typed(
                rbac::service_account(account, &self.namespace),
                "v1",
                "ServiceAccount",
            )?),
        )
        .await
        .map_err(Error::kube(format!(
            "cannot apply the ServiceAccount {account}"
        )))?;
        let role_api: Api<ClusterRole> = Api::all(self.client.clone());
        for role in roles {
            let name = role.metadata.name.clone().unwrap_or_default();
            role_api
                .patch(
                    &name,
                    &params,
                    &Patch::Apply(typed(role, "rbac.authorization.k8s.io/v1", "ClusterRole")?),
                )
                .await
                .map_err(Error::kube(format!("cannot apply the ClusterRole {name}")))?;
        }
        let binding_api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        for (name, role) in bindings {
            binding_api
                .patch(
                    name,
                    &params,
                    &Patch::Apply(typed(
                        rbac::named_binding(name, role, account, &self.namespace),
                        "rbac.authorization.k8s.io/v1",
                        "ClusterRoleBinding",
                    )?),
                )
                .await
                .map_err(Error::kube(format!(
                    "cannot apply the ClusterRoleBinding {name}"
                )))?;
        }
        Ok(())
    }

    /// One schedule; a clear error when there is none of that name.
    pub async fn get(&self, name: &str) -> Result<Schedule> {
        Schedule::from_cron_job(&self.cron_job(name).await?)
    }

    async fn cron_job(&self, name: &str) -> Result<CronJob> {
        self.api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("cannot read schedule {name}")))?
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "schedule {name} not found in namespace {}: list schedules with \
                     `kubectl vbackup schedule get`",
                    self.namespace
                ))
            })
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>> {
        let list = self
            .api
            .list(&ListParams::default().labels(SCHEDULE_LABEL))
            .await
            .map_err(Error::kube("cannot list schedules (CronJobs)"))?;
        let mut out = Vec::new();
        for cj in &list.items {
            match Schedule::from_cron_job(cj) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "skipping a CronJob"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Pauses (suspends the CronJob) or resumes a schedule.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<()> {
        self.get(name).await?;
        self.api
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(json!({"spec": {"suspend": paused}})),
            )
            .await
            .map_err(Error::kube(format!(
                "cannot pause or unpause schedule {name}"
            )))?;
        Ok(())
    }

    /// Deletes a schedule and its Jobs; its backups stay (gc removes them as they expire).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.get(name).await?;
        self.api
            .delete(name, &DeleteParams::background())
            .await
            .map_err(Error::kube(format!("cannot delete schedule {name}")))?;
        Ok(())
    }

    /// Starts a run now (a Job from the CronJob's template); returns the Job's name.
    pub async fn run_now(&self, name: &str) -> Result<String> {
        let cj = self.cron_job(name).await?;
        Schedule::from_cron_job(&cj)?;
        let secs = Timestamp::now().as_second().max(0) as u64;
        let job_name = format!("{name}-manual-{}", base36(secs));
        let job = cronjob::manual_job(&cj, &job_name)?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        jobs.create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &job,
        )
        .await
        .map_err(Error::kube(format!(
            "cannot start a run of schedule {name}"
        )))?;
        Ok(job_name)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
