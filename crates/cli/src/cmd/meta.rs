//! Commands about kiln itself: `version`, `completion` and `man`, the last
//! two generated from the same clap definition as the parser, so they
//! never drift from it.

use crate::output::{out, outln};
use std::process::ExitCode;

/// Subcommands about kiln itself.
#[derive(clap::Subcommand)]
pub enum MetaCommand {
    /// Show kiln's version, the commit it was built from and its features.
    Version,
    /// Print a shell completion script (e.g. `kiln completion bash >
    /// /etc/bash_completion.d/kiln`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print kiln's manual page (roff), e.g. `kiln man | man -l -`.
    Man,
}

/// The commit kiln was built from, when built from a git checkout.
const COMMIT: Option<&str> = option_env!("KILN_GIT_COMMIT");

/// Runs a meta subcommand; `cli` is the whole command definition.
pub fn run(cmd: MetaCommand, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    match cmd {
        MetaCommand::Version => {
            outln!("kiln {}", env!("CARGO_PKG_VERSION"));
            outln!("commit: {}", COMMIT.unwrap_or("unknown"));
            outln!(
                "features: dockerfile, zimagefile, native-linux-backend (runc/crun, overlayfs), \
                 buildah-backend, registry, oci-layout, docker-archive, windows-layers"
            );
        }
        MetaCommand::Completion { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli, "kiln", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
        }
        MetaCommand::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cli).render(&mut buf)?;
            out!("{}", String::from_utf8_lossy(&buf));
        }
    }
    Ok(ExitCode::SUCCESS)
}
