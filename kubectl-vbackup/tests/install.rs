//! `kubectl apply -k manifests/` and `kubectl vbackup install` install the same objects
//! (server-side apply, field manager `vbackup`); install makes the webhook's certificate,
//! waits until the webhook (the real binary, run by the test node) answers the API server,
//! and says why when it does not; it is safe to re-run; uninstall keeps location keys unless
//! --purge.

use std::time::Duration;

use serde_json::Value;
use vbackup_test_support::plugin::PluginCluster;
use vbackup_testcluster::ClusterOptions;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};

const NS: &str = "vbackup-system";
/// Images under this prefix cannot be pulled in the test cluster.
const UNPULLABLE: &str = "registry.invalid/";

fn ok(c: &PluginCluster, args: &[&str]) -> String {
    let (ok, out, err) = c.vbackup(args);
    assert!(ok, "kubectl vbackup {args:?} failed:\n{out}\n{err}");
    out
}

fn kubectl(c: &PluginCluster, args: &[&str]) -> String {
    let out = c.kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn ca_bundle(c: &PluginCluster) -> String {
    let mwc = json(&kubectl(
        c,
        &[
            "get",
            "mutatingwebhookconfiguration",
            "vbackup",
            "-o",
            "json",
        ],
    ));
    mwc["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn kustomize_then_install_then_uninstall() {
    let plugin = env!("CARGO_BIN_EXE_kubectl-vbackup");
    // vbackup's image is the build's output directory, which holds the webhook binary built
    // beside the plugin (`cargo test --workspace` builds both).
    let build_dir = std::path::Path::new(plugin).parent().unwrap();
    assert!(
        build_dir.join("vbackup-webhook").is_file(),
        "{} has no vbackup-webhook: run `cargo build -p vbackup-webhook` first",
        build_dir.display()
    );
    let c = PluginCluster::start_with(
        plugin,
        ClusterOptions {
            // The webhook is an in-cluster client: it speaks https to the API server.
            tls: true,
            node: Some(NodeOptions {
                image_map: vec![
                    ImageMapping::parse(&format!(
                        "ghcr.io/vbackup/vbackup={}",
                        build_dir.display()
                    ))
                    .unwrap(),
                ],
                unpullable_images: vec![UNPULLABLE.into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");

    // Plain kubectl and its kustomize.
    let out = kubectl(&c, &["apply", "-k", manifests]);
    assert!(out.contains("deployment.apps/vbackup-webhook"), "{out}");
    assert!(
        out.contains("mutatingwebhookconfiguration.admissionregistration.k8s.io/vbackup"),
        "{out}"
    );
    kubectl(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/backupstoragelocations.vbackup.io",
            "--timeout=60s",
        ],
    );
    assert_eq!(ca_bundle(&c), "", "the manifests carry no certificate");

    // install takes over, adds the certificate and waits until the webhook answers.
    let out = ok(&c, &["install", "--timeout", "2m"]);
    assert!(out.contains("applied Secret/vbackup-webhook-tls"), "{out}");
    assert!(
        out.contains(
            "the webhook answers the API server: a dry-run pod in namespace default was annotated (vbackup.io/policy="
        ),
        "{out}"
    );
    // The probe was a dry run: nothing is left behind.
    let pods = kubectl(&c, &["-n", "default", "get", "pods", "-o", "name"]);
    assert!(!pods.contains("vbackup-install-probe"), "{pods}");
    let first = ca_bundle(&c);
    assert!(!first.is_empty());
    let secret = json(&kubectl(
        &c,
        &[
            "-n",
            NS,
            "get",
            "secret",
            "vbackup-webhook-tls",
            "-o",
            "json",
        ],
    ));
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(secret["data"]["ca.crt"], first.as_str());
    let deploy = json(&kubectl(
        &c,
        &[
            "-n",
            NS,
            "get",
            "deployment",
            "vbackup-webhook",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ));
    let managers: Vec<&str> = deploy["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"vbackup"), "{managers:?}");
    assert_eq!(deploy["status"]["readyReplicas"], 2);
    let pdb = json(&kubectl(
        &c,
        &["-n", NS, "get", "pdb", "vbackup-webhook", "-o", "json"],
    ));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // A re-run is an upgrade: same certificate, nothing breaks.
    ok(
        &c,
        &[
            "install",
            "--image",
            "ghcr.io/vbackup/vbackup:next",
            "--wait=false",
        ],
    );
    assert_eq!(ca_bundle(&c), first);
    let image = kubectl(
        &c,
        &[
            "-n",
            NS,
            "get",
            "deployment",
            "vbackup-webhook",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "ghcr.io/vbackup/vbackup:next");

    // An image that cannot be pulled: install says so, with the pods' events, in time.
    let started = std::time::Instant::now();
    let (okay, out, err) = c.vbackup(&[
        "install",
        "--image",
        &format!("{UNPULLABLE}vbackup:1"),
        "--timeout",
        "15s",
    ]);
    assert!(!okay, "{out}");
    assert!(
        err.contains(
            "the webhook Deployment vbackup-system/vbackup-webhook is not available after 15s"
        ) && err.contains("registry.invalid/vbackup:1")
            && (err.contains("ErrImagePull") || err.contains("ImagePullBackOff")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // A dry run needs no cluster and prints no key.
    let (okay, out, err) = c.vbackup(&["install", "--dry-run", "--kubeconfig", "/nonexistent"]);
    assert!(okay, "{err}");
    assert!(
        out.contains("kind: MutatingWebhookConfiguration") && !out.contains("PRIVATE KEY"),
        "{out}"
    );

    // A location and its key Secret survive uninstall; --purge removes the rest.
    let store = tempfile::tempdir().unwrap();
    ok(
        &c,
        &[
            "location",
            "create",
            "local",
            "--provider",
            "filesystem",
            "--path",
            store.path().to_str().unwrap(),
        ],
    );
    let out = ok(&c, &["uninstall"]);
    assert!(
        out.contains("deleted MutatingWebhookConfiguration/vbackup"),
        "{out}"
    );
    assert!(
        !c.kubectl(&["get", "mutatingwebhookconfiguration", "vbackup"])
            .status
            .success()
    );
    assert!(
        !c.kubectl(&["-n", NS, "get", "deployment", "vbackup-webhook"])
            .status
            .success()
    );
    assert!(
        !c.kubectl(&["get", "clusterrole", "vbackup-backup"])
            .status
            .success()
    );
    kubectl(&c, &["-n", NS, "get", "backupstoragelocation", "local"]);
    let secrets = kubectl(&c, &["-n", NS, "get", "secrets", "-o", "name"]);
    assert!(
        secrets.contains("local"),
        "the location key is kept: {secrets}"
    );
    ok(&c, &["uninstall", "--purge"]);
    assert!(
        !c.kubectl(&["get", "crd", "backupstoragelocations.vbackup.io"])
            .status
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.kubectl(&["get", "namespace", NS]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace {NS} not deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
