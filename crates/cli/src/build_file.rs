//! The build file of a build: a Dockerfile, or a ZImagefile translated
//! into one. Its own module because builds, checks and progress displays
//! all read it, and none of them should reach into another command's code.

use anyhow::Context;
use kiln_frontend::zimagefile::{self, Converted};
use std::io::Read;
use std::path::{Path, PathBuf};

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

/// The build file of `context` when no `-f` names one: its Dockerfile
/// (or, lacking one, a `dockerfile`, as buildx takes it), or its
/// ZImagefile when it has neither. A Dockerfile and a ZImagefile at once
/// are ambiguous.
pub fn default_build_file(context: &Path) -> anyhow::Result<PathBuf> {
    let names: Vec<std::ffi::OsString> = std::fs::read_dir(context)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    let has = |n: &str| names.iter().any(|x| x == n);
    let dockerfile = if !has("Dockerfile") && has("dockerfile") {
        context.join("dockerfile")
    } else {
        context.join("Dockerfile")
    };
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

/// Reads a Dockerfile or ZImagefile, or standard input for `-`; returns its
/// display name and bytes.
pub(crate) fn read_dockerfile(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowercase_dockerfile_is_taken_when_there_is_no_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(default_build_file(d).unwrap(), d.join("dockerfile"));
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(default_build_file(d).unwrap(), d.join("Dockerfile"));
        let only_z = tempfile::tempdir().unwrap();
        std::fs::write(only_z.path().join("ZImagefile"), "base: scratch\n").unwrap();
        assert_eq!(
            default_build_file(only_z.path()).unwrap(),
            only_z.path().join("ZImagefile")
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            default_build_file(empty.path()).unwrap(),
            empty.path().join("Dockerfile")
        );
    }
}
