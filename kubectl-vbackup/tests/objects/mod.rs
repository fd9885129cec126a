//! Shared set-up for the object backup/restore tests: a test API server, a storage
//! location, the plugin run through real `kubectl`, and snapshots of a namespace.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::Value;
use vbackup_engine::cluster::{ClusterOptions, connect};
use vbackup_engine::resources::discovery::discover;
use vbackup_engine::resources::sanitize::sanitize;
use vbackup_engine::store::location::{FilesystemSpec, Provider, S3Spec, SecretRef};
use vbackup_engine::store::{
    AccessMode, BackupStorageLocationSpec, Locations, SYSTEM_NAMESPACE, Store,
};
use vbackup_test_support::plugin::PluginCluster;

/// A running test cluster with vbackup's CRD installed and a default filesystem location.
pub struct Env {
    /// The cluster, with the plugin on kubectl's PATH.
    pub cluster: PluginCluster,
    /// A client of the cluster.
    pub client: Client,
    /// Scratch space (the default location's directory lives here).
    pub dir: tempfile::TempDir,
    store_dir: PathBuf,
}

/// Where the default filesystem location keeps its objects, inside the env's directory.
pub const FS_LOCATION: &str = "local";

impl Env {
    /// Starts everything; the filesystem location `local` is the default.
    pub async fn start() -> Env {
        Self::start_with_location(None, AccessMode::ReadWrite).await
    }

    /// Starts everything with the default location `local` in `store_dir` (a directory of
    /// its own when `None`), e.g. a second cluster reading the first one's backups.
    pub async fn start_with_location(store_dir: Option<&Path>, access_mode: AccessMode) -> Env {
        let cluster = PluginCluster::start(env!("CARGO_BIN_EXE_kubectl-vbackup"))
            .expect("start the test cluster");
        cluster.install_crds();
        let client = connect(&ClusterOptions {
            kubeconfig: Some(cluster.kubeconfig().to_path_buf()),
            context: None,
        })
        .await
        .expect("connect to the test cluster");
        let dir = tempfile::tempdir().unwrap();
        let store_dir = store_dir.map_or_else(|| dir.path().join("store"), Path::to_path_buf);
        let env = Env {
            cluster,
            client,
            dir,
            store_dir,
        };
        let spec = BackupStorageLocationSpec {
            provider: Provider::Filesystem,
            s3: None,
            filesystem: Some(FilesystemSpec {
                path: env.fs_root().display().to_string(),
                pod_access: None,
            }),
            access_mode,
            default: true,
            format: Default::default(),
            repository_password_secret: None,
        };
        env.locations()
            .create(FS_LOCATION, spec, true, None)
            .await
            .expect("create the filesystem location");
        env
    }

    /// The filesystem location's directory.
    pub fn fs_root(&self) -> PathBuf {
        self.store_dir.clone()
    }

    /// The cluster's locations.
    pub fn locations(&self) -> Locations {
        Locations::new(self.client.clone(), SYSTEM_NAMESPACE)
    }

    /// The store of a location.
    pub async fn store(&self, name: &str) -> Store {
        let locations = self.locations();
        locations
            .open(&locations.get(name).await.unwrap())
            .await
            .unwrap()
    }

    /// Creates an S3 location on the shared moto server, with its credentials Secret.
    pub async fn create_s3_location(&self, name: &str) -> String {
        let s3 = vbackup_test_support::S3Server::shared().expect("start moto");
        let bucket = s3.bucket(name).await.expect("create a bucket");
        self.create_s3_location_at(
            name,
            &s3.endpoint,
            &bucket,
            &s3.access_key_id,
            &s3.secret_access_key,
        )
        .await;
        bucket
    }

