//! `xtask bench-movers`: what the product's volume path costs over the engine alone. On the
//! same dataset, in the same run, alternating which goes first:
//!
//! * engine alone: `xtask op backup` of the dataset directory into a directory location, then
//!   `xtask op restore` of it (each its own measured process, as in `xtask bench`);
//! * through the product: the dataset in one claim of a Deployment on the test cluster,
//!   `kubectl vbackup backup create` (a mover pod copies the claim to a directory location),
//!   the namespace deleted, `kubectl vbackup restore create` (a mover pod fills the new claim).
//!   Wall time is the plugin command's; CPU is the plugin's plus its movers'; the movers' CPU
//!   and peak RSS come from the test node, which reads them from the kernel when each mover's
//!   process exits.
//!
//! Both restores are compared with the dataset (every file's bytes, type, mode, owner, mtime).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use vbackup_test_support::plugin::PluginCluster;
use vbackup_testcluster::ClusterOptions;
use vbackup_testcluster::node::{ContainerUsage, ImageMapping, NodeOptions};

use crate::bench::{generate_dataset, remove, sh, warm};
use crate::compare::assert_same_tree;
use crate::measure::{Sample, load_average, measure, median};

/// The image mover pods run; the test node runs it from the plugin's build directory.
const MOVER_IMAGE: &str = "ghcr.io/vbackup/vbackup";
/// The application's namespace on the test cluster.
const NAMESPACE: &str = "bench";
/// The overhead the issue sets as the target.
const TARGET_OVERHEAD: f64 = 0.10;

/// Options of `xtask bench-movers`.
#[derive(Args, Clone, Debug)]
pub struct MoversArgs {
    /// Working directory: datasets (kept between invocations), locations, restores, the
    /// test node's volumes. About 4 GiB free needed for the full dataset.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/xtask-bench"))]
    dir: PathBuf,
    /// Measured runs; per-run overheads and their medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Scale the dataset down to about this many MiB (same shape, fewer and smaller files):
    /// a quick check that the harness works. Figures come from the full ~1 GiB dataset.
    #[arg(long, value_name = "MIB")]
    dataset_mib: Option<u32>,
    /// The plugin under test (a release build); its directory is the movers' image.
    /// Default: `kubectl-vbackup` beside this program.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Markdown file the results are written to (they are printed too).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One run's measurements of one operation.
struct Pair {
    engine: Sample,
    plugin: Sample,
    movers: MoverCost,
    product_first: bool,
}

/// What the mover pods of one plugin command used.
#[derive(Debug, Clone, Copy)]
struct MoverCost {
    count: usize,
    cpu: f64,
    peak_rss_mib: f64,
}

impl Pair {
    fn product_wall(&self) -> f64 {
        self.plugin.wall
    }

    fn product_cpu(&self) -> f64 {
        self.plugin.cpu + self.movers.cpu
    }

    fn wall_overhead(&self) -> f64 {
        self.product_wall() / self.engine.wall - 1.0
    }

