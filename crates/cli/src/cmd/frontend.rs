//! (being written) Front-end subcommands: check, parse.

use std::process::ExitCode;

/// Subcommands that read Dockerfiles without building.
#[derive(clap::Subcommand)]
pub enum FrontendCommand {}

/// Runs a front-end subcommand.
pub fn run(cmd: FrontendCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
