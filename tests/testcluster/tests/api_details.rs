//! API details that `kubectl vbackup install` and scheduled backups meet, through real
//! kubectl: server-side apply list types, CRD establishment and structural schemas, Job
//! deletion defaults, CronJob validation.

mod common;
mod node_support;

use common::Kubectl;
use node_support::{node_cluster, wait};
use serde_json::{Value, json};
use vbackup_testcluster::TestCluster;

fn cluster() -> (TestCluster, Kubectl) {
    let c = TestCluster::start().unwrap();
    let k = Kubectl::new(c.kubeconfig_path());
    (c, k)
}

fn webhooks(timeout: u32) -> String {
    let hook = |name: &str| {
        format!(
            r#"
- name: {name}.vbackup.io
  admissionReviewVersions: [v1]
  sideEffects: None
  timeoutSeconds: {timeout}
  clientConfig:
    service: {{namespace: vbackup-system, name: vbackup-webhook, path: /mutate}}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}}"#
        )
    };
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: vbackup}}\nwebhooks:{}{}\n",
        hook("pods"),
        hook("other")
    )
}

#[test]
fn a_second_managers_ca_bundle_survives_a_reapply_of_the_webhook_configuration() {
    let (_c, k) = cluster();
    let apply = |manager: &str, body: &str| {
        k.ok_with(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                manager,
                "-f",
                "-",
            ],
            body,
        )
    };
    apply("vbackup-install", &webhooks(10));
    // Another manager (a CA injector) sets caBundle inside one webhook entry only.
    let ca = "Y2EtYnVuZGxl";
    apply(
        "ca-injector",
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: vbackup}}\nwebhooks:\n- name: pods.vbackup.io\n  clientConfig: {{caBundle: {ca}}}\n"
        ),
    );
    // The installer re-applies its configuration (a changed timeout) without caBundle.
    apply("vbackup-install", &webhooks(15));
    let live = k.json(&[
        "get",
        "mutatingwebhookconfiguration",
        "vbackup",
        "--show-managed-fields",
    ]);
    let hooks = live["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2, "{live}");
    assert_eq!(hooks[0]["name"], "pods.vbackup.io");
    assert_eq!(hooks[0]["clientConfig"]["caBundle"], ca, "{live}");
    assert_eq!(hooks[0]["timeoutSeconds"], 15);
    assert_eq!(hooks[1]["clientConfig"].get("caBundle"), None);
    // Ownership is recorded per entry, keyed by name, as on a real server.
    let injector = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "ca-injector")
        .unwrap();
    assert_eq!(
        injector["fieldsV1"],
        json!({"f:webhooks": {"k:{\"name\":\"pods.vbackup.io\"}": {".": {}, "f:clientConfig": {"f:caBundle": {}}, "f:name": {}}}})
    );
    // Changing the other manager's field is a conflict naming the entry.
    let err = k.fails(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "vbackup-install",
            "-f",
            "-",
        ],
        &webhooks(15).replacen(
            "clientConfig:\n",
            "clientConfig:\n    caBundle: b3RoZXI=\n",
            1,
        ),
    );
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"ca-injector\" using admissionregistration.k8s.io/v1: .webhooks[name=\"pods.vbackup.io\"].clientConfig.caBundle"
        ),
        "{err}"
    );
}

#[test]
fn server_side_apply_merges_containers_env_and_ports_by_their_keys() {
    let (_c, k) = cluster();
    let deploy = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n        env: [{{name: A, value: '1'}}]\n        ports: [{{containerPort: 80}}]\n      tolerations: [{{key: a, operator: Exists}}]\n"
        )
    };
    let apply = |manager: &str, body: &str| {
        k.ok_with(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                manager,
                "-f",
                "-",
            ],
            body,
        )
    };
    apply("owner", &deploy("app:1"));
    apply(
        "sidecar-injector",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        env: [{name: B, value: '2'}]\n        ports: [{containerPort: 80, protocol: UDP}]\n      - {name: proxy, image: 'proxy:1'}\n",
    );
    // Tolerations are an atomic list: another manager's list conflicts as a whole.
    let err = k.fails(
        &["apply", "--server-side", "--field-manager", "sidecar-injector", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      tolerations: [{key: b, operator: Exists}]\n",
    );
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"owner\" using apps/v1: .spec.template.spec.tolerations\n"),
        "{err}"
    );
    apply("owner", &deploy("app:2"));
    let spec = &k.json(&["get", "deployment", "web"])["spec"]["template"]["spec"];
    let app = &spec["containers"][0];
    assert_eq!(app["image"], "app:2");
    let env: Vec<&str> = app["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["A", "B"]);
    let ports: Vec<(i64, &str)> = app["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["containerPort"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [(80, "TCP"), (80, "UDP")],
        "ports are keyed by port and protocol"
    );
    assert_eq!(spec["containers"][1]["name"], "proxy");
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "a", "operator": "Exists"}])
    );
}

