//! Mutating admission end to end: real `kubectl` against the test cluster, a real HTTPS
//! webhook registered through a MutatingWebhookConfiguration.

mod admission_support;
mod common;

use admission_support::*;
use common::Kubectl;
use serde_json::{Value, json};
use vbackup_testcluster::{ClusterOptions, ServiceEndpoints, TestCluster};

/// A Service whose endpoint has nothing listening: the webhook is down.
const DOWN_SERVICE: &str = "webhook-down";

fn cluster_with(hook: &TestWebhook, down: std::net::SocketAddr) -> TestCluster {
    let mut endpoints = ServiceEndpoints::default();
    endpoints.insert(SERVICE_NAMESPACE, SERVICE_NAME, hook.addr);
    endpoints.insert(SERVICE_NAMESPACE, DOWN_SERVICE, down);
    TestCluster::start_with(ClusterOptions {
        service_endpoints: endpoints,
        ..Default::default()
    })
    .unwrap()
}

fn pod_manifest(name: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    })
    .to_string()
}

fn labeler(client_config: Value, failure_policy: &str) -> String {
    configuration(
        "labeler",
        vec![webhook(
            "labels.vbackup.io",
            client_config,
            json!({"failurePolicy": failure_policy}),
        )],
    )
    .to_string()
}

