//! Real kubectl against the test cluster, through the kubeconfig it writes.

mod common;

use common::{Kubectl, WIDGET_CRD, names};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use vbackup_testcluster::TestCluster;

fn cluster() -> (TestCluster, Kubectl) {
    let c = TestCluster::start().unwrap();
    let k = Kubectl::new(c.kubeconfig_path());
    (c, k)
}

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: nginx, image: "nginx:1.25", ports: [{containerPort: 80}], env: [{name: A, value: "1"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: front, labels: {app: web, tier: front}}
data: {k: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: back, labels: {app: db, tier: back}}
data: {k: "2"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[test]
fn create_f_then_get_json_filters_by_label_and_field_selectors() {
    let (_c, k) = cluster();
    k.ok(&["create", "namespace", "shop"]);
    let out = k.ok_with(&["-n", "shop", "create", "-f", "-"], APP);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let cms = |sel: &[&str]| {
        let mut args = vec!["-n", "shop", "get", "configmaps"];
        args.extend(sel);
        let mut n = names(&k.json(&args));
        n.retain(|x| x != "kube-root-ca.crt");
        n
    };
    assert_eq!(cms(&["-l", "app=web"]), vec!["front"]);
    assert_eq!(cms(&["-l", "app==web"]), vec!["front"]);
    assert_eq!(cms(&["-l", "app!=web,app"]), vec!["back"]);
    assert_eq!(cms(&["-l", "tier in (front,back)"]), vec!["back", "front"]);
    assert_eq!(cms(&["-l", "tier notin (front)"]), vec!["back"]);
    assert_eq!(cms(&["-l", "!tier"]), Vec::<String>::new());
    assert_eq!(
        cms(&["--field-selector", "metadata.name=back"]),
        vec!["back"]
    );
    assert_eq!(
        cms(&[
            "--field-selector",
            "metadata.namespace=shop,metadata.name!=back",
            "-l",
            "tier"
        ]),
        vec!["front"]
    );

    let svc = k.json(&["-n", "shop", "get", "service", "web"]);
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    let deploy = k.json(&[
        "-n",
        "shop",
        "get",
        "deployment",
        "web",
        "--show-managed-fields",
    ]);
    assert_eq!(deploy["metadata"]["generation"], 1);
    assert_eq!(deploy["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        deploy["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        deploy["metadata"]["managedFields"][0]["manager"],
        "kubectl-create"
    );

    let all = k.json(&["get", "configmaps", "--all-namespaces", "-l", "tier"]);
    assert_eq!(names(&all), vec!["back", "front"]);
    let err = k.fails(
        &[
            "-n",
            "shop",
            "get",
            "configmaps",
            "--field-selector",
            "data.k=1",
        ],
        "",
    );
    assert!(err.contains("field label not supported: data.k"), "{err}");
}

#[test]
fn typed_create_commands_send_protobuf_and_it_is_understood() {
    let (_c, k) = cluster();
    k.ok(&["create", "namespace", "typed"]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "deployment",
        "api",
        "--image=nginx:1.25",
        "--replicas=0",
        "--port=8080",
    ]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "service",
        "nodeport",
        "api",
        "--tcp=80:8080",
    ]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    k.ok(&["-n", "typed", "create", "serviceaccount", "robot"]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    k.ok(&[
        "-n",
        "typed",
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        "--serviceaccount=typed:robot",
    ]);

    assert_eq!(
        k.json(&["-n", "typed", "get", "cm", "settings"])["data"]["color"],
        "blue"
    );
    assert_eq!(
        k.json(&["-n", "typed", "get", "secret", "creds"])["data"]["password"],
        "czNjcmV0"
    );
    let d = k.json(&["-n", "typed", "get", "deploy", "api"]);
    assert_eq!(
        d["spec"]["replicas"], 0,
        "an explicit zero survives the protobuf decoding"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let svc = k.json(&["-n", "typed", "get", "svc", "api"]);
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert!(svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap() >= 30000);
    let job = k.json(&["-n", "typed", "get", "job", "once"]);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    // autoscale writes autoscaling/v1; the object is stored (and served) at v2 as well.
    k.ok(&[
        "-n",
        "typed",
        "autoscale",
        "deployment",
        "api",
        "--max=3",
        "--cpu-percent=70",
    ]);
    let hpa = k.json(&[
        "-n",
        "typed",
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "api",
    ]);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    let hpa = k.json(&[
        "-n",
        "typed",
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "api",
    ]);
    assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], 70);
    let rb = k.json(&["-n", "typed", "get", "rolebinding", "reader"]);
    assert_eq!(rb["subjects"][0]["name"], "robot");
}

#[test]
fn apply_server_side_creates_updates_and_reports_conflicts() {
    let (_c, k) = cluster();
    let cm = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  a: \"{v}\"\n  b: \"keep\"\n"
        )
    };
    let out = k.ok_with(&["apply", "--server-side", "-f", "-"], &cm("1"));
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    k.ok_with(&["apply", "--server-side", "-f", "-"], &cm("2"));
    let live = k.json(&["get", "cm", "ssa", "--show-managed-fields"]);
    assert_eq!(live["data"]["a"], "2");
    assert_eq!(live["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");

    // Another manager owning a field makes a different value a conflict...
    k.ok(&[
        "patch",
        "cm",
        "ssa",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":"3"}}"#,
    ]);
    let err = k.fails(&["apply", "--server-side", "-f", "-"], &cm("4"));
    assert!(err.contains("conflict with \"kubectl-patch\""), "{err}");
    assert!(err.contains(".data.a"), "{err}");
    // ...that --force-conflicts takes over.
    k.ok_with(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &cm("4"),
    );
    assert_eq!(k.json(&["get", "cm", "ssa"])["data"]["a"], "4");

    // Fields dropped from the applied configuration are removed.
    let smaller = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  a: \"4\"\n";
    k.ok_with(&["apply", "--server-side", "-f", "-"], smaller);
    assert_eq!(
        k.json(&["get", "cm", "ssa"])["data"],
        serde_json::json!({"a": "4"})
    );

    // Keyed lists: a container (and an env entry) no longer applied is removed.
    let deployment = |containers: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"ssa"}},"spec":{{"selector":{{"matchLabels":{{"app":"ssa"}}}},"template":{{"metadata":{{"labels":{{"app":"ssa"}}}},"spec":{{"containers":{containers}}}}}}}}}"#
        )
    };
    let two = deployment(
        r#"[{"name":"a","image":"a:1","env":[{"name":"X","value":"1"},{"name":"Z","value":"2"}]},{"name":"b","image":"b:1"}]"#,
    );
    let one = deployment(r#"[{"name":"a","image":"a:2","env":[{"name":"X","value":"1"}]}]"#);
    k.ok_with(&["apply", "--server-side", "-f", "-"], &two);
    k.ok_with(&["apply", "--server-side", "-f", "-"], &one);
    let containers = &k.json(&["get", "deploy", "ssa"])["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 1, "{containers}");
    assert_eq!(containers[0]["image"], "a:2");
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "X", "value": "1"}])
    );

    // Client-side apply (strategic merge under the hood) works too, and is idempotent.
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: csa}\nspec:\n  selector: {matchLabels: {app: csa}}\n  template:\n    metadata: {labels: {app: csa}}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    assert!(k.ok_with(&["apply", "-f", "-"], dep).contains("created"));
    assert!(k.ok_with(&["apply", "-f", "-"], dep).contains("unchanged"));
    let changed = dep.replace("image: busybox", "image: busybox:1.36");
    assert!(
        k.ok_with(&["apply", "-f", "-"], &changed)
            .contains("configured")
    );
    let live = k.json(&["get", "deploy", "csa"]);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert_eq!(live["metadata"]["generation"], 2);
}

