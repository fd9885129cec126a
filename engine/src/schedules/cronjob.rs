//! The CronJob a schedule is: the image running `kubectl-vbackup backup create
//! --from-schedule NAME` as the backup ServiceAccount, one run at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use super::spec::{SCHEDULE_LABEL, SPEC_ANNOTATION, ScheduleSpec};
use crate::install::rbac;
use crate::{Error, Result};

/// Jobs of each outcome kept for `kubectl get jobs` and their logs.
pub const HISTORY_LIMIT: i32 = 3;
/// A run the controller could not start within this many seconds of its time (controller
/// down, previous run still going) is skipped: the next one catches up.
pub const STARTING_DEADLINE_SECONDS: i64 = 3600;
/// The container of scheduled runs.
pub const CONTAINER: &str = "backup";
/// The non-root user of the image (distroless' `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// Labels of a schedule's CronJob, its Jobs and their pods.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/part-of".into(),
            crate::install::PART_OF.into(),
        ),
        ("app.kubernetes.io/component".into(), "schedule".into()),
        (SCHEDULE_LABEL.into(), name.into()),
    ])
}

/// The CronJob of schedule `name` in `namespace` (the vbackup namespace). A filesystem
/// location's directory (`location`: its pod volume and path) is mounted where the location
/// says it is, so the run opens it as the plugin does.
pub fn cron_job(
    name: &str,
    namespace: &str,
    spec: &ScheduleSpec,
    image: &str,
    location: Option<(Volume, String)>,
) -> Result<CronJob> {
    let json = serde_json::to_string(spec)
        .map_err(|e| Error::Internal(format!("cannot encode schedule {name}: {e}")))?;
    let job_meta = ObjectMeta {
        labels: Some(labels(name)),
        ..Default::default()
    };
    Ok(CronJob {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels(name)),
            annotations: Some(BTreeMap::from([(SPEC_ANNOTATION.into(), json)])),
            ..Default::default()
        },
        spec: CronJobSpec {
            schedule: spec.schedule.clone(),
            time_zone: spec.time_zone.clone(),
            // Two backups of one schedule at once would copy the same volumes twice.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(HISTORY_LIMIT),
            failed_jobs_history_limit: Some(HISTORY_LIMIT),
            suspend: Some(false),
            job_template: JobTemplateSpec {
                metadata: Some(job_meta.clone()),
                spec: Some(JobSpec {
                    // A failed run is not retried blindly: it is recorded (and alerted on),
                    // and the next scheduled run makes a fresh backup.
                    backoff_limit: Some(0),
                    template: PodTemplateSpec {
                        metadata: Some(job_meta),
                        spec: Some(pod_spec(name, image, location, spec.verify_every > 0)),
                    },
                    ..Default::default()
                }),
            },
        },
        status: None,
    })
}

fn pod_spec(
    name: &str,
    image: &str,
    location: Option<(Volume, String)>,
    verifies: bool,
) -> PodSpec {
    // A directory location (hostPath, NFS) belongs to root on the node: mover pods write it
    // as root. The run writes its archive there too, so it runs as root, with every
    // capability dropped: it can write what root owns and nothing else. Against S3 it runs
    // as an unprivileged user.
    let user = if location.is_some() { 0 } else { RUN_AS_USER };
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    // The object archive is assembled in a temporary directory.
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    if let Some((volume, path)) = location {
        mounts.push(VolumeMount {
            name: volume.name.clone(),
            mount_path: path,
            ..Default::default()
        });
        volumes.push(volume);
    }
    PodSpec {
        service_account_name: Some(rbac::run_service_account(verifies).into()),
        restart_policy: Some("Never".into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(user != 0),
            run_as_user: Some(user),
            run_as_group: Some(user),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(image.into()),
            command: Some(
                [
                    "kubectl-vbackup",
                    "backup",
                    "create",
                    "--from-schedule",
                    name,
                ]
                .map(String::from)
                .to_vec(),
            ),
            env: Some(vec![
                // The schedule's namespace holds the locations and keys it uses.
                EnvVar {
                    name: "VBACKUP_NAMESPACE".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.namespace".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "TMPDIR".into(),
                    value: Some("/tmp".into()),
                    ..Default::default()
                },
            ]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".into(), Quantity("100m".into())),
                    ("memory".into(), Quantity("128Mi".into())),
                ])),
                // Objects are streamed; volume data is copied by mover pods, not here.
                limits: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
                ..Default::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            volume_mounts: Some(mounts),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    }
}

