//! The store's error type.

use kiln_oci::Digest;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store. Messages are written for the
/// person at the terminal: they say what is wrong and, where possible, what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What kiln was doing ("reading", "creating", …).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// No image in the store matches what the user asked for.
    #[error(
        "image {name} not found in the store at {root}; run `kiln pull {name}` or `kiln images`"
    )]
    ImageNotFound {
        /// The name or id as the user typed it.
        name: String,
        /// The store's root.
        root: PathBuf,
    },
    /// An image id prefix matches more than one image.
    #[error("image id {prefix} is ambiguous: it matches {}; give more digits", candidates.join(", "))]
    Ambiguous {
        /// The prefix the user typed.
        prefix: String,
        /// The digests it matches.
        candidates: Vec<String>,
    },
    /// A blob the caller needs is not in the store.
    #[error("blob {digest} is not in the store at {root}; run `kiln fsck` to check the store")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
        /// The store's root.
        root: PathBuf,
    },
    /// Content did not hash to the digest it was expected to have.
    #[error("{what} has digest {actual}, but {expected} was expected; the data is corrupt or was changed")]
    DigestMismatch {
        /// What was being checked.
        what: String,
        /// The digest it should have had.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Stored or imported data is not what its format requires.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file or object at fault.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A reference given by the user is not valid.
    #[error(transparent)]
    Reference(#[from] kiln_oci::reference::ParseReferenceError),
    /// The request is valid but kiln does not do it.
    #[error("{0}")]
    NotSupported(String),
}

/// Shorthand for results with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
