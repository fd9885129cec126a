//! Workload controllers on the node: StatefulSets, Deployments, Jobs, DaemonSets.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::common::names;
    use crate::node_support::{claim_dir, node_cluster, wait};

    #[test]
    fn a_statefulset_gets_pods_and_claims_named_like_the_real_controller_names_them() {
        let (c, k) = node_cluster(&[], false);
        k.ok(&["create", "namespace", "db"]);
        k.ok_with(&["-n", "db", "create", "-f", "-"], r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: nginx, image: nginx:1.25, volumeMounts: [{name: data, mountPath: /usr/share/nginx/html}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: local-fast
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#);
        wait(
            &k,
            "db",
            "statefulset/web",
            "jsonpath={.status.readyReplicas}=2",
        );
        let mut pods = names(&k.json(&["-n", "db", "get", "pods", "-l", "app=web"]));
        pods.sort();
        assert_eq!(pods, vec!["web-0", "web-1"]);
        let mut claims = names(&k.json(&["-n", "db", "get", "pvc"]));
        claims.sort();
        assert_eq!(claims, vec!["data-web-0", "data-web-1"]);
        let pvc = k.json(&["-n", "db", "get", "pvc", "data-web-1"]);
        assert_eq!(pvc["status"]["phase"], "Bound");
        assert_eq!(pvc["spec"]["storageClassName"], "local-fast");
        assert_eq!(pvc["metadata"]["labels"]["app"], "web");
        let pod = k.json(&["-n", "db", "get", "pod", "web-1"]);
        assert_eq!(pod["spec"]["hostname"], "web-1");
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            "web-1"
        );
        assert_eq!(
            pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
            "1"
        );
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        let vol = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "data")
            .unwrap()
            .clone();
        assert_eq!(vol["persistentVolumeClaim"]["claimName"], "data-web-1");

        // The app's files land in its own claim, and a replacement pod finds them again.
        k.ok(&[
            "-n",
            "db",
            "exec",
            "web-1",
            "--",
            "sh",
            "-c",
            "echo page > /usr/share/nginx/html/index.html",
        ]);
        assert_eq!(
            std::fs::read_to_string(claim_dir(&c, "db", "data-web-1").join("index.html")).unwrap(),
            "page\n"
        );
        let old_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        k.ok(&["-n", "db", "delete", "pod", "web-1"]);
        wait(
            &k,
            "db",
            "statefulset/web",
            "jsonpath={.status.readyReplicas}=2",
        );
        let again = k.json(&["-n", "db", "get", "pod", "web-1"]);
        assert_ne!(again["metadata"]["uid"].as_str().unwrap(), old_uid);
        assert_eq!(
            k.ok(&[
                "-n",
                "db",
                "exec",
                "web-1",
                "--",
                "cat",
                "/usr/share/nginx/html/index.html"
            ]),
            "page\n"
        );

        k.ok(&["-n", "db", "scale", "statefulset", "web", "--replicas=1"]);
        wait(&k, "db", "pod/web-1", "delete");
        // Claims outlive scale-down (retention policy Retain).
        assert!(k.json(&["-n", "db", "get", "pvc", "data-web-1"])["status"]["phase"] == "Bound");
    }

    #[test]
    fn a_deployment_runs_its_pods_through_a_replicaset() {
        let (_c, k) = node_cluster(&[], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: example/api:1}]
"#,
        );
        k.ok(&["rollout", "status", "deployment/api", "--timeout=60s"]);
        let rs = k.json(&["get", "replicasets", "-l", "app=api"]);
        let rs = &rs["items"][0];
        let hash = rs["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap();
        assert_eq!(rs["metadata"]["name"], format!("api-{hash}"));
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        let pods = k.json(&["get", "pods", "-l", "app=api"]);
        assert_eq!(pods["items"].as_array().unwrap().len(), 3);
        for p in pods["items"].as_array().unwrap() {
            assert!(
                p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("api-{hash}-"))
            );
            assert_eq!(p["status"]["phase"], "Running");
            assert_eq!(p["spec"]["nodeName"], "testnode");
        }
        let d = k.json(&["get", "deployment", "api"]);
        assert_eq!(d["status"]["availableReplicas"], 3);
        assert_eq!(d["status"]["updatedReplicas"], 3);

        k.ok(&["set", "image", "deployment/api", "api=example/api:2"]);
        k.ok(&["rollout", "status", "deployment/api", "--timeout=60s"]);
        wait(
            &k,
            "default",
            "deployment/api",
            "jsonpath={.status.replicas}=3",
        );
        let images: Vec<String> = k.json(&["get", "pods", "-l", "app=api"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(images, vec!["example/api:2"; 3]);
    }

    #[test]
    fn a_job_runs_a_mapped_pod_to_completion_and_a_failing_one_to_its_backoff_limit() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: vbackup.test/shell, command: [sh, -c, "echo worked"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: vbackup.test/shell, command: [sh, -c, "exit 2"]}]
