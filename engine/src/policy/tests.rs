//! The policy on the pods people run: table-driven, from real manifests' shapes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use serde_json::json;

use super::*;

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn claim(name: &str, modes: &[&str], class: &str, snapshot_class: Option<&str>) -> ClaimFacts {
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"accessModes": modes, "storageClassName": class,
                 "resources": {"requests": {"storage": "8Gi"}}, "volumeName": format!("pvc-{name}")},
        "status": {"phase": "Bound"}
    }))
    .unwrap();
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": format!("pvc-{name}")},
        "spec": {"capacity": {"storage": "8Gi"}, "storageClassName": class,
                 "csi": {"driver": "local.csi.vbackup.io", "volumeHandle": name}}
    }))
    .unwrap();
    ClaimFacts {
        pvc,
        pv: Some(pv),
        snapshot_class: snapshot_class.map(str::to_string),
    }
}

fn claims(list: Vec<ClaimFacts>) -> BTreeMap<String, ClaimFacts> {
    list.into_iter()
        .map(|c| (c.pvc.metadata.name.clone().unwrap(), c))
        .collect()
}

/// (volume, action) pairs of a pod's decisions.
fn actions(decisions: &[VolumeDecision]) -> Vec<(&str, Action)> {
    decisions
        .iter()
        .map(|d| (d.volume.as_str(), d.action))
        .collect()
}

fn decide(
    p: &Pod,
    claims: &BTreeMap<String, ClaimFacts>,
    options: PolicyOptions,
) -> Vec<VolumeDecision> {
    decide_with(p, claims, options, None, &BTreeMap::new())
}

fn decide_with(
    p: &Pod,
    claims: &BTreeMap<String, ClaimFacts>,
    options: PolicyOptions,
    policies: Option<&ResourcePolicies>,
    ns_labels: &BTreeMap<String, String>,
) -> Vec<VolumeDecision> {
    decide_pod(
        p,
        &PolicyInput {
            namespace_labels: ns_labels,
            claims,
            policies,
            options,
        },
    )
}

const COPY: Action = Action::Copy(Method::FsBackup);

fn nextcloud() -> Pod {
    pod(json!({
        "metadata": {"name": "nextcloud-7d9f-abcde", "namespace": "app", "labels": {"app": "nextcloud"}},
        "spec": {
            "containers": [{"name": "nextcloud", "image": "nextcloud:29-apache"}],
            "volumes": [
                {"name": "nextcloud-main", "persistentVolumeClaim": {"claimName": "nextcloud-data"}},
                {"name": "nextcloud-config", "configMap": {"name": "nextcloud-config"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "kube-api-access-x7k2p", "projected": {"sources": []}}
            ]
        }
    }))
}

#[test]
fn nextcloud_copies_its_claim_and_nothing_that_comes_back_with_objects() {
    let c = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let d = decide(&nextcloud(), &c, PolicyOptions::default());
    assert_eq!(
        actions(&d),
        [
            ("nextcloud-main", COPY),
            ("nextcloud-config", Action::Skip),
            ("tmp", Action::Skip),
            ("kube-api-access-x7k2p", Action::Skip)
        ]
    );
    assert_eq!(d[0].reason, Reason::Default);
    assert_eq!(d[0].claim.as_deref(), Some("nextcloud-data"));
    assert_eq!(
        d[1].reason,
        Reason::FromObjects {
            volume_type: "configMap".into()
        }
    );
    assert_eq!(d[2].reason, Reason::EmptyDir);
    assert!(d.iter().all(|d| !d.warn), "{d:?}");
}

#[test]
fn bitnami_mariadb_statefulset_pod_copies_its_data_claim() {
    let p = pod(json!({
        "metadata": {"name": "mariadb-0", "namespace": "app",
                     "labels": {"app.kubernetes.io/name": "mariadb", "statefulset.kubernetes.io/pod-name": "mariadb-0"}},
        "spec": {
            "containers": [{"name": "mariadb", "image": "docker.io/bitnami/mariadb:11.4.3-debian-12-r0",
                            "env": [{"name": "MARIADB_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mariadb", "key": "mariadb-root-password"}}}]}],
            "volumes": [
                {"name": "empty-dir", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "mariadb"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-mariadb-0"}}
            ]
        }
    }));
    let c = claims(vec![claim(
        "data-mariadb-0",
        &["ReadWriteOnce"],
        "local",
        Some("csi-snap"),
    )]);
    let d = decide(&p, &c, PolicyOptions::default());
    assert_eq!(
        actions(&d),
        [
            ("empty-dir", Action::Skip),
            ("config", Action::Skip),
            ("data", COPY)
        ]
    );
    // With --snapshot-volumes and a class for the driver, the claim goes through a snapshot.
    let snap = PolicyOptions {
        snapshot_volumes: true,
        snapshot_move_data: true,
        ..Default::default()
    };
    let d = decide(&p, &c, snap);
    assert_eq!(d[2].action, Action::Copy(Method::SnapshotMoveData));
}