#[test]
fn label_annotate_and_patch_change_the_object_and_its_resource_version() {
    let (_c, k) = cluster();
    k.ok_with(&["create", "-f", "-"], APP);
    let rv0: u64 = k.json(&["get", "cm", "front"])["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    k.ok(&["label", "cm", "front", "color=blue"]);
    k.ok(&["annotate", "cm", "front", "note=hello"]);
    k.ok(&[
        "patch",
        "cm",
        "front",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"x"}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "front",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/k","value":"9"}]"#,
    ]);
    let cm = k.json(&["get", "cm", "front"]);
    assert_eq!(cm["metadata"]["labels"]["color"], "blue");
    assert_eq!(cm["metadata"]["annotations"]["note"], "hello");
    assert_eq!(cm["data"], serde_json::json!({"extra": "x", "k": "9"}));
    let rv1: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rv1 >= rv0 + 4,
        "every write bumps the resourceVersion: {rv0} -> {rv1}"
    );
    k.ok(&["label", "cm", "front", "color-"]);
    assert!(
        k.json(&["get", "cm", "front"])["metadata"]["labels"]
            .get("color")
            .is_none()
    );

    // Strategic merge: containers merge by name, `$patch: delete` removes one.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    ]);
    let names = |k: &Kubectl| {
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ])
    };
    assert_eq!(names(&k), "nginx sidecar");
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ]);
    assert_eq!(names(&k), "nginx");
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["metadata"]["generation"], 3,
        "spec changes bump generation"
    );
    k.ok(&["label", "deploy", "web", "x=y"]);
    assert_eq!(
        k.json(&["get", "deploy", "web"])["metadata"]["generation"],
        3,
        "metadata changes do not"
    );

    k.ok(&["scale", "deploy", "web", "--replicas=5"]);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 5);
    let err = k.fails(
        &[
            "patch",
            "cm",
            "front",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/nope/x","value":1}]"#,
        ],
        "",
    );
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
}