fn cronjob(name: &str, schedule: &str, time_zone: Option<&str>) -> String {
    let tz = time_zone
        .map(|z| format!("  timeZone: {z:?}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: {name}}}\nspec:\n  schedule: {schedule:?}\n{tz}  jobTemplate:\n    metadata: {{labels: {{cron: {name}}}}}\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: vbackup.test/shell, command: [sh, -c, 'true']}}]\n"
    )
}

#[test]
fn cronjob_names_schedules_and_time_zones_are_validated_as_upstream() {
    let (_c, k) = cluster();
    let refused = |name: &str, schedule: &str, tz: Option<&str>| {
        k.fails(&["create", "-f", "-"], &cronjob(name, schedule, tz))
    };
    let long = "a".repeat(53);
    assert_eq!(
        refused(&long, "0 * * * *", None),
        format!(
            "The CronJob \"{long}\" is invalid: metadata.name: Invalid value: \"{long}\": must be no more than 52 characters\n"
        )
    );
    k.ok_with(
        &["create", "-f", "-"],
        &cronjob(&"b".repeat(52), "0 * * * *", None),
    );
    assert_eq!(
        refused("c", "0 * * *", None),
        "The CronJob \"c\" is invalid: spec.schedule: Invalid value: \"0 * * *\": expected exactly 5 fields, found 4: [0 * * *]\n"
    );
    assert_eq!(
        refused("c", "0 25 * * *", None),
        "The CronJob \"c\" is invalid: spec.schedule: Invalid value: \"0 25 * * *\": end of range (25) above maximum (23): 25\n"
    );
    assert_eq!(
        refused("c", "@fortnightly", None),
        "The CronJob \"c\" is invalid: spec.schedule: Invalid value: \"@fortnightly\": unrecognized descriptor: @fortnightly\n"
    );
    assert_eq!(
        refused("c", "TZ=Europe/Paris 0 * * * *", None),
        "The CronJob \"c\" is invalid: spec.schedule: Invalid value: \"TZ=Europe/Paris 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead\n"
    );
    assert_eq!(
        refused("c", "0 * * * *", Some("Mars/Olympus")),
        "The CronJob \"c\" is invalid: spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus\n"
    );
    assert_eq!(
        refused("c", "0 * * * *", Some("../etc")),
        "The CronJob \"c\" is invalid: spec.timeZone: Invalid value: \"../etc\": unknown time zone ../etc\n"
    );
    k.ok_with(
        &["create", "-f", "-"],
        &cronjob("d", "30 2 * jan-mar mon-fri", Some("Europe/Paris")),
    );
}

#[test]
fn a_cronjob_fires_at_its_minute_in_its_time_zone() {
    let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
    // Kathmandu is UTC+05:45: its minutes never line up with UTC's hour fields.
    let zone = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
    let target = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(120))
        .unwrap()
        .to_zoned(zone.clone())
        .round(jiff::Unit::Minute)
        .unwrap();
    let schedule = format!("{} {} * * *", target.minute(), target.hour());
    k.ok_with(
        &["create", "-f", "-"],
        &cronjob("kathmandu", &schedule, Some("Asia/Kathmandu")),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let job = loop {
        let jobs = k.json(&["get", "jobs", "-l", "cron=kathmandu"]);
        if let Some(j) = jobs["items"].as_array().unwrap().first() {
            break j.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no Job was started");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let scheduled: jiff::Timestamp = value(
        &job,
        "/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp",
    )
    .parse()
    .unwrap();
    assert_eq!(scheduled, target.timestamp());
}

#[test]
fn jobs_deleted_without_a_propagation_policy_orphan_their_pods() {
    let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
    let job = |name: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  template:\n    metadata: {{labels: {{job: {name}}}}}\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: c, image: vbackup.test/shell, command: [sh, -c, 'sleep 600']}}]\n"
        )
    };
    let pods = |name: &str| k.json(&["get", "pods", "-l", &format!("job={name}")]);
    for name in ["raw", "kubectl"] {
        k.ok_with(&["create", "-f", "-"], &job(name));
        wait(
            &k,
            "default",
            &format!("job/{name}"),
            "jsonpath={.status.active}=1",
        );
    }
    // The API's own default for batch/v1 (no propagationPolicy sent): the pods stay,
    // without their owner, and the server says so.
    let out = k.run_with(
        &[
            "delete",
            "--raw",
            "/apis/batch/v1/namespaces/default/jobs/raw",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Warning: child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"
        ),
        "{out:?}"
    );
    k.ok(&["wait", "--for=delete", "job/raw", "--timeout=60s"]);
    let orphans = pods("raw");
    let orphans = orphans["items"].as_array().unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0]["metadata"].get("ownerReferences"), None);
    assert_eq!(orphans[0]["metadata"].get("deletionTimestamp"), None);
    // kubectl sends propagationPolicy=Background itself: the pods go with the Job.
    let out = k.run_with(&["delete", "job", "kubectl"], "");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("preserved"),
        "{out:?}"
    );
    node_support::eventually("the Job's pods are deleted", || {
        pods("kubectl")["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["metadata"].get("deletionTimestamp").is_some())
    });
}

