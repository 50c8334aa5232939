//! The `kiln` command line.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod build_file;
mod cmd;
mod env;
mod output;
mod progress;
mod prompt;
mod secret;
mod template;
#[cfg(unix)]
mod userns;

use clap::{CommandFactory, Parser, Subcommand};
use output::errln;
use std::process::ExitCode;

/// kiln: a daemonless container image builder.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// Log what kiln does (registry requests and retries, …) on standard
    /// error; `RUST_LOG` (tracing's directives) says what, finer.
    #[arg(long, global = true)]
    debug: bool,
    /// Colours on standard error: `auto` (on a terminal, unless NO_COLOR is
    /// set), `always` or `never`.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

/// `--color`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Whether standard error gets colours, and with it what console styles
/// (the progress display, `error:`) and the log write.
fn colors(choice: Color) -> bool {
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => !env::no_color() && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    console::set_colors_enabled_stderr(on);
    on
}

/// `--debug` and `RUST_LOG`: tracing's events on standard error. Without
/// either, no subscriber is installed and the events cost nothing.
fn init_log(debug: bool, ansi: bool) {
    let directives = match (env::rust_log(), debug) {
        (Some(given), _) => given,
        // kiln's crates; its dependencies' debug output is noise here.
        (None, true) => [
            "kiln",
            "kiln_backend",
            "kiln_native",
            "kiln_buildah",
            "kiln_registry",
            "kiln_store",
            "kiln_runtime",
            "kiln_snapshot",
            "kiln_cache",
            "kiln_frontend",
            "kiln_oci",
        ]
        .map(|c| format!("{c}=debug"))
        .join(","),
        (None, false) => return,
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
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
    Registry(Box<cmd::registry::RegistryCommand>),
    #[command(flatten)]
    Backends(cmd::backends::BackendsCommand),
    #[command(flatten)]
    Meta(cmd::meta::MetaCommand),
    #[command(flatten)]
    Init(cmd::init::InitCommand),
    #[command(flatten)]
    Pipeline(cmd::pipeline::PipelineCommand),
    #[command(flatten)]
    Serve(cmd::serve::ServeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ansi = colors(cli.color);
    init_log(cli.debug, ansi);
    #[cfg(unix)]
    if matches!(
        cli.command,
        Command::Build(_) | Command::Pipeline(_) | Command::Serve(_)
    ) {
        if let Err(message) = userns::enter_if_rootless() {
            errln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Build(c) => cmd::build::run(c),
        Command::Frontend(c) => cmd::frontend::run(c),
        Command::Store(c) => cmd::store::run(c),
        Command::Registry(c) => cmd::registry::run(*c),
        Command::Backends(c) => cmd::backends::run(c),
        Command::Meta(c) => cmd::meta::run(c, Cli::command()),
        Command::Init(c) => cmd::init::run(c),
        Command::Pipeline(c) => cmd::pipeline::run(c),
        Command::Serve(c) => cmd::serve::run(c),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            errln!(
                "{} {err:#}",
                console::style("error:").for_stderr().red().bold()
            );
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