/// A Job run now from the CronJob's template, as `kubectl create job --from=cronjob/NAME`:
/// owned by the CronJob and annotated as a manual run.
pub fn manual_job(cron_job: &CronJob, job_name: &str) -> Result<Job> {
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let template = cron_job.spec.job_template.clone();
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(job_name.into());
    meta.namespace = cron_job.metadata.namespace.clone();
    meta.annotations
        .get_or_insert_default()
        .insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name,
        uid: cron_job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    Ok(Job {
        metadata: meta,
        spec: template.spec,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::BackupRequest;
    use crate::schedules::spec::{MoverOptions, Retention};
    use std::time::Duration;

    fn spec() -> ScheduleSpec {
        ScheduleSpec {
            schedule: "0 2 * * *".into(),
            time_zone: Some("Europe/Paris".into()),
            template: BackupRequest::new("x"),
            retention: Retention::default(),
            movers: MoverOptions {
                parallel_volumes: 4,
                mover_image: "img".into(),
                mover_start_timeout: Duration::from_secs(300),
                stall_timeout: Duration::from_secs(300),
                snapshot_timeout: Duration::from_secs(600),
            },
            verify_every: 0,
        }
    }

    #[test]
    fn schedules_that_verify_run_as_the_verify_account() {
        let mut spec = spec();
        spec.verify_every = 7;
        let cj = cron_job("nightly", "vbackup-system", &spec, "img", None).unwrap();
        let pod = cj.spec.job_template.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some(rbac::VERIFY_SERVICE_ACCOUNT)
        );
        let stored = &cj.metadata.annotations.unwrap()[SPEC_ANNOTATION];
        assert!(stored.contains("\"verifyEvery\":7"), "{stored}");
    }

    #[test]
    fn cron_job_runs_one_backup_at_a_time_as_the_backup_account() {
        let cj = cron_job(
            "nightly",
            "vbackup-system",
            &spec(),
            "ghcr.io/vbackup/vbackup:1",
            None,
        )
        .unwrap();
        let s = &cj.spec;
        assert_eq!(s.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(s.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(s.starting_deadline_seconds, Some(STARTING_DEADLINE_SECONDS));
        let pod = s
            .job_template
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some(rbac::BACKUP_SERVICE_ACCOUNT)
        );
        let c = &pod.containers[0];
        assert_eq!(
            c.command.as_deref().unwrap(),
            [
                "kubectl-vbackup",
                "backup",
                "create",
                "--from-schedule",
                "nightly"
            ]
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let pod_sc = pod.security_context.as_ref().unwrap();
        assert_eq!(
            pod_sc.run_as_user,
            Some(RUN_AS_USER),
            "an S3 run is not root"
        );
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        let stored = &cj.metadata.annotations.as_ref().unwrap()[SPEC_ANNOTATION];
        assert_eq!(
            serde_json::from_str::<ScheduleSpec>(stored).unwrap(),
            spec()
        );
    }

    #[test]
    fn a_directory_location_is_written_as_root_without_capabilities() {
        let volume = Volume {
            name: "location".into(),
            host_path: Some(Default::default()),
            ..Default::default()
        };
        let cj = cron_job(
            "nightly",
            "vbackup-system",
            &spec(),
            "img",
            Some((volume, "/backups".into())),
        )
        .unwrap();
        let pod = cj.spec.job_template.spec.unwrap().template.spec.unwrap();
        let pod_sc = pod.security_context.unwrap();
        assert_eq!(pod_sc.run_as_user, Some(0));
        assert_eq!(pod_sc.run_as_non_root, Some(false));
        let caps = pod.containers[0]
            .security_context
            .as_ref()
            .unwrap()
            .capabilities
            .as_ref()
            .unwrap();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert!(caps.add.is_none());
    }

    #[test]
    fn manual_runs_are_owned_by_the_cron_job() {
        let mut cj = cron_job("nightly", "vbackup-system", &spec(), "img", None).unwrap();
        cj.metadata.uid = Some("u-1".into());
        let job = manual_job(&cj, "nightly-manual-1").unwrap();
        assert_eq!(job.metadata.namespace.as_deref(), Some("vbackup-system"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "u-1")
        );
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
    }
}