fn value(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn gadget_crd(name: &str, spec_schema: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {name}s.example.com}}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {{plural: {name}s, kind: {kind}}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec: {spec_schema}\n",
        kind = name[..1].to_uppercase() + &name[1..]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_are_established_after_their_creation_and_serve_nothing_before() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let cluster = TestCluster::start().unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(cluster.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Objects of a CRD whose names are not accepted yet are not served. Whether the
    // request came before the acceptance is judged by reading the CRD after it.
    let mut conclusive = 0;
    for i in 0..5 {
        let name = format!("gadget{i}");
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&gadget_crd(
            &name,
            "{type: object, x-kubernetes-preserve-unknown-fields: true}",
        ))
        .unwrap();
        let created = crds.create(&PostParams::default(), &crd).await.unwrap();
        let status = serde_json::to_value(created.status).unwrap();
        assert_eq!(status["conditions"], Value::Null, "{status}");
        assert_eq!(status["acceptedNames"], json!({"plural": "", "kind": ""}));
        let request =
            http::Request::get(format!("/apis/example.com/v1/namespaces/default/{name}s"))
                .body(Vec::new())
                .unwrap();
        let answer = client.request_text(request).await;
        let after =
            serde_json::to_value(crds.get(&format!("{name}s.example.com")).await.unwrap()).unwrap();
        let accepted = after["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "NamesAccepted"));
        if !accepted {
            conclusive += 1;
            let err = answer.unwrap_err().to_string();
            assert!(
                err.contains("the server could not find the requested resource"),
                "{err}"
            );
        }
    }
    assert!(
        conclusive > 0,
        "every request came after the names were accepted"
    );
    let k2 = Kubectl::new(cluster.kubeconfig_path());
    tokio::task::spawn_blocking(move || {
        k2.ok(&[
            "wait",
            "--for=condition=Established",
            "crd/gadget0s.example.com",
            "--timeout=60s",
        ]);
        let crd = k2.json(&["get", "crd", "gadget0s.example.com"]);
        let conditions: Vec<(String, String, String)> = crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (value(c, "/type"), value(c, "/status"), value(c, "/reason")))
            .collect();
        let expect = |t: &str, s: &str, r: &str| (t.to_string(), s.to_string(), r.to_string());
        assert_eq!(
            conditions,
            [
                expect("NamesAccepted", "True", "NoConflicts"),
                expect("Established", "True", "InitialNamesAccepted")
            ]
        );
        assert_eq!(
            crd["status"]["acceptedNames"],
            json!({"plural": "gadget0s", "kind": "Gadget0", "singular": "gadget0", "listKind": "Gadget0List"})
        );
        k2.ok_with(
            &["create", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Gadget0\nmetadata: {name: g}\nspec: {any: thing}\n",
        );
    })
    .await
    .unwrap();
}

#[test]
fn non_structural_crd_schemas_are_refused_with_the_real_messages() {
    let (_c, k) = cluster();
    let err = k.fails(
        &["apply", "-f", "-"],
        &gadget_crd("widget", "{properties: {size: {type: integer}}}"),
    );
    assert_eq!(
        err,
        "The CustomResourceDefinition \"widgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields\n"
    );
    let err = k.fails(
        &["apply", "-f", "-"],
        &gadget_crd(
            "widget",
            "{type: object, x-kubernetes-preserve-unknown-fields: false, properties: {list: {type: array}}}",
        ),
    );
    assert_eq!(
        err,
        "The CustomResourceDefinition \"widgets.example.com\" is invalid: \n* spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined\n* spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].items: Required value: must be specified\n"
    );
    // Fields left open with x-kubernetes-preserve-unknown-fields need no type.
    k.ok_with(
        &["apply", "-f", "-"],
        &gadget_crd("widget", "{x-kubernetes-preserve-unknown-fields: true}"),
    );
}
