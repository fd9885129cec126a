//! Who may do what, through real kubectl: bearer tokens (401 for unknown ones), RBAC with
//! the real 403 messages, `kubectl auth can-i` (also `--list` and `--as`), impersonation,
//! aggregated ClusterRoles, escalation prevention, and — on a node — ServiceAccount
//! admission, tokens in pods, controllers creating pods as themselves, and `pods/exec`
//! needing `create`.

mod admission_support;
mod common;
mod node_support;

use common::Kubectl;
use std::process::Output;
use vbackup_testcluster::TestCluster;

/// kubectl acting with a bearer token instead of the kubeconfig's admin token.
fn as_token(k: &Kubectl, token: &str, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    k.run_with(&all, stdin)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A token for ServiceAccount `ns/name`, through TokenRequest (`kubectl create token`).
fn token(k: &Kubectl, ns: &str, name: &str) -> String {
    k.ok(&["-n", ns, "create", "token", name])
        .trim()
        .to_string()
}

/// kubectl with the cluster's kubeconfig minus its token (basic auth instead, which
/// Kubernetes ignores since 1.19): anonymous requests.
fn anonymous(c: &TestCluster, dir: &std::path::Path) -> Kubectl {
    let path = dir.join("anonymous-kubeconfig");
    let yaml = c.kubeconfig_yaml().replace(
        &format!("token: {}", vbackup_testcluster::auth::authn::ADMIN_TOKEN),
        "username: nobody\n    password: none",
    );
    std::fs::write(&path, yaml).unwrap();
    Kubectl::new(&path)
}

fn eventually(what: &str, f: impl Fn() -> bool) {
    node_support::eventually(what, f)
}

#[test]
fn tokens_rbac_reviews_and_impersonation() {
    let c = TestCluster::start_with(vbackup_testcluster::ClusterOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let k = Kubectl::new(c.kubeconfig_path());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&["create", "namespace", "team"]);
    k.ok(&["create", "namespace", "other"]);
    k.ok(&["-n", "team", "create", "serviceaccount", "bot"]);

    // Unknown tokens are refused outright; no token is the anonymous user.
    let out = as_token(&k, "not-a-token", &["get", "pods"], "");
    assert!(
        stderr(&out).contains("error: You must be logged in to the server"),
        "{}",
        stderr(&out)
    );
    let anon = anonymous(&c, dir.path());
    assert!(
        anon.ok(&["get", "--raw", "/version"])
            .contains("gitVersion")
    );
    let err = anon.fails(&["get", "--raw", "/api/v1/namespaces/team/pods"], "");
    assert!(
        err.contains(r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "team""#),
        "{err}"
    );
    let err = anon.fails(&["get", "--raw", "/apis"], "");
    assert!(
        err.contains(r#"forbidden: User "system:anonymous" cannot get path "/apis""#),
        "{err}"
    );

    let bot = token(&k, "team", "bot");
    let who = as_token(&k, &bot, &["auth", "whoami", "-o", "json"], "");
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:team:bot"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ])
    );

    // Nothing bound yet: the real 403, and can-i says no.
    let out = as_token(&k, &bot, &["-n", "other", "get", "pods"], "");
    assert!(
        stderr(&out).contains(r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:team:bot" cannot list resource "pods" in API group "" in the namespace "other""#),
        "{}",
        stderr(&out)
    );
    let out = as_token(
        &k,
        &bot,
        &["-n", "team", "auth", "can-i", "list", "pods"],
        "",
    );
    assert_eq!(stdout(&out).trim(), "no");
    assert!(!out.status.success());

    // A Role bound to the account: pods in its namespace only, one ConfigMap by name.
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: team}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [configmaps], resourceNames: [settings], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-reads, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: bot}]
"#,
    );
    k.ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ]);
    k.ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "secret-ish",
        "--from-literal=a=1",
    ]);
    let out = as_token(&k, &bot, &["-n", "team", "get", "pods"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_token(
        &k,
        &bot,
        &["-n", "team", "get", "configmap", "settings"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_token(
        &k,
        &bot,
        &["-n", "team", "get", "configmap", "secret-ish"],
        "",
    );
    assert!(
        stderr(&out).contains(r#"configmaps "secret-ish" is forbidden: User "system:serviceaccount:team:bot" cannot get resource "configmaps" in API group "" in the namespace "team""#),
        "{}",
        stderr(&out)
    );
    let out = as_token(
        &k,
        &bot,
        &["delete", "--raw", "/api/v1/namespaces/team/pods"],
        "",
    );
    assert!(
        stderr(&out).contains(r#"cannot deletecollection resource "pods" in API group """#),
        "{}",
        stderr(&out)
    );
    let out = as_token(
        &k,
        &bot,
        &["-n", "team", "auth", "can-i", "get", "pods/log"],
        "",
    );
    assert_eq!(stdout(&out).trim(), "yes");
    let out = as_token(&k, &bot, &["-n", "team", "auth", "can-i", "--list"], "");
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("configmaps ") && l.contains("[settings]")),
        "{list}"
    );
    assert!(
        list.lines().any(|l| l.contains("[/api/*]")),
        "discovery for every user: {list}"
    );
    // kube::Client with the account's token meets the same rules.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use k8s_openapi::api::core::v1::Pod;
        let kc = kube::config::Kubeconfig::from_yaml(c.kubeconfig_yaml()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        config.auth_info.token = Some(bot.clone().into());
        let client = kube::Client::try_from(config).unwrap();
        let team: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "team");
        team.list(&Default::default()).await.unwrap();
        let other: kube::Api<Pod> = kube::Api::namespaced(client, "other");
        match other.list(&Default::default()).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            }
            r => panic!("expected 403, got {r:?}"),
        }
    });

    // The admin asks on the account's behalf; the account itself may not impersonate.
    assert_eq!(
        k.ok(&[
            "-n",
            "team",
            "auth",
            "can-i",
            "list",
            "pods",
            "--as",
            "system:serviceaccount:team:bot",
        ])
        .trim(),
        "yes"
    );
    let out = as_token(&k, &bot, &["get", "pods", "--as", "jane"], "");
    assert!(
        stderr(&out).contains(r#"users "jane" is forbidden: User "system:serviceaccount:team:bot" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{}",
        stderr(&out)
    );
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonator}
rules: [{apiGroups: [""], resources: [users, groups], verbs: [impersonate]}]
"#,
    );
    k.ok(&[
        "create",
        "clusterrolebinding",
        "bot-impersonates",
        "--clusterrole=impersonator",
        "--serviceaccount=team:bot",
    ]);
    let out = as_token(
        &k,
        &bot,
        &[
            "auth",
            "whoami",
            "--as",
            "jane",
            "--as-group",
            "devs",
            "-o",
            "json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    let out = as_token(&k, &bot, &["get", "pods", "--as", "jane", "-n", "team"], "");
    assert!(
        stderr(&out).contains(r#"User "jane" cannot list resource "pods""#),
        "jane holds nothing: {}",
        stderr(&out)
    );

    // An aggregated ClusterRole picks up a role labelled for it, and `view` too.
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {example.com/aggregate-to-monitoring: "true"}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bot-monitors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: monitoring}
subjects: [{kind: ServiceAccount, name: bot, namespace: team}]
"#,
    );
    let can_list_services = || {
        stdout(&as_token(
            &k,
            &bot,
            &["auth", "can-i", "list", "services", "-n", "other"],
            "",
        ))
        .trim()
            == "yes"
    };
    assert!(!can_list_services());
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring-services
  labels: {example.com/aggregate-to-monitoring: "true", rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules: [{apiGroups: [""], resources: [services], verbs: [list]}, {apiGroups: [example.com], resources: [gauges], verbs: [get]}]
"#,
    );
    eventually("the aggregated role grants the new rule", can_list_services);
    eventually("view aggregates the new rule", || {
        k.ok(&["get", "clusterrole", "view", "-o", "json"])
            .contains("gauges")
    });

    // Escalation: writing a Role that grants more than the writer holds is refused.
    k.ok(&[
        "-n",
        "team",
        "create",
        "role",
        "role-writer",
        "--verb=create,get",
        "--resource=roles.rbac.authorization.k8s.io",
    ]);
    k.ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "bot-writes-roles",
        "--role=role-writer",
        "--serviceaccount=team:bot",
    ]);
    let out = as_token(
        &k,
        &bot,
        &[
            "-n",
            "team",
            "create",
            "role",
            "sneaky",
            "--verb=get",
            "--resource=secrets",
        ],
        "",
    );
    assert!(
        stderr(&out).contains(r#"roles.rbac.authorization.k8s.io "sneaky" is forbidden: user "system:serviceaccount:team:bot" (groups=["system:serviceaccounts" "system:serviceaccounts:team" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#)
            && stderr(&out).contains(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#),
        "{}",
        stderr(&out)
    );
    let out = as_token(
        &k,
        &bot,
        &[
            "-n",
            "team",
            "create",
            "role",
            "modest",
            "--verb=get",
            "--resource=pods",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A deleted account's tokens stop working.
    k.ok(&["-n", "team", "delete", "serviceaccount", "bot"]);
    let out = as_token(&k, &bot, &["-n", "team", "get", "pods"], "");
    assert!(
        stderr(&out).contains("You must be logged in to the server"),
        "{}",
        stderr(&out)
    );
    let out = as_token(&k, "not-a-token", &["get", "--raw", "/api/v1/pods"], "");
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}

const SHELL: (&str, &str) = ("vbackup.test/shell", "/bin/sh");
const KUBECTL: (&str, &str) = ("vbackup.test/kubectl", "/usr/bin/kubectl");

fn pod_yaml(name: &str, account: &str, image: &str, args: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: app}}
spec:
  serviceAccountName: {account}
  restartPolicy: Never
  containers: [{{name: main, image: {image}, args: {args}}}]
"#
    )
}

