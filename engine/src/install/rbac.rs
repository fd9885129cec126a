//! Least-privilege RBAC: one ClusterRole per job, each rule justified. Scheduled backups run
//! under [`BACKUP_SERVICE_ACCOUNT`], bound to [`BACKUP_ROLE`] and nothing else.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::ObjectMeta;

/// The ServiceAccount scheduled backups run as (in the vbackup namespace).
pub const BACKUP_SERVICE_ACCOUNT: &str = "vbackup-backup";
/// The ClusterRole of backups.
pub const BACKUP_ROLE: &str = "vbackup-backup";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..Default::default()
    }
}

/// A ClusterRole of vbackup's.
fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels()),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".into(), super::PART_OF.into()),
        (
            "app.kubernetes.io/managed-by".into(),
            super::FIELD_MANAGER.into(),
        ),
    ])
}

/// The ServiceAccount a schedule's runs use, its ClusterRoles and their bindings (binding
/// name, role): the backup account, or the verify account when the runs verify.
pub fn run_account(
    verifies: bool,
) -> (
    &'static str,
    Vec<ClusterRole>,
    Vec<(&'static str, &'static str)>,
) {
    if verifies {
        (
            run_service_account(verifies),
            vec![backup_cluster_role(), verify_cluster_role()],
            vec![
                (VERIFY_BACKUP_BINDING, BACKUP_ROLE),
                (VERIFY_ROLE, VERIFY_ROLE),
            ],
        )
    } else {
        (
            run_service_account(verifies),
            vec![backup_cluster_role()],
            vec![(BACKUP_ROLE, BACKUP_ROLE)],
        )
    }
}

/// The ServiceAccount a schedule's runs use.
pub fn run_service_account(verifies: bool) -> &'static str {
    match verifies {
        true => VERIFY_SERVICE_ACCOUNT,
        false => BACKUP_SERVICE_ACCOUNT,
    }
}

/// What a backup needs, and nothing it does not.
pub fn backup_cluster_role() -> ClusterRole {
    let rules = vec![
        // A backup captures every API object of the selected namespaces, whatever its type
        // (CRDs included, unknown in advance): read-only, but of everything.
        rule(&["*"], &["*"], &["get", "list"]),
        // Discovery: which types exist, and the cluster version recorded in the backup.
        PolicyRule {
            non_resource_urls: Some(
                ["/api", "/api/*", "/apis", "/apis/*", "/version"]
                    .map(String::from)
                    .to_vec(),
            ),
            verbs: vec!["get".into()],
            ..Default::default()
        },
        // Pre/post hooks (database dumps, fsfreeze) run in the application's containers.
        rule(&[""], &["pods/exec"], &["create", "get"]),
        // Mover pods copy each claim's files: started, followed and removed by the backup.
        rule(&[""], &["pods"], &["create", "delete", "watch"]),
        // Each mover reads its job (repository password, store credentials) from a Secret
        // made for it alone and deleted with it.
        rule(&[""], &["secrets"], &["create", "delete"]),
        // Snapshot data movement: a CSI snapshot of the claim, and a temporary claim made
        // from it for the mover to read; both deleted afterwards.
        rule(
            &["snapshot.storage.k8s.io"],
            &["volumesnapshots"],
            &["create", "delete", "watch"],
        ),
        rule(&[""], &["persistentvolumeclaims"], &["create", "delete"]),
        // The backup records the outcome of its location check on the location.
        rule(
            &["vbackup.io"],
            &["backupstoragelocations", "backupstoragelocations/status"],
            &["patch", "update"],
        ),
    ];
    cluster_role(BACKUP_ROLE, rules)
}

/// The ServiceAccount of scheduled runs that also verify their backups (`--verify-every`).
pub const VERIFY_SERVICE_ACCOUNT: &str = "vbackup-verify";
/// The ClusterRole of verifies: what a verify needs beyond [`BACKUP_ROLE`], which its
/// account is bound to as well (the run makes the backup first).
pub const VERIFY_ROLE: &str = "vbackup-verify";
/// The binding of [`VERIFY_SERVICE_ACCOUNT`] to [`BACKUP_ROLE`].
pub const VERIFY_BACKUP_BINDING: &str = "vbackup-verify-backup";

/// What a verify needs on top of the backup role: create what the test restore brings back
/// (in scratch namespaces it makes) and delete those namespaces again.
pub fn verify_cluster_role() -> ClusterRole {
    let rules = vec![
        // The test restore recreates objects of every type the backup holds, in scratch
        // namespaces made for it (the namespaces themselves included). Existing objects
        // are compared, never updated, so no update or patch.
        rule(&["*"], &["*"], &["create"]),
        // The scratch namespaces are deleted afterwards and watched until they are gone;
        // deleting one removes everything the test restore created in it.
        rule(&[""], &["namespaces"], &["delete", "watch"]),
        // As for restores: mover pods fill the restored claims, their job Secrets and
        // temporary claims are followed until removed.
        rule(&[""], &["persistentvolumeclaims", "secrets"], &["watch"]),
    ];
    cluster_role(VERIFY_ROLE, rules)
}