#[test]
fn user_annotations_opt_volumes_out_velero_and_vbackup_spelling() {
    let mut p = nextcloud();
    p.metadata.annotations = Some(BTreeMap::from([(
        "backup.velero.io/backup-volumes-excludes".to_string(),
        "nextcloud-main".to_string(),
    )]));
    let c = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let d = decide(&p, &c, PolicyOptions::default());
    assert_eq!(d[0].action, Action::Skip);
    assert_eq!(
        d[0].reason,
        Reason::OptOut {
            annotation: "backup.velero.io/backup-volumes-excludes".into()
        }
    );
    p.metadata.annotations = Some(BTreeMap::from([(
        "vbackup.io/backup-volumes-excludes".to_string(),
        "tmp, nextcloud-main".to_string(),
    )]));
    let d = decide(&p, &c, PolicyOptions::default());
    assert_eq!(
        d[0].reason,
        Reason::OptOut {
            annotation: "vbackup.io/backup-volumes-excludes".into()
        }
    );
}

#[test]
fn opt_in_mode_copies_only_listed_volumes() {
    let opt_in = PolicyOptions {
        default_volumes_to_fs_backup: false,
        ..Default::default()
    };
    let c = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let d = decide(&nextcloud(), &c, opt_in);
    assert_eq!(d[0].action, Action::Skip);
    assert_eq!(d[0].reason, Reason::NotOptedIn);
    let mut p = nextcloud();
    p.metadata.annotations = Some(BTreeMap::from([(
        "backup.velero.io/backup-volumes".to_string(),
        "nextcloud-main,tmp".to_string(),
    )]));
    let d = decide(&p, &c, opt_in);
    assert_eq!(d[0].action, COPY);
    assert_eq!(
        d[0].reason,
        Reason::OptIn {
            annotation: "backup.velero.io/backup-volumes".into()
        }
    );
    // An opted-in emptyDir cannot be reached by a mover: said, and warned.
    assert_eq!(d[2].action, Action::Skip);
    assert!(
        d[2].warn && d[2].notes[0].contains("emptyDir"),
        "{:?}",
        d[2]
    );
}

#[test]
fn redis_with_only_emptydir_and_configmap_copies_nothing_silently() {
    let p = pod(json!({
        "metadata": {"name": "redis-0", "namespace": "app"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7"}],
                 "volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "redis"}}]}
    }));
    let d = decide(&p, &BTreeMap::new(), PolicyOptions::default());
    assert!(
        d.iter().all(|d| d.action == Action::Skip && !d.warn),
        "{d:?}"
    );
}

#[test]
fn hostpath_is_skipped_with_a_warning_naming_it() {
    let p = pod(json!({
        "metadata": {"name": "agent", "namespace": "app"},
        "spec": {"containers": [{"name": "a", "image": "x"}],
                 "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}]}
    }));
    let d = decide(&p, &BTreeMap::new(), PolicyOptions::default());
    assert_eq!(d[0].action, Action::Skip);
    assert!(d[0].warn);
    assert!(d[0].reason.to_string().contains("/var/log"));
}

#[test]
fn read_write_once_pod_claims_go_through_a_snapshot_or_are_skipped_with_the_reason() {
    let p = pod(json!({
        "metadata": {"name": "pg-0", "namespace": "app"},
        "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pg"}}]}
    }));
    let with_class = claims(vec![claim(
        "pg",
        &["ReadWriteOncePod"],
        "local",
        Some("csi-snap"),
    )]);
    let d = decide(&p, &with_class, PolicyOptions::default());
    assert_eq!(d[0].action, Action::Copy(Method::SnapshotMoveData));
    assert!(d[0].notes[0].contains("ReadWriteOncePod"));
    let without = claims(vec![claim("pg", &["ReadWriteOncePod"], "local", None)]);
    let d = decide(&p, &without, PolicyOptions::default());
    assert_eq!(d[0].action, Action::Skip);
    assert!(d[0].warn && d[0].notes[0].contains("no VolumeSnapshotClass"));
}