#[test]
fn service_account_admission_tokens_in_pods_and_controllers() {
    let kubectl = std::fs::canonicalize("/usr/bin/kubectl")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| KUBECTL.1.to_string());
    let (c, k) = node_support::node_cluster_with(&[SHELL, (KUBECTL.0, &kubectl)], false, true);
    k.ok(&["create", "namespace", "app"]);
    k.ok(&["-n", "app", "create", "serviceaccount", "lister"]);

    // A missing account is refused with the admission plugin's message.
    let err = k.fails(
        &["apply", "-f", "-"],
        &pod_yaml("orphan", "missing", SHELL.0, r#"["-c", "true"]"#),
    );
    assert!(
        err.contains(r#"pods "orphan" is forbidden: error looking up service account app/missing: serviceaccount "missing" not found"#),
        "{err}"
    );

    // The token volume and its mounts are in the stored spec; the pod's own kubectl
    // authenticates as the account and is refused until the account is bound.
    k.ok_with(
        &["apply", "-f", "-"],
        &pod_yaml(
            "list-1",
            "lister",
            KUBECTL.0,
            r#"["get", "pods", "-o", "name"]"#,
        ),
    );
    let pod = k.json(&["-n", "app", "get", "pod", "list-1"]);
    let volume = &pod["spec"]["volumes"][0];
    let vname = volume["name"].as_str().unwrap();
    assert!(
        vname.starts_with("kube-api-access-") && vname.len() == "kube-api-access-".len() + 5,
        "{vname}"
    );
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0],
        serde_json::json!({"name": vname, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    );
    node_support::wait_phase(&k, "app", "list-1", "Failed");
    let logs = k.ok(&["-n", "app", "logs", "list-1"]);
    assert!(
        logs.contains(r#"pods is forbidden: User "system:serviceaccount:app:lister" cannot list resource "pods" in API group "" in the namespace "app""#),
        "{logs}"
    );
    k.ok(&[
        "-n",
        "app",
        "create",
        "rolebinding",
        "lister-views",
        "--clusterrole=view",
        "--serviceaccount=app:lister",
    ]);
    k.ok_with(
        &["apply", "-f", "-"],
        &pod_yaml(
            "list-2",
            "lister",
            KUBECTL.0,
            r#"["get", "pods", "-o", "name"]"#,
        ),
    );
    node_support::wait_phase(&k, "app", "list-2", "Succeeded");
    let logs = k.ok(&["-n", "app", "logs", "list-2"]);
    assert!(logs.contains("pod/list-1"), "{logs}");

    // automountServiceAccountToken: false on the account: no volume.
    k.ok_with(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: quiet, namespace: app}\nautomountServiceAccountToken: false\n",
    );
    k.ok_with(
        &["apply", "-f", "-"],
        &pod_yaml("quiet", "quiet", SHELL.0, r#"["-c", "true"]"#),
    );
    let pod = k.json(&["-n", "app", "get", "pod", "quiet"]);
    assert!(pod["spec"].get("volumes").is_none(), "{pod}");

    // Controllers create pods as their own users, through admission: a Deployment whose
    // account is missing gets FailedCreate events, and pods once the account exists.
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: main, image: vbackup.test/shell, args: ["-c", "sleep 300"]}]
"#,
    );
    eventually("a FailedCreate event on the ReplicaSet", || {
        let events = k.ok(&["-n", "app", "get", "events", "-o", "json"]);
        events.contains("FailedCreate")
            && events.contains(r#"Error creating: pods \"web-"#)
            && events.contains(r#"is forbidden: error looking up service account app/web: serviceaccount \"web\" not found"#)
    });
    k.ok(&["-n", "app", "create", "serviceaccount", "web"]);
    node_support::wait(
        &k,
        "app",
        "deployment/web",
        "jsonpath={.status.readyReplicas}=1",
    );
    let pods = k.json(&["-n", "app", "get", "pods", "-l", "app=web"]);
    let pod = &pods["items"][0];
    assert!(
        pod["metadata"]["generateName"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    );
    assert!(
        pod["spec"]["volumes"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-")
    );
    let web = pod["metadata"]["name"].as_str().unwrap().to_string();

    // pods/exec needs `create` as well as `get` (the WebSocket upgrade is a GET).
    let execer = token(&k, "app", "lister");
    k.ok(&[
        "-n",
        "app",
        "create",
        "role",
        "exec-get",
        "--verb=get",
        "--resource=pods,pods/exec",
    ]);
    k.ok(&[
        "-n",
        "app",
        "create",
        "rolebinding",
        "lister-exec-get",
        "--role=exec-get",
        "--serviceaccount=app:lister",
    ]);
    let out = as_token(
        &k,
        &execer,
        &["-n", "app", "exec", &web, "--", "echo", "hi"],
        "",
    );
    assert!(
        stderr(&out).contains(&format!(r#"pods "{web}" is forbidden: User "system:serviceaccount:app:lister" cannot create resource "pods/exec" in API group "" in the namespace "app""#)),
        "{}",
        stderr(&out)
    );
    k.ok(&[
        "-n",
        "app",
        "create",
        "role",
        "exec-create",
        "--verb=create",
        "--resource=pods/exec",
    ]);
    k.ok(&[
        "-n",
        "app",
        "create",
        "rolebinding",
        "lister-exec-create",
        "--role=exec-create",
        "--serviceaccount=app:lister",
    ]);
    let out = as_token(
        &k,
        &execer,
        &["-n", "app", "exec", &web, "--", "echo", "hi"],
        "",
    );
    assert_eq!(stdout(&out).trim(), "hi", "{}", stderr(&out));
    drop(c);
}

#[test]
fn controllers_create_pods_through_webhooks_as_themselves() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = rt.block_on(admission_support::TestWebhook::start());
    let c = TestCluster::start_with(vbackup_testcluster::ClusterOptions {
        service_endpoints: hook.endpoints(),
        node: Some(vbackup_testcluster::node::NodeOptions {
            image_map: vec![
                vbackup_testcluster::node::ImageMapping::parse(&format!("{}={}", SHELL.0, SHELL.1))
                    .unwrap(),
            ],
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let k = Kubectl::new(c.kubeconfig_path());
    let config = admission_support::configuration(
        "recorder",
        vec![admission_support::webhook(
            "record.vbackup.io",
            hook.service("/allow"),
            serde_json::json!({}),
        )],
    );
    k.ok_with(&["apply", "-f", "-"], &config.to_string());
    k.ok_with(
        &["apply", "-f", "-"],
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: vbackup.test/shell, args: ["-c", "true"]}]
"#,
    );
    node_support::wait(&k, "default", "job/once", "condition=Complete");
    let calls = hook.calls();
    let request = &calls
        .iter()
        .find(|c| c.review["request"]["kind"]["kind"] == "Pod")
        .expect("the webhook saw the job's pod")
        .review["request"];
    assert_eq!(
        request["userInfo"]["username"],
        "system:serviceaccount:kube-system:job-controller"
    );
    assert_eq!(request["object"]["metadata"]["generateName"], "once-");
    assert_eq!(request["object"]["spec"]["serviceAccountName"], "default");
    assert!(
        request["object"]["spec"]["volumes"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-")),
        "ServiceAccount admission ran before the webhook: {request}"
    );
}
