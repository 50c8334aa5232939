//! The error a build ends with.

use std::path::PathBuf;

/// Why a build failed. Dockerfile problems and failing steps carry the
/// file, line and the offending source line ([`kiln_frontend::Error`]).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile is wrong, or one of its steps failed; the error says
    /// where. Boxed: it carries the source line and a hint, and would make
    /// every `Result` of the engine large.
    #[error(transparent)]
    Dockerfile(Box<kiln_frontend::Error>),
    /// The request itself is unusable (a missing context, a bad option).
    #[error("{0}")]
    Request(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// A registry failed while pushing.
    #[error(transparent)]
    Registry(#[from] kiln_registry::Error),
    /// Writing an output failed.
    #[error("writing {}: {source}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A layer that a `--cache-from` cache named could not be fetched from
    /// it (gone, or corrupt); the build is tried again without the cache.
    #[error("{0}")]
    CacheLayer(String),
    /// The feature is known but this backend cannot do it.
    #[error("{0}")]
    NotSupported(String),
    /// Another stage failed first; this stage stopped.
    #[error("cancelled because another stage failed")]
    Cancelled,
    /// The build was interrupted ([`BuildRequest::interrupt`](crate::BuildRequest::interrupt)
    /// was set, by SIGINT or SIGTERM in the CLI); running containers were
    /// killed and nothing was stored.
    #[error("build interrupted")]
    Interrupted,
}

impl From<kiln_frontend::Error> for BuildError {
    fn from(err: kiln_frontend::Error) -> BuildError {
        BuildError::Dockerfile(Box::new(err))
    }
}
