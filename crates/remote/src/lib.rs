//! kiln's remote build daemon and its client.
//!
//! `kiln serve` runs a [`Server`]: HTTP/2 over a unix socket, or over TCP
//! with mutual TLS. `kiln build --backend remote` runs a [`RemoteBackend`],
//! a [`kiln_backend::BuildBackend`] that walks the build context
//! (after `.dockerignore`), asks the daemon which file contents it lacks by
//! digest, uploads only those, starts the build and shows its events as
//! they stream back, then copies the image into the client's store. The
//! wire format is JSON bodies and a newline-delimited JSON event stream,
//! [`proto`], described in `docs/remote.md`.
//!
//! The server builds with whatever backend its caller hands it (a factory
//! of `Box<dyn BuildBackend>`), so this crate does not depend on the native
//! backend; the CLI wires `kiln serve` to it.

#![deny(missing_docs)]

pub mod client;
pub mod context;
pub mod net;
pub mod proto;
pub mod server;

pub use client::{Client, RemoteBackend};
pub use net::{Endpoint, TlsFiles};
pub use server::{BackendFactory, Server};

use proto::ErrorBody;

/// What the remote client and server fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad address, certificate or key file.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a local file.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Connecting to the daemon, or the connection failing.
    #[error("the kiln daemon at {endpoint}: {message}")]
    Connect {
        /// The daemon's address.
        endpoint: String,
        /// What went wrong (a TLS alert, a refused connection).
        message: String,
    },
    /// The daemon answered with an error.
    #[error("the kiln daemon refused the request: {}", .0.message)]
    Remote(ErrorBody),
    /// The daemon's answer did not follow the protocol.
    #[error("the kiln daemon's answer is not kiln's protocol: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    }
}
