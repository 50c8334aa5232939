//! Why an image's file system could not be read.

use kiln_oci::Digest;
use std::path::PathBuf;

/// An error from [`super::ImageFs`], written for the user: it names the
/// layer, path or user involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer blob is not in the store or cannot be opened.
    #[error("layer {layer}: {err}")]
    Store {
        /// The layer's digest.
        layer: Digest,
        /// The store's error.
        err: kiln_store::Error,
    },
    /// A layer blob could not be read or holds something kiln refuses.
    #[error("layer {layer}: {}{reason}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
    Layer {
        /// The layer's digest.
        layer: Digest,
        /// The tar entry's name, when the problem is one entry.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Resolving a path met more than 40 symlinks.
    #[error("{path}: too many levels of symbolic links (more than 40) in the image; check it for a symlink loop")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// A path goes through something that is not a directory.
    #[error("{path}: {component} is not a directory in the image")]
    NotADirectory {
        /// The path being resolved.
        path: String,
        /// The resolved prefix that is not a directory.
        component: String,
    },
    /// A file was asked for and a directory found.
    #[error("{path} is a directory in the image, not a file")]
    IsADirectory {
        /// The resolved path.
        path: String,
    },
    /// A file was asked for and something else found.
    #[error("{path} is a {kind} in the image, not a regular file")]
    NotAFile {
        /// The resolved path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A file of a container's root directory could not be read.
    #[error("{path} in the container's root: {reason}")]
    Unreadable {
        /// The path inside the root.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file is larger than the caller's limit.
    #[error("{path} in the image is {size} bytes, more than the {limit} bytes kiln reads for it")]
    TooLarge {
        /// The resolved path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Nothing is at a path that must exist.
    #[error("{path}: no such file or directory in the image")]
    NotFound {
        /// The resolved path.
        path: String,
    },
    /// A user name is not in `/etc/passwd`.
    #[error("unable to find user {user:?}: no matching entries in the image's /etc/passwd; create the user in an earlier step or use a numeric uid")]
    UnknownUser {
        /// The name.
        user: String,
    },
    /// A group name is not in `/etc/group`.
    #[error("unable to find group {group:?}: no matching entries in the image's /etc/group; create the group in an earlier step or use a numeric gid")]
    UnknownGroup {
        /// The name.
        group: String,
    },
    /// A user or group id that cannot be used.
    #[error("invalid {what} {value:?}: ids must be whole numbers from 0 to 4294967294")]
    InvalidId {
        /// `uid` or `gid`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Writing files out of the image failed.
    #[error("extracting {path} from the image into {}: {reason}", dest.display())]
    Extract {
        /// The resolved path being extracted.
        path: String,
        /// The destination directory.
        dest: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
