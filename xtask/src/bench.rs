//! The benchmark harness: generated datasets, alternating tool order, every restore checked
//! against its source, per-run paired ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};

use crate::TuningArgs;
use crate::compare::assert_same_tree;
use crate::measure::{Sample, measure, median};

const RESTIC_PASSWORD: &str = "bench-password";
const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dataset/gen_volume_dataset.py");

/// Options of `xtask bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Working directory: datasets (kept between invocations), repositories, restores.
    /// About 6 GiB free needed.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/xtask-bench"))]
    dir: PathBuf,
    /// Measured runs of every row; medians and per-run ratios are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Which rows to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "dir,small-files"
    )]
    rows: Vec<Scenario>,
    /// S3 endpoint for the `s3` rows (path-style, e.g. http://127.0.0.1:8014). Both tools
    /// use it with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Bucket for the `s3` rows; restic creates it if missing. Both tools' prefixes in it are
    /// wiped after each run.
    #[arg(long, default_value = "vbackup-bench")]
    s3_bucket: String,
    /// Markdown file the results are written to (they are printed too).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Files a vbackup restore writes at once (0: the engine's default).
    #[arg(long, default_value_t = 0)]
    restore_workers: usize,
    #[command(flatten)]
    tuning: TuningArgs,
}

/// A group of rows: one dataset on one kind of location.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    /// The ~1 GiB application volume on a directory location: initial, unchanged, 1 %
    /// changed, restore.
    Dir,
    /// 300,000 files of 1 KiB in 300 directories on a directory location: initial, restore.
    SmallFiles,
    /// The ~1 GiB application volume on S3: initial, unchanged, 1 % changed, restore.
    S3,
}

impl Scenario {
    fn title(self) -> &'static str {
        match self {
            Scenario::Dir => "Application volume (~1 GiB), directory location",
            Scenario::SmallFiles => "300,000 files of 1 KiB in 300 directories, directory location",
            Scenario::S3 => "Application volume (~1 GiB), S3 location",
        }
    }

    fn steps(self) -> &'static [Step] {
        match self {
            Scenario::Dir | Scenario::S3 => {
                &[Step::Initial, Step::Unchanged, Step::Changed, Step::Restore]
            }
            Scenario::SmallFiles => &[Step::Initial, Step::Restore],
        }
    }

    fn dataset(self) -> &'static str {
        match self {
            Scenario::Dir | Scenario::S3 => "volume",
            Scenario::SmallFiles => "small-files",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Initial,
    Unchanged,
    Changed,
    Restore,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Initial => "initial backup",
            Step::Unchanged => "unchanged incremental",
            Step::Changed => "1% changed + 10 MiB appended",
            Step::Restore => "full restore (verified)",
        }
    }

    /// Throughput means something only where the whole dataset moves.
    fn shows_throughput(self) -> bool {
        matches!(self, Step::Initial | Step::Restore)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Vbackup,
    Restic,
}

struct Bench {
    args: BenchArgs,
    exe: PathBuf,
    samples: BTreeMap<(Scenario, Step, Tool), Vec<Sample>>,
    repo_size: BTreeMap<(Scenario, Tool), Vec<u64>>,
    notes: Vec<String>,
}

/// `xtask bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    if args.rows.contains(&Scenario::S3) {
        ensure!(
            args.s3_endpoint.is_some(),
            "the s3 rows need --s3-endpoint (see BENCHMARKS.md for a local S3 server)"
        );
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            ensure!(
                std::env::var_os(var).is_some(),
                "the s3 rows need {var} set"
            );
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    crate::workfs::ensure_fair(&dir)?;
    let mut bench = Bench {
        args: BenchArgs {
            dir,
            ..args.clone()
        },
        exe: std::env::current_exe()?,
        samples: BTreeMap::new(),
        repo_size: BTreeMap::new(),
        notes: Vec::new(),
    };
    let restic_version = Command::new("restic")
        .arg("version")
        .output()
        .context("running restic (apt-get install restic)")?;
    bench.notes.push(format!(
        "restic: {}",
        String::from_utf8_lossy(&restic_version.stdout).trim()
    ));
    let mut scenarios = args.rows.clone();
    scenarios.sort();
    scenarios.dedup();
    for &scenario in &scenarios {
        bench.dataset(scenario)?;
    }
    for run in 0..args.runs {
        for &scenario in &scenarios {
            eprintln!("run {}/{}: {}", run + 1, args.runs, scenario.title());
            bench.run_scenario(scenario, run)?;
        }
    }
    let report = bench.report(&scenarios)?;
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

