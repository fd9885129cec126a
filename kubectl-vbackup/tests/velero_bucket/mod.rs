//! A Velero bucket built from Velero's documented formats, without Velero: its backup
//! record, object archive (format 1.0 or 1.1 with per-version folders), pod volume backup
//! list, logs and results, and restic repositories written by the stock `restic` with
//! Velero's password and tags, the way Velero's node agent ran it (`restic backup .` from
//! the volume's directory, so files sit at the snapshot's root).

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// Velero's default restic password.
pub const PASSWORD: &str = "static-passw0rd";

/// A pod volume Velero copied.
pub struct PodVolume<'a> {
    pub pod: &'a str,
    pub volume: &'a str,
    /// `restic`, `kopia`, or `None` (Velero before 1.10).
    pub uploader: Option<&'a str>,
    /// The directory restic copies (restic volumes only).
    pub source: Option<&'a Path>,
}

/// One Velero backup of namespace `ns` in the bucket rooted at `bucket`.
pub struct VeleroBackup<'a> {
    pub name: &'a str,
    pub ns: &'a str,
    /// `1.1.0` adds the `<version>-preferredversion` folders and `metadata/version`.
    pub format: &'a str,
    pub objects: Vec<Value>,
    pub volumes: Vec<PodVolume<'a>>,
    pub password: &'a str,
}

impl VeleroBackup<'_> {
    /// Writes everything Velero would into `bucket`.
    pub fn write(&self, bucket: &Path) {
        let dir = bucket.join("backups").join(self.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut pvbs = Vec::new();
        for v in &self.volumes {
            let snapshot = match (v.uploader, v.source) {
                (Some("kopia"), _) => "k0p1a5ee5e1d".to_string(),
                (_, Some(source)) => self.restic_backup(bucket, v, source),
                _ => panic!("a restic volume needs its source"),
            };
            let mut spec = json!({
                "pod": {"kind": "Pod", "namespace": self.ns, "name": v.pod, "uid": "pod-uid-1"},
                "volume": v.volume,
                "backupStorageLocation": "default",
                "repoIdentifier": format!("s3:http://minio/velero/restic/{}", self.ns),
                "tags": {"backup": self.name, "ns": self.ns, "pod": v.pod, "volume": v.volume},
            });
            if let Some(u) = v.uploader {
                spec["uploaderType"] = json!(u);
            }
            pvbs.push(json!({
                "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
                "metadata": {"name": format!("{}-{}", self.name, v.volume), "namespace": "velero",
                             "labels": {"velero.io/backup-name": self.name}},
                "spec": spec,
                "status": {"phase": "Completed", "snapshotID": snapshot, "path": "/host_pods/x/volumes/y/mount",
                           "startTimestamp": "2024-03-01T02:00:10Z", "completionTimestamp": "2024-03-01T02:00:12Z",
                           "progress": {"totalBytes": 1024, "bytesDone": 1024}},
            }));
        }
        write_gz(
            &dir.join(format!("{}-podvolumebackups.json.gz", self.name)),
            &serde_json::to_vec(&pvbs).unwrap(),
        );
        write_gz(
            &dir.join(format!("{}-logs.gz", self.name)),
            format!("time=\"2024-03-01T02:00:01Z\" level=info msg=\"Setting up backup log\" backup=velero/{}\n", self.name).as_bytes(),
        );
        write_gz(
            &dir.join(format!("{}-results.gz", self.name)),
            br#"{"errors":{},"warnings":{"namespaces":{"shop":["a warning Velero recorded"]}}}"#,
        );
        std::fs::write(dir.join(format!("{}.tar.gz", self.name)), self.archive()).unwrap();
        let record = json!({
            "kind": "Backup", "apiVersion": "velero.io/v1",
            "metadata": {"name": self.name, "namespace": "velero", "uid": "b-uid-1",
                         "labels": {"velero.io/storage-location": "default"},
                         "creationTimestamp": "2024-03-01T02:00:00Z"},
            "spec": {"includedNamespaces": [self.ns], "storageLocation": "default", "ttl": "720h0m0s",
                     "defaultVolumesToFsBackup": true},
            "status": {"version": 1, "formatVersion": self.format, "phase": "Completed",
                       "expiration": "2024-03-31T02:00:00Z", "startTimestamp": "2024-03-01T02:00:01Z",
                       "completionTimestamp": "2024-03-01T02:01:00Z", "warnings": 1,
                       "progress": {"totalItems": self.objects.len(), "itemsBackedUp": self.objects.len()}},
        });
        std::fs::write(
            dir.join("velero-backup.json"),
            serde_json::to_vec_pretty(&record).unwrap(),
        )
        .unwrap();
    }

    fn restic_backup(&self, bucket: &Path, v: &PodVolume, source: &Path) -> String {
        let repo = bucket.join("restic").join(self.ns);
        if !repo.join("config").exists() {
            restic(&repo, self.password, Path::new("/"), &["init"]);
        }
        let tags: Vec<String> = [
            ("backup", self.name),
            ("backup-uid", "b-uid-1"),
            ("ns", self.ns),
            ("pod", v.pod),
            ("pod-uid", "pod-uid-1"),
            ("pvc-uid", "pvc-uid-1"),
            ("volume", v.volume),
        ]
        .iter()
        .map(|(k, v)| format!("--tag={k}={v}"))
        .collect();
        let mut args = vec!["backup", ".", "--host=velero", "--json"];
        args.extend(tags.iter().map(String::as_str));
        let out = restic(&repo, self.password, source, &args);
        out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message_type"] == "summary")
            .and_then(|l| l["snapshot_id"].as_str().map(str::to_string))
            .expect("restic printed its snapshot id")
    }

    /// The object archive: each object at Velero's path, and in format 1.1 also under
    /// `<version>-preferredversion/`.
    fn archive(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, data).unwrap();
        };
        if self.format != "1.0" {
            add("metadata/version", self.format.as_bytes());
        }
        for o in &self.objects {
            let (group, version) = match o["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (format!(".{g}"), v.to_string()),
                None => (String::new(), o["apiVersion"].as_str().unwrap().to_string()),
            };
            let resource = format!("{}{group}", plural(o["kind"].as_str().unwrap()));
            let name = o["metadata"]["name"].as_str().unwrap();
            let scope = match o["metadata"]["namespace"].as_str() {
                Some(ns) => format!("namespaces/{ns}"),
                None => "cluster".to_string(),
            };
            let data = serde_json::to_vec(o).unwrap();
            add(&format!("resources/{resource}/{scope}/{name}.json"), &data);
            if self.format != "1.0" {
                add(
                    &format!("resources/{resource}/{version}-preferredversion/{scope}/{name}.json"),
                    &data,
                );
            }
        }
        tar.into_inner().unwrap().finish().unwrap()
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "PersistentVolumeClaim" => "persistentvolumeclaims".into(),
        "PersistentVolume" => "persistentvolumes".into(),
        "ConfigMap" => "configmaps".into(),
        "ServiceAccount" => "serviceaccounts".into(),
        "ReplicaSet" => "replicasets".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