#[test]
fn errors_are_statuses_with_the_real_reasons() {
    let (c, k) = cluster();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n";
    let err = k.fails(&["create", "-f", "-"], bad);
    assert!(err.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");
    let ok = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n";
    k.ok_with(&["create", "-f", "-"], ok);
    let err = k.fails(&["create", "-f", "-"], ok);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"good\" already exists"),
        "{err}"
    );
    let err = k.fails(&["get", "deploy", "missing"], "");
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"missing\" not found"),
        "{err}"
    );
    let err = k.fails(&["-n", "nowhere", "create", "configmap", "x"], "");
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");

    // Raw HTTP: the body is a metav1.Status naming group, kind and name.
    let body = k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments",
    ]);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "DeploymentList");
    let out = k.run_with(
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/missing",
        ],
        "",
    );
    assert!(!out.status.success());
    let (code, status) = raw(
        c.url(),
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/missing",
        "",
    );
    assert_eq!(code, 404);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(
        status["details"],
        serde_json::json!({"name": "missing", "group": "apps", "kind": "deployments"})
    );

    // A stale resourceVersion is a 409 Conflict.
    let mut cm = k.json(&["get", "cm", "good"]);
    k.ok(&["label", "cm", "good", "a=b"]);
    cm["data"] = serde_json::json!({"x": "y"});
    let err = k.fails(&["replace", "-f", "-"], &cm.to_string());
    assert!(err.contains("the object has been modified; please apply your changes to the latest version and try again"), "{err}");

    // Objects to create must not carry a resourceVersion (restores have to strip it;
    // kubectl strips it itself, so this goes over raw HTTP).
    let mut exported = k.json(&["get", "cm", "good"]);
    exported["metadata"]["name"] = serde_json::json!("copy");
    let (code, status) = raw(
        c.url(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &exported.to_string(),
    );
    assert_eq!(code, 500);
    assert_eq!(
        status["message"],
        "Internal error occurred: resourceVersion should not be set on objects to be created"
    );

    // generateName gets a random suffix.
    let generated = "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: gen-}\n";
    let out = k.ok_with(&["create", "-f", "-", "-o", "name"], generated);
    assert!(
        out.trim().starts_with("configmap/gen-") && out.trim().len() == "configmap/gen-".len() + 5,
        "{out}"
    );
}

