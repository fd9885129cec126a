//! The pod network through real kubectl: pods in their own network namespaces with their
//! own IPs, endpoints that follow readiness probes, the API server and declared host ports
//! reachable from pods only through the node, admission webhooks called through their
//! Service, and the machine's own namespace left without new addresses.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode_network {
    use crate::common::Kubectl;
    use crate::node_support::wait;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    use vbackup_testcluster::node::{ImageMapping, NodeOptions};
    use vbackup_testcluster::{ClusterOptions, TestCluster};

    const SHELL: &str = "vbackup.test/shell";

    fn cluster(tls: bool, forward_host_ports: Vec<u16>) -> (TestCluster, Kubectl) {
        let c = TestCluster::start_with(ClusterOptions {
            tls,
            node: Some(NodeOptions {
                image_map: vec![ImageMapping::parse(&format!("{SHELL}=/bin/sh")).unwrap()],
                forward_host_ports,
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        let k = Kubectl::new(c.kubeconfig_path());
        (c, k)
    }

    /// The machine's own addresses (`ip -o addr`), which pods must never change.
    fn host_addresses() -> String {
        let out = std::process::Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .expect("iproute2's ip");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Polls `f` until it gives `Some`, for at most 60 s.
    fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `path` from `ip:port` in the pod network, through the node: (status, body).
    fn get_from_pod(c: &TestCluster, ip: &str, port: u16, path: &str) -> (u16, String) {
        let node = c.node().unwrap().clone();
        let addr = format!("{ip}:{port}").parse().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // The server may still be starting: retry refused connections for a while.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut s = loop {
                match node.connect(addr, Duration::from_secs(5)).await {
                    Ok(s) => break s,
                    Err(e) if Instant::now() < deadline => {
                        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("connecting to {addr} in the pod network: {e}"),
                }
            };
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            (code, body)
        })
    }

    fn jsonpath(k: &Kubectl, args: &[&str], path: &str) -> String {
        let mut a = args.to_vec();
        let p = format!("jsonpath={path}");
        a.extend(["-o", &p]);
        k.ok(&a).trim().to_string()
    }

    const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: vbackup.test/shell:1
        command: [sh, -c, "cd /tmp && exec python3 -m http.server 8080"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
"#;

    #[test]
    fn replicas_share_a_port_on_their_own_ips_and_endpoints_follow_http_readiness() {
        let before = host_addresses();
        let (c, k) = cluster(false, vec![]);
        k.ok_with(&["apply", "-f", "-"], WEB);
        wait(
            &k,
            "default",
            "deployment/web",
            "jsonpath={.status.replicas}=2",
        );
        let pods = eventually("two running pods with IPs", || {
            let v = k.json(&["get", "pods", "-l", "app=web"]);
            let items = v["items"].as_array()?.clone();
            let ready = items.len() == 2
                && items.iter().all(|p| {
                    p["status"]["podIP"].as_str().is_some()
                        && p["status"]["containerStatuses"][0]["started"] == true
                });
            ready.then_some(items)
        });
        let name = |i: usize| pods[i]["metadata"]["name"].as_str().unwrap().to_string();
        let ip = |i: usize| pods[i]["status"]["podIP"].as_str().unwrap().to_string();
        assert_ne!(ip(0), ip(1), "each pod has its own IP");
        for i in 0..2 {
            assert!(ip(i).starts_with("10.244."), "{}", ip(i));
            assert_eq!(pods[i]["status"]["podIPs"][0]["ip"], ip(i).as_str());
        }
        // Both listen on 8080; each serves its own private /tmp.
        k.ok(&["exec", &name(0), "--", "sh", "-c", "echo one > /tmp/who"]);
        assert_eq!(
            get_from_pod(&c, &ip(0), 8080, "/who"),
            (200, "one\n".into())
        );
        assert_eq!(get_from_pod(&c, &ip(1), 8080, "/who").0, 404);

        // Not ready yet: both pods are notReadyAddresses, not ready in the slice.
        let not_ready = eventually("two not-ready addresses", || {
            let ips = jsonpath(
                &k,
                &["get", "endpoints", "web"],
                "{.subsets[0].notReadyAddresses[*].ip}",
            );
            (ips.split(' ').count() == 2).then_some(ips)
        });
        assert!(not_ready.contains(&ip(0)) && not_ready.contains(&ip(1)));
        assert_eq!(
            jsonpath(
                &k,
                &["get", "endpoints", "web"],
                "{.subsets[0].ports[0].port}"
            ),
            "8080",
            "the named targetPort resolves to the container port"
        );

        k.ok(&["exec", &name(0), "--", "touch", "/tmp/ready"]);
        wait(
            &k,
            "default",
            &format!("pod/{}", name(0)),
            "condition=Ready",
        );
        eventually("one ready address", || {
            let ready = jsonpath(
                &k,
                &["get", "endpoints", "web"],
                "{.subsets[0].addresses[*].ip}",
            );
            (ready == ip(0)).then_some(())
        });
        assert_eq!(
            jsonpath(
                &k,
                &["get", "endpoints", "web"],
                "{.subsets[0].notReadyAddresses[*].ip}"
            ),
            ip(1)
        );
        let slices = k.json(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ]);
        let slice = &slices["items"][0];
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["ports"][0]["port"], 8080);
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        let ready_of = |pod_ip: &str| {
            slice["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["addresses"][0] == pod_ip)
                .map(|e| e["conditions"]["ready"].clone())
        };
        assert_eq!(ready_of(&ip(0)), Some(serde_json::json!(true)));
        assert_eq!(ready_of(&ip(1)), Some(serde_json::json!(false)));

        // Failing again takes the pod out.
        k.ok(&["exec", &name(0), "--", "rm", "/tmp/ready"]);
        wait(
            &k,
            "default",
            &format!("pod/{}", name(0)),
            "condition=Ready=false",
        );
        eventually("no ready address", || {
            let ready = jsonpath(
                &k,
                &["get", "endpoints", "web"],
                "{.subsets[0].addresses[*].ip}",
            );
            ready.is_empty().then_some(())
        });
        k.ok(&["delete", "deployment", "web", "--wait=false"]);
        drop(c);
        assert_eq!(
            host_addresses(),
            before,
            "the machine's namespace got no address"
        );
    }

    #[test]
    fn exec_and_tcp_probes_gate_readiness_and_a_failed_liveness_probe_restarts() {
        let (_c, k) = cluster(false, vec![]);
        k.ok_with(
            &["apply", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: probed, labels: {app: probed}}
spec:
  containers:
  - name: file
    image: vbackup.test/shell:1
    command: [sh, -c, "exec sleep 600"]
    readinessProbe: {exec: {command: [cat, /tmp/ok]}, periodSeconds: 1}
  - name: port
    image: vbackup.test/shell:1
    command: [sh, -c, "while [ ! -e /tmp/go ]; do sleep 0.1; done; exec python3 -m http.server 9000"]
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
  - name: doomed
    image: vbackup.test/shell:1
    command: [sh, -c, "exec sleep 600"]
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Service
metadata: {name: probed}
spec:
  selector: {app: probed}
  ports: [{port: 9000}]
"#,
        );
        wait(
            &k,
            "default",
            "pod/probed",
            "jsonpath={.status.phase}=Running",
        );
        let ready = |c: &str| {
            jsonpath(
                &k,
                &["get", "pod", "probed"],
                &format!("{{.status.containerStatuses[?(@.name==\"{c}\")].ready}}"),
            )
        };
        assert_eq!(ready("file"), "false");
        assert_eq!(ready("port"), "false");
        k.ok(&["exec", "probed", "-c", "file", "--", "touch", "/tmp/ok"]);
        eventually("the exec probe to pass", || {
            (ready("file") == "true").then_some(())
        });
        assert_eq!(
            jsonpath(
                &k,
                &["get", "pod", "probed"],
                "{.status.conditions[?(@.type==\"Ready\")].status}"
            ),
            "False",
            "one container is still not ready"
        );
        assert_eq!(
            jsonpath(
                &k,
                &["get", "endpoints", "probed"],
                "{.subsets[0].addresses}"
            ),
            ""
        );
        k.ok(&["exec", "probed", "-c", "port", "--", "touch", "/tmp/go"]);
        eventually("the tcp probe to pass", || {
            (ready("port") == "true").then_some(())
        });
        // The liveness probe has `doomed` killed; the pod's restart policy brings it back.
        eventually("a liveness restart", || {
            let n = jsonpath(
                &k,
                &["get", "pod", "probed"],
                "{.status.containerStatuses[?(@.name==\"doomed\")].restartCount}",
            );
            (n.parse::<u32>().unwrap_or(0) >= 1).then_some(())
        });
    }

    #[test]
    fn pods_reach_the_api_by_its_service_ip_and_host_ports_only_through_the_forwarder() {
        // A host service on the machine's loopback, declared to the cluster, and another
        // one that is not.
        let serve = |reply: &'static str| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(mut s) = s else { return };
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = write!(
                        s,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            });
            port
        };
        let declared = serve("from-the-host");
        let undeclared = serve("should-not-be-seen");
        let (_c, k) = cluster(true, vec![declared]);
        k.ok_with(
            &["apply", "-f", "-"],
            r#"
apiVersion: v1
kind: Service
metadata: {name: my-store}
spec: {ports: [{name: s3, port: 9000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: c
    image: vbackup.test/shell:1
    command: [sh, -c, "exec sleep 600"]
"#,
        );
        wait(&k, "default", "pod/client", "condition=Ready");
        let env = k.ok(&[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
        ]);
        assert_eq!(env.trim(), "10.96.0.1:443");
        // The Service variables of the pod's namespace, as the kubelet sets them.
        let store_ip = jsonpath(&k, &["get", "service", "my-store"], "{.spec.clusterIP}");
        let env = k.ok(&[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            "echo $MY_STORE_SERVICE_HOST $MY_STORE_SERVICE_PORT_S3 $MY_STORE_PORT",
        ]);
        assert_eq!(env.trim(), format!("{store_ip} 9000 tcp://{store_ip}:9000"));
        let fetch = |port: u16| {
            k.command(&[
                "exec",
                "client",
                "--",
                "python3",
                "-c",
                &format!(
                    "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5).read().decode())"
                ),
            ])
            .output()
            .unwrap()
        };
        let out = fetch(declared);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-the-host");
        let out = fetch(undeclared);
        assert!(
            !out.status.success(),
            "the host's loopback leaked into the pod"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Connection refused"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // In-cluster kubectl: token, ca.crt and https://10.96.0.1:443 (the certificate
        // carries the Service IP).
        let out = k.ok(&[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            "kubectl get pod client -o jsonpath={.status.podIP}",
        ]);
        assert!(out.starts_with("10.244."), "{out}");
    }

    /// A CA and a serving certificate for `name`: (ca, cert, key) PEMs.
    fn certificate(name: &str) -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca_cert.pem(), cert.pem(), key.serialize_pem())
    }

    const HOOK_SERVER: &str = r#"
import base64, http.server, json, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "in-cluster-hook"}}]
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True, "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.HTTPServer(("0.0.0.0", 8443), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/certs/tls.crt", "/certs/tls.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

    #[test]
    fn a_webhook_is_called_through_its_service_and_fails_with_no_ready_endpoint() {
        use base64::Engine;
        let (_c, k) = cluster(false, vec![]);
        let (ca, cert, key) = certificate("hook.hooks.svc");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        std::fs::write(dir.path().join("server.py"), HOOK_SERVER).unwrap();
        k.ok(&["create", "namespace", "hooks"]);
        k.ok(&["create", "namespace", "target"]);
        k.ok(&["label", "namespace", "target", "hooked=yes"]);
        let file = |n: &str| format!("--from-file={}", dir.path().join(n).display());
        k.ok(&[
            "-n",
            "hooks",
            "create",
            "secret",
            "generic",
            "certs",
            &file("tls.crt"),
            &file("tls.key"),
        ]);
        k.ok(&[
            "-n",
            "hooks",
            "create",
            "configmap",
            "server",
            &file("server.py"),
        ]);
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
        k.ok_with(
            &["apply", "-f", "-"],
            &format!(
                r#"
apiVersion: v1
kind: Service
metadata: {{name: hook, namespace: hooks}}
spec:
  selector: {{app: hook}}
  ports: [{{port: 443, targetPort: https}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: labeler}}
webhooks:
- name: label.hooks.test
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  namespaceSelector: {{matchLabels: {{hooked: "yes"}}}}
  rules: [{{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}]
  clientConfig:
    caBundle: {ca_bundle}
    service: {{name: hook, namespace: hooks, path: /mutate}}
"#
            ),
        );
        let err = k.fails(&["-n", "target", "create", "configmap", "early"], "");
        assert!(
            err.contains(r#"failed calling webhook "label.hooks.test": failed to call webhook: Post "https://hook.hooks.svc:443/mutate?timeout=10s": no endpoints available for service "hook""#),
            "{err}"
        );
        k.ok_with(
            &["apply", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: hook, namespace: hooks, labels: {app: hook}}
spec:
  containers:
  - name: hook
    image: vbackup.test/shell:1
    command: [sh, -c, "exec python3 /server/server.py"]
    ports: [{name: https, containerPort: 8443}]
    readinessProbe: {httpGet: {scheme: HTTPS, path: /healthz, port: https}, periodSeconds: 1}
    volumeMounts:
    - {name: certs, mountPath: /certs}
    - {name: server, mountPath: /server}
  volumes:
  - {name: certs, secret: {secretName: certs}}
  - {name: server, configMap: {name: server}}
"#,
        );
        wait(&k, "hooks", "pod/hook", "condition=Ready");
        eventually("the hook's ready endpoint", || {
            let ready = jsonpath(
                &k,
                &["-n", "hooks", "get", "endpoints", "hook"],
                "{.subsets[0].addresses[0].ip}",
            );
            (!ready.is_empty()).then_some(())
        });
        k.ok(&["-n", "target", "create", "configmap", "later"]);
        assert_eq!(
            jsonpath(
                &k,
                &["-n", "target", "get", "configmap", "later"],
                "{.metadata.labels.mutated-by}"
            ),
            "in-cluster-hook"
        );
    }
}
