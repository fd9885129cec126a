//! A pod's life as the kubelet and the API server shape it, through real kubectl: graceful
//! deletion, termination messages, logs before start and with times, the atomic writer
//! layout of ConfigMap volumes, and what a finished container used.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode_lifecycle {
    use crate::node_support::{node_cluster, wait, wait_phase};

    const SHELL: &[(&str, &str)] = &[("vbackup.test/shell", "/bin/sh")];

    #[test]
    fn a_deleted_pod_stays_terminating_for_its_grace_period_and_keeps_its_name() {
        let (_c, k) = node_cluster(SHELL, false);
        let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: vbackup.test/shell, command: [sh, -c, "trap '' TERM; while true; do sleep 0.05; done"]}
"#;
        k.ok_with(&["create", "-f", "-"], pod);
        wait(&k, "default", "pod/stubborn", "condition=Ready");
        k.ok(&["delete", "pod", "stubborn", "--wait=false"]);
        let p = k.json(&["get", "pod", "stubborn"]);
        assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p:#}");
        assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 2);
        let err = k.fails(&["create", "-f", "-"], pod);
        assert!(
            err.contains("object is being deleted: pods \"stubborn\" already exists"),
            "{err}"
        );
        // It ignores SIGTERM: SIGKILL at the end of the period, then the kubelet removes it.
        k.ok(&["wait", "--for=delete", "pod/stubborn", "--timeout=30s"]);
        k.ok_with(&["create", "-f", "-"], pod);
        wait(&k, "default", "pod/stubborn", "condition=Ready");
        k.ok(&["delete", "pod", "stubborn", "--grace-period=0", "--force"]);
        assert!(
            k.fails(&["get", "pod", "stubborn"], "")
                .contains("NotFound")
        );
    }

    #[test]
    fn termination_messages_keep_their_last_4096_bytes_and_logs_wait_for_the_start() {
        let (_c, k) = node_cluster(SHELL, false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: long}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: vbackup.test/shell, command: [sh, -c, "head -c 5000 /dev/zero | tr '\\0' x > /dev/termination-log; printf END >> /dev/termination-log; exit 3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: blocked}
spec:
  containers:
  - {name: c, image: vbackup.test/shell, command: [sh, -c, "sleep 60"], volumeMounts: [{name: cfg, mountPath: /cfg}]}
  volumes: [{name: cfg, configMap: {name: not-yet}}]
"#,
        );
        wait_phase(&k, "default", "long", "Failed");
        let t = &k.json(&["get", "pod", "long"])["status"]["containerStatuses"][0]["state"]["terminated"];
        let message = t["message"].as_str().unwrap();
        assert_eq!(message.len(), 4096);
        assert!(message.ends_with("xxEND"), "{}", &message[4080..]);
        assert_eq!(t["exitCode"], 3);
        let err = k.fails(&["logs", "blocked"], "");
        assert!(
            err.contains(
                "container \"c\" in pod \"blocked\" is waiting to start: ContainerCreating"
            ),
            "{err}"
        );
    }

    #[test]
    fn log_lines_keep_their_time_and_config_maps_use_the_atomic_writer_layout() {
        let (_c, k) = node_cluster(SHELL, false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key: value, other: more}
---
apiVersion: v1
kind: Pod
metadata: {name: talk}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: vbackup.test/shell
    command: [sh, -c, "echo one; sleep 1.2; echo two; readlink /cfg/renamed /cfg/..data; stat -L -c %a /cfg/renamed; ls /cfg/..data/"]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes: [{name: cfg, configMap: {name: cfg, items: [{key: key, path: renamed, mode: 0600}]}}]
"#,
        );
        wait_phase(&k, "default", "talk", "Succeeded");
        let logs = k.ok(&["logs", "talk"]);
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2], "..data/renamed");
        assert!(lines[3].starts_with("..20"), "{logs}");
        assert_eq!(lines[4], "600");
        assert_eq!(lines[5], "renamed", "only the listed item");
        let stamped = k.ok(&["logs", "talk", "--timestamps"]);
        let (when, text) = stamped.lines().nth(1).unwrap().split_once(' ').unwrap();
        assert_eq!(text, "two");
        assert_eq!(when.len(), "2024-01-01T00:00:00.123456789Z".len(), "{when}");
        let since = k.ok(&["logs", "talk", &format!("--since-time={when}")]);
        assert!(since.starts_with("two\n"), "{since}");
        assert!(!since.contains("one"), "{since}");
    }

    #[test]
    fn the_node_records_what_a_finished_container_used() {
        let (c, k) = node_cluster(SHELL, false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: vbackup.test/shell, command: [sh, -c, "x=$(head -c 40000000 /dev/zero | tr '\\0' x); exit 3"]}
"#,
        );
        wait_phase(&k, "default", "hungry", "Failed");
        let t = &k.json(&["get", "pod", "hungry"])["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            t["exitCode"], 3,
            "the exit status still reaches the pod: {t:#}"
        );
        let usage = c.node().unwrap().container_usage();
        let run = usage
            .iter()
            .find(|u| u.pod == "hungry")
            .unwrap_or_else(|| panic!("no record of pod hungry: {usage:#?}"));
        assert_eq!(
            (
                run.namespace.as_str(),
                run.container.as_str(),
                run.image.as_str()
            ),
            ("default", "c", "vbackup.test/shell")
        );
        assert_eq!(run.exit_code, 3);
        // The shell held the 40 MB string; `tr`, its reaped child, spent CPU too.
        assert!(run.max_rss_kib >= 39_000, "{run:?}");
        assert!(!(run.user_cpu + run.system_cpu).is_zero(), "{run:?}");
    }
}
