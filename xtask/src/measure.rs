//! One measured child process: wall time, CPU time and peak RSS of that process alone, and
//! the machine's load just before it started.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// What one measured operation cost.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: f64,
    /// User + system CPU seconds.
    pub cpu: f64,
    pub user: f64,
    pub rss_mib: f64,
    /// One-minute load average just before the operation started.
    pub load: f64,
}

/// The one-minute load average (`/proc/loadavg`).
pub fn load_average() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("unexpected /proc/loadavg {text:?}"))
}

/// Runs `cmd` under `/usr/bin/time`; fails when it fails. Returns its sample and stdout.
pub fn measure(cmd: &Command) -> Result<(Sample, String)> {
    let timing = temp_path("time");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%U %S %M", "-o"])
        .arg(&timing)
        .arg(&program)
        .args(&args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let load = load_average()?;
    let start = Instant::now();
    let output = timed
        .output()
        .with_context(|| format!("running {program:?} under /usr/bin/time"))?;
    let wall = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "{program:?} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&timing)?;
    let _ = std::fs::remove_file(&timing);
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [user, sys, rss_kib] = fields[..] else {
        bail!("unexpected /usr/bin/time output {text:?}");
    };
    Ok((
        Sample {
            wall,
            cpu: user + sys,
            user,
            rss_mib: rss_kib / 1024.0,
            load,
        },
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()))
}

/// The median; NaN for none.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
