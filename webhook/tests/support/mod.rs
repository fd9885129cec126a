//! Runs the real `vbackup-webhook` binary with certificates from a throwaway CA.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use vbackup_testcluster::TestCluster;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a serving certificate for 127.0.0.1, localhost and the webhook's Service name.
pub struct Certs {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A fresh CA (named `ca_name`) and a serving certificate signed by it.
pub fn certs(ca_name: &str) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "vbackup-webhook.vbackup-system.svc".to_string(),
    ])
    .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Certs {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes the serving pair into `dir` as tls.crt / tls.key (key first: a reader never sees a
/// new certificate with an old key for long).
pub fn install(dir: &Path, certs: &Certs) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&key, &certs.key_pem).unwrap();
    std::fs::write(&crt, &certs.cert_pem).unwrap();
    (crt, key)
}

/// A running webhook process; killed on drop.
pub struct Webhook {
    pub child: Child,
    pub addr: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` (plus the certificate files) and waits for its address.
pub fn start(crt: &Path, key: &Path, listen: &str, args: &[&str]) -> Webhook {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vbackup-webhook"))
        .arg("--listen")
        .arg(listen)
        .arg("--tls-cert-file")
        .arg(crt)
        .arg("--tls-key-file")
        .arg(key)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting vbackup-webhook");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on https://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Webhook { child, addr }
}

/// An HTTPS client trusting only `ca_pem`.
pub fn client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// An AdmissionReview for creating `pod` in namespace `app`.
pub fn review(pod: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "b2c7e0a4-1f7e-4a3b-9d1e-2f0c3a4b5c6d",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "app", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:statefulset-controller"},
            "object": pod, "dryRun": false
        }
    }))
    .unwrap()
}

/// The bitnami MariaDB StatefulSet's pod, as its controller creates it.
pub fn mariadb_pod() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "mariadb-0", "namespace": "app",
                     "labels": {"app.kubernetes.io/name": "mariadb", "statefulset.kubernetes.io/pod-name": "mariadb-0"},
                     "annotations": {"checksum/configuration": "8f1c2a"}},
        "spec": {
            "containers": [{"name": "mariadb", "image": "docker.io/bitnami/mariadb:11.4.3-debian-12-r0",
                            "env": [{"name": "MARIADB_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mariadb", "key": "mariadb-root-password"}}}],
                            "ports": [{"name": "mysql", "containerPort": 3306}],
                            "volumeMounts": [{"name": "data", "mountPath": "/bitnami/mariadb"},
                                             {"name": "empty-dir", "mountPath": "/tmp"}]}],
            "volumes": [
                {"name": "empty-dir", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "mariadb"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-mariadb-0"}},
                {"name": "kube-api-access-x7k2p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
            ]
        }
    })
}

/// Runs `kubectl ARGS` against `cluster` (with `-f` of `stdin` written to a file); its stdout.
pub fn kubectl(cluster: &TestCluster, args: &[&str], stdin: Option<&Value>) -> String {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args);
    let dir = tempfile::tempdir().unwrap();
    if let Some(doc) = stdin {
        let file = dir.path().join("doc.json");
        std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
        cmd.arg("-f").arg(&file);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