impl Bench {
    fn path(&self, name: &str) -> PathBuf {
        self.args.dir.join(name)
    }

    /// The pristine dataset, generated on first use (deterministic, kept for later runs).
    fn dataset(&self, scenario: Scenario) -> Result<PathBuf> {
        let options: &[&str] = match scenario {
            Scenario::SmallFiles => &["--small-files"],
            Scenario::Dir | Scenario::S3 => &[],
        };
        generate_dataset(&self.args.dir, scenario.dataset(), options)
    }

    /// vbackup's location arguments; `prefix` names the S3 prefix (vbackup's or restic's).
    fn location_args(&self, scenario: Scenario, prefix: &str) -> Vec<String> {
        match (&self.args.s3_endpoint, scenario) {
            (Some(endpoint), Scenario::S3) => vec![
                format!("--s3-endpoint={endpoint}"),
                format!("--s3-bucket={}", self.args.s3_bucket),
                format!("--s3-prefix={prefix}"),
            ],
            _ => vec![format!("--location={}", self.path("vb-location").display())],
        }
    }

    fn vbackup(&self, scenario: Scenario, op: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["op", op])
            .args(self.location_args(scenario, "vbackup"))
            .arg("--key-file")
            .arg(self.path("vb-key"));
        cmd
    }

    fn restic(&self, scenario: Scenario) -> Command {
        let repo = match (&self.args.s3_endpoint, scenario) {
            (Some(endpoint), Scenario::S3) => {
                format!("s3:{endpoint}/{}/restic", self.args.s3_bucket)
            }
            _ => self.path("restic-repo").display().to_string(),
        };
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(repo)
            .arg("--quiet")
            .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
            .env("RESTIC_CACHE_DIR", self.path("restic-cache"));
        cmd
    }

    fn record(
        &mut self,
        scenario: Scenario,
        step: Step,
        tool: Tool,
        cmd: &Command,
    ) -> Result<String> {
        let (sample, stdout) = measure(cmd)?;
        eprintln!(
            "  {:<30} {tool:?}: wall {:.2} s, CPU {:.2} s, RSS {:.0} MiB (load before {:.2})",
            step.name(),
            sample.wall,
            sample.cpu,
            sample.rss_mib,
            sample.load
        );
        self.samples
            .entry((scenario, step, tool))
            .or_default()
            .push(sample);
        Ok(stdout)
    }

    fn clean_local(&self) -> Result<()> {
        for name in [
            "work",
            "vb-location",
            "restic-repo",
            "restic-cache",
            "restore",
        ] {
            remove(&self.path(name))?;
        }
        let _ = std::fs::remove_file(self.path("work.mutated"));
        Ok(())
    }

    /// Removes every repository, restore and working copy a run leaves.
    fn clean(&self, scenario: Scenario) -> Result<()> {
        self.clean_local()?;
        if scenario == Scenario::S3 {
            // restic has no "delete repository": both prefixes go through vbackup's S3 client.
            for prefix in ["vbackup", "restic"] {
                let mut wipe = Command::new(&self.exe);
                wipe.args(["op", "wipe"])
                    .args(self.location_args(scenario, prefix));
                sh(&mut wipe).with_context(|| format!("wiping the S3 prefix {prefix}"))?;
            }
        }
        Ok(())
    }

    fn run_scenario(&mut self, scenario: Scenario, run: usize) -> Result<()> {
        // S3 prefixes are wiped after a run, not before: a bucket left over by an aborted run
        // makes `restic init` fail loudly rather than be deleted unasked.
        self.clean_local()?;
        let pristine = self.dataset(scenario)?;
        let mutates = scenario.steps().contains(&Step::Changed);
        // Datasets that change are copied; the others are backed up in place.
        let source = if mutates {
            let work = self.path("work");
            sh(Command::new("cp").arg("-a").arg(&pristine).arg(&work))?;
            work
        } else {
            pristine
        };
        let restic_init = self.restic(scenario).arg("init").output()?;
        ensure!(
            restic_init.status.success(),
            "restic init failed: {}",
            String::from_utf8_lossy(&restic_init.stderr)
        );
        let mut init = self.vbackup(scenario, "init");
        init.args(self.args.tuning.args());
        sh(&mut init)?;

        let order = if run.is_multiple_of(2) {
            [Tool::Vbackup, Tool::Restic]
        } else {
            [Tool::Restic, Tool::Vbackup]
        };
        for &step in scenario.steps() {
            if step == Step::Changed {
                sh(Command::new("python3")
                    .arg(GENERATOR)
                    .arg("--mutate")
                    .arg(&source))?;
            }
            for tool in order {
                if step == Step::Restore {
                    self.restore(scenario, tool, &source)?;
                } else {
                    self.backup(scenario, step, tool, &source, run)?;
                }
            }
            if step == Step::Initial && scenario != Scenario::S3 {
                for (tool, repo) in [
                    (Tool::Vbackup, "vb-location/repos"),
                    (Tool::Restic, "restic-repo"),
                ] {
                    let size = dir_size(&self.path(repo));
                    self.repo_size
                        .entry((scenario, tool))
                        .or_default()
                        .push(size);
                }
            }
        }
        self.clean(scenario)
    }

    fn backup(
        &mut self,
        scenario: Scenario,
        step: Step,
        tool: Tool,
        source: &Path,
        run: usize,
    ) -> Result<()> {
        warm(source)?;
        let cmd = match tool {
            Tool::Vbackup => {
                let mut cmd = self.vbackup(scenario, "backup");
                cmd.arg("--source")
                    .arg(source)
                    .arg(format!("--backup={step:?}"));
                cmd
            }
            Tool::Restic => {
                let mut cmd = self.restic(scenario);
                cmd.args(["backup", "--host", "bench"]).arg(source);
                cmd
            }
        };
        let out = self.record(scenario, step, tool, &cmd)?;
        if step == Step::Unchanged && tool == Tool::Vbackup && run == 0 {
            self.notes.push(format!(
                "{}: vbackup unchanged incremental summary {}",
                scenario.title(),
                out.trim()
            ));
        }
        Ok(())
    }

    fn restore(&mut self, scenario: Scenario, tool: Tool, source: &Path) -> Result<()> {
        let target = self.path("restore");
        remove(&target)?;
        if scenario != Scenario::S3 {
            warm(&self.path(match tool {
                Tool::Vbackup => "vb-location",
                Tool::Restic => "restic-repo",
            }))?;
        }
        let restored = match tool {
            Tool::Vbackup => {
                let mut cmd = self.vbackup(scenario, "restore");
                cmd.arg("--target")
                    .arg(&target)
                    .arg(format!("--restore-workers={}", self.args.restore_workers));
                self.record(scenario, Step::Restore, tool, &cmd)?;
                target.clone()
            }
            Tool::Restic => {
                let mut cmd = self.restic(scenario);
                cmd.args(["restore", "latest", "--target"]).arg(&target);
                self.record(scenario, Step::Restore, tool, &cmd)?;
                // restic restores the snapshot's absolute path below the target.
                target.join(source.strip_prefix("/")?)
            }
        };
        assert_same_tree(source, &restored)
            .with_context(|| format!("{tool:?}'s restore does not match the source"))?;
        remove(&target)
    }

    fn report(&self, scenarios: &[Scenario]) -> Result<String> {
        let mut out = String::new();
        let t = self.args.tuning;
        let workers = match self.args.restore_workers {
            0 => "the engine's default".to_string(),
            n => n.to_string(),
        };
        let loads: Vec<f64> = self.samples.values().flatten().map(|s| s.load).collect();
        writeln!(
            out,
            "{} runs; medians; vbackup: zstd {}, {} MiB packs, extra verify {}, restore workers \
             {workers}, no cache; restic: its default cache. Load average (1 min) before the \
             measured operations: {:.2}–{:.2}. Every restore was compared with its source \
             (bytes, types, modes, owners, mtimes).\n",
            self.args.runs,
            t.compression,
            t.pack_mib,
            t.extra_verify,
            loads.iter().copied().fold(f64::INFINITY, f64::min),
            loads.iter().copied().fold(0.0, f64::max),
        )?;
        for &scenario in scenarios {
            let data_mib = dir_size(&self.path(scenario.dataset())) as f64 / (1024.0 * 1024.0);
            writeln!(out, "### {} ({data_mib:.1} MiB)\n", scenario.title())?;
            writeln!(
                out,
                "| operation | vbackup | restic | vbackup / restic wall, per run | median of \
                 per-run ratios: wall / CPU / RSS |"
            )?;
            writeln!(out, "|---|---|---|---|---|")?;
            for &step in scenario.steps() {
                let (Some(vb), Some(rs)) = (
                    self.samples.get(&(scenario, step, Tool::Vbackup)),
                    self.samples.get(&(scenario, step, Tool::Restic)),
                ) else {
                    continue;
                };
                let cell = |samples: &[Sample]| {
                    let wall = median(samples.iter().map(|s| s.wall));
                    let mut cell = format!("{wall:.2} s");
                    if step.shows_throughput() {
                        let _ = write!(cell, " ({:.0} MiB/s)", data_mib / wall);
                    }
                    let _ = write!(
                        cell,
                        ", CPU {:.1} s (user {:.1} s), {:.0} MiB",
                        median(samples.iter().map(|s| s.cpu)),
                        median(samples.iter().map(|s| s.user)),
                        median(samples.iter().map(|s| s.rss_mib))
                    );
                    cell
                };
                let ratio =
                    |f: fn(&Sample) -> f64| median(vb.iter().zip(rs).map(|(v, r)| f(v) / f(r)));
                let per_run: Vec<String> = vb
                    .iter()
                    .zip(rs)
                    .map(|(v, r)| format!("{:.2}", v.wall / r.wall))
                    .collect();
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.2}× / {:.2}× / {:.2}× |",
                    step.name(),
                    cell(vb),
                    cell(rs),
                    per_run.join(", "),
                    ratio(|s| s.wall),
                    ratio(|s| s.cpu),
                    ratio(|s| s.rss_mib),
                )?;
            }
            if let (Some(v), Some(r)) = (
                self.repo_size.get(&(scenario, Tool::Vbackup)),
                self.repo_size.get(&(scenario, Tool::Restic)),
            ) {
                let mib = |b: &[u64]| median(b.iter().map(|b| *b as f64 / (1024.0 * 1024.0)));
                writeln!(
                    out,
                    "| repository size after initial backup | {:.1} MiB | {:.1} MiB | | {:.3}× |",
                    mib(v),
                    mib(r),
                    mib(v) / mib(r)
                )?;
            }
            writeln!(out)?;
        }
        for note in &self.notes {
            writeln!(out, "{note}\n")?;
        }
        Ok(out)
    }
}

/// The dataset `dir/name`, generated on first use by the generator with `options`
/// (deterministic, kept for later runs).
pub fn generate_dataset(dir: &Path, name: &str, options: &[&str]) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        eprintln!("generating the {name} dataset in {}", path.display());
        let partial = dir.join(format!("{name}.partial"));
        remove(&partial)?;
        sh(Command::new("python3")
            .arg(GENERATOR)
            .args(options)
            .arg(&partial))?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(path)
}

/// Runs `cmd`; fails when it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

/// Reads every file once so the timed operation starts with a hot page cache.
pub fn warm(dir: &Path) -> Result<()> {
    sh(Command::new("sh")
        .arg("-c")
        .arg("tar -cf - . | cat > /dev/null")
        .current_dir(dir))
}

/// Bytes of the regular files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
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

/// Removes a directory tree if it exists.
pub fn remove(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
