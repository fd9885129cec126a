//! CSI snapshots on the node: copies taken at that instant, restores from them,
//! a class that never becomes ready, and cleanup.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::node_support::{claim_dir, eventually, node_cluster, wait};
    use std::path::PathBuf;

    const SETUP: &str = r#"
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
  - {name: app, image: nginx, volumeMounts: [{name: data, mountPath: /data}]}
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#;

    fn snapshot(name: &str, class: Option<&str>) -> String {
        let class = class
            .map(|c| format!("  volumeSnapshotClassName: {c}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {{name: {name}}}\nspec:\n{class}  source: {{persistentVolumeClaimName: data}}\n"
        )
    }

    #[test]
    fn a_snapshot_copies_the_data_of_that_instant_and_a_claim_restores_from_it() {
        let (c, k) = node_cluster(&[], true);
        let resources = k.ok(&[
            "api-resources",
            "--api-group=snapshot.storage.k8s.io",
            "-o",
            "name",
        ]);
        assert_eq!(
            resources,
            "volumesnapshotclasses.snapshot.storage.k8s.io\nvolumesnapshotcontents.snapshot.storage.k8s.io\nvolumesnapshots.snapshot.storage.k8s.io\n"
        );
        k.ok_with(&["create", "-f", "-"], SETUP);
        wait(&k, "default", "pod/app", "condition=Ready");
        k.ok(&["exec", "app", "--", "sh", "-c", "echo v1 > /data/f"]);

        k.ok_with(&["create", "-f", "-"], &snapshot("snap", None));
        wait(
            &k,
            "default",
            "volumesnapshot/snap",
            "jsonpath={.status.readyToUse}=true",
        );
        k.ok(&["exec", "app", "--", "sh", "-c", "echo v2 > /data/f"]);

        let vs = k.json(&["get", "volumesnapshot", "snap"]);
        assert_eq!(vs["spec"]["volumeSnapshotClassName"], "testnode-snapclass");
        assert_eq!(vs["status"]["restoreSize"], "1Gi");
        let content_name = vs["status"]["boundVolumeSnapshotContentName"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            content_name,
            format!("snapcontent-{}", vs["metadata"]["uid"].as_str().unwrap())
        );
        let content = k.json(&["get", "volumesnapshotcontent", &content_name]);
        assert_eq!(content["status"]["readyToUse"], true);
        assert_eq!(content["spec"]["driver"], "testnode.csi.vbackup.io");
        assert_eq!(content["spec"]["deletionPolicy"], "Delete");
        assert_eq!(content["spec"]["volumeSnapshotRef"]["name"], "snap");
        assert_eq!(
            content["spec"]["source"]["volumeHandle"],
            k.json(&["get", "pvc", "data"])["spec"]["volumeName"]
        );

        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restored}
spec:
  # Binds at once; the local classes would wait for a pod to use the claim.
  storageClassName: network
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}
"#,
        );
        wait(
            &k,
            "default",
            "pvc/restored",
            "jsonpath={.status.phase}=Bound",
        );
        assert_eq!(
            std::fs::read_to_string(claim_dir(&c, "default", "restored").join("f")).unwrap(),
            "v1\n"
        );
        assert_eq!(
            std::fs::read_to_string(claim_dir(&c, "default", "data").join("f")).unwrap(),
            "v2\n"
        );

        let data: PathBuf = c
            .node()
            .unwrap()
            .state_dir()
            .join("snapshots")
            .join(&content_name);
        assert!(data.join("f").is_file());
        k.ok(&["delete", "volumesnapshot", "snap"]);
        wait(
            &k,
            "default",
            &format!("volumesnapshotcontent/{content_name}"),
            "delete",
        );
        eventually("the snapshot's copy is removed", || !data.exists());
    }

    #[test]
    fn a_class_configured_never_to_become_ready_keeps_its_snapshots_unready() {
        let (_c, k) = node_cluster(&[], true);
        k.ok_with(&["create", "-f", "-"], SETUP);
        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: stuck}
driver: testnode.csi.vbackup.io
deletionPolicy: Delete
parameters: {testnode.vbackup.io/never-ready: "true"}
"#,
        );
        wait(&k, "default", "pvc/data", "jsonpath={.status.phase}=Bound");
        k.ok_with(&["create", "-f", "-"], &snapshot("stuck", Some("stuck")));
        // The node handles changes in order: once a later snapshot is ready, the first is settled.
        k.ok_with(&["create", "-f", "-"], &snapshot("later", None));
        wait(
            &k,
            "default",
            "volumesnapshot/later",
            "jsonpath={.status.readyToUse}=true",
        );
        let vs = k.json(&["get", "volumesnapshot", "stuck"]);
        assert_eq!(vs["status"]["readyToUse"], false);
        let content = k.json(&[
            "get",
            "volumesnapshotcontent",
            vs["status"]["boundVolumeSnapshotContentName"]
                .as_str()
                .unwrap(),
        ]);
        assert_eq!(content["status"]["readyToUse"], false);

        k.ok_with(
            &["create", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: from-stuck}
spec:
  storageClassName: network
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: stuck}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: from-later}
spec:
  storageClassName: network
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: later}
"#,
        );
        wait(
            &k,
            "default",
            "pvc/from-later",
            "jsonpath={.status.phase}=Bound",
        );
        assert_eq!(
            k.json(&["get", "pvc", "from-stuck"])["status"]["phase"],
            "Pending"
        );
    }
}
