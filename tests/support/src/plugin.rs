//! The plugin as users run it: real `kubectl` on a PATH holding `kubectl-vbackup`, against a
//! test cluster.

use std::path::Path;
use std::process::{Command, Output};

use vbackup_testcluster::{ClusterOptions, TestCluster};

/// A test cluster plus a PATH where kubectl finds the plugin under test.
pub struct PluginCluster {
    /// The cluster (its kubeconfig is what kubectl uses).
    pub cluster: TestCluster,
    bin: tempfile::TempDir,
}

impl PluginCluster {
    /// Starts a cluster; `plugin` is the plugin binary (`env!("CARGO_BIN_EXE_kubectl-vbackup")`).
    pub fn start(plugin: &str) -> anyhow::Result<PluginCluster> {
        Self::start_with(plugin, ClusterOptions::default())
    }

    /// Starts a cluster with options.
    pub fn start_with(plugin: &str, opts: ClusterOptions) -> anyhow::Result<PluginCluster> {
        let cluster = TestCluster::start_with(opts)?;
        let bin = tempfile::tempdir()?;
        std::os::unix::fs::symlink(plugin, bin.path().join("kubectl-vbackup"))?;
        Ok(PluginCluster { cluster, bin })
    }

    /// The kubeconfig of the cluster.
    pub fn kubeconfig(&self) -> &Path {
        self.cluster.kubeconfig_path()
    }

    /// Runs `kubectl ARGS` against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin.path().display()),
            )
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl {args:?}: {e}"))
    }

    /// Runs `kubectl vbackup ARGS`; returns (success, stdout, stderr).
    pub fn vbackup(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.kubectl(&[&["vbackup"], args].concat());
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Applies `manifests/crds/` with kubectl and waits for them to be established, as
    /// users install vbackup's CRDs (a new CRD serves its objects only once established).
    pub fn install_crds(&self) {
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds");
        let crds = crds.to_string_lossy();
        let out = self.kubectl(&["apply", "-f", &crds]);
        assert!(
            out.status.success(),
            "kubectl apply -f manifests/crds: {}",
            text(&out.stderr)
        );
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &crds,
        ]);
        assert!(
            out.status.success(),
            "kubectl wait --for=condition=Established -f manifests/crds: {}",
            text(&out.stderr)
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
