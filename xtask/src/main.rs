//! Developer tasks. `cargo run -p xtask --release -- bench --dir DIR` runs the volume-repository
//! benchmark: vbackup's engine (rustic_core over the object-store layer) and Debian's `restic`
//! side by side on the same dataset, in the same run, alternating which goes first.
//!
//! Each measured operation runs as its own child process under `/usr/bin/time`, so wall time,
//! CPU time and peak RSS belong to that operation alone. The page cache is warmed (the data is
//! read once, untimed) before each operation, as these machines drop idle cache quickly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{RepoOptions, Tuning, VolumeBackup, VolumeRepo, VolumeRestore};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::{AccessMode, Store};

const NAMESPACE: &str = "bench";
const RESTIC_PASSWORD: &str = "bench-password";

#[derive(Parser)]
#[command(about = "vbackup developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmark backups and restores against restic on the ~1 GiB volume dataset.
    Bench(BenchArgs),
    /// One engine operation (used by `bench` as a measured child process).
    #[command(hide = true)]
    Op {
        #[command(subcommand)]
        op: Op,
    },
}

#[derive(Parser, Clone)]
struct BenchArgs {
    /// Working directory (dataset, repositories, restores); several GiB free needed.
    #[arg(long)]
    dir: PathBuf,
    /// Measured runs per operation; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The dataset generator.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench/gen_volume_dataset.py"))]
    generator: PathBuf,
    /// Markdown file the results table is written to.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    tuning: TuningArgs,
}

#[derive(Parser, Clone, Copy)]
struct TuningArgs {
    /// zstd level of the vbackup repository.
    #[arg(long, default_value_t = Tuning::default().compression, allow_negative_numbers = true)]
    compression: i32,
    /// Data pack size in MiB.
    #[arg(long, default_value_t = Tuning::default().datapack_size >> 20)]
    pack_mib: u32,
    /// Re-verify every blob after packing (rustic_core's default; off in vbackup).
    #[arg(long)]
    extra_verify: bool,
    /// Files written at once by a restore (0: the engine's default).
    #[arg(long, default_value_t = 0)]
    restore_workers: usize,
}

impl TuningArgs {
    fn tuning(self) -> Tuning {
        Tuning {
            compression: self.compression,
            datapack_size: self.pack_mib << 20,
            datapack_size_limit: (self.pack_mib << 20).max(Tuning::default().datapack_size_limit),
            extra_verify: self.extra_verify,
        }
    }
    fn args(self) -> Vec<String> {
        let mut args = vec![
            format!("--compression={}", self.compression),
            format!("--pack-mib={}", self.pack_mib),
        ];
        if self.extra_verify {
            args.push("--extra-verify".into());
        }
        args
    }
}

#[derive(Subcommand)]
enum Op {
    /// Creates the repository (and a location key in `key_file`).
    Init {
        #[arg(long)]
        location: PathBuf,
        #[arg(long)]
        key_file: PathBuf,
        #[command(flatten)]
        tuning: TuningArgs,
    },
    /// Backs a directory up; prints the summary as JSON.
    Backup {
        #[arg(long)]
        location: PathBuf,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        source: PathBuf,
        #[arg(long)]
        backup: String,
    },
    /// Restores the latest snapshot into `target`.
    Restore {
        #[arg(long)]
        location: PathBuf,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        target: PathBuf,
        /// Files written at once (0: the engine's default).
        #[arg(long, default_value_t = 0)]
        restore_workers: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Bench(args) => bench(&args),
        Task::Op { op } => tokio::runtime::Runtime::new()?.block_on(run_op(op)),
    }
}

