//! pods/exec over WebSocket with real kubectl and kube's `AttachedProcess`, and pods/log.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::node_support::{claim_dir, node_cluster, node_cluster_with, wait, wait_phase};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::AttachParams;
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {TOKEN: s3cr3t}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db}
spec:
  containers:
  - name: db
    image: postgres:16
    env:
    - {name: PGDATA, value: /var/lib/postgresql/data}
    - {name: WHERE, value: "$(PGDATA)/pg"}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: TOKEN}}}
    envFrom: [{configMapRef: {name: settings}, prefix: APP_}]
    volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  - name: sidecar
    image: busybox
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#;

    #[test]
    fn kubectl_exec_streams_stdin_stdout_stderr_and_the_exit_code() {
        let (c, k) = node_cluster(&[], false);
        k.ok_with(&["create", "-f", "-"], APP);
        wait(&k, "default", "pod/db", "condition=Ready");

        let out = k.run_with(
            &[
                "exec",
                "-i",
                "db",
                "-c",
                "db",
                "--",
                "sh",
                "-c",
                "cat > $WHERE; echo to-stdout; echo to-stderr >&2; exit 3",
            ],
            "dump\n",
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("to-stderr"), "{err}");
        assert!(err.contains("command terminated with exit code 3"), "{err}");
        assert_eq!(
            std::fs::read_to_string(claim_dir(&c, "default", "data").join("pg")).unwrap(),
            "dump\n"
        );

        let env = k.ok(&[
            "exec",
            "db",
            "-c",
            "db",
            "--",
            "sh",
            "-c",
            "echo $APP_MODE $TOKEN $HOSTNAME",
        ]);
        assert_eq!(env, "fast s3cr3t db\n");

        let err = k.fails(&["exec", "db", "-c", "nope", "--", "true"], "");
        assert!(
            err.contains("container nope is not valid for pod db"),
            "{err}"
        );
        let err = k.fails(&["exec", "ghost", "--", "true"], "");
        assert!(err.contains("pods \"ghost\" not found"), "{err}");
    }

    #[test]
    fn kubectl_exec_works_over_https() {
        let (c, k) = node_cluster_with(&[], false, true);
        assert!(c.url().starts_with("https://"));
        k.ok_with(&["create", "-f", "-"], APP);
        wait(&k, "default", "pod/db", "condition=Ready");
        assert_eq!(
            k.ok(&["exec", "db", "-c", "sidecar", "--", "echo", "tls"]),
            "tls\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_attached_process_gets_output_stdin_and_the_status() {
        let (c, k) = tokio::task::spawn_blocking(|| {
            let (c, k) = node_cluster(&[], false);
            k.ok_with(&["create", "-f", "-"], APP);
            wait(&k, "default", "pod/db", "condition=Ready");
            (c, k)
        })
        .await
        .unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(c.kubeconfig_yaml()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let pods: kube::Api<Pod> =
            kube::Api::default_namespaced(kube::Client::try_from(config).unwrap());

        let params = AttachParams::default()
            .container("db")
            .stdin(true)
            .stderr(true);
        let mut p = pods
            .exec(
                "db",
                [
                    "sh",
                    "-c",
                    "cat > /var/lib/postgresql/data/in; echo \"$APP_MODE\"; echo warn >&2",
                ],
                &params,
            )
            .await
            .unwrap();
        let mut stdin = p.stdin().unwrap();
        stdin.write_all(b"from kube").await.unwrap();
        // End of stdin travels as v5's close-stream message.
        stdin.shutdown().await.unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        let mut so = p.stdout().unwrap();
        let mut se = p.stderr().unwrap();
        let status = p.take_status().unwrap();
        let (a, b) = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
        a.unwrap();
        b.unwrap();
        let status = status.await.unwrap();
        assert_eq!(status.status.as_deref(), Some("Success"));
        assert_eq!(out, "fast\n");
        assert_eq!(err, "warn\n");
        p.join().await.unwrap();
        let data = claim_dir(&c, "default", "data");
        assert_eq!(
            std::fs::read_to_string(data.join("in")).unwrap(),
            "from kube"
        );

        let mut p = pods
            .exec(
                "db",
                ["sh", "-c", "exit 42"],
                &AttachParams::default().container("db"),
            )
            .await
            .unwrap();
        let status = p.take_status().unwrap().await.unwrap();
        assert_eq!(status.status.as_deref(), Some("Failure"));
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        let causes = status.details.unwrap().causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
        assert_eq!(causes[0].message.as_deref(), Some("42"));
        p.join().await.unwrap();

        let err = pods
            .exec("db", ["true"], &AttachParams::default().container("nope"))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("400") || err.to_string().contains("not valid"),
            "{err}"
        );
        drop(k);
    }

    #[test]
    fn logs_honour_container_tail_lines_and_follow() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        // The container waits at a gate in its own /tmp, which the test opens through exec.
        // stdout and stderr are read separately, as by a container runtime, so lines of the
        // two streams are ordered only when written apart in time.
        let manifest = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  restartPolicy: Never
  initContainers:
  - {name: setup, image: vbackup.test/shell, command: [sh, -c, "echo init done"]}
  containers:
  - name: count
    image: vbackup.test/shell
    command: [sh, -c, "echo line 1; echo line 2; while [ ! -e /tmp/open ]; do sleep 0.05; done; echo line 3; sleep 0.3; echo oops >&2"]
  - {name: idle, image: nginx}
"#;
        k.ok_with(&["create", "-f", "-"], manifest);
        wait(
            &k,
            "default",
            "pod/counter",
            "jsonpath={.status.containerStatuses[0].started}=true",
        );

        let mut follow = k
            .command(&["logs", "-f", "counter", "-c", "count"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(follow.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        lines.read_line(&mut first).unwrap();
        assert_eq!(first, "line 1\nline 2\n");
        k.ok(&["exec", "counter", "-c", "count", "--", "touch", "/tmp/open"]);
        let mut rest = String::new();
        lines.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "line 3\noops\n");
        assert!(follow.wait().unwrap().success());

        wait(
            &k,
            "default",
            "pod/counter",
            "jsonpath={.status.containerStatuses[0].state.terminated.reason}=Completed",
        );
        assert_eq!(
            k.ok(&["logs", "counter", "-c", "count"]),
            "line 1\nline 2\nline 3\noops\n"
        );
        assert_eq!(
            k.ok(&["logs", "counter", "-c", "count", "--tail=2"]),
            "line 3\noops\n"
        );
        assert_eq!(k.ok(&["logs", "counter", "-c", "setup"]), "init done\n");
        assert_eq!(k.ok(&["logs", "counter", "-c", "idle"]), "");
        let err = k.fails(&["logs", "counter", "-c", "nope"], "");
        assert!(
            err.contains("container nope is not valid for pod counter"),
            "{err}"
        );
        let init = k.json(&["get", "pod", "counter"])["status"]["initContainerStatuses"][0].clone();
        assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    }

    #[test]
    fn mapped_pods_get_env_from_config_maps_and_secrets_and_fail_on_non_zero_exit() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {BUCKET: backups}
---
apiVersion: v1
kind: Secret
metadata: {name: key}
stringData: {PASSWORD: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: Never
  containers:
  - name: job
    image: vbackup.test/shell:2
    command: [sh, -c, "echo $BUCKET $PASSWORD $(ME); exit 5"]
    env: [{name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    envFrom: [{configMapRef: {name: cfg}}, {secretRef: {name: key}}]
"#,
        );
        wait_phase(&k, "default", "job", "Failed");
        assert_eq!(k.ok(&["logs", "job"]), "backups hunter2 job\n");
        let st = k.json(&["get", "pod", "job"]);
        assert_eq!(
            st["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            5
        );
        assert_eq!(
            st["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["reason"],
            "PodCompleted"
        );
    }

    #[test]
    fn exec_sessions_share_the_running_containers_filesystem_so_kubectl_cp_works() {
        let (_c, k) = node_cluster(&[], false);
        k.ok_with(&["create", "-f", "-"], APP);
        wait(&k, "default", "pod/db", "condition=Ready");
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("in.txt");
        std::fs::write(&local, "copied\n").unwrap();
        k.ok(&["cp", "-c", "db", local.to_str().unwrap(), "db:/root/in.txt"]);
        assert_eq!(
            k.ok(&["exec", "db", "-c", "db", "--", "cat", "/root/in.txt"]),
            "copied\n"
        );
        // Containers are separate: the sidecar has its own /root.
        assert!(
            k.fails(
                &["exec", "db", "-c", "sidecar", "--", "cat", "/root/in.txt"],
                ""
            )
            .contains("No such file")
        );
        let back = dir.path().join("back.txt");
        k.ok(&["cp", "-c", "db", "db:/root/in.txt", back.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(back).unwrap(), "copied\n");
    }

    #[test]
    fn a_failed_container_restarts_under_on_failure_and_its_previous_log_is_kept() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  containers:
  - name: flaky
    image: vbackup.test/shell
    command: [sh, -c, "if [ -e /work/once ]; then echo second; else touch /work/once; echo first; exit 1; fi"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"#,
        );
        wait_phase(&k, "default", "flaky", "Succeeded");
        let st = k.json(&["get", "pod", "flaky"])["status"]["containerStatuses"][0].clone();
        assert_eq!(st["restartCount"], 1);
        assert_eq!(st["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(st["state"]["terminated"]["exitCode"], 0);
        assert_eq!(k.ok(&["logs", "flaky"]), "second\n");
        assert_eq!(k.ok(&["logs", "flaky", "--previous"]), "first\n");
    }

    #[test]
    fn deleting_a_pod_sends_sigterm_to_its_program_first() {
        let (c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: g
    image: vbackup.test/shell
    command: [sh, -c, "trap 'echo flushed > /data/bye; exit 0' TERM; while true; do sleep 0.05; done"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#,
        );
        wait(&k, "default", "pod/graceful", "condition=Ready");
        let data = claim_dir(&c, "default", "data");
        k.ok(&["delete", "pod", "graceful"]);
        crate::node_support::eventually("the program handled SIGTERM", || {
            std::fs::read_to_string(data.join("bye")).is_ok_and(|b| b == "flushed\n")
        });
    }

    #[test]
    fn sidecars_run_beside_the_main_container_and_exec_dies_with_its_container() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - {name: setup, image: vbackup.test/shell, command: [sh, -c, "echo setup"]}
  - {name: agent, image: vbackup.test/shell, restartPolicy: Always, command: [sh, -c, "exec sleep 100000"]}
  - {name: after, image: vbackup.test/shell, command: [sh, -c, "true"]}
  containers:
  - {name: main, image: vbackup.test/shell, command: [sh, -c, "while [ ! -e /tmp/done ]; do sleep 0.05; done"]}
"#,
        );
        wait(&k, "default", "pod/web", "condition=Ready");
        let inits = k.json(&["get", "pod", "web"])["status"]["initContainerStatuses"].clone();
        assert!(inits[1]["state"]["running"].is_object(), "{inits:#}");
        assert_eq!(
            (&inits[1]["ready"], &inits[1]["started"]),
            (&true.into(), &true.into())
        );
        assert_eq!(inits[2]["state"]["terminated"]["exitCode"], 0, "{inits:#}");
        assert_eq!(
            k.ok(&[
                "exec",
                "web",
                "-c",
                "agent",
                "--",
                "sh",
                "-c",
                "echo in agent"
            ]),
            "in agent\n"
        );

        // The main container ends while an exec session runs in it: the session is killed.
        let out = k.run_with(
            &[
                "exec",
                "web",
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "touch /tmp/done; sleep 60",
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(137), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("command terminated with exit code 137"),
            "{out:?}"
        );
        // Then the sidecar is stopped and the pod is done.
        wait_phase(&k, "default", "web", "Succeeded");
        let agent = k.json(&["get", "pod", "web"])["status"]["initContainerStatuses"][1].clone();
        assert!(agent["state"]["terminated"].is_object(), "{agent:#}");
    }
}
