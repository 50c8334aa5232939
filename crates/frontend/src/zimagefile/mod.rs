//! ZImagefiles: kiln's YAML image format, read into the Dockerfile it
//! stands for, so a ZImagefile builds through the same parser, plan, cache
//! keys and backends as that Dockerfile, to the same image.
//!
//! ```
//! let yaml = b"version: \"1\"\nbase: alpine:3.20\nsteps:\n  - run: apk add curl\n    cache: /var/cache/apk\ncmd: [curl, --version]\n";
//! let converted = kiln_frontend::zimagefile::convert("ZImagefile", yaml).unwrap();
//! assert_eq!(
//!     converted.dockerfile,
//!     "FROM alpine:3.20\nRUN --mount=type=cache,target=/var/cache/apk apk add curl\nCMD [\"curl\", \"--version\"]\n"
//! );
//! ```
//!
//! # Reading the YAML
//!
//! The YAML is read with [`saphyr`], the maintained successor of
//! `yaml-rust`/`yaml-rust2` (YAML 1.2, pure Rust, regular releases): its
//! `MarkedYaml` keeps each node's line and column, which every error here
//! points at, and it rejects duplicated keys as YAML requires.
//! `serde_yaml` is unmaintained and drops positions; `marked-yaml` wraps
//! the same parser with fewer releases.
//!
//! # The mapping
//!
//! The format and its translation are described with an example in
//! `docs/zimagefile.md`; in short:
//!
//! * `args: {NAME: default}` → `ARG NAME=default` before the first FROM,
//!   and `ARG NAME` again in each stage so that steps see it too.
//! * `base: IMAGE` → `FROM IMAGE`; `stages: {name: {base, steps, …}}` →
//!   `FROM base AS name` per stage, the last being the image. `platform:`
//!   → `FROM --platform=…`; `os: windows` is `windows/amd64`, `os: linux`
//!   is linux on this host's architecture.
//! * Steps, in order: `run` → `RUN`; a list is one RUN of the commands
//!   joined with ` && ` (one layer, stopping at the first failure, as a
//!   script would); a block string with several lines is a script run with
//!   `set -e`, written as a quoted heredoc. `env:` beside `run:` exports
//!   the variables for that command only (`export K='v' && cmd`), which
//!   reaches compound commands and `$K` in the command itself, as a
//!   `K=v cmd` prefix would not, and leaves the image's environment alone.
//!   Both need a POSIX shell, so a Windows stage refuses them.
//!   `cache:` entries → `--mount=type=cache,target=…[,id=…][,sharing=…][,readonly]`.
//!   `copy`/`add` → `COPY`/`ADD [--from] [--chown] [--chmod] ["src", …, "to"]`;
//!   `env` → `ENV`, `workdir` → `WORKDIR`, `user` → `USER`.
//! * Image metadata (`labels, env, workdir, user, expose, volumes,
//!   healthcheck, stopsignal, entrypoint, cmd`) goes after the stage's
//!   steps, in that order whatever the order of the keys (ENTRYPOINT before
//!   CMD, because ENTRYPOINT clears an earlier CMD): it describes the image
//!   and does not change what the steps run with. At the top level of a
//!   `stages:` file it belongs to the last stage.
//! * `cmd`, `entrypoint` and `healthcheck.test`: a list is exec form (JSON),
//!   a string shell form. `healthcheck: none` → `HEALTHCHECK NONE`.
//!
//! Values are Dockerfile words: `$VAR` and `${VAR}` expand where the
//! Dockerfile instruction they become expands them (base, copy and add,
//! env, labels, workdir, user, expose, volumes, stopsignal, cache) and `\$`
//! is a literal `$`; other backslashes are literal. Commands (`run`, `cmd`,
//! `entrypoint`, `healthcheck.test`) go to the shell or program as written.
//! Scalars are text as written: `1.10` stays `1.10`, `yes` stays `yes`.
//!
//! `runtime: NAME` expands to the stages of that runtime template (see
//! [`crate::templates`]), with its base images as `args:` the file can
//! override; the file's `steps:` and metadata go to the template's last
//! stage (a single-valued key such as `cmd` replacing the template's).
//! `build: DIR` (or `build: {context, file, args, target}`) in place of
//! `base:` builds that directory first: the translation's `FROM` names a
//! build context ([`Converted::builds`]) that `kiln build` fills with the
//! result. `runtime:` inside a stage is part of the format but not
//! implemented: it fails with
//! [`ErrorKind::NotSupported`](crate::ErrorKind::NotSupported).

