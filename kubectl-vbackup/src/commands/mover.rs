//! `kubectl-vbackup mover --job FILE`: what runs inside a mover pod (not for people).
//!
//! Progress goes to stdout as JSON lines, the result to the termination message file, so the
//! plugin that started the pod reads both through the API.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use vbackup_engine::volumes::job::{MoverJob, MoverResult, ProgressLine};
use vbackup_engine::volumes::mover_run;

/// Arguments of `mover`.
#[derive(Debug, Args)]
pub struct MoverRunArgs {
    /// The job file (the mover's Secret, mounted).
    #[arg(long, value_name = "FILE")]
    pub job: PathBuf,
    /// Where the result goes (the container's terminationMessagePath).
    #[arg(long, value_name = "FILE", default_value = "/dev/termination-log")]
    pub result: PathBuf,
}

/// Runs the job; exit code 0 when it succeeded, 1 when it failed (the result says why).
pub async fn run(args: &MoverRunArgs) -> anyhow::Result<ExitCode> {
    let result = match read_job(&args.job) {
        Ok(job) => {
            let report = Arc::new(|line: ProgressLine| {
                if let Ok(text) = serde_json::to_string(&line) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{text}");
                    let _ = out.flush();
                }
            });
            mover_run::run(job, report).await
        }
        Err(e) => MoverResult {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    let message = result.to_message();
    std::fs::write(&args.result, &message)
        .with_context(|| format!("cannot write the result to {}", args.result.display()))?;
    if let Some(e) = &result.error {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_INCOMPLETE));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_job(path: &PathBuf) -> anyhow::Result<MoverJob> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read the mover job {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a mover job", path.display()))
}
