//! Reading files out of a directory tree that someone else may change while
//! kiln reads it: a build context, a bind-mount source, a RUN step's upper
//! directory, an extracted stage.
//!
//! A tree is listed first (lstat) and read later, and anything may happen
//! in between: a file swapped for a symlink to `/etc/shadow`, a parent
//! directory swapped for a link out of the tree, a file rewritten. So a
//! [`TreeFile`] carries the [`FileIdentity`] its listing saw, and
//! [`TreeFile::open`] opens it from the tree's root directory without
//! following a symlink at any component and refuses a file whose identity
//! is not the listed one, rather than read another file.
//!
//! On Unix each open goes through the root's descriptor (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or one `O_NOFOLLOW` `openat`
//! per component where the kernel has no `openat2`). Windows has no
//! `openat` in `std`: there every directory on the way is opened in turn,
//! refused if it is a reparse point (a symlink or a junction), and held
//! open without `FILE_SHARE_DELETE`, so none of them can be renamed or
//! replaced until the file at the end is open, itself without following a
//! reparse point.
//!
//! ```
//! # #[cfg(unix)]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_oci::tree::{FileIdentity, TreeFile, TreeFileError, TreeRoot};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("f"), b"context file")?;
//! let root = Arc::new(TreeRoot::open(dir.path())?);
//! let identity = FileIdentity::of(&std::fs::symlink_metadata(dir.path().join("f"))?);
//! let file = TreeFile { root, path: "f".into(), identity };
//!
//! // Swapped for a link to a host file after it was listed: refused.
//! std::fs::remove_file(dir.path().join("f"))?;
//! std::os::unix::fs::symlink("/etc/hostname", dir.path().join("f"))?;
//! assert!(matches!(file.open(), Err(TreeFileError::Changed { .. })));
//! # Ok(())
//! # }
//! # #[cfg(not(unix))]
//! # fn main() {}
//! ```

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(unix)]
pub use unix::TreeRoot;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;
#[cfg(windows)]
pub use windows::{TreeDir, TreeRoot};

/// What identifies one version of a file without reading it: which inode
/// it is, and its size, mtime and ctime. Every change of content sets the
/// ctime to the current time and no system call can set it back, so a file
/// with the same identity has the same bytes.
///
/// On Windows `dev` is the volume's serial number, `ino` the file's index
/// on it, and `ctime` NTFS's change time (see `FileIdentity::of_file`
/// there). A program can set that change time back
/// (`SetFileInformationByHandle`), so there the identity catches a file
/// replaced or changed in passing, not a writer bent on hiding its write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// The device the inode is on.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// Change time (seconds, nanoseconds).
    pub ctime: (i64, i64),
}

impl FileIdentity {
    /// How `now` differs from `self`, in words, or `None` when it is the
    /// same file unchanged.
    pub fn difference(&self, now: &FileIdentity) -> Option<String> {
        if (self.dev, self.ino) != (now.dev, now.ino) {
            Some("it was replaced by another file".into())
        } else if self.size != now.size {
            Some(format!(
                "its size went from {} to {} bytes",
                self.size, now.size
            ))
        } else if self != now {
            Some("it was modified".into())
        } else {
            None
        }
    }
}

/// A regular file of a tree as it was listed: where it is and which file
/// it was then.
#[derive(Clone, Debug)]
pub struct TreeFile {
    /// The tree.
    pub root: Arc<TreeRoot>,
    /// The path below the root: relative, without `..`.
    pub path: PathBuf,
    /// The file as listed (or hashed).
    pub identity: FileIdentity,
}

impl PartialEq for TreeFile {
    fn eq(&self, other: &TreeFile) -> bool {
        self.root.path() == other.root.path()
            && self.path == other.path
            && self.identity == other.identity
    }
}

impl Eq for TreeFile {}

/// Why a [`TreeFile`] could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TreeFileError {
    /// The file is not the one that was listed.
    #[error("{} changed during the build: {reason}; nothing may change a build's sources while it runs", path.display())]
    Changed {
        /// The file's full path.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// Reading it failed otherwise.
    #[error("reading {}: {err}", path.display())]
    Io {
        /// The file's full path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}

impl TreeFile {
    /// The file's path on disk, for messages.
    pub fn full_path(&self) -> PathBuf {
        self.root.path().join(&self.path)
    }

    /// Opens the file, refusing it unless it is still the regular file
    /// that was listed: a symlink anywhere on its path, a file put in its
    /// place and a change of content are [`TreeFileError::Changed`].
    pub fn open(&self) -> Result<File, TreeFileError> {
        let file =
            self.root
                .open_file(&self.path)
                .map_err(|err| match sys::changed_reason(&err) {
                    Some(reason) => self.changed(reason),
                    None => TreeFileError::Io {
                        path: self.full_path(),
                        err,
                    },
                })?;
        self.verify(&file)?;
        Ok(file)
    }

    /// Checks that the open `file` is still the regular file that was
    /// listed: after reading it, this catches a write made meanwhile.
    pub fn verify(&self, file: &File) -> Result<(), TreeFileError> {
        let (is_file, now) = sys::identity_of_open(file).map_err(|err| TreeFileError::Io {
            path: self.full_path(),
            err,
        })?;
        if !is_file {
            return Err(self.changed("it is no longer a regular file"));
        }
        match self.identity.difference(&now) {
            Some(reason) => Err(self.changed(&reason)),
            None => Ok(()),
        }
    }

    fn changed(&self, reason: &str) -> TreeFileError {
        TreeFileError::Changed {
            path: self.full_path(),
            reason: reason.to_string(),
        }
    }
}

/// The names of a relative path without `..`; anything else is refused,
/// as it could not name a file below the root.
fn components(rel: &Path) -> io::Result<Vec<&std::ffi::OsStr>> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a path below a tree's root", rel.display()),
                ))
            }
        }
    }
    Ok(names)
}
