//! Pods that are not the host's root, through real kubectl: `securityContext` applied to the
//! process (user, groups, capabilities, no_new_privs, read-only root), the kubelet's
//! `runAsNonRoot` refusal, `fsGroup` on volumes, and Pod Security admission.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode_security {
    use crate::common::Kubectl;
    use crate::node_support::{claim_dir, node_cluster, wait, wait_phase};
    use std::os::unix::fs::MetadataExt;

    const SHELL: &[(&str, &str)] = &[("vbackup.test/shell", "/bin/sh")];

    /// `/proc/self/status` fields of the container's process, its ids and what it may write.
    const REPORT: &str = r#"echo "ids $(id -u) $(id -g) $(id -G | tr ' ' ,)"; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -d '\t'; if touch /etc/probe 2>/dev/null; then echo root-rw; else echo root-ro; fi; echo made > /data/$(id -u); echo "data $(stat -c '%g %a' /data) file $(stat -c %g /data/$(id -u))"; echo "as $(id -u)" > /dev/termination-log"#;

    fn report(k: &Kubectl, pod: &str, container: &str) -> Vec<String> {
        k.ok(&["logs", pod, "-c", container])
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn security_context_sets_users_groups_capabilities_and_a_read_only_root() {
        let (_c, k) = node_cluster(SHELL, false);
        let pod = format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: who}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}}
  containers:
  - name: app
    image: vbackup.test/shell
    command: [sh, -c, {report:?}]
    securityContext:
      runAsUser: 1001
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: root
    image: vbackup.test/shell
    command: [sh, -c, {report:?}]
    securityContext: {{runAsUser: 0, runAsGroup: 0}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: reader
    image: vbackup.test/shell
    command: [sh, -c, {report:?}]
    securityContext: {{runAsUser: 0, capabilities: {{drop: [ALL], add: [DAC_READ_SEARCH]}}}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
"#,
            report = REPORT
        );
        k.ok_with(&["create", "-f", "-"], &pod);
        wait_phase(&k, "default", "who", "Succeeded");
        // The container wins over the pod; fsGroup and supplementalGroups join the groups;
        // a non-root process has no effective capability, only its bounding set.
        assert_eq!(
            report(&k, "who", "app"),
            vec![
                "ids 1001 3000 3000,2000,4000",
                "CapEff:0000000000000000",
                "CapBnd:0000000000000400",
                "NoNewPrivs:1",
                "root-ro",
                "data 2000 2777 file 2000",
            ]
        );
        // Any user may write its termination message.
        let pod = k.json(&["get", "pod", "who"]);
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"],
            "as 1001\n"
        );
        // Root keeps containerd's default set (0xa80425fb), and may write its root.
        let root = report(&k, "who", "root");
        assert_eq!(root[0], "ids 0 0 0,2000,4000");
        assert_eq!(root[1], "CapEff:00000000a80425fb");
        assert_eq!(root[3], "NoNewPrivs:0");
        assert_eq!(root[4], "root-rw");
        // drop ALL + add DAC_READ_SEARCH: root with that one capability.
        let reader = report(&k, "who", "reader");
        assert_eq!(reader[1], "CapEff:0000000000000004");
        assert_eq!(reader[2], "CapBnd:0000000000000004");
    }

    #[test]
    fn run_as_non_root_refuses_the_images_root_user_as_the_kubelet_does() {
        let (_c, k) = node_cluster(SHELL, false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: strict}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: c, image: vbackup.test/shell, command: [sh, -c, "sleep 60"]}
"#,
        );
        wait(
            &k,
            "default",
            "pod/strict",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}=CreateContainerConfigError",
        );
        let pod = k.json(&["get", "pod", "strict"]);
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
            format!(
                "container has runAsNonRoot and image will run as root (pod: \"strict_default({uid})\", container: c)"
            )
        );
        assert_eq!(pod["status"]["phase"], "Pending");
    }

    #[test]
    fn fs_group_owns_a_claim_and_on_root_mismatch_skips_a_matching_root() {
        let (c, k) = node_cluster(SHELL, false);
        let pod = |name: &str, policy: &str| {
            format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  securityContext: {{fsGroup: 2000, fsGroupChangePolicy: {policy}}}
  containers:
  - {{name: c, image: vbackup.test/shell, command: [sh, -c, "true"], volumeMounts: [{{name: d, mountPath: /d}}]}}
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: data}}}}]
"#
            )
        };
        k.ok_with(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
        );
        k.ok_with(&["create", "-f", "-"], &pod("first", "OnRootMismatch"));
        wait_phase(&k, "default", "first", "Succeeded");
        let dir = claim_dir(&c, "default", "data");
        let root = std::fs::metadata(&dir).unwrap();
        assert_eq!(root.gid(), 2000);
        assert_eq!(root.mode() & 0o2770, 0o2770, "{:o}", root.mode());
        // A file the kubelet has not seen: OnRootMismatch leaves it, Always fixes it.
        let file = dir.join("private");
        std::fs::write(&file, b"x").unwrap();
        std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        k.ok_with(&["create", "-f", "-"], &pod("second", "OnRootMismatch"));
        wait_phase(&k, "default", "second", "Succeeded");
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777), (0, 0o600));
        k.ok_with(&["create", "-f", "-"], &pod("third", "Always"));
        wait_phase(&k, "default", "third", "Succeeded");
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777), (2000, 0o660));
    }

    const BARE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  containers: [{name: c, image: vbackup.test/shell, command: [sh, -c, "sleep 60"]}]
"#;

    #[test]
    fn pod_security_admission_enforces_and_warns_with_upstreams_messages() {
        let (_c, k) = node_cluster(SHELL, false);
        k.ok(&["create", "namespace", "locked"]);
        k.ok(&[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ]);
        let err = k.fails(&["-n", "locked", "create", "-f", "-"], BARE);
        assert!(
            err.contains(
                "pods \"bare\" is forbidden: violates PodSecurity \"restricted:latest\": \
allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            ),
            "{err}"
        );
        // A pod that follows the level runs (as its own non-root user).
        k.ok_with(
            &["-n", "locked", "create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: vbackup.test/shell
    command: [sh, -c, "id -u"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"#,
        );
        wait_phase(&k, "locked", "good", "Succeeded");
        assert_eq!(k.ok(&["-n", "locked", "logs", "good"]), "1000\n");
        // Workloads are only warned about; their pods meet the enforcement.
        let out = k
            .command(&[
                "-n",
                "locked",
                "create",
                "deployment",
                "web",
                "--image=nginx",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
            "{stderr}"
        );
        // Baseline: privileged and host namespaces refused, the version label in the message.
        k.ok(&["create", "namespace", "base"]);
        k.ok(&[
            "label",
            "namespace",
            "base",
            "pod-security.kubernetes.io/enforce=baseline",
            "pod-security.kubernetes.io/enforce-version=v1.32",
            "pod-security.kubernetes.io/warn=restricted",
        ]);
        let err = k.fails(
            &["-n", "base", "create", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  hostPID: true
  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]
"#,
        );
        assert!(
            err.contains(
                "pods \"priv\" is forbidden: violates PodSecurity \"baseline:v1.32\": host namespaces (hostPID=true), \
privileged (container \"c\" must not set securityContext.privileged=true)"
            ),
            "{err}"
        );
        // Allowed by baseline, warned about by restricted.
        let out = k.run_with(&["-n", "base", "create", "-f", "-"], BARE);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
            "{stderr}"
        );
    }
}
