//! Developer tasks. `cargo run -p xtask --release -- bench` runs the volume-repository
//! benchmark: vbackup's engine (rustic_core over the object-store layer) and Debian's `restic`
//! side by side on the same generated datasets, in the same run, alternating which goes first.
//! `bench-movers` measures what backing a claim up and restoring it through mover pods costs
//! over the engine alone. See BENCHMARKS.md for the method. `cargo run -p xtask -- krew` builds
//! the krew archive for this platform and fills its sha256 into `krew/vbackup.yaml`.

mod bench;
mod compare;
mod measure;
mod movers;
mod workfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{RepoOptions, Tuning, VolumeBackup, VolumeRepo, VolumeRestore};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::location::S3Spec;
use vbackup_engine::store::s3::{S3Backend, S3Credentials};
use vbackup_engine::store::{AccessMode, Store};
use xtask::krew;

const NAMESPACE: &str = "bench";

#[derive(Parser)]
#[command(about = "vbackup developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmark backups and restores against restic on generated volume datasets.
    Bench(bench::BenchArgs),
    /// Backup and restore of one claim through mover pods on the test cluster against the
    /// engine alone on the same data: the overhead and the movers' peak RSS.
    BenchMovers(movers::MoversArgs),
    /// Build this platform's krew archive and write its sha256 into the plugin manifest.
    Krew(KrewArgs),
    /// One engine operation (used by `bench` as a measured child process).
    #[command(hide = true)]
    Op {
        #[command(subcommand)]
        op: Op,
    },
}

/// Arguments of `krew`.
#[derive(Args, Debug)]
struct KrewArgs {
    /// The kubectl-vbackup to package (default: a release build, statically linked on Linux).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where the archive goes.
    #[arg(long, default_value = "dist")]
    out: PathBuf,
    /// The manifest to fill.
    #[arg(long, default_value = "krew/vbackup.yaml")]
    manifest: PathBuf,
}

/// Settings of the vbackup repository the benchmark creates.
#[derive(Args, Clone, Copy, Debug)]
pub struct TuningArgs {
    /// zstd level of the vbackup repository.
    #[arg(long, default_value_t = Tuning::default().compression, allow_negative_numbers = true)]
    compression: i32,
    /// Data pack size in MiB.
    #[arg(long, default_value_t = Tuning::default().datapack_size >> 20)]
    pack_mib: u32,
    /// Re-verify every blob after packing (rustic_core's default; off in vbackup).
    #[arg(long)]
    extra_verify: bool,
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

/// Where an operation's repository lives: a directory, or a prefix of an S3 bucket (keys
/// from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, as restic reads them).
#[derive(Args, Clone, Debug)]
struct LocationArgs {
    /// Directory location.
    #[arg(long, required_unless_present = "s3_endpoint")]
    location: Option<PathBuf>,
    /// S3 endpoint URL (path-style addressing).
    #[arg(long, requires_all = ["s3_bucket", "s3_prefix"])]
    s3_endpoint: Option<String>,
    #[arg(long)]
    s3_bucket: Option<String>,
    #[arg(long)]
    s3_prefix: Option<String>,
}

impl LocationArgs {
    /// The store; an S3 setting that does not work is an error, never a fallback to disk.
    fn store(&self) -> Result<Store> {
        if let Some(endpoint) = &self.s3_endpoint {
            let spec = S3Spec {
                bucket: self.s3_bucket.clone().context("--s3-bucket is required")?,
                prefix: self.s3_prefix.clone(),
                region: None,
                endpoint: Some(endpoint.clone()),
                force_path_style: true,
                credentials_secret: None,
            };
            let backend = S3Backend::new(&spec, s3_credentials()?)
                .with_context(|| format!("S3 location {endpoint}"))?;
            return Ok(Store::new(
                "bench-s3",
                Arc::new(backend),
                AccessMode::ReadWrite,
            ));
        }
        let dir = self.location.as_ref().context("--location is required")?;
        Ok(Store::new(
            "bench",
            Arc::new(FsBackend::new(dir)),
            AccessMode::ReadWrite,
        ))
    }
}

/// S3 keys from the environment variables restic reads too.
fn s3_credentials() -> Result<S3Credentials> {
    let var = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must be set for the S3 location"))
    };
    Ok(S3Credentials {
        access_key_id: var("AWS_ACCESS_KEY_ID")?,
        secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
        session_token: None,
    })
}

