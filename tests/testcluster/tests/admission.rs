//! Mutating admission against a real HTTPS webhook served in the test, configured through
//! MutatingWebhookConfiguration values.

mod admission_support;

use admission_support::*;
use serde_json::{Value, json};
use vbackup_testcluster::admission::{
    AdmissionAttributes, AdmissionError, Operation, ServiceEndpoints, run_mutating_webhooks,
    run_mutating_webhooks_with_warnings,
};

fn pod_create() -> AdmissionAttributes {
    AdmissionAttributes {
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        resource: "pods".into(),
        subresource: None,
        name: "web-0".into(),
        namespace: Some("team".into()),
        dry_run: false,
        username: "kubernetes-admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

fn pod(labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "team", "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx"}], "order": []},
    })
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": labels}})
}

async fn admit(
    configurations: &[Value],
    attributes: &AdmissionAttributes,
    object: Value,
    endpoints: &ServiceEndpoints,
) -> Result<Value, AdmissionError> {
    let ns = namespace(json!({"env": "prod"}));
    run_mutating_webhooks(
        configurations,
        Some(&ns),
        attributes,
        object,
        None,
        endpoints,
    )
    .await
}

/// Named so that `cargo test -p vbackup-testcluster admission` selects these tests.
mod admission_webhooks {
    use super::*;

