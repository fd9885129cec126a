//! The webhook on the pods people run: each case is a pod as its controller or chart makes
//! it, and the annotations the API server must end up with after applying the patch.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::mutate::{Outcome, StaticView, mutate};
use crate::policy::BackupPolicy;

fn review(pod: Value) -> Vec<u8> {
    review_with(pod, json!({}))
}

fn review_with(pod: Value, extra: Value) -> Vec<u8> {
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "app",
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": pod,
        "oldObject": null,
        "dryRun": false
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
    }))
    .unwrap()
}

fn pod(name: &str, labels: Value, annotations: Option<Value>, spec: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": format!("{name}-"), "namespace": "app", "labels": labels},
        "spec": spec
    });
    if let Some(a) = annotations {
        p["metadata"]["annotations"] = a;
    }
    p
}

/// Answers the review and applies its patch to the pod as the API server would; returns
/// the answer and the pod's annotations afterwards.
fn admit(view: &StaticView, body: &[u8]) -> (Value, Outcome, BTreeMap<String, String>) {
    let reply = mutate(body, view);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    let response = &answer["response"];
    assert_eq!(
        response["allowed"], true,
        "a pod is never blocked: {answer}"
    );
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    let request: Value = serde_json::from_slice(body).unwrap();
    let mut pod = request["request"]["object"].clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
    }
    let annotations =
        serde_json::from_value(pod["metadata"]["annotations"].clone()).unwrap_or_default();
    (answer, reply.outcome, annotations)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn token_volume() -> Value {
    json!({"name": "kube-api-access-x7k2p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}})
}

#[test]
fn pods_people_run_get_the_policys_annotations() {
    let view = StaticView::default();
    // (case, pod, annotations after admission)
    let cases: Vec<(&str, Value, BTreeMap<String, String>)> = vec![
        (
            "nextcloud app: the claim is copied, the scratch dir listed as excluded",
            pod(
                "nextcloud-7d9f",
                json!({"app": "nextcloud"}),
                None,
                json!({"containers": [{"name": "nextcloud", "image": "nextcloud:29-apache"}],
                       "volumes": [
                           {"name": "nextcloud-main", "persistentVolumeClaim": {"claimName": "nextcloud-data"}},
                           {"name": "nextcloud-config", "configMap": {"name": "nextcloud-config"}},
                           {"name": "tmp", "emptyDir": {}},
                           token_volume()]}),
            ),
            map(&[
                ("vbackup.io/backup-volumes-excludes", "tmp"),
                ("vbackup.io/policy", "default"),
            ]),
        ),
        (
            "bitnami MariaDB StatefulSet pod: data copied, its empty-dir excluded, a dump added",
            pod(
                "mariadb",
                json!({"app.kubernetes.io/name": "mariadb", "statefulset.kubernetes.io/pod-name": "mariadb-0"}),
                Some(json!({"checksum/configuration": "8f1c"})),
                json!({"containers": [{"name": "mariadb", "image": "docker.io/bitnami/mariadb:11.4.3-debian-12-r0",
                                       "env": [{"name": "MARIADB_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mariadb", "key": "mariadb-root-password"}}}]}],
                       "volumes": [
                           {"name": "empty-dir", "emptyDir": {}},
                           {"name": "config", "configMap": {"name": "mariadb"}},
                           {"name": "data", "persistentVolumeClaim": {"claimName": "data-mariadb-0"}}]}),
            ),
            map(&[
                ("checksum/configuration", "8f1c"),
                ("vbackup.io/backup-volumes-excludes", "empty-dir"),
                ("vbackup.io/policy", "default"),
            ]),
        ),
        (
            "redis with only emptyDir and configMap: its emptyDir is named, a dump added",
            pod(
                "redis",
                json!({"app": "redis"}),
                None,
                json!({"containers": [{"name": "redis", "image": "redis:7.2"}],
                       "volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "redis"}}]}),
            ),
            map(&[
                ("vbackup.io/backup-volumes-excludes", "data"),
                ("vbackup.io/policy", "default"),
            ]),
        ),
        (
            "postgresql: its claim is copied, nothing to exclude, a dump added",
            pod(
                "postgres",
                json!({"app": "postgres"}),
                None,
                json!({"containers": [{"name": "postgres", "image": "postgres:16",
                                       "env": [{"name": "POSTGRES_PASSWORD", "value": "x"}]}],
                       "volumes": [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "pgdata"}}, token_volume()]}),
            ),
            map(&[("vbackup.io/policy", "default")]),
        ),
        (
            "mongodb: claim copied, its keyfile comes back with the objects, a dump added",
            pod(
                "mongo",
                json!({"app": "mongo"}),
                None,
                json!({"containers": [{"name": "mongo", "image": "mongo:7"}],
                       "volumes": [{"name": "db", "persistentVolumeClaim": {"claimName": "mongo-db"}},
                                   {"name": "keyfile", "secret": {"secretName": "mongo-key"}}]}),
            ),
            map(&[("vbackup.io/policy", "default")]),
        ),
        (
            "user annotations win: their excludes list is kept as written",
            pod(
                "web",
                json!({"app": "web"}),
                Some(json!({"vbackup.io/backup-volumes-excludes": "uploads",
                            "backup.velero.io/backup-volumes": "uploads"})),
                json!({"containers": [{"name": "web", "image": "nginx"}],
                       "volumes": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}},
                                   {"name": "cache", "emptyDir": {}}]}),
            ),
            map(&[
                ("backup.velero.io/backup-volumes", "uploads"),
                ("vbackup.io/backup-volumes-excludes", "uploads"),
                ("vbackup.io/policy", "default"),
            ]),
        ),
        (
            "only emptyDir and configMap volumes, no annotations map yet",
            pod(
                "cache",
                json!({}),
                None,
                json!({"containers": [{"name": "c", "image": "memcached"}],
                       "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                                   {"name": "conf", "configMap": {"name": "c"}}]}),
            ),
            map(&[
                ("vbackup.io/backup-volumes-excludes", "scratch"),
                ("vbackup.io/policy", "default"),
            ]),
        ),
        (
            "a mover pod is never annotated",
            pod(
                "vbackup-mover",
                json!({"vbackup.io/mover": "true"}),
                None,
                json!({"containers": [{"name": "mover", "image": "vbackup"}],
                       "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}),
            ),
            map(&[]),
        ),
        (
            "a pod labelled vbackup.io/exclude=true is left alone",
            pod(
                "scratch",
                json!({"vbackup.io/exclude": "true"}),
                None,
                json!({"containers": [{"name": "s", "image": "busybox"}],
                       "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}),
            ),
            map(&[]),
        ),
    ];
    // Which cases run a database, and the dump's container and file extension.
    let databases = [
        ("bitnami MariaDB", ("mariadb", ".sql")),
        ("redis", ("redis", ".rdb")),
        ("postgresql", ("postgres", ".sql")),
        ("mongodb", ("mongo", ".archive")),
    ];
    for (case, pod, expected) in cases {
        let (_, outcome, mut annotations) = admit(&view, &review(pod));
        let dump = [
            "vbackup.io/backup-command",
            "vbackup.io/backup-command-container",
            "vbackup.io/file-extension",
            "vbackup.io/restore-command",
        ]
        .map(|k| annotations.remove(k));
        assert_eq!(annotations, expected, "{case}: {outcome:?}");
        match databases
            .iter()
            .find(|(prefix, _)| case.starts_with(prefix))
        {
            Some((_, (container, extension))) => {
                let [Some(backup), Some(c), Some(ext), Some(restore)] = dump else {
                    panic!("{case}: no complete dump annotations: {dump:?}");
                };
                assert_eq!(
                    (c.as_str(), ext.as_str()),
                    (*container, *extension),
                    "{case}"
                );
                for command in [backup, restore] {
                    let argv: Vec<String> = serde_json::from_str(&command).unwrap();
                    assert_eq!(argv[..2], ["/bin/sh", "-c"], "{case}: {command}");
                }
            }
            None => assert_eq!(dump, [None, None, None, None], "{case}"),
        }
    }
}

#[test]
fn keys_with_slashes_are_escaped_and_an_existing_map_gets_one_add_per_key() {
    let p = pod(
        "web",
        json!({}),
        Some(json!({"note": "x"})),
        json!({"containers": [{"name": "web", "image": "nginx"}],
               "volumes": [{"name": "cache", "emptyDir": {}}]}),
    );
    let reply = mutate(&review(p), &StaticView::default());
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([
            {"op": "add", "path": "/metadata/annotations/vbackup.io~1backup-volumes-excludes", "value": "cache"},
            {"op": "add", "path": "/metadata/annotations/vbackup.io~1policy", "value": "default"}
        ])
    );
    assert_eq!(reply.outcome, Outcome::Patched(2));
}

#[test]
fn an_annotated_pod_gets_no_patch_so_reinvocation_and_restores_change_nothing() {
    let view = StaticView::default();
    let p = pod(
        "web",
        json!({}),
        None,
        json!({"containers": [{"name": "web", "image": "nginx"}],
               "volumes": [{"name": "cache", "emptyDir": {}}]}),
    );
    let (_, _, once) = admit(&view, &review(p.clone()));
    let mut again = p;
    again["metadata"]["annotations"] = serde_json::to_value(&once).unwrap();
    let (answer, outcome, twice) = admit(&view, &review(again));
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    assert_eq!(outcome, Outcome::Unchanged("already annotated".into()));
    assert_eq!(once, twice);
}

#[test]
fn a_backup_policy_chooses_opt_in_for_its_namespaces() {
    let policy: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "vbackup.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "prod-opt-in"},
        "spec": {"volumes": "OptIn", "priority": 5,
                 "namespaceSelector": {"matchLabels": {"env": "prod"}}}
    }))
    .unwrap();
    let view = StaticView {
        policies: vec![policy],
        namespaces: BTreeMap::from([("app".to_string(), map(&[("env", "prod")]))]),
    };
    let p = pod(
        "web",
        json!({}),
        None,
        json!({"containers": [{"name": "web", "image": "nginx"}],
               "volumes": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}},
                           {"name": "cache", "emptyDir": {}}, token_volume()]}),
    );
    let (_, _, annotations) = admit(&view, &review(p));
    assert_eq!(
        annotations,
        map(&[
            ("vbackup.io/backup-volumes", "uploads"),
            ("vbackup.io/policy", "prod-opt-in")
        ])
    );
}

