//! Storage and nodes through real kubectl: binding on first consumer, several nodes with
//! labels, taints and affinities, one-node-at-a-time attachment, protection finalizers,
//! snapshot finalizers, slow snapshots and restore sizes.

mod common;
mod node_support;

/// Named so that `cargo test -p vbackup-testcluster node` selects these tests.
mod testnode {
    use crate::common::Kubectl;
    use crate::node_support::{event_messages, eventually, nodes_cluster, wait};
    use serde_json::Value;

    fn pod(name: &str, claim: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers: [{{name: c, image: vbackup.test/shell, command: [sh, -c, 'sleep 600'], volumeMounts: [{{name: d, mountPath: /d}}]}}]\n  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}]\n"
        )
    }

    fn claim(name: &str, class: Option<&str>, size: &str) -> String {
        let class = class
            .map(|c| format!("  storageClassName: {c}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n"
        )
    }

    fn get(k: &Kubectl, what: &[&str]) -> Value {
        k.json(what)
    }

    fn text(v: &Value, pointer: &str) -> String {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn node_of(k: &Kubectl, pod: &str) -> String {
        text(&get(k, &["get", "pod", pod]), "/spec/nodeName")
    }

    #[test]
    fn a_claim_waits_for_its_first_consumer_and_binds_on_that_pods_node() {
        let (_c, k) = nodes_cluster(2, false);
        let sc = get(&k, &["get", "storageclass", "local"]);
        assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        k.ok_with(&["create", "-f", "-"], &claim("data", None, "1Gi"));
        let waiting = (
            "WaitForFirstConsumer".to_string(),
            "waiting for first consumer to be created before binding".to_string(),
        );
        eventually("the claim's WaitForFirstConsumer event", || {
            event_messages(&k, "default", "data").contains(&waiting)
        });
        let pvc = get(&k, &["get", "pvc", "data"]);
        assert_eq!(pvc["status"]["phase"], "Pending");
        assert!(
            get(&k, &["get", "pv"])["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let described = k.ok(&["describe", "pvc", "data"]);
        assert!(
            described.contains("waiting for first consumer to be created before binding"),
            "{described}"
        );
        k.ok_with(
            &["create", "-f", "-"],
            &pod(
                "first",
                "data",
                "  nodeSelector: {kubernetes.io/hostname: testnode-2}\n",
            ),
        );
        wait(&k, "default", "pod/first", "condition=Ready");
        let pvc = get(&k, &["get", "pvc", "data"]);
        assert_eq!(pvc["status"]["phase"], "Bound");
        assert_eq!(
            pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            "testnode-2"
        );
        let pv = get(&k, &["get", "pv", &text(&pvc, "/spec/volumeName")]);
        assert_eq!(
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
            serde_json::json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["testnode-2"]})
        );
        // The volume pins every later pod of the claim to its node.
        k.ok_with(&["create", "-f", "-"], &pod("second", "data", ""));
        wait(&k, "default", "pod/second", "condition=Ready");
        assert_eq!(node_of(&k, "second"), "testnode-2");
        // A pod put on the other node by hand cannot mount it there.
        k.ok_with(
            &["create", "-f", "-"],
            &pod(
                "misplaced",
                "data",
                "  nodeName: testnode
",
            ),
        );
        let failed = (
            "FailedMount".to_string(),
            format!(
                "MountVolume.NodeAffinity check failed for volume \"{}\" : no matching NodeSelectorTerms",
                text(&pvc, "/spec/volumeName")
            ),
        );
        eventually("the FailedMount event", || {
            event_messages(&k, "default", "misplaced").contains(&failed)
        });
        assert_eq!(
            get(&k, &["get", "pod", "misplaced"])["status"]["phase"],
            "Pending"
        );
    }

    #[test]
    fn the_scheduler_honours_taints_tolerations_selectors_and_affinities() {
        let (_c, k) = nodes_cluster(2, false);
        let nodes = get(&k, &["get", "nodes"]);
        let names: Vec<String> = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| text(n, "/metadata/name"))
            .collect();
        assert_eq!(names, ["testnode", "testnode-2"]);
        assert_eq!(
            nodes["items"][1]["metadata"]["labels"]["kubernetes.io/hostname"],
            "testnode-2"
        );
        assert_eq!(
            nodes["items"][1]["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "local-b"
        );
        k.ok(&["taint", "node", "testnode-2", "dedicated=infra:NoSchedule"]);
        let plain = |name: &str, extra: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: spread}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers: [{{name: c, image: vbackup.test/shell, command: [sh, -c, 'sleep 600']}}]\n"
            )
        };
        k.ok_with(
            &["create", "-f", "-"],
            &plain(
                "picky",
                "  nodeSelector: {kubernetes.io/hostname: testnode-2}\n",
            ),
        );
        wait(&k, "default", "pod/picky", "condition=PodScheduled=false");
        let picky = get(&k, &["get", "pod", "picky"]);
        assert_eq!(picky["status"]["phase"], "Pending");
        assert_eq!(
            picky["status"]["conditions"][0]["message"],
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: infra}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        let tolerate = "  tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]\n";
        k.ok_with(
            &["create", "-f", "-"],
            &plain(
                "tolerant",
                &format!("{tolerate}  affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{{matchExpressions: [{{key: kubernetes.io/hostname, operator: NotIn, values: [testnode]}}]}}]}}}}}}\n"),
            ),
        );
        wait(&k, "default", "pod/tolerant", "condition=Ready");
        assert_eq!(node_of(&k, "tolerant"), "testnode-2");
        // Preferred affinity picks among the nodes that fit.
        k.ok_with(
            &["create", "-f", "-"],
            &plain(
                "prefers",
                &format!("{tolerate}  affinity: {{nodeAffinity: {{preferredDuringSchedulingIgnoredDuringExecution: [{{weight: 50, preference: {{matchExpressions: [{{key: topology.kubernetes.io/zone, operator: In, values: [local-b]}}]}}}}]}}}}\n"),
            ),
        );
        wait(&k, "default", "pod/prefers", "condition=Ready");
        assert_eq!(node_of(&k, "prefers"), "testnode-2");
        // Required anti-affinity on the hostname: one "solo" pod per node, then none fits.
        let solo = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: solo}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{tolerate}  affinity: {{podAntiAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: [{{topologyKey: kubernetes.io/hostname, labelSelector: {{matchLabels: {{app: solo}}}}}}]}}}}\n  containers: [{{name: c, image: vbackup.test/shell, command: [sh, -c, 'sleep 600']}}]\n"
            )
        };
        for name in ["solo-1", "solo-2"] {
            k.ok_with(&["create", "-f", "-"], &solo(name));
            wait(&k, "default", &format!("pod/{name}"), "condition=Ready");
        }
        assert_ne!(node_of(&k, "solo-1"), node_of(&k, "solo-2"));
        k.ok_with(&["create", "-f", "-"], &solo("solo-3"));
        wait(&k, "default", "pod/solo-3", "condition=PodScheduled=false");
        assert_eq!(
            get(&k, &["get", "pod", "solo-3"])["status"]["conditions"][0]["message"],
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        // Removing the taint lets the first pod in.
        k.ok(&["taint", "node", "testnode-2", "dedicated=infra:NoSchedule-"]);
        wait(&k, "default", "pod/picky", "condition=Ready");
    }

    #[test]
    fn a_read_write_once_volume_in_use_on_one_node_is_not_attached_to_another() {
        let (_c, k) = nodes_cluster(2, false);
        k.ok_with(
            &["create", "-f", "-"],
            &claim("shared", Some("network"), "1Gi"),
        );
        wait(
            &k,
            "default",
            "pvc/shared",
            "jsonpath={.status.phase}=Bound",
        );
        k.ok_with(
            &["create", "-f", "-"],
            &pod(
                "holder",
                "shared",
                "  nodeSelector: {kubernetes.io/hostname: testnode}\n",
            ),
        );
        wait(&k, "default", "pod/holder", "condition=Ready");
        k.ok_with(
            &["create", "-f", "-"],
            &pod(
                "other",
                "shared",
                "  nodeSelector: {kubernetes.io/hostname: testnode-2}\n",
            ),
        );
        let volume = text(&get(&k, &["get", "pvc", "shared"]), "/spec/volumeName");
        let multi = (
            "FailedAttachVolume".to_string(),
            format!(
                "Multi-Attach error for volume \"{volume}\" Volume is already used by pod(s) holder"
            ),
        );
        eventually("the Multi-Attach event", || {
            event_messages(&k, "default", "other").contains(&multi)
        });
        let other = get(&k, &["get", "pod", "other"]);
        assert_eq!(other["status"]["phase"], "Pending");
        assert_eq!(
            other["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(other["spec"]["nodeName"], "testnode-2");
        // Once the first pod is gone, the volume moves.
        k.ok(&["delete", "pod", "holder"]);
        wait(&k, "default", "pod/other", "condition=Ready");
    }

    #[test]
    fn claims_and_volumes_in_use_wait_for_their_users_before_going() {
        let (_c, k) = nodes_cluster(1, false);
        k.ok_with(&["create", "-f", "-"], &claim("data", None, "1Gi"));
        k.ok_with(&["create", "-f", "-"], &pod("user", "data", ""));
        wait(&k, "default", "pod/user", "condition=Ready");
        let pvc = get(&k, &["get", "pvc", "data"]);
        assert_eq!(
            pvc["metadata"]["finalizers"],
            serde_json::json!(["kubernetes.io/pvc-protection"])
        );
        let pv_name = text(&pvc, "/spec/volumeName");
        let pv = get(&k, &["get", "pv", &pv_name]);
        assert_eq!(
            pv["metadata"]["finalizers"],
            serde_json::json!(["kubernetes.io/pv-protection"])
        );
        // A bound volume stays while its claim exists.
        k.ok(&["delete", "pv", &pv_name, "--wait=false"]);
        let pv = get(&k, &["get", "pv", &pv_name]);
        assert!(pv["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(pv["status"]["phase"], "Bound");
        // A claim in use stays Terminating while the pod exists.
        k.ok(&["delete", "pvc", "data", "--wait=false"]);
        let pvc = get(&k, &["get", "pvc", "data"]);
        assert!(pvc["metadata"]["deletionTimestamp"].is_string());
        let out = k.ok(&["get", "pvc", "data"]);
        assert!(out.contains("Terminating"), "{out}");
        k.ok(&["delete", "pod", "user"]);
        k.ok(&["wait", "--for=delete", "pvc/data", "--timeout=60s"]);
        k.ok(&[
            "wait",
            "--for=delete",
            &format!("pv/{pv_name}"),
            "--timeout=60s",
        ]);
    }

    const SNAP_CLASS: &str = "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: slow}\ndriver: testnode.csi.vbackup.io\ndeletionPolicy: Delete\nparameters: {testnode.vbackup.io/ready-after-seconds: \"5\"}\n";

    #[test]
    fn snapshots_have_the_snapshot_controllers_finalizers_and_restore_size() {
        let (_c, k) = nodes_cluster(1, true);
        k.ok_with(&["create", "-f", "-"], SNAP_CLASS);
        k.ok_with(
            &["create", "-f", "-"],
            &claim("data", Some("network"), "10Mi"),
        );
        wait(&k, "default", "pvc/data", "jsonpath={.status.phase}=Bound");
        k.ok_with(
            &["create", "-f", "-"],
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: snap}\nspec: {volumeSnapshotClassName: slow, source: {persistentVolumeClaimName: data}}\n",
        );
        wait(
            &k,
            "default",
            "volumesnapshot/snap",
            "jsonpath={.status.boundVolumeSnapshotContentName}",
        );
        // Slow storage: bound at once, ready only later.
        let vs = get(&k, &["get", "volumesnapshot", "snap"]);
        assert_eq!(vs["status"]["readyToUse"], false, "{vs}");
        wait(
            &k,
            "default",
            "volumesnapshot/snap",
            "jsonpath={.status.readyToUse}=true",
        );
        let vs = get(&k, &["get", "volumesnapshot", "snap"]);
        assert_eq!(vs["status"]["restoreSize"], "10Mi");
        assert_eq!(
            vs["metadata"]["finalizers"],
            serde_json::json!(["snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"])
        );
        let content_name = text(&vs, "/status/boundVolumeSnapshotContentName");
        let content = get(&k, &["get", "volumesnapshotcontent", &content_name]);
        assert_eq!(
            content["metadata"]["finalizers"],
            serde_json::json!([
                "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
            ])
        );
        assert_eq!(content["status"]["restoreSize"], 10 * 1024 * 1024);
        // A claim smaller than the snapshot cannot be provisioned from it.
        let small = format!(
            "{}  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}}\n",
            claim("small", Some("network"), "1Mi")
        );
        k.ok_with(&["create", "-f", "-"], &small);
        let failed = (
            "ProvisioningFailed".to_string(),
            "failed to provision volume with StorageClass \"network\": requested volume size 1048576 is less than the size 10485760 for the source snapshot snap".to_string(),
        );
        eventually("the ProvisioningFailed event", || {
            event_messages(&k, "default", "small").contains(&failed)
        });
        assert_eq!(
            get(&k, &["get", "pvc", "small"])["status"]["phase"],
            "Pending"
        );
        // While a claim is being restored from it, the snapshot cannot go.
        eventually("the as-source finalizer", || {
            get(&k, &["get", "volumesnapshot", "snap"])["metadata"]["finalizers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection")
        });
        k.ok(&["delete", "volumesnapshot", "snap", "--wait=false"]);
        let vs = get(&k, &["get", "volumesnapshot", "snap"]);
        assert!(vs["metadata"]["deletionTimestamp"].is_string());
        assert!(
            get(&k, &["get", "volumesnapshotcontent", &content_name])["metadata"]
                .get("deletionTimestamp")
                .is_none()
        );
        k.ok(&["delete", "pvc", "small"]);
        k.ok(&[
            "wait",
            "--for=delete",
            "volumesnapshot/snap",
            "--timeout=60s",
        ]);
        k.ok(&[
            "wait",
            "--for=delete",
            &format!("volumesnapshotcontent/{content_name}"),
            "--timeout=60s",
        ]);
    }
}
