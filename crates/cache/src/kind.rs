//! What kind of file a source entry is: its own module, because both the
//! digests ([`crate::source`]) and the platform code that reads special
//! files (`sys`) name it.

use kiln_oci::Digest;
use std::path::PathBuf;

/// What kind of file a [`crate::SourceEntry`] is, with what matters of each kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// The digest of its content (see [`crate::StatSession::file_digest`]).
        content: Digest,
    },
    /// A directory. Its size is left out: it depends on the file system.
    Dir,
    /// A symbolic link.
    Symlink {
        /// Where it points, as stored in the link.
        target: PathBuf,
    },
    /// A character device.
    CharDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}