/// A plain HTTP request without a client library, to see exactly what the server answers.
fn raw(url: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

#[test]
fn dry_run_server_validates_but_persists_nothing() {
    let (_c, k) = cluster();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry}\ndata: {a: \"1\"}\n";
    let out = k.ok_with(&["create", "--dry-run=server", "-f", "-", "-o", "json"], cm);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["a"], "1");
    assert!(v["metadata"]["uid"].is_string());
    k.fails(&["get", "cm", "dry"], "");
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: -dry}\n";
    let err = k.fails(&["create", "--dry-run=server", "-f", "-"], bad);
    assert!(err.contains("is invalid"), "{err}");
    k.ok_with(&["create", "-f", "-"], cm);
    k.ok(&["label", "cm", "dry", "x=1", "--dry-run=server"]);
    assert!(
        k.json(&["get", "cm", "dry"])["metadata"]
            .get("labels")
            .is_none()
    );
    k.ok(&["delete", "cm", "dry", "--dry-run=server"]);
    k.ok(&["get", "cm", "dry"]);
}

#[test]
fn deleting_a_namespace_removes_everything_in_it_then_the_namespace() {
    let (_c, k) = cluster();
    k.ok(&["create", "namespace", "doomed"]);
    k.ok_with(&["-n", "doomed", "create", "-f", "-"], APP);
    assert!(!names(&k.json(&["-n", "doomed", "get", "all"])).is_empty());
    let out = k.ok(&["delete", "namespace", "doomed"]);
    assert!(out.contains("namespace \"doomed\" deleted"), "{out}");
    let err = k.fails(&["get", "namespace", "doomed"], "");
    assert!(err.contains("namespaces \"doomed\" not found"), "{err}");
    for kind in ["deployments", "services", "configmaps", "serviceaccounts"] {
        assert!(
            names(&k.json(&["-n", "doomed", "get", kind])).is_empty(),
            "{kind} left behind"
        );
    }
    let err = k.fails(&["delete", "namespace", "default"], "");
    assert!(err.contains("forbidden"), "{err}");
}

#[test]
fn get_watch_sees_an_update() {
    let (_c, k) = cluster();
    k.ok(&["create", "configmap", "watched", "--from-literal=v=1"]);
    let mut child = k
        .command(&[
            "get",
            "configmap",
            "watched",
            "-w",
            "-o",
            "jsonpath={.data.v}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "1");
    k.ok(&[
        "patch",
        "configmap",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);
    assert_eq!(lines.next().unwrap().unwrap(), "2");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn get_prints_tables_like_a_real_server() {
    let (_c, k) = cluster();
    k.ok_with(&["create", "-f", "-"], APP);
    let out = k.ok(&["get", "deploy"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "0/2", "0", "0"], "{out}");
    let out = k.ok(&["get", "svc", "web"]);
    assert!(
        out.contains("CLUSTER-IP") && out.contains("80/TCP"),
        "{out}"
    );
    let out = k.ok(&["get", "cm", "--show-labels", "-l", "tier"]);
    assert!(out.contains("app=db,tier=back"), "{out}");
    let out = k.ok(&["get", "ns"]);
    assert!(out.contains("default") && out.contains("Active"), "{out}");
}

#[test]
fn crds_are_served_once_established_and_their_deletion_removes_resource_and_objects() {
    let (_c, k) = cluster();
    k.install_crd(WIDGET_CRD);
    let out = k.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        out.contains("widgets") && out.contains("wd") && out.contains("Widget"),
        "{out}"
    );
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, parts: [{name: a, count: 1}]}\n";
    k.ok_with(&["apply", "-f", "-"], w);
    let out = k.ok(&["get", "wd"]);
    assert!(out.contains("SIZE") && out.contains("w1     3"), "{out}");
    // The CRD schema is enforced with the real messages.
    let wrong =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w9}\nspec: {size: big}\n";
    let err = k.fails(&["apply", "-f", "-"], wrong);
    assert!(err.contains("The Widget \"w9\" is invalid: spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""), "{err}");
    // The second version serves the same object.
    let beta = k.json(&["get", "widgets.v1beta1.example.com", "w1"]);
    assert_eq!(beta["apiVersion"], "example.com/v1beta1");
    assert_eq!(beta["spec"]["size"], 3);
    // Status goes through /status only.
    k.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert!(k.json(&["get", "wd", "w1"]).get("status").is_none());
    k.ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert_eq!(k.json(&["get", "wd", "w1"])["status"]["ready"], true);
    // Server-side apply merges the list by its x-kubernetes-list-map-keys: two managers
    // each own their own entry.
    let parts = |manager: &str, part: &str| {
        let w = format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w2}}\nspec: {{parts: [{{name: {part}, count: 2}}]}}\n"
        );
        k.ok_with(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                manager,
                "-f",
                "-",
            ],
            &w,
        );
    };
    parts("first", "a");
    parts("second", "b");
    let live = k.json(&["get", "wd", "w2"]);
    assert_eq!(
        live["spec"]["parts"],
        serde_json::json!([{"name": "a", "count": 2}, {"name": "b", "count": 2}])
    );
    let err = k.fails(&["patch", "wd", "w1", "-p", r#"{"spec":{"size":4}}"#], "");
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "{err}"
    );

    k.ok(&["delete", "crd", "widgets.example.com"]);
    let out = k.ok(&["api-resources", "--api-group=example.com"]);
    assert!(!out.contains("widgets"), "{out}");
    let err = k.fails(&["get", "widgets.example.com"], "");
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    k.install_crd(WIDGET_CRD);
    assert!(
        names(&k.json(&["get", "widgets.example.com"])).is_empty(),
        "objects of a deleted CRD do not come back"
    );
}

