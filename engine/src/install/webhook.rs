//! The admission webhook's Deployment, PodDisruptionBudget, Service and
//! MutatingWebhookConfiguration. The contract with the webhook binary: `vbackup-webhook
//! --listen 0.0.0.0:8443 --tls-cert-file … --tls-key-file … --vbackup-namespace NS`, serving
//! `/mutate`, `/healthz`, `/readyz` and `/metrics`, its certificate in the Secret
//! [`TLS_SECRET`].

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use super::rbac::WEBHOOK_ACCOUNT;

/// The Service (and Deployment) name.
pub const SERVICE: &str = "vbackup-webhook";
/// The Secret holding `tls.crt`, `tls.key` and `ca.crt`.
pub const TLS_SECRET: &str = "vbackup-webhook-tls";
/// The MutatingWebhookConfiguration.
pub const CONFIGURATION: &str = "vbackup";
/// The webhook's name in it.
pub const WEBHOOK: &str = "pods.vbackup.io";
/// The port the webhook listens on.
pub const PORT: i32 = 8443;
/// Where the certificate is mounted.
pub const TLS_DIR: &str = "/etc/vbackup/tls";
/// cert-manager's annotation that injects the CA into `caBundle`.
pub const CERT_MANAGER_INJECT: &str = "cert-manager.io/inject-ca-from";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), SERVICE.into()),
        ("app.kubernetes.io/part-of".into(), super::PART_OF.into()),
    ])
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels()),
        ..Default::default()
    }
}

/// The DNS names the serving certificate must cover.
pub fn dns_names(namespace: &str) -> Vec<String> {
    vec![
        SERVICE.to_string(),
        format!("{SERVICE}.{namespace}"),
        format!("{SERVICE}.{namespace}.svc"),
        format!("{SERVICE}.{namespace}.svc.cluster.local"),
    ]
}

/// Two replicas, spread, non-root, read-only, seccomp RuntimeDefault, probed.
pub fn deployment(namespace: &str, image: &str) -> Deployment {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(PORT),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let args = [
        "--listen",
        &format!("0.0.0.0:{PORT}"),
        "--tls-cert-file",
        &format!("{TLS_DIR}/tls.crt"),
        "--tls-key-file",
        &format!("{TLS_DIR}/tls.key"),
        // Where the locations and schedules the backup metrics read are.
        "--vbackup-namespace",
        namespace,
    ]
    .map(String::from)
    .to_vec();
    Deployment {
        metadata: meta(SERVICE, namespace),
        spec: DeploymentSpec {
            // Two, so a node drain or a rollout never leaves pod creation without annotations.
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(WEBHOOK_ACCOUNT.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(crate::schedules::cronjob::RUN_AS_USER),
                        run_as_group: Some(crate::schedules::cronjob::RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![Container {
                        name: "webhook".into(),
                        image: Some(image.into()),
                        command: Some(vec!["vbackup-webhook".into()]),
                        args: Some(args),
                        ports: Some(vec![ContainerPort {
                            name: Some("https".into()),
                            container_port: PORT,
                            ..Default::default()
                        }]),
                        // A crash's last log lines end up in the pod's status, where
                        // `install` (and `kubectl describe`) show them.
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        readiness_probe: Some(probe("/readyz")),
                        liveness_probe: Some(probe("/healthz")),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".into(), Quantity("50m".into())),
                                ("memory".into(), Quantity("64Mi".into())),
                            ])),
                            limits: Some(BTreeMap::from([(
                                "memory".into(),
                                Quantity("256Mi".into()),
                            )])),
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
                        volume_mounts: Some(vec![VolumeMount {
                            name: "tls".into(),
                            mount_path: TLS_DIR.into(),
                            read_only: Some(true),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "tls".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(TLS_SECRET.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// At most one replica down at a time for voluntary disruptions (drains).
pub fn disruption_budget(namespace: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(SERVICE, namespace),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Port 443 to the pods' 8443.
pub fn service(namespace: &str) -> Service {
    Service {
        metadata: meta(SERVICE, namespace),
        spec: Some(ServiceSpec {
            selector: Some(labels()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                target_port: Some(IntOrString::Int(PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The webhook's registration ([`crate::webhook::mutating_webhook_configuration`]: pod
/// CREATEs, `failurePolicy: Ignore`, excluded namespaces and mover pods skipped), pointed at
/// the Service in `namespace`. `ca_bundle`: the CA's PEM, or `None` with cert-manager
/// injecting it.
pub fn configuration(namespace: &str, ca_bundle: Option<&str>) -> MutatingWebhookConfiguration {
    let mut config =
        crate::webhook::mutating_webhook_configuration(ca_bundle.unwrap_or_default().as_bytes());
    config.metadata.labels = Some(labels());
    if ca_bundle.is_none() {
        config.metadata.annotations = Some(BTreeMap::from([(
            CERT_MANAGER_INJECT.into(),
            format!("{namespace}/{TLS_SECRET}"),
        )]));
    }
    for hook in config.webhooks.iter_mut().flatten() {
        if ca_bundle.is_none() {
            hook.client_config.ca_bundle = None;
        }
        if let Some(service) = &mut hook.client_config.service {
            service.namespace = namespace.into();
        }
        // vbackup's own pods (movers, scheduled runs, the webhook) live where it is installed.
        let skipped = hook
            .namespace_selector
            .iter_mut()
            .flat_map(|s| s.match_expressions.iter_mut().flatten())
            .find(|e| e.key == "kubernetes.io/metadata.name");
        if let Some(values) = skipped.and_then(|e| e.values.as_mut())
            && !values.iter().any(|v| v == namespace)
        {
            values.push(namespace.into());
        }
    }
    config
}