fn down_service(hook: &TestWebhook) -> Value {
    json!({
        "service": {"namespace": SERVICE_NAMESPACE, "name": DOWN_SERVICE, "path": "/label-base64"},
        "caBundle": base64_of(&hook.ca_pem),
    })
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

mod admission_kubectl {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn kubectl_create_returns_the_pod_with_the_webhooks_patch_applied() {
        let hook = TestWebhook::start().await;
        let cluster = cluster_with(&hook, closed_port());
        let kubectl = Kubectl::new(cluster.kubeconfig_path());
        tokio::task::block_in_place(|| {
            kubectl.ok(&["create", "namespace", "team"]);
            kubectl.ok_with(
                &["create", "-f", "-"],
                &labeler(hook.service("/label-base64"), "Fail"),
            );
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-0")),
            )
            .unwrap();
            assert_eq!(
                created["metadata"]["labels"]["mutated-by"],
                "base64-webhook"
            );
            assert_eq!(created["metadata"]["labels"]["app"], "web");
            let stored = kubectl.json(&["get", "pod", "web-0", "-n", "team"]);
            assert_eq!(stored["metadata"]["labels"]["mutated-by"], "base64-webhook");

            // kube-rs webhooks send the patch as an array of numbers; it applies the same.
            kubectl.ok(&[
                "patch", "mutatingwebhookconfiguration", "labeler", "--type", "json", "-p",
                r#"[{"op":"replace","path":"/webhooks/0/clientConfig/service/path","value":"/label-kube-rs"}]"#,
            ]);
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-1")),
            )
            .unwrap();
            assert_eq!(
                created["metadata"]["labels"]["mutated-by"],
                "kube-rs-webhook"
            );
        });
        let review = &hook.calls()[0].review["request"];
        assert_eq!(review["operation"], "CREATE");
        assert_eq!(review["namespace"], "team");
        assert_eq!(review["object"]["metadata"]["name"], "web-0");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn webhook_down_fails_closed_with_fail_and_open_with_ignore() {
        let hook = TestWebhook::start().await;
        let down = closed_port();
        let cluster = cluster_with(&hook, down);
        let kubectl = Kubectl::new(cluster.kubeconfig_path());
        tokio::task::block_in_place(|| {
            kubectl.ok(&["create", "namespace", "team"]);
            kubectl.ok_with(
                &["create", "-f", "-"],
                &labeler(down_service(&hook), "Fail"),
            );
            let stderr = kubectl.fails(&["create", "-f", "-"], &pod_manifest("web-0"));
            let expected = format!(
                "Error from server (InternalError): error when creating \"STDIN\": Internal error occurred: \
                 failed calling webhook \"labels.vbackup.io\": failed to call webhook: \
                 Post \"https://webhook-down.vbackup-system.svc:443/label-base64?timeout=10s\": \
                 dial tcp {down}: connect: connection refused"
            );
            assert!(
                stderr.contains(&expected),
                "kubectl said:\n{stderr}\nexpected:\n{expected}"
            );
            let missing = kubectl.fails(&["get", "pod", "web-0", "-n", "team"], "");
            assert!(missing.contains("NotFound"), "{missing}");

            kubectl.ok(&[
                "patch",
                "mutatingwebhookconfiguration",
                "labeler",
                "--type",
                "json",
                "-p",
                r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
            ]);
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-0")),
            )
            .unwrap();
            assert_eq!(created["metadata"]["labels"], json!({"app": "web"}));
        });
        assert!(hook.calls().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn namespace_selector_leaves_pods_in_excluded_namespaces_alone() {
        let hook = TestWebhook::start().await;
        let cluster = cluster_with(&hook, closed_port());
        let kubectl = Kubectl::new(cluster.kubeconfig_path());
        let config = configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.service("/label-base64"),
                json!({"namespaceSelector": {"matchExpressions": [
                    {"key": "vbackup.io/exclude", "operator": "NotIn", "values": ["true"]}
                ]}}),
            )],
        );
        tokio::task::block_in_place(|| {
            kubectl.ok(&["create", "namespace", "team"]);
            kubectl.ok_with(&["create", "-f", "-"], &config.to_string());
            kubectl.ok(&["label", "namespace", "team", "vbackup.io/exclude=true"]);
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-0")),
            )
            .unwrap();
            assert_eq!(created["metadata"]["labels"], json!({"app": "web"}));
            kubectl.ok(&["label", "namespace", "team", "vbackup.io/exclude-"]);
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-1")),
            )
            .unwrap();
            assert_eq!(
                created["metadata"]["labels"]["mutated-by"],
                "base64-webhook"
            );
        });
        assert_eq!(hook.calls_to("/label-base64"), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn webhook_configurations_get_the_real_servers_defaults_and_validation() {
        let hook = TestWebhook::start().await;
        let cluster = cluster_with(&hook, closed_port());
        let kubectl = Kubectl::new(cluster.kubeconfig_path());
        let minimal = |side_effects: Option<&str>| {
            let mut webhook = json!({
                "name": "labels.vbackup.io",
                "clientConfig": hook.service("/label-base64"),
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "admissionReviewVersions": ["v1"],
            });
            if let Some(side_effects) = side_effects {
                webhook["sideEffects"] = json!(side_effects);
            }
            configuration("labeler", vec![webhook]).to_string()
        };
        tokio::task::block_in_place(|| {
            let stderr = kubectl.fails(&["create", "-f", "-"], &minimal(None));
            assert!(
                stderr.contains("webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"),
                "{stderr}"
            );
            kubectl.ok_with(&["create", "-f", "-"], &minimal(Some("None")));
            let stored = kubectl.json(&["get", "mutatingwebhookconfiguration", "labeler"]);
            let webhook = &stored["webhooks"][0];
            assert_eq!(webhook["failurePolicy"], "Fail");
            assert_eq!(webhook["matchPolicy"], "Equivalent");
            assert_eq!(webhook["timeoutSeconds"], 10);
            assert_eq!(webhook["reinvocationPolicy"], "Never");
            assert_eq!(webhook["namespaceSelector"], json!({}));
            assert_eq!(webhook["rules"][0]["scope"], "*");
            assert_eq!(webhook["clientConfig"]["service"]["port"], 443);
        });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn containers_injected_by_a_webhook_get_their_defaults() {
        let hook = TestWebhook::start().await;
        let cluster = cluster_with(&hook, closed_port());
        let kubectl = Kubectl::new(cluster.kubeconfig_path());
        let config = configuration(
            "injector",
            vec![webhook(
                "sidecars.vbackup.io",
                hook.service("/add-sidecar"),
                json!({}),
            )],
        );
        tokio::task::block_in_place(|| {
            kubectl.ok(&["create", "namespace", "team"]);
            kubectl.ok_with(&["create", "-f", "-"], &config.to_string());
            let created: Value = serde_json::from_str(
                &kubectl.ok_with(&["create", "-f", "-", "-o", "json"], &pod_manifest("web-0")),
            )
            .unwrap();
            let sidecar = &created["spec"]["containers"][1];
            assert_eq!(sidecar["name"], "sidecar");
            assert_eq!(sidecar["imagePullPolicy"], "Always");
            assert_eq!(sidecar["terminationMessagePath"], "/dev/termination-log");
        });
    }
}
