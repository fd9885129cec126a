//! `kubectl vbackup completion SHELL`.

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;

/// Arguments of `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to generate the script for.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

/// Writes the completion script for `kubectl-vbackup` to stdout.
pub fn run(args: &CompletionArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "kubectl-vbackup",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
