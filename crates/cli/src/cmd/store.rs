//! (being written) Store subcommands: images, inspect, tag, rm, prune, fsck, save, export, load.

use std::process::ExitCode;

/// Subcommands that work on the local image store.
#[derive(clap::Subcommand)]
pub enum StoreCommand {}

/// Runs a store subcommand.
pub fn run(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