#[test]
fn dry_runs_get_the_same_patch_and_are_reported_as_such() {
    let p = pod(
        "web",
        json!({}),
        None,
        json!({"containers": [{"name": "web", "image": "nginx"}],
               "volumes": [{"name": "cache", "emptyDir": {}}]}),
    );
    let reply = mutate(
        &review_with(p, json!({"dryRun": true})),
        &StaticView::default(),
    );
    assert!(reply.dry_run);
    assert_eq!(reply.outcome, Outcome::Patched(1));
}

#[test]
fn malformed_hook_annotations_are_admitted_with_a_warning() {
    let p = pod(
        "db",
        json!({}),
        Some(json!({"pre.hook.backup.velero.io/on-error": "ignore"})),
        json!({"containers": [{"name": "db", "image": "mariadb"}]}),
    );
    let (answer, _, annotations) = admit(&StaticView::default(), &review(p));
    let warnings = answer["response"]["warnings"].as_array().unwrap();
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("pre.hook.backup.velero.io/on-error"),
        "{warnings:?}"
    );
    assert_eq!(annotations["vbackup.io/policy"], "default");
}

#[test]
fn bad_input_is_a_400_or_an_unchanged_admission_never_a_panic() {
    let view = StaticView::default();
    // Not JSON, not a review, no request: 400.
    for body in [
        &b"not json"[..],
        b"{}",
        b"[1,2]",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    ] {
        let reply = mutate(body, &view);
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(matches!(reply.outcome, Outcome::BadRequest(_)));
    }
    // Wrong kind: admitted unchanged.
    let mut deployment =
        serde_json::from_slice::<Value>(&review(json!({"metadata": {"name": "d"}}))).unwrap();
    deployment["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let (answer, outcome, _) = admit(&view, &serde_json::to_vec(&deployment).unwrap());
    assert!(answer["response"].get("patch").is_none());
    assert!(matches!(outcome, Outcome::Unchanged(_)), "{outcome:?}");
    // Missing object: admitted unchanged, with a warning.
    let mut missing = serde_json::from_slice::<Value>(&review(json!(null))).unwrap();
    missing["request"].as_object_mut().unwrap().remove("object");
    let (answer, outcome, _) = admit(&view, &serde_json::to_vec(&missing).unwrap());
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no pod object")
    );
    // An object that is not a pod (volumes is a string): admitted unchanged, with a warning.
    let (answer, outcome, _) = admit(
        &view,
        &review(json!({"metadata": {"name": "x"}, "spec": {"volumes": "nope"}})),
    );
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("cannot be read as a pod")
    );
}