    /// Creates an S3 location pointing anywhere.
    pub async fn create_s3_location_at(
        &self,
        name: &str,
        endpoint: &str,
        bucket: &str,
        key: &str,
        secret: &str,
    ) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), SYSTEM_NAMESPACE);
        let secret_name = format!("{name}-credentials");
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": secret_name},
            "stringData": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
        let spec = BackupStorageLocationSpec {
            provider: Provider::S3,
            s3: Some(S3Spec {
                bucket: bucket.into(),
                prefix: Some("cluster-a".into()),
                region: Some("us-east-1".into()),
                endpoint: Some(endpoint.into()),
                force_path_style: true,
                credentials_secret: Some(SecretRef { name: secret_name }),
            }),
            filesystem: None,
            access_mode: AccessMode::ReadWrite,
            default: false,
            format: Default::default(),
            repository_password_secret: None,
        };
        self.locations()
            .create(name, spec, true, None)
            .await
            .expect("create the S3 location");
    }

    /// Runs real `kubectl` against the test cluster, with the plugin on PATH.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cluster.kubectl(args)
    }

    /// Runs `kubectl vbackup ARGS`.
    pub fn vbackup(&self, args: &[&str]) -> Output {
        let mut all = vec!["vbackup"];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// Runs `kubectl vbackup ARGS` and fails the test unless it succeeds.
    pub fn vbackup_ok(&self, args: &[&str]) -> String {
        let out = self.vbackup(args);
        assert!(
            out.status.success(),
            "kubectl vbackup {args:?} failed:\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl vbackup backup create NAME --include-namespaces nextcloud`, which must succeed.
    pub fn backup_nextcloud(&self, name: &str) -> String {
        self.vbackup_ok(&[
            "backup",
            "create",
            name,
            "--include-namespaces",
            "nextcloud",
        ])
    }

    /// Creates the objects of a fixture file with `kubectl create -f`.
    pub fn create_fixture(&self, file: &str) {
        let path = fixture(file);
        let out = self.kubectl(&["create", "-f", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "kubectl create -f {file}:\n{}",
            show(&out)
        );
    }

    /// The Nextcloud-shaped namespace, CRD first, established before its objects (as
    /// helm waits for the CRDs it installs).
    pub fn create_nextcloud(&self) {
        self.create_fixture("certificates-crd.yaml");
        let crd = fixture("certificates-crd.yaml");
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            crd.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "kubectl wait:\n{}", show(&out));
        self.create_fixture("nextcloud.yaml");
    }

    /// Every object of the application's types in `namespace`, keyed `resource/name`, with
    /// what the server or the restore owns removed (see [`normalise`]).
    pub async fn snapshot(&self, namespace: &str) -> BTreeMap<String, Value> {
        let discovered = discover(&self.client).await.unwrap();
        let mut out = BTreeMap::new();
        for gr in APP_TYPES {
            let rt = discovered
                .by_group_resource(gr)
                .unwrap_or_else(|| panic!("the test cluster does not serve {gr}"));
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &rt.api_resource());
            for item in api.list(&ListParams::default()).await.unwrap() {
                let mut v = serde_json::to_value(&item).unwrap();
                normalise(gr, &mut v);
                out.insert(format!("{gr}/{}", item.metadata.name.unwrap()), v);
            }
        }
        out
    }

    /// One object as JSON, or `None`.
    pub async fn get(&self, gr: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let discovered = discover(&self.client).await.unwrap();
        let rt = discovered.by_group_resource(gr).unwrap();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &rt.api_resource()),
            None => Api::all_with(self.client.clone(), &rt.api_resource()),
        };
        api.get_opt(name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }

    /// Deletes a namespace with `kubectl delete namespace` (which waits until it is gone).
    pub fn delete_namespace(&self, namespace: &str) {
        let out = self.kubectl(&["delete", "namespace", namespace]);
        assert!(
            out.status.success(),
            "kubectl delete namespace:\n{}",
            show(&out)
        );
        let out = self.kubectl(&["get", "namespace", namespace]);
        assert!(
            !out.status.success(),
            "namespace {namespace} still exists after deletion"
        );
    }
}

/// The types of the Nextcloud-shaped application.
pub const APP_TYPES: [&str; 12] = [
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "persistentvolumeclaims",
    "deployments.apps",
    "statefulsets.apps",
    "cronjobs.batch",
    "ingresses.networking.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "certificates.acme.example.io",
];

/// Removes what legitimately differs between an original and its restored copy: server
/// fields, status, the restore's labels, the Service's allocated IPs.
pub fn normalise(gr: &str, v: &mut Value) {
    sanitize(v, true);
    let meta = v
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .unwrap();
    meta.remove("namespace");
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        labels.retain(|k, _| !k.starts_with("vbackup.io/"));
        if labels.is_empty() {
            meta.remove("labels");
        }
    }
    if gr == "services" && v["spec"]["clusterIP"] != "None" {
        let spec = v.get_mut("spec").and_then(Value::as_object_mut).unwrap();
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
}

/// A fixture file's path.
pub fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

/// A command's exit status, stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
