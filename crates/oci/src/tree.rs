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

/// What a path of a tree is, as a build reads it off the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (on Windows, any reparse point: a symlink, a
    /// junction, a mount point).
    Symlink,
    /// A character device.
    CharDevice {
        /// Its major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Its major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
    /// A FIFO.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// The metadata of a path of a tree, in the terms an image layer keeps,
/// from [`TreeRoot::stat`].
///
/// On Windows a file has no POSIX owner or mode: the owner is root, and
/// the mode is BuildKit's for a context sent from Windows (fsutil's `Stat`
/// there): `0755`, or `0555` for a read-only file, so a Windows context
/// gives the same image whichever builder reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostStat {
    /// What it is.
    pub kind: HostKind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// For a regular file with more than one name, which file it is (its
    /// device and inode), so all its names become one file and hard links.
    pub link_key: Option<(u64, u64)>,
    /// Which version of which file it is, for a [`TreeFile`].
    pub identity: FileIdentity,
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

/// The mode `meta` gives its file in an image, as [`HostStat::mode`]
/// says it (on Windows, BuildKit's rule for a context sent from there).
pub fn mode_of(meta: &std::fs::Metadata) -> u32 {
    sys::mode_of(meta)
}

/// The modification time of `meta`, in whole seconds since the Unix
/// epoch (rounded down, as `st_mtime` is).
pub fn mtime_of(meta: &std::fs::Metadata) -> i64 {
    match meta.modified() {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => after.as_secs() as i64,
            Err(before) => -(before.duration().as_secs_f64().ceil() as i64),
        },
        Err(_) => 0,
    }
}

/// Whether `err`, from reaching a path below a [`TreeRoot`], is the
/// refusal of a symbolic link (or other reparse point) on its way.
pub fn is_link_on_path(err: &io::Error) -> bool {
    sys::is_link_on_path(err)
}

/// Whether `err`, from reading a path below a [`TreeRoot`] just listed,
/// says it is no longer what the listing saw: removed, no longer a
/// directory, no longer a symbolic link.
pub fn is_raced(err: &io::Error) -> bool {
    sys::is_raced(err)
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