    fn cpu_overhead(&self) -> f64 {
        self.product_cpu() / self.engine.cpu - 1.0
    }
}

/// `xtask bench-movers`.
pub fn run(args: &MoversArgs) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    let exe = std::env::current_exe()?;
    let plugin = match &args.plugin {
        Some(p) => p.clone(),
        None => exe.with_file_name("kubectl-vbackup"),
    };
    let plugin = std::fs::canonicalize(&plugin).with_context(|| {
        format!(
            "the plugin {} does not exist: cargo build --release -p kubectl-vbackup, or give --plugin",
            plugin.display()
        )
    })?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    crate::workfs::ensure_fair(&dir)?;
    let dataset = match args.dataset_mib {
        Some(mib) => generate_dataset(
            &dir,
            &format!("volume-{mib}mib"),
            &["--mib", &mib.to_string()],
        )?,
        None => generate_dataset(&dir, "volume", &[])?,
    };
    let node_dir = dir.join("movers-node");
    remove(&node_dir)?;
    let bench = MoverBench::start(&dir, &exe, &plugin, &node_dir)?;
    let mut backups = Vec::new();
    let mut restores = Vec::new();
    for run in 0..args.runs {
        eprintln!("run {}/{}", run + 1, args.runs);
        let (backup, restore) = bench.run(&dataset, run)?;
        backups.push(backup);
        restores.push(restore);
    }
    drop(bench);
    remove(&node_dir)?;
    let report = report(args, &dataset, &plugin, &backups, &restores);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

struct MoverBench {
    cluster: PluginCluster,
    dir: PathBuf,
    exe: PathBuf,
    plugin: PathBuf,
}

impl MoverBench {
    /// The test cluster with one node running the plugin's directory as the movers' image.
    fn start(dir: &Path, exe: &Path, plugin: &Path, node_dir: &Path) -> Result<MoverBench> {
        let image_dir = plugin
            .parent()
            .context("the plugin's path has no directory")?;
        let node = NodeOptions {
            state_dir: Some(node_dir.to_path_buf()),
            image_map: vec![ImageMapping::parse(&format!(
                "{MOVER_IMAGE}={}",
                image_dir.display()
            ))?],
            ..Default::default()
        };
        let plugin_path = plugin.to_str().context("the plugin's path is not UTF-8")?;
        let cluster = PluginCluster::start_with(
            plugin_path,
            ClusterOptions {
                node: Some(node),
                ..Default::default()
            },
        )
        .context("starting the test cluster (needs root: mount and network namespaces)")?;
        cluster.install_crds();
        Ok(MoverBench {
            cluster,
            dir: dir.to_path_buf(),
            exe: exe.to_path_buf(),
            plugin: plugin.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One run: both backups, then both restores, each verified. Returns (backup, restore).
    fn run(&self, dataset: &Path, run: usize) -> Result<(Pair, Pair)> {
        let product_first = !run.is_multiple_of(2);
        let engine_location = self.path("engine-location");
        let product_location = self.path("movers-location");
        let restore_dir = self.path("restore");
        for d in [&engine_location, &product_location, &restore_dir] {
            remove(d)?;
        }
        std::fs::create_dir_all(&product_location)?;

        // Engine alone: a fresh repository.
        let key = self.path("engine-key");
        // The default tuning: the one the plugin's repositories get.
        sh(&mut self.engine_op("init", &engine_location, &key))?;

        // The product: a fresh location, the dataset in the claim of a running Deployment.
        let location = format!("run-{}", run + 1);
        self.vbackup(&[
            "location",
            "create",
            &location,
            "--provider",
            "filesystem",
            "--path",
            path_str(&product_location)?,
            "--pod-access",
            "hostPath",
        ])?;
        let claim = self.deploy_app()?;
        sh(Command::new("cp")
            .arg("-a")
            .arg(dataset.join("."))
            .arg(&claim))?;

        let backup_name = format!("movers-{}", run + 1);
        let mut engine_backup = None;
        let mut product_backup = None;
        for product in [product_first, !product_first] {
            if product {
                warm(&claim)?;
                product_backup = Some(self.product(
                    "backup",
                    &[
                        "backup",
                        "create",
                        &backup_name,
                        "-n",
                        NAMESPACE,
                        "--storage-location",
                        &location,
                        "--backup-volumes=true",
                    ],
                )?);
            } else {
                warm(dataset)?;
                let mut cmd = self.engine_op("backup", &engine_location, &key);
                cmd.arg("--source")
                    .arg(dataset)
                    .arg(format!("--backup=run-{}", run + 1));
                engine_backup = Some(self.engine("backup", &cmd)?);
            }
        }
        self.delete_namespace()?;

        let mut engine_restore = None;
        let mut product_restore = None;
        for product in [product_first, !product_first] {
            if product {
                warm(&product_location)?;
                product_restore = Some(self.product(
                    "restore",
                    &[
                        "restore",
                        "create",
                        &format!("{backup_name}-restore"),
                        "--from-backup",
                        &backup_name,
                        "--storage-location",
                        &location,
                        "--restore-volumes=true",
                    ],
                )?);
                let restored = self.claim_dir()?;
                assert_same_tree(dataset, &restored)
                    .context("the claim restored through mover pods does not match the dataset")?;
            } else {
                warm(&engine_location)?;
                let mut cmd = self.engine_op("restore", &engine_location, &key);
                cmd.arg("--target").arg(&restore_dir);
                engine_restore = Some(self.engine("restore", &cmd)?);
                assert_same_tree(dataset, &restore_dir)
                    .context("the engine's restore does not match the dataset")?;
                remove(&restore_dir)?;
            }
        }
        self.delete_namespace()?;
        for d in [&engine_location, &product_location] {
            remove(d)?;
        }
        let pair = |engine: Option<Sample>, product: Option<(Sample, MoverCost)>| -> Result<Pair> {
            let (plugin, movers) = product.context("the product's operation did not run")?;
            Ok(Pair {
                engine: engine.context("the engine's operation did not run")?,
                plugin,
                movers,
                product_first,
            })
        };
        Ok((
            pair(engine_backup, product_backup)?,
            pair(engine_restore, product_restore)?,
        ))
    }

    fn engine_op(&self, op: &str, location: &Path, key: &Path) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["op", op])
            .arg("--location")
            .arg(location)
            .arg("--key-file")
            .arg(key);
        cmd
    }

    fn engine(&self, op: &str, cmd: &Command) -> Result<Sample> {
        let (sample, _) = measure(cmd)?;
        eprintln!(
            "  {op:<8} engine alone:   wall {:.2} s, CPU {:.2} s, RSS {:.0} MiB (load before {:.2})",
            sample.wall, sample.cpu, sample.rss_mib, sample.load
        );
        Ok(sample)
    }

    /// Runs the plugin command under measurement and collects its movers' usage.
    fn product(&self, op: &str, args: &[&str]) -> Result<(Sample, MoverCost)> {
        let node = self
            .cluster
            .cluster
            .node()
            .context("the cluster has no node")?;
        let seen = node.container_usage().last().map_or(0, |u| u.seq);
        let mut cmd = Command::new(&self.plugin);
        cmd.args(args).env("KUBECONFIG", self.cluster.kubeconfig());
        let (sample, _) = measure(&cmd)?;
        let movers: Vec<ContainerUsage> = node
            .container_usage()
            .into_iter()
            .filter(|u| {
                u.seq > seen && u.namespace == NAMESPACE && u.image.starts_with(MOVER_IMAGE)
            })
            .collect();
        ensure!(
            !movers.is_empty(),
            "`kubectl vbackup {}` ran no mover pod that the node measured",
            args.join(" ")
        );
        if let Some(failed) = movers.iter().find(|u| u.exit_code != 0) {
            bail!("mover pod {} exited with {}", failed.pod, failed.exit_code);
        }
        let cost = MoverCost {
            count: movers.len(),
            cpu: movers
                .iter()
                .map(|u| (u.user_cpu + u.system_cpu).as_secs_f64())
                .sum(),
            peak_rss_mib: movers.iter().map(|u| u.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        };
        eprintln!(
            "  {op:<8} through movers: wall {:.2} s, CPU {:.2} s (plugin {:.2} s + {} mover(s) {:.2} s), mover peak RSS {:.0} MiB, plugin RSS {:.0} MiB (load before {:.2})",
            sample.wall,
            sample.cpu + cost.cpu,
            sample.cpu,
            cost.count,
            cost.cpu,
            cost.peak_rss_mib,
            sample.rss_mib,
            sample.load
        );
        Ok((sample, cost))
    }

    /// `kubectl vbackup ARGS`, untimed; fails with its output when it fails.
    fn vbackup(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.cluster.vbackup(args);
        ensure!(ok, "kubectl vbackup {}: {out}{err}", args.join(" "));
        Ok(out)
    }

    /// `kubectl ARGS`; fails with its output when it fails.
    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = self.cluster.kubectl(args);
        ensure!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The application: a Deployment whose pod mounts the claim `data`; returns the claim's
    /// directory on the node once the pod runs.
    fn deploy_app(&self) -> Result<PathBuf> {
        let manifest = self.path("movers-app.yaml");
        std::fs::write(
            &manifest,
            format!(
                r#"apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {NAMESPACE}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 2Gi}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
      - {{name: app, image: mariadb:11, volumeMounts: [{{name: data, mountPath: /var/lib/mysql}}]}}
      volumes:
      - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"#
            ),
        )?;
        self.kubectl(&["apply", "-f", path_str(&manifest)?])?;
        self.kubectl(&[
            "-n",
            NAMESPACE,
            "wait",
            "deployment/app",
            "--for=jsonpath={.status.readyReplicas}=1",
            "--timeout=180s",
        ])?;
        self.claim_dir()
    }

    /// The node's directory of the bound claim `data`.
    fn claim_dir(&self) -> Result<PathBuf> {
        let node = self
            .cluster
            .cluster
            .node()
            .context("the cluster has no node")?;
        poll("the claim bound", || node.claim_dir(NAMESPACE, "data"))
    }

    /// Deletes the namespace and waits until it is gone (its claim's data with it).
    fn delete_namespace(&self) -> Result<()> {
        self.kubectl(&[
            "delete",
            "namespace",
            NAMESPACE,
            "--wait=true",
            "--timeout=300s",
        ])?;
        poll("the namespace gone", || {
            (!self
                .cluster
                .kubectl(&["get", "namespace", NAMESPACE])
                .status
                .success())
            .then_some(())
        })
    }
}

/// Polls `f` for up to five minutes.
fn poll<T>(what: &str, f: impl Fn() -> Option<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn report(
    args: &MoversArgs,
    dataset: &Path,
    plugin: &Path,
    backups: &[Pair],
    restores: &[Pair],
) -> String {
    let mib = crate::bench::dir_size(dataset) as f64 / (1024.0 * 1024.0);
    let loads: Vec<f64> = backups
        .iter()
        .chain(restores)
        .flat_map(|p| [p.engine.load, p.plugin.load])
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Mover pods vs engine alone ({mib:.1} MiB{}, {} runs)\n\n\
         Plugin {}. Engine alone: `xtask op backup|restore` on a directory location. Through \
         movers: `kubectl vbackup backup create` / `restore create` on the test cluster, one \
         claim, a directory location reached by hostPath; wall = the plugin command, CPU = \
         plugin + mover processes (the in-process API server and node are not counted). \
         Overhead = through movers / engine alone − 1. Load average (1 min) before the \
         measured operations: {:.2}–{:.2} (now {}). Every restore was compared with the dataset \
         (bytes, types, modes, owners, mtimes).\n",
        if args.dataset_mib.is_some() {
            ", scaled down with --dataset-mib: a harness check, not figures"
        } else {
            ""
        },
        args.runs,
        plugin.display(),
        loads.iter().copied().fold(f64::INFINITY, f64::min),
        loads.iter().copied().fold(0.0, f64::max),
        load_average().map_or("unknown".into(), |l| format!("{l:.2}")),
    );
    let _ = writeln!(
        out,
        "| run | operation | first | engine alone: wall / CPU / RSS | through movers: wall / CPU (plugin + movers) / plugin RSS | overhead wall / CPU | mover peak RSS | load before (engine / movers) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (run, (b, r)) in backups.iter().zip(restores).enumerate() {
        for (name, p) in [("backup", b), ("restore", r)] {
            let _ = writeln!(
                out,
                "| {} | {name} | {} | {:.2} s / {:.2} s / {:.0} MiB | {:.2} s / {:.2} s ({:.2} + {:.2}) / {:.0} MiB | {:+.1} % / {:+.1} % | {:.0} MiB | {:.2} / {:.2} |",
                run + 1,
                if p.product_first { "movers" } else { "engine" },
                p.engine.wall,
                p.engine.cpu,
                p.engine.rss_mib,
                p.product_wall(),
                p.product_cpu(),
                p.plugin.cpu,
                p.movers.cpu,
                p.plugin.rss_mib,
                100.0 * p.wall_overhead(),
                100.0 * p.cpu_overhead(),
                p.movers.peak_rss_mib,
                p.engine.load,
                p.plugin.load,
            );
        }
    }
    for (name, pairs) in [("backup", backups), ("restore", restores)] {
        let m = |f: fn(&Pair) -> f64| median(pairs.iter().map(f));
        let _ = writeln!(
            out,
            "| **median** | {name} | | {:.2} s / {:.2} s / {:.0} MiB | {:.2} s / {:.2} s / {:.0} MiB | **{:+.1} %** / {:+.1} % | {:.0} MiB | |",
            m(|p| p.engine.wall),
            m(|p| p.engine.cpu),
            m(|p| p.engine.rss_mib),
            m(Pair::product_wall),
            m(Pair::product_cpu),
            m(|p| p.plugin.rss_mib),
            100.0 * m(Pair::wall_overhead),
            100.0 * m(Pair::cpu_overhead),
            m(|p| p.movers.peak_rss_mib),
        );
    }
    let _ = writeln!(out);
    for (name, pairs) in [("backup", backups), ("restore", restores)] {
        let overhead = median(pairs.iter().map(Pair::wall_overhead));
        let _ = writeln!(
            out,
            "Median wall-time overhead of the {name}: {:+.1} % (target: under {:.0} %): {}.",
            100.0 * overhead,
            100.0 * TARGET_OVERHEAD,
            match (args.dataset_mib, overhead < TARGET_OVERHEAD) {
                (Some(_), _) => "no verdict on a scaled-down dataset",
                (None, true) => "met",
                (None, false) => "not met",
            }
        );
    }
    out
}
