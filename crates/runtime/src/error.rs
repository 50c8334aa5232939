//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a runtime candidate was not chosen by [`Runtime::detect`](crate::Runtime::detect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// The candidate as it was named (`"crun"`, `"/usr/local/bin/runc"`, …).
    pub candidate: String,
    /// What went wrong: not found, not runc or crun, or the probe container's error.
    pub reason: String,
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OCI runtime {} does not work here: {}",
            self.candidate, self.reason
        )
    }
}

/// Everything that can go wrong while running a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No candidate runtime passed its probe.
    #[error("no working OCI runtime found: {}", list(.0))]
    NoRuntime(Vec<ProbeFailure>),
    /// The OCI runtime itself failed (as opposed to the process it ran), with the runtime's
    /// own message from its log, e.g. `exec: "foo": executable file not found in $PATH`.
    #[error("{runtime}: {message}")]
    Runtime {
        /// The runtime's name (`runc`, `crun`).
        runtime: String,
        /// The runtime's error message.
        message: String,
    },
    /// The [`ContainerSpec`](crate::ContainerSpec) cannot be run as given.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// A mount point inside the rootfs could not be resolved or created safely.
    #[error("mount point {path}: {reason}")]
    MountPoint {
        /// The mount point as given (a path inside the container).
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Setting up the private network failed.
    #[error("network setup with {tool}: {message}")]
    Network {
        /// The helper that failed (`pasta`, `slirp4netns`) or `netns`.
        tool: String,
        /// What went wrong, with the helper's own output when there was some.
        message: String,
    },
    /// The run was cancelled; the container was killed and deleted.
    #[error("cancelled")]
    Cancelled,
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn list(failures: &[ProbeFailure]) -> String {
    if failures.is_empty() {
        return "no candidates".to_string();
    }
    failures
        .iter()
        .map(|f| format!("{}: {}", f.candidate, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Attaches a context string to an I/O result.
#[cfg(unix)]
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

#[cfg(unix)]
impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}