/// Runs the stock restic on a repository; panics on failure.
pub fn restic(repo: &Path, password: &str, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(args)
        .arg("--repo")
        .arg(repo)
        .arg("--no-cache")
        .env("RESTIC_PASSWORD", password)
        .current_dir(cwd)
        .output()
        .expect("run restic (installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_gz(path: &Path, data: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

/// The objects of a small application as an API server returns them (server fields,
/// status, a claim bound on a node of the old cluster), the way Velero archives them.
pub fn shop_objects(ns: &str) -> Vec<Value> {
    let meta = |name: &str| {
        json!({"name": name, "namespace": ns, "uid": format!("uid-{name}"),
        "resourceVersion": "4242", "creationTimestamp": "2024-02-01T10:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]})
    };
    let claim = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "resourceVersion": "77",
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                                "volume.kubernetes.io/selected-node": "old-node-3",
                                "volume.beta.kubernetes.io/storage-provisioner": "vbackup.io/local"},
                "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": "local", "volumeMode": "Filesystem", "volumeName": format!("pvc-{name}-0001")},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
        })
    };
    let pv = |claim: &str| {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("pvc-{claim}-0001"), "uid": "pv-uid", "resourceVersion": "78",
                         "annotations": {"pv.kubernetes.io/provisioned-by": "vbackup.io/local"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": claim, "uid": format!("uid-{claim}")},
                     "hostPath": {"path": format!("/var/lib/old/{claim}")}, "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": "local"},
            "status": {"phase": "Bound"},
        })
    };
    let pod_spec = json!({
        "containers": [{"name": "web", "image": "nginx:1.27",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "uploads", "mountPath": "/uploads"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}}],
    });
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-7d4b9c-x2x9z"),
        "spec": pod_spec.clone(), "status": {"phase": "Running", "podIP": "10.0.0.9"}});
    pod["metadata"]["labels"] = json!({"app": "web", "pod-template-hash": "7d4b9c"});
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "web-7d4b9c", "uid": "uid-web-7d4b9c", "controller": true}]);
    pod["spec"]["nodeName"] = json!("old-node-3");
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "uid": "ns-uid", "resourceVersion": "1", "labels": {"team": "shop"}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("settings"),
               "data": {"currency": "EUR", "motd": "welcome back"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("creds"), "type": "Opaque",
               "data": {"password": "aHVudGVyMg=="}}),
        claim("data"),
        claim("uploads"),
        pv("data"),
        pv("uploads"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}},
               "status": {"replicas": 1, "readyReplicas": 1}}),
        pod,
    ]
}
