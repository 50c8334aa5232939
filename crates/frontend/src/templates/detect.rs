//! Which template a project directory wants, and its version hints, read
//! from the project's own files with real TOML and JSON parsers.

use super::{find, Hints, Language, Template};
use crate::{Error, ErrorKind};
use std::path::Path;

/// A project's template and hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The template the project's files point to.
    pub template: &'static Template,
    /// The file that decided it, e.g. `package.json`.
    pub marker: String,
    /// The version and program name the project gives.
    pub hints: Hints,
}

/// Finds the template for the project in `dir`: the first that matches in
/// the order deno, bun, node, rust, python, go, dotnet, nanoserver (see
/// [`super::all`]), with its hints. `None` when no template matches.
pub fn detect(dir: &Path) -> Result<Option<Detected>, Error> {
    let Some((name, marker)) = marker(dir)? else {
        return Ok(None);
    };
    let template = find(name).expect("detection names a template of the catalog");
    let hints = hints(dir, template)?;
    Ok(Some(Detected {
        template,
        marker,
        hints,
    }))
}

/// The template's name and the file that picked it.
fn marker(dir: &Path) -> Result<Option<(&'static str, String)>, Error> {
    let has = |name: &str| dir.join(name).is_file();
    let first = |names: &[&str]| names.iter().find(|n| has(n)).map(|n| n.to_string());
    if let Some(file) = first(&["deno.json", "deno.jsonc"]) {
        return Ok(Some(("deno", file)));
    }
    if has("package.json") {
        if let Some(file) = first(&["bun.lockb", "bun.lock", "bunfig.toml"]) {
            return Ok(Some(("bun", file)));
        }
        return Ok(Some(("node", "package.json".to_string())));
    }
    if has("Cargo.toml") {
        return Ok(Some(("rust", "Cargo.toml".to_string())));
    }
    if let Some(file) = first(&["pyproject.toml", "requirements.txt"]) {
        return Ok(Some(("python", file)));
    }
    if has("go.mod") {
        return Ok(Some(("go", "go.mod".to_string())));
    }
    for (ext, name) in [
        ("csproj", "dotnet"),
        ("sln", "dotnet"),
        ("exe", "nanoserver"),
    ] {
        if let Some(stem) = root_file_stem(dir, ext)? {
            return Ok(Some((name, format!("{stem}.{ext}"))));
        }
    }
    Ok(None)
}

/// The name without `.ext` of the first (by name) file `*.ext` in `dir`.
fn root_file_stem(dir: &Path, ext: &str) -> Result<Option<String>, Error> {
    let suffix = format!(".{ext}");
    Ok(root_files(dir)?
        .iter()
        .filter_map(|f| f.strip_suffix(&suffix))
        .filter(|stem| !stem.is_empty())
        .min()
        .map(str::to_string))
}

/// The names of the regular files directly in `dir`.
fn root_files(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Semantic,
        format!("cannot read {}: {e}", path.display()),
    )
}