/// The ClusterRole of restores (people and tools that run `restore create`).
pub const RESTORE_ROLE: &str = "vbackup-restore";
/// The ServiceAccount and ClusterRole of the admission webhook.
pub const WEBHOOK_ACCOUNT: &str = "vbackup-webhook";

/// What a restore needs: it recreates objects of any type, so it writes broadly; bind it
/// only to the people or automation trusted to restore.
pub fn restore_cluster_role() -> ClusterRole {
    let rules = vec![
        // A restore brings back objects of every type the backup holds (CRDs first), checks
        // what exists, and updates it only with --existing-resource-policy=update.
        rule(
            &["*"],
            &["*"],
            &["get", "list", "create", "patch", "update"],
        ),
        // Discovery, to map the archive's types onto this cluster's.
        PolicyRule {
            non_resource_urls: Some(
                ["/api", "/api/*", "/apis", "/apis/*", "/version"]
                    .map(String::from)
                    .to_vec(),
            ),
            verbs: vec!["get".into()],
            ..Default::default()
        },
        // Restore hooks run in the restored containers.
        rule(&[""], &["pods/exec"], &["create", "get"]),
        // Mover pods fill restored claims: started, followed and removed; their job Secrets
        // and temporary snapshot claims are removed with them.
        rule(
            &[""],
            &["pods", "secrets", "persistentvolumeclaims"],
            &["delete", "watch"],
        ),
        rule(
            &["snapshot.storage.k8s.io"],
            &["volumesnapshots"],
            &["delete", "watch"],
        ),
    ];
    cluster_role(RESTORE_ROLE, rules)
}

/// What the webhook reads to decide a pod's volumes; it writes nothing (its answer is the
/// patch the API server applies).
pub fn webhook_cluster_role() -> ClusterRole {
    let rules = vec![
        // Namespace labels (exclusion), the pod's claims, their volumes and classes: the
        // inputs of the shared volume policy.
        rule(
            &[""],
            &["namespaces", "persistentvolumeclaims", "persistentvolumes"],
            &["get", "list", "watch"],
        ),
        rule(
            &["storage.k8s.io"],
            &["storageclasses"],
            &["get", "list", "watch"],
        ),
        rule(
            &["snapshot.storage.k8s.io"],
            &["volumesnapshotclasses"],
            &["get", "list", "watch"],
        ),
        // Metrics are read from the locations' backup metadata; BackupPolicies choose how
        // each pod is annotated (watched).
        rule(
            &["vbackup.io"],
            &["backupstoragelocations", "backuppolicies"],
            &["get", "list", "watch"],
        ),
        // The unprotected-claims metric weighs every namespace's pods (which claims they
        // mount, their volume annotations) as a scheduled run would: listed, not watched.
        rule(&[""], &["pods"], &["list"]),
        // ...and whether the webhook is registered, which decides whether pods created before
        // it count as annotated (only vbackup's own configuration).
        PolicyRule {
            api_groups: Some(vec!["admissionregistration.k8s.io".into()]),
            resources: Some(vec!["mutatingwebhookconfigurations".into()]),
            resource_names: Some(vec![crate::webhook::config::CONFIGURATION_NAME.into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        },
    ];
    cluster_role(WEBHOOK_ACCOUNT, rules)
}

/// What the webhook reads in vbackup's own `namespace` (a Role: nothing elsewhere) to serve
/// the backup metrics.
pub fn webhook_role(namespace: &str) -> Role {
    let rules = vec![
        // The locations' S3 credentials (and a Velero bucket's repository password): the
        // backup metadata is read from the buckets. Secrets are read by name, never listed.
        rule(&[""], &["secrets"], &["get"]),
        // The schedules are CronJobs; their volume policies are ConfigMaps read by name.
        rule(&["batch"], &["cronjobs"], &["list"]),
        rule(&[""], &["configmaps"], &["get"]),
    ];
    Role {
        metadata: ObjectMeta {
            name: Some(WEBHOOK_ACCOUNT.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels()),
            ..Default::default()
        },
        rules: Some(rules),
    }
}

/// Binds ServiceAccount `account` to Role `role`, both in `namespace`.
pub fn role_binding(role: &str, account: &str, namespace: &str) -> RoleBinding {
    let cluster = binding(role, account, namespace);
    RoleBinding {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            ..cluster.metadata
        },
        role_ref: RoleRef {
            kind: "Role".into(),
            ..cluster.role_ref
        },
        subjects: cluster.subjects,
    }
}

/// A ServiceAccount of vbackup's in `namespace`.
pub fn service_account(name: &str, namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Binds ServiceAccount `account` in `namespace` to ClusterRole `role` (the binding is
/// named after the role).
pub fn binding(role: &str, account: &str, namespace: &str) -> ClusterRoleBinding {
    named_binding(role, role, account, namespace)
}

/// [`binding`] named `name`: for an account bound to a role that has its own binding.
pub fn named_binding(name: &str, role: &str, account: &str, namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    }
}
