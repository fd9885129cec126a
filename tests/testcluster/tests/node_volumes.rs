//! The node's volumes: claims bound to PV directories, exec and mapped pods sharing them,
//! read-only mounts, emptyDir, reclaim policies and namespace deletion.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::node_support::{claim_dir, eventually, node_cluster, wait, wait_phase};

    const APP: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - name: app
    image: nginx:1.25
    volumeMounts: [{name: data, mountPath: /data}, {name: cache, mountPath: /cache}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: cache, emptyDir: {}}
"#;

    const MOVER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: mover}
spec:
  restartPolicy: Never
  containers:
  - name: mover
    image: vbackup.test/mover:1.0
    command: ["/mover"]
    args: ["/backup/f"]
    volumeMounts: [{name: source, mountPath: /backup, readOnly: true}]
  volumes:
  - {name: source, persistentVolumeClaim: {claimName: data, readOnly: true}}
"#;

    #[test]
    fn exec_writes_into_the_pv_directory_and_a_mapped_mover_pod_reads_it_at_its_own_mount_path() {
        let (c, k) = node_cluster(&[("vbackup.test/mover", "/usr/bin/cat")], false);
        k.ok(&["create", "namespace", "shop"]);
        k.ok_with(&["-n", "shop", "create", "-f", "-"], APP);
        wait(&k, "shop", "pod/app", "condition=Ready");

        k.ok(&[
            "-n",
            "shop",
            "exec",
            "app",
            "--",
            "sh",
            "-c",
            "echo hi > /data/f",
        ]);
        let dir = claim_dir(&c, "shop", "data");
        assert!(
            dir.starts_with(c.node().unwrap().state_dir().join("volumes")),
            "{}",
            dir.display()
        );
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "hi\n");

        k.ok_with(&["-n", "shop", "create", "-f", "-"], MOVER);
        wait_phase(&k, "shop", "mover", "Succeeded");
        assert_eq!(k.ok(&["-n", "shop", "logs", "mover"]), "hi\n");
        let pod = k.json(&["-n", "shop", "get", "pod", "mover"]);
        assert_eq!(pod["spec"]["nodeName"], "testnode");
        let state = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(state["exitCode"], 0);
        assert_eq!(state["reason"], "Completed");
    }

    #[test]
    fn a_claim_of_an_immediate_class_binds_at_once_like_the_pv_controller_binds_it() {
        let (_c, k) = node_cluster(&[], false);
        let sc = k.json(&["get", "storageclass", "local"]);
        assert_eq!(
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        assert_eq!(sc["provisioner"], "testnode.csi.vbackup.io");
        assert_eq!(
            k.json(&["get", "storageclass", "local-fast"])["reclaimPolicy"],
            "Delete"
        );

        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  storageClassName: network
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 3Gi}}
"#,
        );
        wait(
            &k,
            "default",
            "pvc/shared",
            "jsonpath={.status.phase}=Bound",
        );
        let pvc = k.json(&["get", "pvc", "shared"]);
        assert_eq!(pvc["spec"]["storageClassName"], "network");
        assert_eq!(pvc["status"]["capacity"]["storage"], "3Gi");
        assert_eq!(pvc["status"]["accessModes"][0], "ReadWriteMany");
        assert_eq!(
            pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
            "yes"
        );
        assert_eq!(
            pvc["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"],
            "testnode.csi.vbackup.io"
        );
        let pv_name = pvc["spec"]["volumeName"].as_str().unwrap();
        assert_eq!(
            pv_name,
            format!("pvc-{}", pvc["metadata"]["uid"].as_str().unwrap())
        );
        let pv = k.json(&["get", "pv", pv_name]);
        assert_eq!(pv["status"]["phase"], "Bound");
        assert_eq!(pv["spec"]["claimRef"]["name"], "shared");
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "default");
        assert_eq!(pv["spec"]["claimRef"]["uid"], pvc["metadata"]["uid"]);
        assert_eq!(pv["spec"]["capacity"]["storage"], "3Gi");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(pv["spec"]["csi"]["driver"], "testnode.csi.vbackup.io");
        assert_eq!(
            pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
            "testnode.csi.vbackup.io"
        );
        let node = k.json(&["get", "node", "testnode"]);
        assert_eq!(node["status"]["conditions"][3]["type"], "Ready");
        assert_eq!(node["status"]["conditions"][3]["status"], "True");
    }

    #[test]
    fn deleting_a_namespace_removes_its_delete_policy_volumes_and_releases_retained_ones() {
        let (c, k) = node_cluster(&[], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: keep}
provisioner: testnode.csi.vbackup.io
reclaimPolicy: Retain
"#,
        );
        k.ok(&["create", "namespace", "doomed"]);
        k.ok_with(&["-n", "doomed", "create", "-f", "-"], APP);
        k.ok_with(
            &["-n", "doomed", "create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kept}
spec:
  storageClassName: keep
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#,
        );
        wait(&k, "doomed", "pod/app", "condition=Ready");
        wait(&k, "doomed", "pvc/kept", "jsonpath={.status.phase}=Bound");
        k.ok(&[
            "-n",
            "doomed",
            "exec",
            "app",
            "--",
            "sh",
            "-c",
            "echo precious > /data/f",
        ]);
        let deleted_dir = claim_dir(&c, "doomed", "data");
        let kept_dir = claim_dir(&c, "doomed", "kept");
        let deleted_pv = k.json(&["-n", "doomed", "get", "pvc", "data"])["spec"]["volumeName"]
            .as_str()
            .unwrap()
            .to_string();
        let kept_pv = k.json(&["-n", "doomed", "get", "pvc", "kept"])["spec"]["volumeName"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(deleted_dir.join("f").is_file());

        k.ok(&[
            "delete",
            "namespace",
            "doomed",
            "--wait=true",
            "--timeout=60s",
        ]);
        wait(&k, "default", &format!("pv/{deleted_pv}"), "delete");
        assert!(
            !deleted_dir.exists(),
            "{} should be gone",
            deleted_dir.display()
        );
        wait(
            &k,
            "default",
            &format!("pv/{kept_pv}"),
            "jsonpath={.status.phase}=Released",
        );
        assert!(kept_dir.is_dir());
    }

    #[test]
    fn deleting_a_claim_deletes_its_volume_and_data() {
        let (c, k) = node_cluster(&[], false);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch}
spec: {storageClassName: network, accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}
"#,
        );
        wait(
            &k,
            "default",
            "pvc/scratch",
            "jsonpath={.status.phase}=Bound",
        );
        let dir = claim_dir(&c, "default", "scratch");
        let pv = k.json(&["get", "pvc", "scratch"])["spec"]["volumeName"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(dir.join("x"), "1").unwrap();
        k.ok(&["delete", "pvc", "scratch"]);
        wait(&k, "default", &format!("pv/{pv}"), "delete");
        assert!(!dir.exists());
    }

    #[test]
    fn read_only_mounts_refuse_writes_and_the_termination_message_reports_it() {
        let (_c, k) = node_cluster(&[("vbackup.test/shell", "/bin/sh")], false);
        k.ok_with(&["create", "-f", "-"], r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  containers:
  - name: writer
    image: vbackup.test/shell
    command: [sh, -c]
    args: ["touch /ro/x 2>/dev/null || { echo read-only > /tmp/why; cat /tmp/why > /run/msg; exit 7; }"]
    terminationMessagePath: /run/msg
    volumeMounts: [{name: data, mountPath: /ro, readOnly: true}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#);
        wait_phase(&k, "default", "writer", "Failed");
        let pod = k.json(&["get", "pod", "writer"]);
        let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 7);
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["message"], "read-only\n");
    }

    #[test]
    fn empty_dirs_live_and_die_with_their_pod() {
        let (c, k) = node_cluster(&[], false);
        k.ok_with(&["create", "-f", "-"], APP);
        wait(&k, "default", "pod/app", "condition=Ready");
        k.ok(&["exec", "app", "--", "sh", "-c", "echo tmp > /cache/x"]);
        let uid = k.json(&["get", "pod", "app"])["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let cache = c
            .node()
            .unwrap()
            .state_dir()
            .join("pods")
            .join(&uid)
            .join("volumes/cache");
        assert_eq!(std::fs::read_to_string(cache.join("x")).unwrap(), "tmp\n");
        k.ok(&["delete", "pod", "app"]);
        eventually("the emptyDir is removed", || !cache.exists());
        // The claim's data outlives the pod.
        assert!(claim_dir(&c, "default", "data").is_dir());
    }

    #[test]
    fn a_read_write_once_pod_claim_admits_one_pod_at_a_time() {
        let (_c, k) = node_cluster(&[], false);
        let pod = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: nginx, volumeMounts: [{{name: d, mountPath: /d}}]}}]\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: solo}}}}]\n"
            )
        };
        k.ok_with(&["create", "-f", "-"], "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: solo}\nspec: {accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}\n");
        k.ok_with(&["create", "-f", "-"], &pod("first"));
        wait(&k, "default", "pod/first", "condition=Ready");
        k.ok_with(&["create", "-f", "-"], &pod("second"));
        wait(&k, "default", "pod/second", "condition=PodScheduled=false");
        let second = k.json(&["get", "pod", "second"]);
        let cond = &second["status"]["conditions"][0];
        assert_eq!(cond["reason"], "Unschedulable");
        assert!(
            cond["message"]
                .as_str()
                .unwrap()
                .contains("ReadWriteOncePod"),
            "{cond}"
        );
        k.ok(&["delete", "pod", "first"]);
        wait(&k, "default", "pod/second", "condition=Ready");
    }
}
