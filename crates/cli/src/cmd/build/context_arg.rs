//! `kiln build`'s context argument, as docker's CLI reads it: a directory;
//! `-`, standard input holding a tar archive (plain or compressed) or a
//! Dockerfile; a git repository; or the URL of a tarball or a Dockerfile.

use anyhow::{bail, Context};
use kiln_native::context::{self, Fetched};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Where the build's context and Dockerfile come from.
pub(super) struct ContextArg {
    /// The context directory; `None` for a build without one.
    pub dir: Option<PathBuf>,
    /// The Dockerfile the argument itself gave (standard input or a URL
    /// that was not an archive), with the name errors use.
    pub dockerfile: Option<(String, Vec<u8>)>,
    /// Whether `-f` names a file inside the context (a fetched one) rather
    /// than a path on this machine.
    pub file_in_context: bool,
    /// Holds a fetched context for as long as the build runs.
    _fetched: Option<tempfile::TempDir>,
}

impl ContextArg {
    /// Resolves `arg`; `file` is `-f`, which may not also read standard
    /// input when the context does.
    pub(super) fn resolve(arg: &Path, file: Option<&Path>) -> anyhow::Result<ContextArg> {
        let text = arg.to_string_lossy();
        let stdin = arg == Path::new("-");
        if !stdin && !context::is_remote(&text) {
            match std::fs::metadata(arg) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => bail!(
                    "the build context {text} is a file, not a directory: give the directory (`kiln build -f {text} DIR`), or pipe an archive on standard input (`kiln build - < {text}`)"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("the build context {text} does not exist")
                }
                Err(e) => bail!("the build context {text}: {e}"),
            }
            return Ok(ContextArg {
                dir: Some(arg.to_path_buf()),
                dockerfile: None,
                file_in_context: false,
                _fetched: None,
            });
        }
        if stdin && file == Some(Path::new("-")) {
            bail!("`-f -` and the context `-` cannot both read standard input; give the context as a directory or an archive on standard input, and the Dockerfile with -f");
        }
        // `-f FILE -` with nothing piped in: a build without a context.
        let none = || ContextArg {
            dir: None,
            dockerfile: None,
            file_in_context: false,
            _fetched: None,
        };
        if stdin && file.is_some() && std::io::stdin().is_terminal() {
            return Ok(none());
        }
        let temp = tempfile::Builder::new()
            .prefix("kiln-context-")
            .tempdir()
            .context("cannot create a temporary directory for the build context")?;
        let fetched = if stdin {
            context::read(std::io::stdin().lock(), temp.path())
                .map_err(|e| anyhow::anyhow!("the build context on standard input: {e}"))?
        } else {
            context::fetch(&text, temp.path())
                .map_err(|e| anyhow::anyhow!("the build context {text}: {e}"))?
        };
        let (dir, dockerfile) = match fetched {
            Fetched::Dir(dir) => (Some(dir), None),
            Fetched::Dockerfile(bytes) if bytes.is_empty() && stdin && file.is_some() => {
                return Ok(none())
            }
            Fetched::Dockerfile(bytes) => {
                if let Some(f) = file {
                    bail!(
                        "-f {}: the context {text} is a Dockerfile, not an archive or repository, so there is no other file to take",
                        f.display()
                    );
                }
                let name = if stdin {
                    "<stdin>".to_string()
                } else {
                    text.to_string()
                };
                (None, Some((name, bytes)))
            }
        };
        Ok(ContextArg {
            dir,
            dockerfile,
            file_in_context: true,
            _fetched: Some(temp),
        })
    }

    /// Where `-f` points: inside a fetched context it is relative to the
    /// context's root, as docker reads it.
    pub(super) fn file_path(&self, file: &Path) -> PathBuf {
        match (&self.dir, self.file_in_context) {
            (Some(dir), true) if file != Path::new("-") => dir.join(file),
            _ => file.to_path_buf(),
        }
    }
}