#[test]
fn unknown_fields_are_rejected_under_kubectl_strict_validation_and_dropped_otherwise() {
    let (_c, k) = cluster();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},"data":{"a":"b"},"colour":"red"}"#;
    let err = k.fails(&["create", "-f", "-"], cm);
    assert!(err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"colour\""), "{err}");
    let warned = k.run_with(
        &["create", "--validate=warn", "--dry-run=server", "-f", "-"],
        cm,
    );
    assert!(warned.status.success());
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        stderr.contains("Warning: unknown field \"colour\""),
        "{stderr}"
    );
    k.ok_with(&["create", "--validate=false", "-f", "-"], cm);
    let live = k.json(&["get", "cm", "u"]);
    assert!(
        live.get("colour").is_none(),
        "unknown fields are never stored"
    );

    k.install_crd(WIDGET_CRD);
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1, shape: round}\n";
    let err = k.fails(&["apply", "-f", "-"], w);
    assert!(err.contains("unknown field \"spec.shape\""), "{err}");
    k.ok_with(&["apply", "--validate=false", "-f", "-"], w);
    assert_eq!(
        k.json(&["get", "widget", "w"])["spec"],
        serde_json::json!({"size": 1, "color": "blue"}),
        "pruned and defaulted by the CRD schema"
    );
}

#[test]
fn list_files_and_access_reviews_work_like_a_real_cluster() {
    let (_c, k) = cluster();
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: l1}}\n- {apiVersion: v1, kind: Secret, metadata: {name: l2}, stringData: {k: v}}\n";
    let out = k.ok_with(&["apply", "-f", "-"], list);
    assert!(
        out.contains("configmap/l1 created") && out.contains("secret/l2 created"),
        "{out}"
    );
    assert_eq!(
        k.json(&["get", "secret", "l2"])["data"]["k"],
        "dg==",
        "stringData is folded into data"
    );
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "namespaces"]).trim(),
        "yes"
    );
    assert!(k.ok(&["auth", "whoami"]).contains("kubernetes-admin"));
    k.ok(&["create", "serviceaccount", "robot"]);
    assert_eq!(
        k.ok(&["create", "token", "robot"])
            .trim()
            .split('.')
            .count(),
        3
    );
}

#[test]
fn owner_references_are_garbage_collected_and_finalizers_hold_deletion() {
    let (_c, k) = cluster();
    k.ok(&["create", "configmap", "owner"]);
    let uid = k.json(&["get", "cm", "owner"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let dependent = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]\n"
    );
    k.ok_with(&["create", "-f", "-"], &dependent);
    k.ok(&["delete", "cm", "owner"]);
    k.ok(&["wait", "--for=delete", "cm/dependent", "--timeout=30s"]);

    let held =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n";
    k.ok_with(&["create", "-f", "-"], held);
    k.ok(&["delete", "cm", "held", "--wait=false"]);
    let live = k.json(&["get", "cm", "held"]);
    assert!(live["metadata"]["deletionTimestamp"].is_string(), "{live}");
    k.ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    k.fails(&["get", "cm", "held"], "");
}