    #[tokio::test]
    async fn patch_sent_as_base64_string_is_applied() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.service("/label-base64"),
                json!({}),
            )],
        )];
        let admitted = admit(
            &configs,
            &pod_create(),
            pod(json!({"app": "web"})),
            &hook.endpoints(),
        )
        .await
        .unwrap();
        assert_eq!(
            admitted["metadata"]["labels"]["mutated-by"],
            "base64-webhook"
        );
        assert_eq!(admitted["metadata"]["labels"]["app"], "web");
    }

    #[tokio::test]
    async fn patch_sent_as_byte_array_by_kube_rs_is_applied() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.url("/label-kube-rs"),
                json!({}),
            )],
        )];
        let admitted = admit(
            &configs,
            &pod_create(),
            pod(json!({"app": "web"})),
            &hook.endpoints(),
        )
        .await
        .unwrap();
        assert_eq!(
            admitted["metadata"]["labels"]["mutated-by"],
            "kube-rs-webhook"
        );
    }

    #[tokio::test]
    async fn admission_review_carries_the_request_like_kube_apiserver() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "recorder",
            vec![webhook(
                "record.vbackup.io",
                hook.service("/allow"),
                json!({}),
            )],
        )];
        let object = pod(json!({"app": "web"}));
        admit(&configs, &pod_create(), object.clone(), &hook.endpoints())
            .await
            .unwrap();
        admit(&configs, &pod_create(), object.clone(), &hook.endpoints())
            .await
            .unwrap();
        let calls = hook.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].uri, "/allow?timeout=10s");
        let review = &calls[0].review;
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        let request = &review["request"];
        assert_eq!(request["uid"].as_str().unwrap().len(), 36);
        assert_ne!(request["uid"], calls[1].review["request"]["uid"]);
        assert_eq!(
            request["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            request["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(request["requestKind"], request["kind"]);
        assert_eq!(request["requestResource"], request["resource"]);
        assert_eq!(request["name"], "web-0");
        assert_eq!(request["namespace"], "team");
        assert_eq!(request["operation"], "CREATE");
        assert_eq!(
            request["userInfo"],
            json!({"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]})
        );
        assert_eq!(request["object"], object);
        assert_eq!(request["oldObject"], Value::Null);
        assert_eq!(request["dryRun"], false);
        assert_eq!(
            request["options"],
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
        );
    }

    #[tokio::test]
    async fn configurations_run_in_name_order_and_webhooks_in_listed_order() {
        let hook = TestWebhook::start().await;
        let configs = [
            configuration(
                "b-second",
                vec![webhook(
                    "b1.vbackup.io",
                    hook.service("/append/b1"),
                    json!({}),
                )],
            ),
            configuration(
                "a-first",
                vec![
                    webhook("a1.vbackup.io", hook.service("/append/a1"), json!({})),
                    webhook("a2.vbackup.io", hook.url("/append/a2"), json!({})),
                ],
            ),
        ];
        let admitted = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap();
        assert_eq!(admitted["spec"]["order"], json!(["a1", "a2", "b1"]));
    }

    #[tokio::test]
    async fn rules_and_selectors_decide_which_webhooks_are_called() {
        let hook = TestWebhook::start().await;
        let rule = |operations: Value, groups: Value, resources: Value, scope: &str| json!({"rules": [{"operations": operations, "apiGroups": groups, "apiVersions": ["*"], "resources": resources, "scope": scope}]});
        let selector = |field: &str, value: Value| json!({ field: value });
        let hooks = vec![
            webhook(
                "any-op.vbackup.io",
                hook.service("/append/any-op"),
                rule(json!(["*"]), json!([""]), json!(["pods"]), "*"),
            ),
            webhook(
                "update-only.vbackup.io",
                hook.service("/append/update-only"),
                rule(json!(["UPDATE"]), json!([""]), json!(["pods"]), "*"),
            ),
            webhook(
                "deployments.vbackup.io",
                hook.service("/append/deployments"),
                rule(json!(["*"]), json!(["apps"]), json!(["deployments"]), "*"),
            ),
            webhook(
                "all-resources.vbackup.io",
                hook.service("/append/all-resources"),
                rule(json!(["CREATE"]), json!(["*"]), json!(["*"]), "Namespaced"),
            ),
            webhook(
                "pod-subresources.vbackup.io",
                hook.service("/append/pod-subresources"),
                rule(json!(["CREATE"]), json!([""]), json!(["pods/status"]), "*"),
            ),
            webhook(
                "cluster-scope.vbackup.io",
                hook.service("/append/cluster-scope"),
                rule(json!(["CREATE"]), json!(["*"]), json!(["*"]), "Cluster"),
            ),
            webhook(
                "prod-ns.vbackup.io",
                hook.service("/append/prod-ns"),
                selector("namespaceSelector", json!({"matchLabels": {"env": "prod"}})),
            ),
            webhook(
                "dev-ns.vbackup.io",
                hook.service("/append/dev-ns"),
                selector(
                    "namespaceSelector",
                    json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}),
                ),
            ),
            webhook(
                "web-app.vbackup.io",
                hook.service("/append/web-app"),
                selector(
                    "objectSelector",
                    json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}),
                ),
            ),
            webhook(
                "not-skipped.vbackup.io",
                hook.service("/append/not-skipped"),
                selector(
                    "objectSelector",
                    json!({"matchExpressions": [{"key": "vbackup.io/skip", "operator": "DoesNotExist"}]}),
                ),
            ),
            webhook(
                "skipped.vbackup.io",
                hook.service("/append/skipped"),
                selector(
                    "objectSelector",
                    json!({"matchExpressions": [{"key": "vbackup.io/skip", "operator": "Exists"}]}),
                ),
            ),
            webhook(
                "not-db.vbackup.io",
                hook.service("/append/not-db"),
                selector(
                    "objectSelector",
                    json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}),
                ),
            ),
        ];
        let configs = [configuration("selection", hooks)];
        let admitted = admit(
            &configs,
            &pod_create(),
            pod(json!({"app": "web"})),
            &hook.endpoints(),
        )
        .await
        .unwrap();
        assert_eq!(
            admitted["spec"]["order"],
            json!([
                "any-op",
                "all-resources",
                "prod-ns",
                "web-app",
                "not-skipped",
                "not-db"
            ])
        );
    }

    #[tokio::test]
    async fn namespace_selector_judges_a_namespace_by_its_own_new_labels() {
        let hook = TestWebhook::start().await;
        let hooks = vec![webhook(
            "prod.vbackup.io",
            hook.service("/allow"),
            json!({
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["namespaces"]}],
                "namespaceSelector": {"matchLabels": {"env": "prod"}},
            }),
        )];
        let configs = [configuration("namespaces", hooks)];
        let attributes = AdmissionAttributes {
            kind: "Namespace".into(),
            resource: "namespaces".into(),
            name: "team".into(),
            namespace: None,
            ..pod_create()
        };
        let endpoints = hook.endpoints();
        run_mutating_webhooks(
            &configs,
            None,
            &attributes,
            namespace(json!({"env": "dev"})),
            None,
            &endpoints,
        )
        .await
        .unwrap();
        assert_eq!(hook.calls_to("/allow"), 0);
        run_mutating_webhooks(
            &configs,
            None,
            &attributes,
            namespace(json!({"env": "prod"})),
            None,
            &endpoints,
        )
        .await
        .unwrap();
        assert_eq!(hook.calls_to("/allow"), 1);
    }

    #[tokio::test]
    async fn namespace_selector_on_a_missing_namespace_is_not_found() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "selective",
            vec![webhook(
                "prod.vbackup.io",
                hook.service("/allow"),
                json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
            )],
        )];
        let error = run_mutating_webhooks(
            &configs,
            None,
            &pod_create(),
            pod(json!({})),
            None,
            &hook.endpoints(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, 404);
        assert_eq!(error.reason, "NotFound");
        assert_eq!(error.message, "namespaces \"team\" not found");
    }

    #[tokio::test]
    async fn webhook_down_with_ignore_admits_the_object_unchanged() {
        let hook = TestWebhook::start().await;
        let mut endpoints = ServiceEndpoints::default();
        endpoints.insert(SERVICE_NAMESPACE, SERVICE_NAME, closed_port());
        let configs = [configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.service("/label-base64"),
                json!({"failurePolicy": "Ignore"}),
            )],
        )];
        let object = pod(json!({"app": "web"}));
        let admitted = admit(&configs, &pod_create(), object.clone(), &endpoints)
            .await
            .unwrap();
        assert_eq!(admitted, object);
    }

    #[tokio::test]
    async fn webhook_down_with_fail_rejects_with_the_real_servers_message() {
        let hook = TestWebhook::start().await;
        let down = closed_port();
        let mut endpoints = ServiceEndpoints::default();
        endpoints.insert(SERVICE_NAMESPACE, SERVICE_NAME, down);
        let configs = [configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.service("/mutate"),
                json!({}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &endpoints)
            .await
            .unwrap_err();
        assert_eq!(error.code, 500);
        assert_eq!(error.reason, "InternalError");
        assert_eq!(
            error.message,
            format!(
                "Internal error occurred: failed calling webhook \"labels.vbackup.io\": failed to call webhook: \
             Post \"https://webhook.vbackup-system.svc:443/mutate?timeout=10s\": dial tcp {down}: connect: connection refused"
            )
        );
        assert_eq!(error.status["kind"], "Status");
        assert_eq!(error.status["status"], "Failure");
    }

    #[tokio::test]
    async fn service_without_an_endpoint_fails_like_a_missing_service() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "labeler",
            vec![webhook(
                "labels.vbackup.io",
                hook.service("/mutate"),
                json!({}),
            )],
        )];
        let error = admit(
            &configs,
            &pod_create(),
            pod(json!({})),
            &ServiceEndpoints::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "Internal error occurred: failed calling webhook \"labels.vbackup.io\": failed to call webhook: \
         Post \"https://webhook.vbackup-system.svc:443/mutate?timeout=10s\": service \"webhook\" not found"
        );
    }

    #[tokio::test]
    async fn slow_webhook_is_abandoned_after_its_timeout_seconds() {
        let hook = TestWebhook::start().await;
        let fail = [configuration(
            "slow",
            vec![webhook(
                "slow.vbackup.io",
                hook.service("/slow"),
                json!({"timeoutSeconds": 1}),
            )],
        )];
        let error = admit(&fail, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "Internal error occurred: failed calling webhook \"slow.vbackup.io\": failed to call webhook: \
         Post \"https://webhook.vbackup-system.svc:443/slow?timeout=1s\": context deadline exceeded"
        );
        let ignore = [configuration(
            "slow",
            vec![webhook(
                "slow.vbackup.io",
                hook.service("/slow"),
                json!({"timeoutSeconds": 1, "failurePolicy": "Ignore"}),
            )],
        )];
        let object = pod(json!({}));
        assert_eq!(
            admit(&ignore, &pod_create(), object.clone(), &hook.endpoints())
                .await
                .unwrap(),
            object
        );
        assert_eq!(hook.calls_to("/slow"), 2);
        assert!(hook.calls().iter().all(|c| c.uri == "/slow?timeout=1s"));
    }

    #[tokio::test]
    async fn webhook_that_accepts_but_never_answers_is_abandoned_after_its_timeout() {
        let hook = TestWebhook::start().await;
        // Connections queue in the backlog and the TLS handshake never starts.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut endpoints = ServiceEndpoints::default();
        endpoints.insert(
            SERVICE_NAMESPACE,
            SERVICE_NAME,
            silent.local_addr().unwrap(),
        );
        let configs = [configuration(
            "silent",
            vec![webhook(
                "silent.vbackup.io",
                hook.service("/allow"),
                json!({"timeoutSeconds": 1}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &endpoints)
            .await
            .unwrap_err();
        assert!(
            error.message.ends_with(
                "Post \"https://webhook.vbackup-system.svc:443/allow?timeout=1s\": context deadline exceeded"
            ),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn wrong_ca_bundle_fails_tls_verification() {
        let hook = TestWebhook::start().await;
        let (other_ca, _, _) = certificates("another CA", &["webhook.vbackup-system.svc"]);
        let client_config = json!({
            "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "path": "/label-base64"},
            "caBundle": b64(&other_ca),
        });
        let configs = [configuration(
            "labeler",
            vec![webhook("labels.vbackup.io", client_config, json!({}))],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "Internal error occurred: failed calling webhook \"labels.vbackup.io\": failed to call webhook: \
         Post \"https://webhook.vbackup-system.svc:443/label-base64?timeout=10s\": \
         tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
        assert_eq!(hook.calls_to("/label-base64"), 0);
    }

    #[tokio::test]
    async fn certificate_must_name_the_service() {
        let hook = TestWebhook::start().await;
        let mut endpoints = ServiceEndpoints::default();
        endpoints.insert(SERVICE_NAMESPACE, "other", hook.addr);
        let client_config = json!({
            "service": {"namespace": SERVICE_NAMESPACE, "name": "other", "path": "/allow", "port": 8443},
            "caBundle": b64(&hook.ca_pem),
        });
        let configs = [configuration(
            "misnamed",
            vec![webhook("other.vbackup.io", client_config, json!({}))],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &endpoints)
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "Internal error occurred: failed calling webhook \"other.vbackup.io\": failed to call webhook: \
         Post \"https://other.vbackup-system.svc:8443/allow?timeout=10s\": \
         tls: failed to verify certificate: x509: certificate is valid for webhook.vbackup-system.svc, 127.0.0.1, not other.vbackup-system.svc"
        );
    }

    #[tokio::test]
    async fn denial_returns_the_webhooks_code_and_message() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "policy",
            vec![webhook(
                "policy.vbackup.io",
                hook.service("/deny"),
                json!({"failurePolicy": "Ignore"}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(error.code, 403);
        assert_eq!(error.reason, "Forbidden");
        assert_eq!(
            error.message,
            "admission webhook \"policy.vbackup.io\" denied the request: pods in this namespace need a backup policy"
        );
    }

    #[tokio::test]
    async fn response_for_another_request_uid_is_a_failed_call() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "confused",
            vec![webhook(
                "confused.vbackup.io",
                hook.service("/wrong-uid"),
                json!({}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        let sent_uid = hook.calls()[0].review["request"]["uid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            error.message,
            format!(
                "Internal error occurred: failed calling webhook \"confused.vbackup.io\": received invalid webhook response: \
             expected response.uid=\"{sent_uid}\", got \"not-the-request-uid\""
            )
        );
    }

    #[tokio::test]
    async fn patch_that_does_not_apply_rejects_even_with_ignore() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "broken",
            vec![webhook(
                "broken.vbackup.io",
                hook.service("/patch-that-does-not-apply"),
                json!({"failurePolicy": "Ignore"}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(error.code, 500);
        assert!(
            error.message.starts_with("Internal error occurred: "),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("/metadata/labels/no-such-label"),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn dry_run_calls_side_effect_free_webhooks_and_rejects_the_others() {
        let hook = TestWebhook::start().await;
        let dry_run = AdmissionAttributes {
            dry_run: true,
            ..pod_create()
        };
        let safe = [configuration(
            "safe",
            vec![webhook(
                "safe.vbackup.io",
                hook.service("/allow"),
                json!({"sideEffects": "NoneOnDryRun"}),
            )],
        )];
        admit(&safe, &dry_run, pod(json!({})), &hook.endpoints())
            .await
            .unwrap();
        let review = &hook.calls()[0].review["request"];
        assert_eq!(review["dryRun"], true);
        assert_eq!(review["options"]["dryRun"], json!(["All"]));

        let unsafe_ = [configuration(
            "unsafe",
            vec![webhook(
                "unsafe.vbackup.io",
                hook.service("/allow"),
                json!({"sideEffects": "Some", "failurePolicy": "Ignore"}),
            )],
        )];
        let error = admit(&unsafe_, &dry_run, pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(error.reason, "BadRequest");
        assert_eq!(
            error.message,
            "admission webhook \"unsafe.vbackup.io\" does not support dry run"
        );
        assert_eq!(hook.calls_to("/allow"), 1);
    }

    #[tokio::test]
    async fn if_needed_webhook_is_reinvoked_once_after_a_later_webhook_changes_the_object() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "chain",
            vec![
                webhook(
                    "recorder.vbackup.io",
                    hook.service("/allow"),
                    json!({"reinvocationPolicy": "IfNeeded"}),
                ),
                webhook(
                    "never.vbackup.io",
                    hook.url("/append/never"),
                    json!({"reinvocationPolicy": "Never"}),
                ),
                webhook(
                    "labeler.vbackup.io",
                    hook.service("/label-base64"),
                    json!({"reinvocationPolicy": "IfNeeded"}),
                ),
            ],
        )];
        let admitted = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap();
        assert_eq!(
            admitted["metadata"]["labels"]["mutated-by"],
            "base64-webhook"
        );
        // The recorder ran before the others changed the object, so it runs once more and sees
        // their changes; the labeler is not reinvoked for its own change, and Never means never.
        assert_eq!(hook.calls_to("/allow"), 2);
        assert_eq!(hook.calls_to("/append/never"), 1);
        assert_eq!(hook.calls_to("/label-base64"), 1);
        let calls = hook.calls();
        let reinvoked = &calls
            .iter()
            .filter(|c| c.uri.starts_with("/allow"))
            .nth(1)
            .unwrap()
            .review;
        assert_eq!(
            reinvoked["request"]["object"]["metadata"]["labels"]["mutated-by"],
            "base64-webhook"
        );
        assert_eq!(
            reinvoked["request"]["object"]["spec"]["order"],
            json!(["never"])
        );
    }

    #[tokio::test]
    async fn webhook_configurations_are_never_sent_to_webhooks() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "everything",
            vec![webhook(
                "all.vbackup.io",
                hook.service("/allow"),
                json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}),
            )],
        )];
        let attributes = AdmissionAttributes {
            group: "admissionregistration.k8s.io".into(),
            kind: "MutatingWebhookConfiguration".into(),
            resource: "mutatingwebhookconfigurations".into(),
            name: "everything".into(),
            namespace: None,
            ..pod_create()
        };
        run_mutating_webhooks(
            &configs,
            None,
            &attributes,
            configs[0].clone(),
            None,
            &hook.endpoints(),
        )
        .await
        .unwrap();
        assert_eq!(hook.calls().len(), 0);
    }

    #[tokio::test]
    async fn webhook_error_status_is_a_failed_call_with_client_gos_message() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "crashing",
            vec![webhook(
                "crashing.vbackup.io",
                hook.service("/internal-error"),
                json!({}),
            )],
        )];
        let error = admit(&configs, &pod_create(), pod(json!({})), &hook.endpoints())
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "Internal error occurred: failed calling webhook \"crashing.vbackup.io\": failed to call webhook: \
         an error on the server (\"webhook internal server error\") has prevented the request from succeeding"
        );
    }

    #[tokio::test]
    async fn webhook_warnings_are_returned_for_the_client() {
        let hook = TestWebhook::start().await;
        let configs = [configuration(
            "advisor",
            vec![webhook(
                "advisor.vbackup.io",
                hook.service("/warn"),
                json!({}),
            )],
        )];
        let ns = namespace(json!({}));
        let object = pod(json!({}));
        let admitted = run_mutating_webhooks_with_warnings(
            &configs,
            Some(&ns),
            &pod_create(),
            object.clone(),
            None,
            &hook.endpoints(),
        )
        .await
        .unwrap();
        assert_eq!(admitted.object, object);
        assert_eq!(
            admitted.warnings,
            vec!["pod web-0 has no backup policy yet".to_owned()]
        );
    }
}
