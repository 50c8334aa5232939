//! (being written) Registry subcommands: pull, push, copy, login, logout.

use std::process::ExitCode;

/// Subcommands that talk to registries.
#[derive(clap::Subcommand)]
pub enum RegistryCommand {}

/// Runs a registry subcommand.
pub fn run(cmd: RegistryCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
