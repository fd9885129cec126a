//! API details that `kubectl vbackup install` and scheduled backups meet, through real
//! kubectl: server-side apply list types, CRD establishment and structural schemas, Job
//! deletion defaults, CronJob validation.

mod common;

use common::Kubectl;
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

fn value(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
