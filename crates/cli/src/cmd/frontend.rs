//! Front-end subcommands: `kiln check`, `kiln parse` and `kiln convert`.

use crate::build_file::{default_build_file, read_build_file, read_dockerfile};
use crate::output::{errln, out};
use kiln_frontend::stages::{Platform, ResolveOptions};
use kiln_frontend::zimagefile;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands that read Dockerfiles without building.
#[derive(clap::Subcommand)]
pub enum FrontendCommand {
    /// Parse and resolve a Dockerfile, and print the stages and steps a
    /// build would run (after ARG/ENV expansion, unused stages pruned).
    Check(CheckArgs),
    /// Parse a Dockerfile and print its syntax tree.
    Parse(ParseArgs),
    /// Print the Dockerfile a ZImagefile stands for.
    Convert(ConvertArgs),
}

/// Arguments of `kiln convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The ZImagefile; `-` reads standard input.
    #[arg(default_value = "ZImagefile")]
    file: PathBuf,
}

/// Arguments of `kiln check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The Dockerfile or ZImagefile (default: CONTEXT/Dockerfile, or
    /// CONTEXT/ZImagefile when there is no Dockerfile); `-` reads a
    /// Dockerfile from standard input.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// A build argument, `NAME=VALUE` (or `NAME` to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_args: Vec<String>,
    /// The stage to build (default: the last one).
    #[arg(long)]
    target: Option<String>,
    /// The target platform, e.g. `linux/arm64` (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// The build context directory.
    context: PathBuf,
}

/// Arguments of `kiln parse`.
#[derive(clap::Args)]
pub struct ParseArgs {
    /// Print BuildKit's AST dump format (the only format so far).
    #[arg(long, required = true)]
    dump: bool,
    /// The Dockerfile; `-` reads standard input.
    file: PathBuf,
}

/// Runs a front-end subcommand.
pub fn run(cmd: FrontendCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FrontendCommand::Check(args) => check(args),
        FrontendCommand::Parse(args) => parse(args),
        FrontendCommand::Convert(args) => convert(args),
    }
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_dockerfile(&args.file)?;
    let converted = zimagefile::convert(&name, &bytes)?;
    crate::output::out!("{}", converted.dockerfile);
    Ok(ExitCode::SUCCESS)
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    debug_assert!(args.dump);
    let (name, bytes) = read_dockerfile(&args.file)?;
    let ast = kiln_frontend::parse(&name, &bytes)?;
    out!("{}", ast.dump());
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let dockerfile = match &args.file {
        Some(file) => file.clone(),
        None => default_build_file(&args.context)?,
    };
    let file = read_build_file(&dockerfile)?;
    let (name, bytes) = (&file.name, &file.bytes);
    let ast = kiln_frontend::parse(name, bytes).map_err(|e| file.locate(e))?;
    // A broken .dockerignore fails the build, so it fails the check too.
    kiln_frontend::dockerignore::load(&args.context, &dockerfile)?;
    let mut options = ResolveOptions {
        build_args: parse_build_args(&args.build_args, |k| std::env::var(k).ok())?,
        target: args.target.clone(),
        ..ResolveOptions::default()
    };
    if let Some(platform) = &args.platform {
        options.target_platform = Platform::parse(platform)
            .map_err(|e| anyhow::anyhow!("invalid --platform {platform:?}: {e}"))?;
    }
    let plan = kiln_frontend::stages::resolve(&ast, &options).map_err(|e| file.locate(e))?;
    let syntax = kiln_frontend::syntax_warning(bytes);
    let (findings, fail) = super::lint::findings(&file, &ast);
    for warning in syntax.iter().chain(&ast.warnings) {
        errln!("warning: {name}:{}: {}", warning.line, warning.message);
    }
    // BuildKit's checks; empty continuation lines were shown just above.
    let rest: Vec<_> = findings
        .iter()
        .filter(|p| p.finding.rule != "NoEmptyContinuation")
        .cloned()
        .collect();
    super::lint::print_lines(&rest);
    out!("{plan}");
    if fail && !findings.is_empty() {
        errln!("error: the Dockerfile's `# check=error=true` makes these warnings errors");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `--build-arg` values as docker does: `NAME=VALUE`, or `NAME`
/// alone to take the value from the environment (skipped when unset).
pub fn parse_build_args(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in args {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg.as_str(), env(arg)),
        };
        if name.is_empty() {
            anyhow::bail!("invalid --build-arg {arg:?}: expected NAME=VALUE");
        }
        if let Some(value) = value {
            out.insert(name.to_string(), value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_take_values_from_the_environment_when_bare() {
        let args = [
            "A=1".to_string(),
            "B".to_string(),
            "C".to_string(),
            "D=x=y".to_string(),
        ];
        let got = parse_build_args(&args, |k| (k == "B").then(|| "env".to_string())).unwrap();
        let want: BTreeMap<String, String> = [("A", "1"), ("B", "env"), ("D", "x=y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(parse_build_args(&["=v".to_string()], |_| None).is_err());
    }
}
