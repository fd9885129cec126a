//! The plugin run inside a pod, as scheduled backups run it: `kube::Client`'s in-cluster
//! configuration (service account token and CA, `KUBERNETES_SERVICE_HOST`) reaches the
//! test cluster's API server over TLS through the pod network.

use std::process::Output;

use vbackup_test_support::plugin::PluginCluster;
use vbackup_testcluster::ClusterOptions;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_plugin_in_a_pod_reaches_the_api_with_its_in_cluster_configuration() {
    let plugin = env!("CARGO_BIN_EXE_kubectl-vbackup");
    let cluster = PluginCluster::start_with(
        plugin,
        ClusterOptions {
            tls: true,
            node: Some(NodeOptions {
                image_map: vec![
                    ImageMapping::parse(&format!("ghcr.io/vbackup/vbackup={plugin}")).unwrap(),
                ],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .expect("start the test cluster");
    cluster.install_crds();
    let store = tempfile::tempdir().unwrap();
    let (created, out, err) = cluster.vbackup(&[
        "location",
        "create",
        "in-cluster-store",
        "--provider",
        "filesystem",
        "--path",
        store.path().to_str().unwrap(),
        "--pod-access",
        "hostPath",
    ]);
    assert!(created, "{out}\n{err}");
    // The pod's service account may read locations (a cluster with RBAC needs the grant).
    ok(
        cluster.kubectl(&[
            "create",
            "clusterrolebinding",
            "default-reads",
            "--clusterrole=cluster-admin",
            "--serviceaccount=default:default",
        ]),
        "kubectl create clusterrolebinding",
    );
    let manifest = store.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: in-cluster}
spec:
  restartPolicy: Never
  containers:
  - name: vbackup
    image: ghcr.io/vbackup/vbackup:test
    args: [location, get]
"#,
    )
    .unwrap();
    ok(
        cluster.kubectl(&["apply", "-f", manifest.to_str().unwrap()]),
        "kubectl apply",
    );
    let waited = cluster.kubectl(&[
        "wait",
        "pod/in-cluster",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=60s",
    ]);
    let logs = ok(cluster.kubectl(&["logs", "in-cluster"]), "kubectl logs");
    assert!(
        waited.status.success(),
        "the pod did not succeed: {}\n{logs}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(logs.contains("in-cluster-store"), "{logs}");
}
