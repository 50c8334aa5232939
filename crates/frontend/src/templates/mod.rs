//! Runtime templates: a good multi-stage build for a kind of project,
//! found from the project's files (`kiln init`) or named in a ZImagefile
//! (`runtime: node`).
//!
//! Each template is defined once, as the body of a ZImagefile in
//! [`catalog`]; its base images are `args:` whose default tags the
//! project's version hints pick. The Dockerfile `kiln init` writes is that
//! ZImagefile's translation, and `runtime: NAME` expands to the same
//! stages, so the three forms build the same thing.
//!
//! ```
//! use kiln_frontend::templates::{self, Hints};
//! let node = templates::find("node").unwrap();
//! let hints = Hints { version: Some("22".into()), ..Hints::default() };
//! let dockerfile = node.dockerfile(&hints).unwrap();
//! assert!(dockerfile.starts_with("ARG NODE_IMAGE=node:22-bookworm-slim\n"));
//! assert!(dockerfile.contains("RUN --mount=type=cache,target=/root/.npm"));
//! ```

mod catalog;
mod detect;

use crate::{Error, ErrorKind};

pub use detect::{detect, hints, Detected};

/// What a template builds, and so which version hints apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Node.js with npm: `.nvmrc`, package.json `engines.node`.
    Node,
    /// Bun: package.json `packageManager: bun@…`, `.bun-version`.
    Bun,
    /// Deno: no hint; the default tag.
    Deno,
    /// Rust: `rust-toolchain.toml` `toolchain.channel`, `rust-toolchain`.
    Rust,
    /// Python: `.python-version`, pyproject `project.requires-python`.
    Python,
    /// Go: go.mod's `go` line.
    Go,
    /// .NET on Windows Server Core: global.json `sdk.version`.
    Dotnet,
    /// A prebuilt Windows program on Nano Server: no hint.
    Exe,
}

/// A base image of a template, given as a build argument so a build can
/// point it elsewhere (`--build-arg NODE_IMAGE=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageArg {
    /// The build argument's name.
    pub arg: &'static str,
    /// The image's repository, e.g. `node`.
    pub repo: &'static str,
    /// The version part of the tag when there is no hint, e.g. `20`.
    pub default_version: &'static str,
    /// What follows the version in the tag, e.g. `-bookworm-slim`.
    pub suffix: &'static str,
    /// Whether the project's version hint replaces `default_version`.
    pub versioned: bool,
}

impl ImageArg {
    /// The image reference for a version hint (or the default).
    pub fn image(&self, version: Option<&str>) -> String {
        let version = version
            .filter(|_| self.versioned)
            .unwrap_or(self.default_version);
        format!("{}:{version}{}", self.repo, self.suffix)
    }
}

/// A runtime template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The name `kiln init --runtime` and `runtime:` take.
    pub name: &'static str,
    /// The files that make `kiln init` pick it, in words.
    pub detects: &'static str,
    /// What it builds.
    pub language: Language,
    /// Its base images.
    pub images: &'static [ImageArg],
    /// The `.dockerignore` lines `kiln init` writes when there is none.
    pub ignore: &'static [&'static str],
    /// The ZImagefile body: `stages:` with `{{APP}}` for the program name.
    body: &'static str,
}

/// What a project says about itself: the language version its base image
/// should have, and its program's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The version for the tag, e.g. `20`, `3.12`, `1.78`, `1.22`.
    pub version: Option<String>,
    /// Where the version came from, e.g. `.nvmrc`, for `kiln init` to say.
    pub version_source: Option<String>,
    /// The program: a Cargo package's name, a Python project's module, a
    /// .NET project's assembly, the `.exe`'s name. `app` when unknown.
    pub app: Option<String>,
}

/// The program name a template uses when the project does not say.
pub const DEFAULT_APP: &str = "app";

/// Every template, in the order `kiln init` tries them.
pub fn all() -> &'static [Template] {
    catalog::TEMPLATES
}

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    all().iter().find(|t| t.name == name)
}

/// The error for a template name that is not one, listing the names.
pub fn unknown(name: &str) -> Error {
    let names: Vec<&str> = all().iter().map(|t| t.name).collect();
    Error::new(
        ErrorKind::Semantic,
        format!("unknown runtime template {name:?}"),
    )
    .with_help(format!("the templates are {}", names.join(", ")))
}

impl Template {
    /// The template as a ZImagefile: `version`, the image `args:` with the
    /// hinted tags, and the stages.
    pub fn zimagefile(&self, hints: &Hints) -> String {
        let mut out = format!(
            "# The {} runtime template of kiln ({}); see `kiln templates`.\nversion: \"1\"\nargs:\n",
            self.name, self.detects
        );
        for image in self.images {
            out.push_str(&format!(
                "  {}: {}\n",
                image.arg,
                image.image(hints.version.as_deref())
            ));
        }
        out.push_str(
            &self
                .body
                .replace("{{APP}}", hints.app.as_deref().unwrap_or(DEFAULT_APP)),
        );
        out
    }
}

#[cfg(test)]
mod tests;
