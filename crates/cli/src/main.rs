//! The `kiln` command line.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod env;
mod output;
mod progress;
mod prompt;
mod secret;
mod template;
mod userns;

use clap::{CommandFactory, Parser, Subcommand};
use output::errln;
use std::process::ExitCode;

/// kiln: a daemonless container image builder.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Build(cmd::build::BuildCommand),
    #[command(flatten)]
    Frontend(cmd::frontend::FrontendCommand),
    #[command(flatten)]
    Store(cmd::store::StoreCommand),
    #[command(flatten)]
    Registry(cmd::registry::RegistryCommand),
    #[command(flatten)]
    Meta(cmd::meta::MetaCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Build(_)) {
        if let Err(message) = userns::enter_if_rootless() {
            errln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Build(c) => cmd::build::run(c),
        Command::Frontend(c) => cmd::frontend::run(c),
        Command::Store(c) => cmd::store::run(c),
        Command::Registry(c) => cmd::registry::run(c),
        Command::Meta(c) => cmd::meta::run(c, Cli::command()),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            errln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match output::stdout_error() {
        Some(e) => {
            errln!("error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
        None => code,
    }
}
