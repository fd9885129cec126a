//! The `/mutate` decoder on arbitrary input, in bounded time: never a panic, always a 400 or an
//! admitted answer — for random bytes, for valid reviews with fields of the wrong type, and for
//! pods of random shapes.

use proptest::prelude::*;
use serde_json::{Value, json};
use vbackup_engine::webhook::{Outcome, StaticView, mutate};

fn review(object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "app", "operation": "CREATE", "userInfo": {"username": "u"},
            "object": object, "dryRun": false
        }
    })
}

/// Arbitrary JSON values, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z/.~\\-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn volume() -> impl Strategy<Value = Value> {
    let name = "[a-z][a-z0-9-]{0,10}";
    prop_oneof![
        (name, name)
            .prop_map(|(n, c)| json!({"name": n, "persistentVolumeClaim": {"claimName": c}})),
        name.prop_map(|n| json!({"name": n, "emptyDir": {}})),
        name.prop_map(|n| json!({"name": n, "configMap": {"name": "c"}})),
        name.prop_map(|n| json!({"name": n, "hostPath": {"path": "/var/log"}})),
        name.prop_map(|n| json!({"name": n})),
    ]
}

fn check(body: &[u8]) {
    let reply = mutate(body, &StaticView::default());
    match reply.status {
        400 => assert!(matches!(reply.outcome, Outcome::BadRequest(_))),
        200 => {
            let answer: Value = serde_json::from_slice(&reply.body).expect("JSON answer");
            assert_eq!(answer["response"]["allowed"], true, "{answer}");
        }
        other => panic!("status {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body);
    }

    #[test]
    fn random_objects_in_a_valid_review_are_admitted(object in any_json()) {
        check(&serde_json::to_vec(&review(object)).unwrap());
    }

    #[test]
    fn random_review_fields_never_panic(field in "[a-zA-Z]{1,12}", value in any_json()) {
        let mut r = review(json!({"metadata": {"name": "p"}}));
        r["request"][field] = value;
        check(&serde_json::to_vec(&r).unwrap());
    }

    #[test]
    fn random_pods_get_an_answer_naming_only_their_own_volumes(
        volumes in prop::collection::vec(volume(), 0..40),
        annotations in prop::collection::btree_map("[a-z.]{1,8}/[a-z-]{1,12}", "[a-z0-9 ,\\[\\]\"]{0,16}", 0..5),
    ) {
        let pod = json!({"metadata": {"name": "p", "annotations": &annotations},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes}});
        let names: Vec<String> = volumes.iter().filter_map(|v| v["name"].as_str().map(String::from)).collect();
        let body = serde_json::to_vec(&review(pod)).unwrap();
        check(&body);
        let reply = mutate(&body, &StaticView::default());
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        if let Some(patch) = answer["response"]["patch"].as_str() {
            use base64::Engine as _;
            let patch = base64::engine::general_purpose::STANDARD.decode(patch).unwrap();
            let patch: Value = serde_json::from_slice(&patch).unwrap();
            for op in patch.as_array().unwrap() {
                let path = op["path"].as_str().unwrap();
                prop_assert!(path.starts_with("/metadata/annotations"), "{path}");
                if let Some(key) = path.strip_prefix("/metadata/annotations/") {
                    let key = key.replace("~1", "/").replace("~0", "~");
                    prop_assert!(!annotations.contains_key(&key), "user's {key} overwritten");
                }
                let excludes = op["value"].get("vbackup.io/backup-volumes-excludes").or(
                    (path == "/metadata/annotations/vbackup.io~1backup-volumes-excludes").then_some(&op["value"]));
                if let Some(list) = excludes.and_then(Value::as_str) {
                    for v in list.split(',') {
                        prop_assert!(names.iter().any(|n| n == v), "{v} is not a volume of the pod");
                    }
                }
            }
        }
    }
}
