//! (being written) `kiln build`.

use std::process::ExitCode;

/// Subcommands that build images.
#[derive(clap::Subcommand)]
pub enum BuildCommand {}

/// Runs a build subcommand.
pub fn run(cmd: BuildCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