mod convert;
mod model;
pub(crate) mod yaml;

use crate::{Error, ErrorKind};
use convert::Origin;
use std::path::Path;

// Here rather than in `templates`: templates are ZImagefile data, and the
// ZImagefile's `runtime:` reads them, so the translation stays on this side
// and `templates` depends on nothing of this module.
impl crate::templates::Template {
    /// The template as a Dockerfile: the translation of
    /// [`Template::zimagefile`](crate::templates::Template::zimagefile).
    pub fn dockerfile(&self, hints: &crate::templates::Hints) -> Result<String, Error> {
        let yaml = self.zimagefile(hints);
        let file = format!("runtime template {:?}", self.name);
        Ok(convert(&file, yaml.as_bytes())?.dockerfile)
    }
}

/// A `build:` base: a directory built first, its image given to the
/// translation's `FROM` as the build context named [`BaseBuild::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBuild {
    /// The build-context name the Dockerfile's `FROM` uses
    /// (`zimagefile/build-1`, …).
    pub name: String,
    /// The directory, relative to the ZImagefile's build context.
    pub context: String,
    /// Its Dockerfile or ZImagefile, relative to that directory (default:
    /// `Dockerfile`, else `ZImagefile`, as `kiln build` finds them).
    pub file: Option<String>,
    /// Build arguments for it.
    pub args: Vec<(String, String)>,
    /// The stage of it to build.
    pub target: Option<String>,
}

/// A ZImagefile read and translated: the Dockerfile it stands for, and a
/// way back from that Dockerfile's lines to the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The Dockerfile text, one instruction per line (heredoc bodies aside).
    pub dockerfile: String,
    /// The `build:` bases, which must be built first and given as build
    /// contexts of their names.
    pub builds: Vec<BaseBuild>,
    file: String,
    lines: Vec<String>,
    origins: Vec<Origin>,
}

/// Reads the ZImagefile `source`, named `file` in errors, checks it, and
/// translates it into a Dockerfile. The Dockerfile is parsed and its
/// instructions checked before it is returned, and every error points at
/// the YAML line and column, and names the stage and step.
pub fn convert(file: &str, source: &[u8]) -> Result<Converted, Error> {
    let source = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
    let text = std::str::from_utf8(source).map_err(|e| {
        Error::new(
            ErrorKind::Syntax,
            format!(
                "a ZImagefile must be UTF-8: invalid byte at offset {}",
                e.valid_up_to()
            ),
        )
        .in_file(file)
    })?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let root = yaml::load(file, text, &lines)?;
    let reader = model::Reader {
        file,
        lines: &lines,
    };
    let mut typed = reader.file(&root)?;
    let mut builds = Vec::new();
    for stage in &mut typed.stages {
        if let Some(mut build) = stage.build.take() {
            // A name no stage can have (stage names have no `/`), so the
            // FROM finds the build context, never a stage.
            build.name = format!("zimagefile/build-{}", builds.len() + 1);
            stage.base = build.name.clone();
            builds.push(build);
        }
    }
    let out = convert::dockerfile(&typed);
    let converted = Converted {
        dockerfile: out.text,
        builds,
        file: file.to_string(),
        lines,
        origins: out.origins,
    };
    let ast =
        crate::parse(file, converted.dockerfile.as_bytes()).map_err(|e| converted.locate(e))?;
    crate::instructions::parse(&ast).map_err(|e| converted.locate(e))?;
    Ok(converted)
}

impl Converted {
    /// Moves an error about a line of [`Converted::dockerfile`] to the YAML
    /// it came from: the ZImagefile's name, line, column and source line,
    /// and the stage and step before the message. Errors without a line
    /// keep theirs.
    pub fn locate(&self, mut err: Error) -> Error {
        let Some(origin) = err.line.checked_sub(1).and_then(|i| self.origins.get(i)) else {
            err.file = self.file.clone();
            return err;
        };
        err.file = self.file.clone();
        err.line = origin.pos.line;
        err.column = origin.pos.col;
        err.source_line = origin
            .pos
            .line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .cloned();
        if !origin.context.is_empty() {
            err.message = format!("{}: {}", origin.context, err.message);
        }
        err
    }
}

/// Whether `path` names a ZImagefile rather than a Dockerfile: a file
/// called `ZImagefile`, or any `*.yaml` / `*.yml`.
pub fn is_zimagefile(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name == "ZImagefile" || name.ends_with(".yaml") || name.ends_with(".yml")
}