/// A directory location, or with `VBACKUP_BENCH_S3=http://host:port/bucket` an S3 location
/// (the directory name becomes the prefix), for measuring against moto.
fn store(location: &Path) -> Store {
    if let Ok(url) = std::env::var("VBACKUP_BENCH_S3")
        && let Some((endpoint, bucket)) = url.rsplit_once('/')
    {
        let spec = vbackup_engine::store::location::S3Spec {
            bucket: bucket.into(),
            prefix: location
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            region: None,
            endpoint: Some(endpoint.into()),
            force_path_style: true,
            credentials_secret: None,
        };
        let credentials = vbackup_engine::store::s3::S3Credentials {
            access_key_id: "bench".into(),
            secret_access_key: "bench".into(),
            session_token: None,
        };
        if let Ok(backend) = vbackup_engine::store::s3::S3Backend::new(&spec, credentials) {
            return Store::new("bench-s3", Arc::new(backend), AccessMode::ReadWrite);
        }
    }
    Store::new(
        "bench",
        Arc::new(FsBackend::new(location)),
        AccessMode::ReadWrite,
    )
}

async fn run_op(op: Op) -> Result<()> {
    match op {
        Op::Init {
            location,
            key_file,
            tuning,
        } => {
            let key = LocationKey::generate()?;
            std::fs::write(&key_file, key.to_text())?;
            let options = RepoOptions {
                tuning: tuning.tuning(),
                ..RepoOptions::default()
            };
            VolumeRepo::open_or_init(&store(&location), NAMESPACE, &key, options).await?;
        }
        Op::Backup {
            location,
            key_file,
            source,
            backup,
        } => {
            let repo = open(&location, &key_file).await?;
            let summary = repo
                .backup_dir(VolumeBackup {
                    source,
                    volume: "pvc/data".into(),
                    backup,
                    excludes: Vec::new(),
                    progress: None,
                    stall_after: None,
                })
                .await?;
            println!(
                "{}",
                serde_json::json!({
                    "files_read": summary.files_read,
                    "files_unmodified": summary.files_unmodified,
                    "data_added_stored": summary.data_added_stored,
                })
            );
        }
        Op::Restore {
            location,
            key_file,
            target,
            restore_workers,
        } => {
            let repo = open_with(&location, &key_file, restore_workers).await?;
            let summary = repo
                .restore(VolumeRestore {
                    snapshot: "latest".into(),
                    path: None,
                    target,
                    verify_existing: false,
                    progress: None,
                    stall_after: None,
                })
                .await?;
            println!(
                "{}",
                serde_json::json!({ "files_restored": summary.files_restored })
            );
        }
    }
    Ok(())
}

async fn open(location: &Path, key_file: &Path) -> Result<VolumeRepo> {
    open_with(location, key_file, 0).await
}

async fn open_with(location: &Path, key_file: &Path, restore_workers: usize) -> Result<VolumeRepo> {
    let key = LocationKey::parse(&std::fs::read_to_string(key_file)?)?;
    let options = RepoOptions {
        restore_workers,
        ..RepoOptions::default()
    };
    Ok(VolumeRepo::open(&store(location), NAMESPACE, &key, options).await?)
}

/// One measured child process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
    user: f64,
    rss_mib: f64,
}

fn measure(cmd: &mut Command) -> Result<(Sample, String)> {
    let timing = tempfile_path("time");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%U %S %M", "-o"])
        .arg(&timing)
        .arg(&program)
        .args(&args);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    let start = Instant::now();
    let output = timed
        .output()
        .with_context(|| format!("running {program:?}"))?;
    let wall = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "{program:?} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&timing)?;
    let line = text.lines().last().unwrap_or_default();
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let _ = std::fs::remove_file(&timing);
    if fields.len() != 3 {
        bail!("unexpected /usr/bin/time output {text:?}");
    }
    Ok((
        Sample {
            wall,
            cpu: fields[0] + fields[1],
            user: fields[0],
            rss_mib: fields[2] / 1024.0,
        },
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

fn tempfile_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()))
}

fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

