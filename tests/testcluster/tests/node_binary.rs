//! The binary's node flags: `--image-map` (checked up front), and a state directory that
//! keeps volume data across restarts.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::common::Kubectl;
    use crate::node_support::wait;
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

    fn command(state: &Path, kubeconfig: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vbackup-testcluster"));
        c.args(["--port", "0", "--state-dir"])
            .arg(state)
            .arg("--kubeconfig-out")
            .arg(kubeconfig)
            .args(extra);
        c
    }

    fn start(state: &Path, kubeconfig: &Path, extra: &[&str]) -> Server {
        let mut child = command(state, kubeconfig, extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("http://127.0.0.1:"), "{line}");
        Server(child)
    }

    #[test]
    fn a_bad_image_map_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (state, kc) = (dir.path().join("s"), dir.path().join("kc"));
        let out = command(&state, &kc, &["--image-map", "busybox"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected IMAGE_PREFIX=LOCAL_BINARY"), "{err}");
        let out = command(&state, &kc, &["--image-map", "busybox=/no/such/sh"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/no/such/sh does not exist"), "{err}");
    }

    #[test]
    fn volume_data_and_pods_survive_a_restart_of_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let (state, kc) = (dir.path().join("state"), dir.path().join("kubeconfig"));
        let flags = [
            "--image-map",
            "vbackup.test/shell=/bin/sh",
            "--snapshot-crds",
        ];
        let server = start(&state, &kc, &flags);
        let k = Kubectl::new(&kc);
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
metadata: {name: app}
spec:
  containers:
  - name: app
    image: vbackup.test/shell
    command: [sh, -c, "echo started >> /data/boots; exec sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#,
        );
        wait(&k, "default", "pod/app", "condition=Ready");
        k.ok(&["exec", "app", "--", "sh", "-c", "echo kept > /data/f"]);
        let pv = k.json(&["get", "pvc", "data"])["spec"]["volumeName"]
            .as_str()
            .unwrap()
            .to_string();
        drop(server);

        let _server = start(&state, &kc, &flags);
        let data = state.join("node/volumes").join(&pv);
        assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "kept\n");
        wait(&k, "default", "pvc/data", "jsonpath={.status.phase}=Bound");
        // The node runs the pod again: its program starts a second time on the same data.
        crate::node_support::eventually("the pod's program ran again", || {
            std::fs::read_to_string(data.join("boots")).is_ok_and(|b| b == "started\nstarted\n")
        });
        assert_eq!(k.ok(&["exec", "app", "--", "cat", "/data/f"]), "kept\n");
        assert!(
            k.ok(&["api-resources", "-o", "name"])
                .contains("volumesnapshots.snapshot.storage.k8s.io")
        );
    }
}