/// The version hints and program name the project in `dir` gives for
/// `template` (whichever template its files would pick).
pub fn hints(dir: &Path, template: &Template) -> Result<Hints, Error> {
    let language = template.language;
    let project = Project { dir };
    let mut hints = Hints::default();
    let mut set = |version: Option<String>, source: &str| {
        if hints.version.is_none() {
            if let Some(v) = version {
                hints.version = Some(v);
                hints.version_source = Some(source.to_string());
            }
        }
    };
    match language {
        Language::Node => {
            set(project.line(".nvmrc")?.and_then(|v| major(&v)), ".nvmrc");
            let package = project.json("package.json")?;
            let engines = package
                .as_ref()
                .and_then(|p| p.pointer("/engines/node"))
                .and_then(|v| v.as_str());
            set(engines.and_then(major), "package.json engines.node");
        }
        Language::Bun => {
            set(
                project.line(".bun-version")?.and_then(|v| major(&v)),
                ".bun-version",
            );
            let package = project.json("package.json")?;
            let manager = package
                .as_ref()
                .and_then(|p| p.get("packageManager"))
                .and_then(|v| v.as_str())
                .and_then(|m| m.strip_prefix("bun@"));
            set(manager.and_then(major), "package.json packageManager");
        }
        Language::Deno | Language::Exe => {}
        Language::Rust => {
            let toolchain = project.toml("rust-toolchain.toml")?;
            let channel = toolchain
                .as_ref()
                .and_then(|t| t.get("toolchain"))
                .and_then(|t| t.get("channel"))
                .and_then(|c| c.as_str());
            set(channel.and_then(major_minor), "rust-toolchain.toml");
            // The legacy file is either a bare channel or TOML.
            if let Some(text) = project.text("rust-toolchain")? {
                let channel = match text.parse::<toml::Table>() {
                    Ok(table) => table
                        .get("toolchain")
                        .and_then(|t| t.get("channel"))
                        .and_then(|c| c.as_str())
                        .map(str::to_string),
                    Err(_) => text.lines().next().map(|l| l.trim().to_string()),
                };
                set(channel.as_deref().and_then(major_minor), "rust-toolchain");
            }
            let cargo = project.toml("Cargo.toml")?;
            hints.app = cargo
                .as_ref()
                .and_then(|c| c.get("package"))
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .and_then(program_name);
        }
        Language::Python => {
            set(
                project
                    .line(".python-version")?
                    .and_then(|v| major_minor(&v)),
                ".python-version",
            );
            let pyproject = project.toml("pyproject.toml")?;
            let table = pyproject.as_ref().and_then(|p| p.get("project"));
            let requires = table
                .and_then(|p| p.get("requires-python"))
                .and_then(|r| r.as_str());
            set(
                requires.and_then(major_minor),
                "pyproject.toml requires-python",
            );
            // The import name of a distribution: `my-app` is `my_app`.
            hints.app = table
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .map(|n| n.replace(['-', '.'], "_"))
                .as_deref()
                .and_then(program_name);
        }
        Language::Go => {
            let go = project.text("go.mod")?.and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find_map(|l| l.strip_prefix("go "))
                    .and_then(|v| major_minor(v.trim()))
            });
            set(go, "go.mod");
        }
        Language::Dotnet => {
            let global = project.json("global.json")?;
            let sdk = global
                .as_ref()
                .and_then(|g| g.pointer("/sdk/version"))
                .and_then(|v| v.as_str());
            set(sdk.and_then(major_minor), "global.json sdk.version");
            hints.app = root_file_stem(dir, "csproj")?
                .as_deref()
                .and_then(program_name);
        }
    }
    if language == Language::Exe {
        hints.app = root_file_stem(dir, "exe")?
            .as_deref()
            .and_then(program_name);
    }
    Ok(hints)
}

/// Reads the project's files.
struct Project<'a> {
    dir: &'a Path,
}

impl Project<'_> {
    /// The file's text, `None` when it does not exist.
    fn text(&self, name: &str) -> Result<Option<String>, Error> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// The first line that is not blank or a comment.
    fn line(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.text(name)?.and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
        }))
    }

    fn json(&self, name: &str) -> Result<Option<serde_json::Value>, Error> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            let mut err = Error::new(ErrorKind::Syntax, format!("invalid JSON: {e}"))
                .in_file(name)
                .at(e.line(), e.column());
            if let Some(line) = e.line().checked_sub(1).and_then(|i| text.lines().nth(i)) {
                err = err.with_source_line(line);
            }
            err
        })
    }

    fn toml(&self, name: &str) -> Result<Option<toml::Table>, Error> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        text.parse::<toml::Table>().map(Some).map_err(|e| {
            let mut err = Error::new(ErrorKind::Syntax, format!("invalid TOML: {}", e.message()))
                .in_file(name);
            if let Some(span) = e.span() {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                err = err.at(line, column);
                if let Some(source) = text.lines().nth(line - 1) {
                    err = err.with_source_line(source);
                }
            }
            err
        })
    }
}

/// The numeric parts of the first version in `spec` (`>=18.2 <21`,
/// `v20.11.0`, `^3.11`, `~=3.10`, `1.78.0`), `None` for names such as
/// `lts/*` or `stable`.
fn numbers(spec: &str) -> Option<Vec<&str>> {
    let start = spec.find(|c: char| c.is_ascii_digit())?;
    // A name that merely holds a digit (`lts/hydrogen2`) is no version.
    if spec[..start]
        .chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'v')
    {
        return None;
    }
    let rest = &spec[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    Some(rest[..end].split('.').filter(|p| !p.is_empty()).collect())
}

/// The major version: `20` of `v20.11.0` or `>=20`.
fn major(spec: &str) -> Option<String> {
    numbers(spec)?.first().map(|m| m.to_string())
}

/// Major and minor: `3.12` of `3.12.1` or `>=3.12`; a bare major stays so.
fn major_minor(spec: &str) -> Option<String> {
    let parts = numbers(spec)?;
    match parts.as_slice() {
        [] => None,
        [major] => Some(major.to_string()),
        [major, minor, ..] => Some(format!("{major}.{minor}")),
    }
}

/// `name` when it can go in a command line and a file name as it is.
fn program_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then(|| name.to_string())
}
