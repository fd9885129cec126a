//! Shared set-up for the pod-volume tests: a test cluster whose node runs vbackup's image as
//! the plugin under test, a filesystem location movers reach through hostPath, and an
//! independent oracle for directory trees (bytes, modes, owners, mtimes).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vbackup_test_support::plugin::PluginCluster;
use vbackup_testcluster::ClusterOptions;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};

/// The image movers run, mapped to the build's output directory: its `kubectl-vbackup`
/// (the plugin under test) runs as the movers' `command[0]`.
pub const MOVER_IMAGE: &str = "ghcr.io/vbackup/vbackup";

/// A cluster with a node, vbackup's CRDs and a default filesystem location `local`.
pub struct VolumeEnv {
    /// The cluster, with the plugin on kubectl's PATH.
    pub cluster: PluginCluster,
    /// Scratch space; the location lives in `store/`.
    pub dir: tempfile::TempDir,
}

impl VolumeEnv {
    /// Starts the cluster and creates the location.
    pub fn start() -> VolumeEnv {
        VolumeEnv::start_with(|_| {})
    }

    /// [`VolumeEnv::start`], with more images mapped to local programs (`PREFIX=PATH`).
    pub fn start_with_images(images: &[&str]) -> VolumeEnv {
        VolumeEnv::start_with(|node| {
            node.image_map
                .extend(images.iter().map(|m| ImageMapping::parse(m).unwrap()))
        })
    }

    /// Like [`VolumeEnv::start`], with the node's options adjusted (more nodes, images
    /// that cannot be pulled).
    pub fn start_with(adjust: impl FnOnce(&mut NodeOptions)) -> VolumeEnv {
        VolumeEnv::start_served(false, adjust)
    }

    /// [`VolumeEnv::start_with`] on a cluster served over TLS, as in-cluster clients (the
    /// admission webhook, scheduled runs) need: they speak https to the API server.
    pub fn start_tls_with(adjust: impl FnOnce(&mut NodeOptions)) -> VolumeEnv {
        VolumeEnv::start_served(true, adjust)
    }

    fn start_served(tls: bool, adjust: impl FnOnce(&mut NodeOptions)) -> VolumeEnv {
        let plugin = env!("CARGO_BIN_EXE_kubectl-vbackup");
        let image_dir = Path::new(plugin)
            .parent()
            .expect("the plugin lives in the build's output directory");
        let mut node = NodeOptions {
            image_map: vec![
                ImageMapping::parse(&format!("{MOVER_IMAGE}={}", image_dir.display())).unwrap(),
            ],
            snapshot_crds: true,
            ..Default::default()
        };
        adjust(&mut node);
        let cluster = PluginCluster::start_with(
            plugin,
            ClusterOptions {
                tls,
                node: Some(node),
                ..Default::default()
            },
        )
        .expect("start the test cluster");
        cluster.install_crds();
        let dir = tempfile::tempdir().unwrap();
        let env = VolumeEnv { cluster, dir };
        let store = env.store_dir();
        std::fs::create_dir_all(&store).unwrap();
        env.ok(&[
            "location",
            "create",
            "local",
            "--provider",
            "filesystem",
            "--path",
            store.to_str().unwrap(),
            "--pod-access",
            "hostPath",
            "--default",
        ]);
        env
    }

