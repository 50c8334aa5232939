//! Front-end subcommands: `kiln check`, `kiln parse` and `kiln convert`.

use crate::output::{errln, out};
use anyhow::Context;
use kiln_frontend::stages::{Platform, ResolveOptions};
use kiln_frontend::zimagefile::{self, Converted};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// A build file read for building: the Dockerfile's name and bytes, and
/// for a ZImagefile the translation that leads its errors back to the YAML.
#[derive(Clone)]
pub struct BuildFile {
    /// The name errors use.
    pub name: String,
    /// The Dockerfile text.
    pub bytes: Vec<u8>,
    /// Set when the file was a ZImagefile.
    pub converted: Option<Converted>,
}

impl BuildFile {
    /// Moves a front-end error about the translated Dockerfile of a
    /// ZImagefile to the YAML; other errors are returned as they are.
    pub fn locate(&self, err: kiln_frontend::Error) -> kiln_frontend::Error {
        match &self.converted {
            Some(c) if err.file == self.name => c.locate(err),
            _ => err,
        }
    }
}

/// The build file of `context` when no `-f` names one: its Dockerfile, or
/// its ZImagefile when it has no Dockerfile. Both at once are ambiguous.
pub fn default_build_file(context: &Path) -> anyhow::Result<PathBuf> {
    let dockerfile = context.join("Dockerfile");
    let zimagefile = context.join("ZImagefile");
    match (dockerfile.exists(), zimagefile.exists()) {
        (true, true) => anyhow::bail!(
            "{} has both a Dockerfile and a ZImagefile: pass -f {} or -f {} to choose",
            context.display(),
            dockerfile.display(),
            zimagefile.display()
        ),
        (false, true) => Ok(zimagefile),
        _ => Ok(dockerfile),
    }
}

/// Reads a Dockerfile, or a ZImagefile (by its name, see
/// [`zimagefile::is_zimagefile`]) translated into one; `-` reads a
/// Dockerfile from standard input.
pub fn read_build_file(path: &Path) -> anyhow::Result<BuildFile> {
    let (name, bytes) = read_dockerfile(path)?;
    if path == Path::new("-") || !zimagefile::is_zimagefile(path) {
        return Ok(BuildFile {
            name,
            bytes,
            converted: None,
        });
    }
    let converted = zimagefile::convert(&name, &bytes)?;
    Ok(BuildFile {
        // Not the ZImagefile's own name: errors about lines of the
        // translation must not pass for lines of the YAML.
        name: format!("{name} (as a Dockerfile)"),
        bytes: converted.dockerfile.clone().into_bytes(),
        converted: Some(converted),
    })
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_dockerfile(&args.file)?;
    let converted = zimagefile::convert(&name, &bytes)?;
    crate::output::out!("{}", converted.dockerfile);
    Ok(ExitCode::SUCCESS)
}

/// Reads a Dockerfile or ZImagefile, or standard input for `-`; returns its
/// display name and bytes.
fn read_dockerfile(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the Dockerfile from standard input")?;
        return Ok(("<stdin>".to_string(), buf));
    }
    let what = if zimagefile::is_zimagefile(path) {
        "ZImagefile"
    } else {
        "Dockerfile"
    };
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok((path.display().to_string(), bytes))
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