/// Reads every file once so the timed operation starts with a hot page cache.
fn warm(dir: &Path) -> Result<()> {
    sh(Command::new("sh")
        .arg("-c")
        .arg("tar -cf - . | cat > /dev/null")
        .current_dir(dir))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                total += dir_size(&entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

fn remove(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    Vbackup,
    Restic,
}

const ROWS: [&str; 4] = [
    "initial backup",
    "unchanged incremental",
    "1% changed + 10 MiB appended",
    "full restore",
];

struct Bench {
    args: BenchArgs,
    exe: PathBuf,
    samples: BTreeMap<(usize, Tool), Vec<Sample>>,
    repo_size: BTreeMap<Tool, Vec<u64>>,
    notes: Vec<String>,
}

impl Bench {
    fn vbackup(&self, op: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["op", op])
            .arg("--location")
            .arg(self.args.dir.join("vb-location"))
            .arg("--key-file")
            .arg(self.args.dir.join("vb-key"));
        cmd
    }

    fn restic(&self) -> Command {
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(self.args.dir.join("restic-repo"))
            .arg("--quiet")
            .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
            .env("RESTIC_CACHE_DIR", self.args.dir.join("restic-cache"));
        cmd
    }

    fn record(&mut self, row: usize, tool: Tool, cmd: &mut Command) -> Result<String> {
        let (sample, stdout) = measure(cmd)?;
        eprintln!("  {:<30} {tool:?}: {sample:?}", ROWS[row]);
        self.samples.entry((row, tool)).or_default().push(sample);
        Ok(stdout)
    }

    fn run_once(&mut self, run: usize) -> Result<()> {
        let dir = self.args.dir.clone();
        let work = dir.join("work");
        for path in [
            "work",
            "vb-location",
            "restic-repo",
            "restic-cache",
            "restore",
        ] {
            remove(&dir.join(path))?;
        }
        let _ = std::fs::remove_file(dir.join("work.mutated"));
        sh(Command::new("cp")
            .arg("-a")
            .arg(dir.join("base"))
            .arg(&work))?;

        let mut init = self.vbackup("init");
        init.args(self.args.tuning.args());
        sh(&mut init)?;
        sh(self.restic().arg("init"))?;

        let order = if run.is_multiple_of(2) {
            [Tool::Vbackup, Tool::Restic]
        } else {
            [Tool::Restic, Tool::Vbackup]
        };
        for (row, name) in [(0, "initial"), (1, "unchanged")] {
            for tool in order {
                warm(&work)?;
                let out = match tool {
                    Tool::Vbackup => {
                        let mut cmd = self.vbackup("backup");
                        cmd.arg("--source").arg(&work).arg("--backup").arg(name);
                        self.record(row, tool, &mut cmd)?
                    }
                    Tool::Restic => {
                        let mut cmd = self.restic();
                        cmd.args(["backup", "--host", "bench"]).arg(&work);
                        self.record(row, tool, &mut cmd)?
                    }
                };
                if row == 1 && tool == Tool::Vbackup && run == 0 {
                    self.notes.push(format!(
                        "vbackup unchanged incremental summary: {}",
                        out.trim()
                    ));
                }
            }
            if row == 0 {
                self.repo_size
                    .entry(Tool::Vbackup)
                    .or_default()
                    .push(dir_size(&dir.join("vb-location/repos")));
                self.repo_size
                    .entry(Tool::Restic)
                    .or_default()
                    .push(dir_size(&dir.join("restic-repo")));
            }
        }

        sh(Command::new("python3")
            .arg(&self.args.generator)
            .arg("--mutate")
            .arg(&work))?;
        for tool in order {
            warm(&work)?;
            match tool {
                Tool::Vbackup => {
                    let mut cmd = self.vbackup("backup");
                    cmd.arg("--source")
                        .arg(&work)
                        .arg("--backup")
                        .arg("changed");
                    self.record(2, tool, &mut cmd)?;
                }
                Tool::Restic => {
                    let mut cmd = self.restic();
                    cmd.args(["backup", "--host", "bench"]).arg(&work);
                    self.record(2, tool, &mut cmd)?;
                }
            }
        }

        for tool in order {
            let target = dir.join("restore");
            remove(&target)?;
            match tool {
                Tool::Vbackup => {
                    warm(&dir.join("vb-location"))?;
                    let mut cmd = self.vbackup("restore");
                    cmd.arg("--target").arg(&target).arg(format!(
                        "--restore-workers={}",
                        self.args.tuning.restore_workers
                    ));
                    self.record(3, tool, &mut cmd)?;
                    let restored = dir_size(&target);
                    let expected = dir_size(&work);
                    if restored != expected {
                        bail!("vbackup restored {restored} bytes, the source has {expected}");
                    }
                }
                Tool::Restic => {
                    warm(&dir.join("restic-repo"))?;
                    let mut cmd = self.restic();
                    cmd.args(["restore", "latest", "--target"]).arg(&target);
                    self.record(3, tool, &mut cmd)?;
                }
            }
            remove(&target)?;
        }
        Ok(())
    }

    fn report(&self, dataset_bytes: u64) -> String {
        let mib = dataset_bytes as f64 / (1024.0 * 1024.0);
        let mut out = String::new();
        let t = self.args.tuning;
        let _ = writeln!(
            out,
            "Dataset {mib:.1} MiB; {} runs, medians; vbackup tuning: zstd {}, {} MiB packs, \
             extra verify {}, restore workers {}; vbackup without cache, restic with its cache.\n",
            self.args.runs,
            t.compression,
            t.pack_mib,
            t.extra_verify,
            match t.restore_workers {
                0 => vbackup_engine::repo::restore::DEFAULT_RESTORE_WORKERS,
                n => n,
            }
        );
        let _ = writeln!(
            out,
            "| operation | vbackup (rustic_core) | restic | vbackup / restic (wall, CPU, RSS) |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for (row, name) in ROWS.iter().enumerate() {
            let cell = |tool| -> Option<(String, Sample)> {
                let samples = self.samples.get(&(row, tool))?;
                let s = Sample {
                    wall: median(samples.iter().map(|s| s.wall)),
                    cpu: median(samples.iter().map(|s| s.cpu)),
                    user: median(samples.iter().map(|s| s.user)),
                    rss_mib: median(samples.iter().map(|s| s.rss_mib)),
                };
                Some((
                    format!(
                        "{:.2} s ({:.0} MiB/s), CPU {:.1} s (user {:.1} s), {:.0} MiB RSS",
                        s.wall,
                        mib / s.wall,
                        s.cpu,
                        s.user,
                        s.rss_mib
                    ),
                    s,
                ))
            };
            if let (Some((v, vs)), Some((r, rs))) = (cell(Tool::Vbackup), cell(Tool::Restic)) {
                let _ = writeln!(
                    out,
                    "| {name} | {v} | {r} | {:.2}× / {:.2}× / {:.2}× |",
                    vs.wall / rs.wall,
                    vs.cpu / rs.cpu,
                    vs.rss_mib / rs.rss_mib
                );
            }
        }
        let size = |tool| {
            median(
                self.repo_size
                    .get(&tool)
                    .into_iter()
                    .flatten()
                    .map(|b| *b as f64 / (1024.0 * 1024.0)),
            )
        };
        let (v, r) = (size(Tool::Vbackup), size(Tool::Restic));
        let _ = writeln!(
            out,
            "| repository size after initial backup | {v:.1} MiB | {r:.1} MiB | {:.3}× |",
            v / r
        );
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn bench(args: &BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let base = dir.join("base");
    if !base.exists() {
        eprintln!("generating the dataset in {}", base.display());
        sh(Command::new("python3").arg(&args.generator).arg(&base))?;
    }
    let dataset = dir_size(&base);
    let mut bench = Bench {
        args: BenchArgs {
            dir: dir.clone(),
            ..args.clone()
        },
        exe: std::env::current_exe()?,
        samples: BTreeMap::new(),
        repo_size: BTreeMap::new(),
        notes: Vec::new(),
    };
    let restic_version = Command::new("restic").arg("version").output()?;
    bench.notes.push(format!(
        "restic: {}",
        String::from_utf8_lossy(&restic_version.stdout).trim()
    ));
    for run in 0..args.runs {
        eprintln!("run {}/{}", run + 1, args.runs);
        bench.run_once(run)?;
    }
    for path in [
        "work",
        "vb-location",
        "restic-repo",
        "restic-cache",
        "restore",
    ] {
        remove(&dir.join(path))?;
    }
    let report = bench.report(dataset);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}