    /// The location's directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `kubectl vbackup ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cluster.vbackup(args);
        assert!(ok, "kubectl vbackup {args:?} failed:\n{out}\n{err}");
        out
    }

    /// `kubectl ARGS`, which must succeed; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.cluster.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies a manifest given as YAML text.
    pub fn apply(&self, yaml: &str) {
        let file = self
            .dir
            .path()
            .join(format!("manifest-{}.yaml", rand_suffix()));
        std::fs::write(&file, yaml).unwrap();
        self.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    }

    /// The host directory holding a bound claim's data.
    pub fn claim_dir(&self, ns: &str, claim: &str) -> PathBuf {
        eventually(
            &format!("claim {ns}/{claim} bound"),
            Duration::from_secs(120),
            || self.cluster.cluster.node().unwrap().claim_dir(ns, claim),
        )
    }

    /// Waits until `kubectl get` of a jsonpath gives `want`.
    pub fn wait_for(&self, ns: &str, what: &str, jsonpath: &str, want: &str) {
        eventually(
            &format!("{what} {jsonpath} = {want}"),
            Duration::from_secs(180),
            || {
                let out = self.cluster.kubectl(&[
                    "-n",
                    ns,
                    "get",
                    what,
                    "-o",
                    &format!("jsonpath={jsonpath}"),
                ]);
                (String::from_utf8_lossy(&out.stdout).trim() == want).then_some(())
            },
        );
    }

    /// Deletes a namespace and waits until it is gone.
    pub fn delete_namespace(&self, ns: &str) {
        self.kubectl(&["delete", "namespace", ns, "--wait=true", "--timeout=180s"]);
        eventually(
            &format!("namespace {ns} gone"),
            Duration::from_secs(180),
            || {
                let out = self.cluster.kubectl(&["get", "namespace", ns]);
                (!out.status.success()).then_some(())
            },
        );
    }

    /// The shared moto server, its port forwarded by the node into pods: the one endpoint
    /// URL works from the plugin and from movers.
    pub fn s3(&self) -> &'static vbackup_test_support::S3Server {
        let s3 = vbackup_test_support::S3Server::shared().expect("start moto");
        let port: u16 = s3
            .endpoint
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the S3 endpoint is http://127.0.0.1:PORT");
        self.cluster
            .cluster
            .node()
            .expect("the cluster runs a node")
            .forward_host_port(port);
        s3
    }

    /// An S3 location on the shared moto server, created through the plugin as users do.
    /// The server listens on the host's loopback: the node forwards its port into mover
    /// pods, so the location's one endpoint URL works from the plugin and from movers.
    pub fn create_s3_location(&self, name: &str) -> String {
        let s3 = self.s3();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bucket = rt.block_on(s3.bucket(name)).expect("create a bucket");
        let secret = format!("{name}-credentials");
        self.kubectl(&[
            "create",
            "secret",
            "generic",
            &secret,
            "-n",
            "vbackup-system",
            &format!("--from-literal=AWS_ACCESS_KEY_ID={}", s3.access_key_id),
            &format!(
                "--from-literal=AWS_SECRET_ACCESS_KEY={}",
                s3.secret_access_key
            ),
        ]);
        self.ok(&[
            "location",
            "create",
            name,
            "--provider",
            "s3",
            "--bucket",
            &bucket,
            "--prefix",
            "cluster-a",
            "--region",
            "us-east-1",
            "--endpoint",
            &s3.endpoint,
            "--path-style",
            "--credentials-secret",
            &secret,
        ]);
        bucket
    }

    /// `kubectl vbackup ARGS`, which must fail; returns (stdout, stderr).
    pub fn fails(&self, args: &[&str]) -> (String, String) {
        let (ok, out, err) = self.cluster.vbackup(args);
        assert!(
            !ok,
            "kubectl vbackup {args:?} succeeded, expected a failure:\n{out}\n{err}"
        );
        (out, err)
    }

    /// A namespace with a Deployment `app` (one replica) mounting claim `data` at /data.
    pub fn deploy_app(&self, ns: &str, class: Option<&str>, access_mode: &str) {
        self.apply(&app_manifest(&AppManifest {
            ns,
            class,
            access_mode,
            ..Default::default()
        }));
        self.wait_for(ns, "deployment/app", "{.status.readyReplicas}", "1");
    }

    /// Mover pods left in a namespace.
    pub fn movers(&self, ns: &str) -> String {
        self.kubectl(&[
            "-n",
            ns,
            "get",
            "pods,secrets",
            "-l",
            "vbackup.io/mover=true",
            "-o",
            "name",
        ])
    }
}

/// What [`app_manifest`] varies.
pub struct AppManifest<'a> {
    /// The namespace.
    pub ns: &'a str,
    /// The claim's storage class (default: the cluster's).
    pub class: Option<&'a str>,
    /// The claim's access mode.
    pub access_mode: &'a str,
    /// The container's image.
    pub image: &'a str,
    /// The container's command, as a YAML flow sequence (empty: the image's own).
    pub command: &'a str,
    /// The pod template's annotations, as a YAML flow mapping.
    pub annotations: &'a str,
}

impl Default for AppManifest<'_> {
    fn default() -> Self {
        AppManifest {
            ns: "app",
            class: None,
            access_mode: "ReadWriteOnce",
            image: "nginx:1.27",
            command: "",
            annotations: "{}",
        }
    }
}

/// A namespace with a Deployment `app` (one replica) mounting claim `data` at /data (and an
/// emptyDir at /cache).
pub fn app_manifest(m: &AppManifest) -> String {
    let AppManifest {
        ns,
        access_mode,
        image,
        annotations,
        ..
    } = m;
    let class = m
        .class
        .map(|c| format!("  storageClassName: {c}\n"))
        .unwrap_or_default();
    let command = match m.command {
        "" => String::new(),
        c => format!(", command: {c}"),
    };
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {ns}}}
spec:
{class}  accessModes: [{access_mode}]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}, annotations: {annotations}}}
    spec:
      containers:
      - {{name: app, image: {image}{command}, volumeMounts: [{{name: data, mountPath: /data}}, {{name: cache, mountPath: /cache}}]}}
      volumes:
      - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
      - {{name: cache, emptyDir: {{}}}}
"#
    )
}

/// Polls `f` until it gives a value.
pub fn eventually<T>(what: &str, limit: Duration, f: impl Fn() -> Option<T>) -> T {
    eventually_or_explain(what, limit, f, String::new)
}

/// [`eventually`], with `explain`'s text (a job's log so far…) in the panic when it gives up.
pub fn eventually_or_explain<T>(
    what: &str,
    limit: Duration,
    f: impl Fn() -> Option<T>,
    explain: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {what}{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One entry of a tree, as the oracle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `f` file, `d` directory, `l` symlink.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time of files and links (seconds, nanoseconds).
    pub mtime: Option<(i64, i64)>,
    /// Size and SHA-256 of files; target of links.
    pub content: String,
}

/// Every entry below `root`, by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = meta.file_type();
        let (kind, content, mtime) = if ft.is_symlink() {
            (
                'l',
                std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                None,
            )
        } else if ft.is_dir() {
            ('d', String::new(), None)
        } else {
            let bytes = std::fs::read(&path).unwrap();
            (
                'f',
                format!(
                    "{} {}",
                    bytes.len(),
                    Sha256::digest(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                ),
                Some((meta.mtime(), meta.mtime_nsec())),
            )
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: meta.permissions().mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime,
                content,
            },
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Deterministic bytes (a simple xorshift), so files differ and do not compress to nothing.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a file with `mode`, owner and mtime.
pub fn write_file(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>, mtime: i64) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    let t = std::time::UNIX_EPOCH + Duration::from_secs(mtime as u64);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}
