//! The `vbackup-testcluster` binary: prints its URL, writes a kubeconfig, keeps objects in
//! its state directory across restarts, and serves HTTPS with `--tls`.

mod common;

use common::Kubectl;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with the URL it printed.
fn start(state: &Path, kubeconfig: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vbackup-testcluster"))
        .args(["--port", "0", "--state-dir"])
        .arg(state)
        .arg("--kubeconfig-out")
        .arg(kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Server(child), line.trim().to_string())
}

#[test]
fn restart_keeps_objects_and_resource_versions_move_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (state, kubeconfig) = (dir.path().join("state"), dir.path().join("kubeconfig"));
    let (server, url) = start(&state, &kubeconfig, &[]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let k = Kubectl::new(&kubeconfig);
    k.ok(&["create", "namespace", "kept"]);
    k.ok(&[
        "-n",
        "kept",
        "create",
        "configmap",
        "c",
        "--from-literal=a=1",
    ]);
    k.install_crd(common::WIDGET_CRD);
    k.ok_with(
        &["-n", "kept", "apply", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 7}\n",
    );
    let before = k.json(&["-n", "kept", "get", "configmap", "c"]);
    drop(server);

    let (_server, url2) = start(&state, &kubeconfig, &[]);
    assert_ne!(url, url2, "a new port, the kubeconfig follows it");
    let k = Kubectl::new(&kubeconfig);
    let after = k.json(&["-n", "kept", "get", "configmap", "c"]);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["data"]["a"], "1");
    assert_eq!(
        k.json(&["-n", "kept", "get", "widgets", "w"])["spec"]["size"],
        7,
        "CRDs and their objects survive too"
    );
    k.ok(&["-n", "kept", "label", "configmap", "c", "x=y"]);
    let rv = |v: &serde_json::Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&k.json(&["-n", "kept", "get", "configmap", "c"])) > rv(&before));
}

#[test]
fn tls_serves_https_with_the_generated_ca_in_the_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let (state, kubeconfig) = (dir.path().join("state"), dir.path().join("kubeconfig"));
    let (_server, url) = start(&state, &kubeconfig, &["--tls"]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains("certificate-authority-data"), "{config}");
    let k = Kubectl::new(&kubeconfig);
    k.ok(&["create", "namespace", "secure"]);
    assert!(k.ok(&["get", "namespaces"]).contains("secure"));
    // Without the CA the server is not trusted.
    let out = k.run_with(
        &[
            "--server",
            &url,
            "--certificate-authority",
            "/dev/null",
            "get",
            "ns",
        ],
        "",
    );
    assert!(!out.status.success());
}

#[tokio::test]
async fn kube_client_speaks_tls_to_an_in_process_cluster() {
    use k8s_openapi::api::core::v1::Namespace;
    let cluster =
        vbackup_testcluster::TestCluster::start_with(vbackup_testcluster::ClusterOptions {
            tls: true,
            ..Default::default()
        })
        .unwrap();
    assert!(cluster.url().starts_with("https://"));
    assert!(cluster.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(cluster.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    // Pods would trust the API server through kube-root-ca.crt: it holds the serving CA.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "default");
    let published = kube::runtime::wait::await_condition(
        cms,
        "kube-root-ca.crt",
        |c: Option<&k8s_openapi::api::core::v1::ConfigMap>| c.is_some(),
    );
    let cm = tokio::time::timeout(std::time::Duration::from_secs(30), published)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(cm.data.unwrap()["ca.crt"], cluster.ca_pem().unwrap());
    let namespaces: kube::Api<Namespace> = kube::Api::all(client);
    let names: Vec<String> = namespaces
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");
}