#[test]
fn a_pod_with_200_volumes_is_annotated_in_one_patch() {
    let volumes: Vec<Value> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                json!({"name": format!("data-{i}"), "persistentVolumeClaim": {"claimName": format!("c-{i}")}})
            } else {
                json!({"name": format!("tmp-{i}"), "emptyDir": {}})
            }
        })
        .collect();
    let p = pod(
        "big",
        json!({}),
        None,
        json!({"containers": [{"name": "c", "image": "x"}], "volumes": volumes}),
    );
    let (_, outcome, annotations) = admit(&StaticView::default(), &review(p));
    assert_eq!(outcome, Outcome::Patched(1));
    let excluded: Vec<&str> = annotations["vbackup.io/backup-volumes-excludes"]
        .split(',')
        .collect();
    assert_eq!(excluded.len(), 100);
    assert!(excluded.iter().all(|v| v.starts_with("tmp-")));
}

#[test]
fn a_pods_own_dump_annotations_win_over_detection() {
    let p = pod(
        "db",
        json!({}),
        Some(json!({"k8up.io/backupcommand": "mysqldump --all-databases"})),
        json!({"containers": [{"name": "db", "image": "mariadb:11"}]}),
    );
    let (_, _, annotations) = admit(&StaticView::default(), &review(p));
    assert!(
        !annotations.contains_key("vbackup.io/backup-command"),
        "{annotations:?}"
    );
    assert_eq!(
        annotations["k8up.io/backupcommand"],
        "mysqldump --all-databases"
    );
}