#[derive(Subcommand)]
enum Op {
    /// Creates the repository (and a location key in `key_file`).
    Init {
        #[command(flatten)]
        location: LocationArgs,
        #[arg(long)]
        key_file: PathBuf,
        #[command(flatten)]
        tuning: TuningArgs,
    },
    /// Backs a directory up; prints the summary as JSON.
    Backup {
        #[command(flatten)]
        location: LocationArgs,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        source: PathBuf,
        #[arg(long)]
        backup: String,
    },
    /// Restores the latest snapshot into `target`.
    Restore {
        #[command(flatten)]
        location: LocationArgs,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        target: PathBuf,
        /// Files written at once (0: the engine's default).
        #[arg(long, default_value_t = 0)]
        restore_workers: usize,
    },
    /// Deletes every object of the location (S3 prefixes between runs).
    Wipe {
        #[command(flatten)]
        location: LocationArgs,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Bench(args) => bench::run(&args),
        Task::BenchMovers(args) => movers::run(&args),
        Task::Krew(args) => package_for_krew(&args),
        Task::Op { op } => tokio::runtime::Runtime::new()?.block_on(run_op(op)),
    }
}

fn package_for_krew(args: &KrewArgs) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let platform = krew::Platform::host()?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => release_binary(&root)?,
    };
    let package = krew::package(&binary, &root.join("LICENSE"), &args.out, platform)?;
    let manifest = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read {}", args.manifest.display()))?;
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let filled = krew::fill_manifest(&manifest, &version, platform, &package.sha256)?;
    std::fs::write(&args.manifest, filled)
        .with_context(|| format!("cannot write {}", args.manifest.display()))?;
    println!(
        "{} ({}/{}, sha256 {}) written into {}",
        package.archive.display(),
        platform.os,
        platform.arch,
        package.sha256,
        args.manifest.display()
    );
    Ok(())
}

/// Builds kubectl-vbackup in release; on Linux statically linked (as the container image's),
/// so the archive runs on any distribution. With an explicit `--target`, RUSTFLAGS reach only
/// the target's crates, not build scripts and proc-macros (which cannot be static).
fn release_binary(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut build = std::process::Command::new(&cargo);
    build
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", "kubectl-vbackup"]);
    let dir = if cfg!(target_os = "linux") {
        let triple = host_triple(&cargo)?;
        build
            .args(["--target", &triple])
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
        target_dir.join(triple).join("release")
    } else {
        target_dir.join("release")
    };
    let status = build.status().context("cannot run cargo build")?;
    anyhow::ensure!(
        status.success(),
        "cargo build --release -p kubectl-vbackup failed"
    );
    Ok(dir.join(krew::Platform::host()?.bin()))
}

/// The host's target triple, as rustc reports it.
fn host_triple(cargo: &str) -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run rustc -vV (from {cargo})"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host triple")
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
            VolumeRepo::open_or_init(&location.store()?, NAMESPACE, &key, options).await?;
        }
        Op::Backup {
            location,
            key_file,
            source,
            backup,
        } => {
            let repo = open(&location, &key_file, 0).await?;
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
            let repo = open(&location, &key_file, restore_workers).await?;
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
        Op::Wipe { location } => {
            location.store()?.delete_prefix("").await?;
        }
    }
    Ok(())
}

async fn open(
    location: &LocationArgs,
    key_file: &Path,
    restore_workers: usize,
) -> Result<VolumeRepo> {
    let key = LocationKey::parse(&std::fs::read_to_string(key_file)?)?;
    let options = RepoOptions {
        restore_workers,
        ..RepoOptions::default()
    };
    Ok(VolumeRepo::open(&location.store()?, NAMESPACE, &key, options).await?)
}
