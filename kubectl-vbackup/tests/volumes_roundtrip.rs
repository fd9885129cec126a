//! Volume data comes back after `kubectl delete namespace`: claims of a Deployment, of a
//! StatefulSet and an RWX claim shared by two pods are copied by mover pods and restored
//! before the workloads start — every byte, mode, owner and mtime — while emptyDirs and
//! excluded paths are not copied.

mod volumes;

use std::collections::BTreeMap;

use serde_json::Value;
use volumes::{VolumeEnv, bytes, tree, write_file};

const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: web-data
  namespace: shop
  annotations: {vbackup.io/exclude-paths: "cache/,*.tmp"}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared, namespace: shop}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx:1.27, volumeMounts: [{name: data, mountPath: /data}, {name: cache, mountPath: /cache}]}
      volumes:
      - {name: data, persistentVolumeClaim: {claimName: web-data}}
      - {name: cache, emptyDir: {}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: workers, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: workers}}
  template:
    metadata: {labels: {app: workers}}
    spec:
      containers:
      - {name: worker, image: busybox:1.36, volumeMounts: [{name: shared, mountPath: /shared}]}
      volumes:
      - {name: shared, persistentVolumeClaim: {claimName: shared}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: postgres:16, volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

fn volume_records(env: &VolumeEnv, backup: &str) -> Vec<Value> {
    let out = env.ok(&["backup", "describe", backup, "-o", "json"]);
    let record: Value = serde_json::from_str(&out).unwrap();
    record["status"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn record<'a>(records: &'a [Value], claim: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["name"] == claim)
        .unwrap_or_else(|| panic!("no volume record for {claim}: {records:#?}"))
}

#[test]
fn volume_data_comes_back_after_the_namespace_is_deleted() {
    let env = VolumeEnv::start();
    env.apply(APP);
    env.wait_for("shop", "deployment/web", "{.status.readyReplicas}", "1");
    env.wait_for("shop", "deployment/workers", "{.status.readyReplicas}", "2");
    env.wait_for("shop", "statefulset/db", "{.status.readyReplicas}", "2");

    // The application's data, written where the node keeps each claim.
    let web = env.claim_dir("shop", "web-data");
    for i in 0..2000u64 {
        let path = web.join(format!("files/d{:02}/f{i:04}.txt", i % 40));
        write_file(
            &path,
            &bytes(i, (i as usize * 37) % 4096),
            0o644,
            None,
            1_700_000_000 + i as i64,
        );
    }
    write_file(
        &web.join("big/blob.bin"),
        &bytes(7, 50 << 20),
        0o640,
        None,
        1_690_000_000,
    );
    write_file(
        &web.join("private/secret.key"),
        b"only uid 1234 reads this",
        0o600,
        Some((1234, 1234)),
        1_680_000_000,
    );
    std::os::unix::fs::symlink("../big/blob.bin", web.join("files/link")).unwrap();
    write_file(
        &web.join("cache/thumb.png"),
        &bytes(9, 1000),
        0o644,
        None,
        1_700_000_000,
    );
    write_file(
        &web.join("files/upload.tmp"),
        &bytes(10, 1000),
        0o644,
        None,
        1_700_000_000,
    );
    let shared = env.claim_dir("shop", "shared");
    write_file(
        &shared.join("queue/job-1"),
        b"resize image 1",
        0o664,
        Some((1000, 1000)),
        1_700_000_100,
    );
    for pod in ["db-0", "db-1"] {
        let dir = env.claim_dir("shop", &format!("data-{pod}"));
        write_file(
            &dir.join("PG_VERSION"),
            b"16\n",
            0o600,
            Some((999, 999)),
            1_700_000_200,
        );
        write_file(
            &dir.join("base/1/1259"),
            &bytes(pod.len() as u64, 8192 * 3),
            0o600,
            Some((999, 999)),
            1_700_000_300,
        );
    }
    env.ok(&["backup", "create", "shop-1", "--include-namespaces", "shop"]);
    let records = volume_records(&env, "shop-1");
    for claim in ["web-data", "shared", "data-db-0", "data-db-1"] {
        assert_eq!(
            record(&records, claim)["phase"],
            "Completed",
            "{records:#?}"
        );
    }
    let first = record(&records, "web-data");
    assert!(
        first["bytesAdded"].as_u64().unwrap() > 50 << 20,
        "a first backup stores the 50 MiB file, compressed or not: {first:#}"
    );
    // The RWX claim is copied once, on behalf of both pods.
    let shared_records: Vec<_> = records.iter().filter(|r| r["name"] == "shared").collect();
    assert_eq!(shared_records.len(), 1);
    assert_eq!(shared_records[0]["pods"].as_array().map(Vec::len), Some(2));
    // The emptyDir is not a claim and is not copied; nothing failed.
    assert!(
        records.iter().all(|r| r["phase"] != "Failed"),
        "{records:#?}"
    );
    assert_eq!(
        env.movers("shop").trim(),
        "",
        "mover pods and Secrets are deleted"
    );

    // A second backup after one file changed uploads only that file's chunks (and the few
    // directory entries above it), not the volume again.
    write_file(
        &web.join("files/d01/f0001.txt"),
        b"changed",
        0o644,
        None,
        1_800_000_000,
    );
    env.ok(&["backup", "create", "shop-2", "--include-namespaces", "shop"]);
    let second = volume_records(&env, "shop-2");
    let added = record(&second, "web-data")["bytesAdded"].as_u64().unwrap();
    assert!(
        added > 0 && added < 64 * 1024,
        "one changed file must upload a few KiB: {added} bytes added"
    );

    let mut expected: BTreeMap<String, BTreeMap<String, volumes::Entry>> = BTreeMap::new();
    for claim in ["web-data", "shared", "data-db-0", "data-db-1"] {
        let mut t = tree(&env.claim_dir("shop", claim));
        if claim == "web-data" {
            t.retain(|path, _| !path.starts_with("cache") && !path.ends_with(".tmp"));
        }
        expected.insert(claim.to_string(), t);
    }

    env.delete_namespace("shop");
    env.ok(&["restore", "create", "shop-back", "--from-backup", "shop-2"]);
    env.wait_for("shop", "deployment/web", "{.status.readyReplicas}", "1");
    env.wait_for("shop", "statefulset/db", "{.status.readyReplicas}", "2");
    for (claim, want) in &expected {
        let got = tree(&env.claim_dir("shop", claim));
        assert_eq!(&got, want, "claim {claim} differs after the restore");
    }
    assert_eq!(env.movers("shop").trim(), "", "restore movers are deleted");
}
