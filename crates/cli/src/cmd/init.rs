//! `kiln init` and `kiln templates`: a Dockerfile or ZImagefile for a
//! project, written from the runtime template its files point to.

use crate::output::{errln, outln};
use anyhow::{bail, Context};
use kiln_frontend::templates::{self, Hints, Template};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Subcommands that write build files from runtime templates.
#[derive(clap::Subcommand)]
pub enum InitCommand {
    /// Write a multi-stage Dockerfile (or ZImagefile) for the project in
    /// DIR, from the runtime template its files point to (see `kiln
    /// templates`), with base image tags from its version hints.
    Init(InitArgs),
    /// List the runtime templates: their names, the files that pick them
    /// and their default base images.
    Templates,
}

/// The file `kiln init` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Dockerfile.
    Dockerfile,
    /// A ZImagefile (the template's stages, to edit).
    Zimagefile,
}

/// Arguments of `kiln init`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The template to use instead of the one the project's files point to.
    #[arg(long, value_name = "NAME")]
    runtime: Option<String>,
    /// What to write.
    #[arg(long, value_enum, default_value = "dockerfile")]
    format: Format,
    /// Replace an existing Dockerfile or ZImagefile.
    #[arg(long)]
    force: bool,
    /// The project directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// Runs `kiln init` or `kiln templates`.
pub fn run(cmd: InitCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        InitCommand::Init(args) => init(args),
        InitCommand::Templates => list(),
    }
}

fn list() -> anyhow::Result<ExitCode> {
    let rows: Vec<[String; 3]> = templates::all()
        .iter()
        .map(|t| {
            let images: Vec<String> = t.images.iter().map(|i| i.image(None)).collect();
            [t.name.to_string(), t.detects.to_string(), images.join(", ")]
        })
        .collect();
    let header = ["NAME", "DETECTS", "BASE IMAGES"].map(str::to_string);
    let width = |col: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    for row in [&header].into_iter().chain(&rows) {
        outln!("{:w0$}  {:w1$}  {}", row[0], row[1], row[2]);
    }
    Ok(ExitCode::SUCCESS)
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let (template, hints, why) = choose(&args)?;
    let (name, text) = match args.format {
        Format::Dockerfile => ("Dockerfile", template.dockerfile(&hints)?),
        Format::Zimagefile => ("ZImagefile", template.zimagefile(&hints)),
    };
    let path = dir.join(name);
    let other = dir.join(match args.format {
        Format::Dockerfile => "ZImagefile",
        Format::Zimagefile => "Dockerfile",
    });
    for existing in [&path, &other] {
        if existing.exists() && !args.force {
            bail!(
                "{} exists; pass --force to replace it{}",
                existing.display(),
                if *existing == other {
                    " (a Dockerfile and a ZImagefile side by side need -f to build)"
                } else {
                    ""
                }
            );
        }
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    errln!("{why}");
    let version = match (&hints.version, &hints.version_source) {
        (Some(v), Some(source)) => format!("version {v} from {source}"),
        _ => "default version".to_string(),
    };
    let images: Vec<String> = template
        .images
        .iter()
        .map(|i| i.image(hints.version.as_deref()))
        .collect();
    errln!("base images ({version}): {}", images.join(", "));
    if other.exists() {
        errln!(
            "warning: {} is still there: build with -f {}",
            other.display(),
            path.display()
        );
    }
    let ignore = dir.join(".dockerignore");
    if !ignore.exists() {
        let mut lines = template.ignore.join("\n");
        lines.push('\n');
        std::fs::write(&ignore, lines)
            .with_context(|| format!("cannot write {}", ignore.display()))?;
        outln!("{}", ignore.display());
    }
    outln!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The template (named, or detected), its hints, and a line saying why.
fn choose(args: &InitArgs) -> anyhow::Result<(&'static Template, Hints, String)> {
    let dir: &Path = &args.dir;
    if let Some(name) = &args.runtime {
        let template = templates::find(name).ok_or_else(|| {
            let e = templates::unknown(name);
            anyhow::anyhow!("{}; {}", e.message, e.help.unwrap_or_default())
        })?;
        let hints = templates::hints(dir, template)?;
        return Ok((template, hints, format!("template {name} (--runtime)")));
    }
    match templates::detect(dir)? {
        Some(d) => {
            let why = format!("template {} (found {})", d.template.name, d.marker);
            Ok((d.template, d.hints, why))
        }
        None => bail!(
            "no template fits {}: it has none of package.json, deno.json, Cargo.toml, pyproject.toml, requirements.txt, go.mod, *.csproj, *.sln, *.exe; pass --runtime NAME (see `kiln templates`)",
            dir.display()
        ),
    }
}
