//! Locks and crash-safe file replacement.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// An flock (on Windows, `LockFileEx`) held on a lock file; released when
/// dropped (or when the process dies, which is what makes it safe against
/// SIGKILL).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

pub(crate) use crate::sys::Mode;

impl Lock {
    fn open(path: &Path) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("opening lock file", path))
    }

    /// Waits for the lock.
    pub(crate) fn acquire(path: &Path, mode: Mode) -> Result<Lock> {
        let file = Lock::open(path)?;
        crate::sys::lock(&file, mode).map_err(Error::io("locking", path))?;
        Ok(Lock { _file: file })
    }
}

/// Makes a rename or unlink in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::sys::sync_dir(dir).map_err(Error::io("syncing directory", dir))
}

/// Replaces `dest` with `bytes` so that a crash leaves either the old or
/// the new content: write a temp file in `tmp_dir` (same file system),
/// fsync it, rename it over `dest`, fsync the directory.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    kiln_oci::layout::write_atomic_via(tmp_dir, dest, bytes).map_err(|e| match e {
        kiln_oci::LayoutError::Io {
            action,
            path,
            source,
        } => Error::Io {
            action,
            path,
            source,
        },
        other => Error::Io {
            action: "replacing",
            path: dest.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Store files are world-readable like any image layout (temp files start
/// as 0600; on Windows, access is the ACL the directory gives).
pub(crate) fn set_readable(file: &File, path: &Path) -> Result<()> {
    crate::sys::set_readable(file).map_err(Error::io("setting permissions of", path))
}