"#,
        );
        wait(&k, "default", "job/ok", "condition=Complete");
        assert_eq!(k.ok(&["logs", "job/ok"]), "worked\n");
        assert_eq!(k.json(&["get", "job", "ok"])["status"]["succeeded"], 1);
        wait(&k, "default", "job/bad", "condition=Failed");
        let bad = k.json(&["get", "job", "bad"]);
        assert_eq!(bad["status"]["failed"], 2);
        let failed = bad["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .unwrap()
            .clone();
        assert_eq!(failed["reason"], "BackoffLimitExceeded");
        assert_eq!(
            k.json(&["get", "pods", "-l", "job-name=bad"])["items"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_daemonset_runs_one_pod_on_the_node() {
        let (_c, k) = node_cluster(&[], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: example/agent}]
"#,
        );
        wait(
            &k,
            "default",
            "daemonset/agent",
            "jsonpath={.status.numberReady}=1",
        );
        let pods = k.json(&["get", "pods", "-l", "app=agent"]);
        assert_eq!(pods["items"].as_array().unwrap().len(), 1);
        assert_eq!(pods["items"][0]["spec"]["nodeName"], "testnode");
    }

    #[test]
    fn a_mapped_pod_reaches_the_api_server_with_its_service_account() {
        // In-cluster clients speak HTTPS to KUBERNETES_SERVICE_HOST:PORT with the mounted
        // token and CA: here real kubectl runs as the pod's program, as the namespace's
        // default ServiceAccount, which may read once it is bound to `view`.
        let (_c, k) = crate::node_support::node_cluster_with(
            &[("vbackup.test/kubectl", "/usr/bin/kubectl")],
            false,
            true,
        );
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {k: from-the-api}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-views}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: incluster}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: k
        image: vbackup.test/kubectl:1.32
        args: [get, configmap, cfg, -o, "jsonpath={.data.k}"]
"#,
        );
        wait(&k, "default", "job/incluster", "condition=Complete");
        assert_eq!(k.ok(&["logs", "job/incluster"]), "from-the-api");
    }

    #[test]
    fn a_pod_whose_node_selector_fits_no_node_stays_pending_like_the_scheduler_leaves_it() {
        let (_c, k) = node_cluster(&[], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disktype: ssd}
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: easy}
spec:
  nodeSelector: {kubernetes.io/hostname: testnode}
  containers: [{name: c, image: nginx}]
"#,
        );
        wait(&k, "default", "pod/picky", "condition=PodScheduled=false");
        wait(&k, "default", "pod/easy", "condition=Ready");
        let picky = k.json(&["get", "pod", "picky"]);
        assert_eq!(picky["status"]["phase"], "Pending");
        assert!(picky["spec"]["nodeName"].is_null());
        let msg = picky["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert!(
            msg.contains("didn't match Pod's node affinity/selector"),
            "{msg}"
        );
        k.ok(&["label", "node", "testnode", "disktype=ssd"]);
        wait(&k, "default", "pod/picky", "condition=Ready");
    }

    #[test]
    fn a_cronjob_starts_a_job_at_its_next_scheduled_minute() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "* * * * *"
  jobTemplate:
    metadata: {labels: {app: backup}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: b, image: vbackup.test/shell, command: [sh, -c, "echo backed up"]}]
"#,
        );
        // The next minute boundary is at most a minute away.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
        let job = loop {
            let jobs = k.json(&["get", "jobs", "-l", "app=backup"]);
            if let Some(j) = jobs["items"].as_array().unwrap().first() {
                break j.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no Job was started");
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        let name = job["metadata"]["name"].as_str().unwrap().to_string();
        let minutes: i64 = name.strip_prefix("nightly-").unwrap().parse().unwrap();
        let scheduled: jiff::Timestamp =
            job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
        assert_eq!(scheduled.as_second(), minutes * 60);
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        wait(&k, "default", &format!("job/{name}"), "condition=Complete");
        assert_eq!(k.ok(&["logs", &format!("job/{name}")]), "backed up\n");
        wait(
            &k,
            "default",
            "cronjob/nightly",
            "jsonpath={.status.lastSuccessfulTime}",
        );
        let cj = k.json(&["get", "cronjob", "nightly"]);
        assert!(
            cj["status"]["lastScheduleTime"]
                .as_str()
                .unwrap()
                .ends_with(":00Z")
        );
    }
}
