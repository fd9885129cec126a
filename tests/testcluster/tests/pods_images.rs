//! Images as filesystems, through real kubectl: a directory of binaries where `command[0]` is
//! looked up (missing: `StartError`, exit code 128), and images whose pull fails
//! (`ErrImagePull`, then `ImagePullBackOff`, with containerd's and the kubelet's words).

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode_images {
    use crate::common::Kubectl;
    use crate::node_support::{event_messages, wait, wait_phase};
    use vbackup_testcluster::node::{ImageMapping, NodeOptions};
    use vbackup_testcluster::{ClusterOptions, TestCluster};

    fn cluster() -> (TestCluster, Kubectl) {
        let c = TestCluster::start_with(ClusterOptions {
            node: Some(NodeOptions {
                image_map: vec![ImageMapping::parse("vbackup.test/coreutils=/usr/bin").unwrap()],
                unpullable_images: vec!["registry.example/private/".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        let k = Kubectl::new(c.kubeconfig_path());
        (c, k)
    }

    #[test]
    fn a_directory_image_runs_the_named_program_and_a_missing_one_fails_to_start() {
        let (_c, k) = cluster();
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: tools}
spec:
  restartPolicy: Never
  containers:
  - {name: echo, image: "vbackup.test/coreutils:1", command: [echo], args: [from, the, image]}
  - {name: absolute, image: "vbackup.test/coreutils:1", command: [/bin/printf, "%s\n", ok]}
---
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: "vbackup.test/coreutils:1", command: [no-such-program]}
"#,
        );
        wait_phase(&k, "default", "tools", "Succeeded");
        assert_eq!(k.ok(&["logs", "tools", "-c", "echo"]), "from the image\n");
        assert_eq!(k.ok(&["logs", "tools", "-c", "absolute"]), "ok\n");
        wait_phase(&k, "default", "missing", "Failed");
        let st = &k.json(&["get", "pod", "missing"])["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(st["reason"], "StartError");
        assert_eq!(st["exitCode"], 128);
        let message = st["message"].as_str().unwrap();
        assert!(
            message.ends_with(
                "exec: \"no-such-program\": executable file not found in $PATH: unknown"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_unpullable_image_backs_off_with_the_kubelets_reasons_and_events() {
        let (_c, k) = cluster();
        k.ok(&[
            "run",
            "private",
            "--image=registry.example/private/app:2",
            "--restart=Never",
        ]);
        wait(
            &k,
            "default",
            "pod/private",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff",
        );
        let pull = "rpc error: code = NotFound desc = failed to pull and unpack image \
\"registry.example/private/app:2\": failed to resolve reference \"registry.example/private/app:2\": \
registry.example/private/app:2: not found";
        let pod = k.json(&["get", "pod", "private"]);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
            format!(
                "Back-off pulling image \"registry.example/private/app:2\": ErrImagePull: {pull}"
            )
        );
        let events = event_messages(&k, "default", "private");
        for (reason, message) in [
            (
                "Pulling",
                "Pulling image \"registry.example/private/app:2\"".to_string(),
            ),
            (
                "Failed",
                format!("Failed to pull image \"registry.example/private/app:2\": {pull}"),
            ),
            ("Failed", "Error: ErrImagePull".to_string()),
            (
                "BackOff",
                "Back-off pulling image \"registry.example/private/app:2\"".to_string(),
            ),
            ("Failed", "Error: ImagePullBackOff".to_string()),
        ] {
            assert!(
                events.contains(&(reason.to_string(), message.clone())),
                "{reason} {message} in {events:?}"
            );
        }
    }
}
