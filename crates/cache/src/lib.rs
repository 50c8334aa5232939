//! kiln's build cache: where step results are remembered, and the digests
//! that decide whether a step can be reused.
//!
//! This crate knows nothing of Dockerfiles. The engine derives a key for each
//! step with [`KeyBuilder`] (from the parent step's key, the expanded
//! instruction, the build args it uses, the platform and, for COPY/ADD, a
//! [`SourceHasher`] digest of what it reads), then asks [`Cache::get`] for a
//! [`Record`] and, after building, stores one with [`Cache::put`].
//!
//! # Source digests
//!
//! A source digest follows BuildKit's rules: per entry it covers the path
//! relative to the source, the file type, the mode (with setuid, setgid and
//! sticky), uid, gid, a regular file's size and content digest, a symlink's
//! target, a device's numbers and the extended attributes. The modification
//! time is never part of it, so `touch` keeps the cache, and a content change
//! is seen even when the mtime is put back.
//!
//! Content digests come from a per-context stat cache ([`StatSession`]): a
//! file whose (device, inode, size, mtime, ctime) match what was recorded for
//! its path is not read again. The ctime cannot be set from user space, so a
//! change that restores the size and mtime still forces a read.
//!
//! # The index: SQLite
//!
//! The index is one SQLite database (normally `$KILN_ROOT/cache/index.db`),
//! chosen over redb because several kiln processes build at once and must
//! share it: redb locks a database file to one process at a time, which would
//! mean a lock file around every open and one build waiting for another to
//! finish; SQLite is made for several processes on one file. The database
//! runs in WAL mode (readers never block the writer or each other), with a
//! busy timeout so a writer waits for another process's transaction instead of
//! failing, and every write is one `BEGIN IMMEDIATE` transaction, so none is
//! ever half applied. A process killed mid-write leaves its transaction in the
//! WAL uncommitted, and the next open rolls it back. `synchronous = NORMAL`
//! makes commits skip the fsync (a power cut can lose the last commits, never
//! corrupt the file), which suits a cache: a lost record costs a rebuild.
//!
//! # Example
//!
//! ```
//! use kiln_cache::{Cache, KeyBuilder, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let cache = Cache::open(&dir.path().join("cache/index.db"))?;
//! let key = KeyBuilder::new("env").field("instruction", "ENV A=1").finish();
//! assert!(cache.get(&key)?.is_none());
//! let record = Record {
//!     layer: None,
//!     created: "2024-01-01T00:00:00Z".into(),
//!     description: "ENV A=1".into(),
//!     metadata: Vec::new(),
//! };
//! cache.put(&key, &record)?;
//! assert_eq!(cache.get(&key)?, Some(record));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod db;
mod key;
mod kind;
mod source;
mod stat;
mod sys;

pub use db::{Cache, Entry, Layer, PruneFilter, PruneReport, Record};
pub use key::KeyBuilder;
pub use source::{EntryKind, SourceEntry, SourceHasher};
pub use stat::{StatCounts, StatSession};

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused an operation.
    #[error("cache database {path}: {error}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What SQLite said. Not a `source`: rusqlite's error already
        /// says all its own source would, and a chain would repeat it.
        error: rusqlite::Error,
    },
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
    /// The database was written by a newer kiln.
    #[error(
        "cache database {path} has schema version {found}, newer than this kiln supports ({supported}); upgrade kiln or remove the file"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this kiln reads.
        supported: i64,
    },
    /// The database holds a value that cannot be what kiln wrote.
    #[error("cache database {path} is corrupt: {detail}; remove the file to start an empty cache")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The database cannot run in write-ahead-log mode, without which
    /// processes sharing it would block one another.
    #[error(
        "cache database {path} cannot use write-ahead logging (journal mode {mode}); put KILN_ROOT on a local file system"
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite fell back to.
        mode: String,
    },
    /// [`StatSession::file_digest`] was given something other than a regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file changed between being listed and being read: replaced,
    /// removed, or turned into or from a symlink.
    #[error("{path} changed during the build: {reason}; nothing may change a build's sources while it runs")]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: &'static str,
    },
}