#[test]
fn snapshots_without_a_class_fall_back_to_a_file_copy() {
    let c = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let snap = PolicyOptions {
        snapshot_volumes: true,
        ..Default::default()
    };
    let d = decide(&nextcloud(), &c, snap);
    assert_eq!(d[0].action, COPY);
    assert!(d[0].notes[0].contains("no VolumeSnapshotClass"));
}

#[test]
fn the_first_matching_volume_policy_beats_annotations() {
    let yaml = "version: v1\nvolumePolicies:\n- conditions:\n    storageClass: [local-fast]\n  action:\n    type: skip\n- conditions:\n    capacity: \"0,100Gi\"\n  action:\n    type: fs-backup\n";
    let policies = ResourcePolicies::parse("test", yaml).unwrap();
    let mut p = nextcloud();
    p.metadata.annotations = Some(BTreeMap::from([(
        "backup.velero.io/backup-volumes-excludes".to_string(),
        "nextcloud-main".to_string(),
    )]));
    let fast = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local-fast",
        None,
    )]);
    let d = decide_with(
        &p,
        &fast,
        PolicyOptions::default(),
        Some(&policies),
        &BTreeMap::new(),
    );
    assert_eq!(d[0].action, Action::Skip);
    assert_eq!(
        d[0].reason,
        Reason::Policy {
            index: 0,
            line: 3,
            action: "skip".into()
        }
    );
    let slow = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let d = decide_with(
        &p,
        &slow,
        PolicyOptions::default(),
        Some(&policies),
        &BTreeMap::new(),
    );
    assert_eq!(
        d[0].action, COPY,
        "policy #2 matches before the opt-out annotation"
    );
}

#[test]
fn excluded_namespaces_pods_and_movers_are_left_alone() {
    let c = claims(vec![claim(
        "nextcloud-data",
        &["ReadWriteOnce"],
        "local",
        None,
    )]);
    let ns = BTreeMap::from([("vbackup.io/exclude".to_string(), "true".to_string())]);
    let d = decide_with(&nextcloud(), &c, PolicyOptions::default(), None, &ns);
    assert!(d.iter().all(|d| d.action == Action::Skip));
    assert!(
        d[0].reason.to_string().contains("namespace app"),
        "{}",
        d[0].reason
    );
    let mut mover = nextcloud();
    mover.metadata.labels = Some(BTreeMap::from([(
        "vbackup.io/mover".to_string(),
        "true".to_string(),
    )]));
    let d = decide(&mover, &c, PolicyOptions::default());
    assert!(d.iter().all(|d| d.action == Action::Skip));
}

#[test]
fn a_missing_claim_is_a_warning_not_a_silent_skip() {
    let d = decide(&nextcloud(), &BTreeMap::new(), PolicyOptions::default());
    assert_eq!(d[0].action, Action::Skip);
    assert!(d[0].warn);
    assert_eq!(
        d[0].reason,
        Reason::ClaimMissing {
            claim: "nextcloud-data".into()
        }
    );
}

#[test]
fn an_unused_claim_is_copied_by_default_and_skipped_when_opt_in() {
    let c = claim("orphan", &["ReadWriteOnce"], "local", None);
    let empty = BTreeMap::new();
    let cs = BTreeMap::new();
    let input = |options| PolicyInput {
        namespace_labels: &empty,
        claims: &cs,
        policies: None,
        options,
    };
    assert_eq!(
        decide_unused_claim(&c, &input(PolicyOptions::default())).action,
        COPY
    );
    let opt_in = PolicyOptions {
        default_volumes_to_fs_backup: false,
        ..Default::default()
    };
    assert_eq!(decide_unused_claim(&c, &input(opt_in)).action, Action::Skip);
}