#[test]
fn a_policy_with_databases_off_adds_no_dump() {
    let policy: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "vbackup.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "no-dumps"}, "spec": {"databases": false}
    }))
    .unwrap();
    let view = StaticView {
        policies: vec![policy],
        ..Default::default()
    };
    let p = pod(
        "db",
        json!({}),
        None,
        json!({"containers": [{"name": "db", "image": "postgres:16"}]}),
    );
    let (_, _, annotations) = admit(&view, &review(p));
    assert_eq!(annotations, map(&[("vbackup.io/policy", "no-dumps")]));
}

#[test]
fn backups_see_pods_created_before_the_webhook_as_the_webhook_would_have_left_them() {
    use crate::policy::{
        Action, AppliedPolicy, PolicyInput, PolicyOptions, VolumeMode, decide_pod,
        with_admission_annotations,
    };
    let old: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod(
        "shop",
        json!({}),
        None,
        json!({"containers": [{"name": "db", "image": "postgres:16"}],
               "volumes": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}}]}),
    ))
    .unwrap();
    let opt_in = AppliedPolicy {
        name: "opt-in".into(),
        volumes: VolumeMode::OptIn,
        databases: true,
    };
    let seen = with_admission_annotations(&old, &BTreeMap::new(), &opt_in);
    let a = seen.metadata.annotations.clone().unwrap();
    assert_eq!(a["vbackup.io/backup-volumes"], "uploads");
    assert_eq!(a["vbackup.io/backup-command-container"], "db");
    // An opt-in backup now copies the volume the webhook would have listed.
    let claims = BTreeMap::from([(
        "uploads".to_string(),
        crate::policy::ClaimFacts {
            pvc: serde_json::from_value(
                json!({"metadata": {"name": "uploads"}, "status": {"phase": "Bound"}}),
            )
            .unwrap(),
            pv: None,
            snapshot_class: None,
        },
    )]);
    let empty = BTreeMap::new();
    let input = PolicyInput {
        namespace_labels: &empty,
        claims: &claims,
        policies: None,
        options: PolicyOptions {
            default_volumes_to_fs_backup: false,
            ..Default::default()
        },
    };
    assert_eq!(decide_pod(&old, &input)[0].action, Action::Skip);
    assert!(matches!(
        decide_pod(&seen, &input)[0].action,
        Action::Copy(_)
    ));
    // A pod the webhook annotated already is taken as it is.
    assert_eq!(
        with_admission_annotations(&seen, &BTreeMap::new(), &AppliedPolicy::default()),
        seen
    );
}
