//! Reading files out of a directory tree that someone else may change while
//! kiln reads it: a build context, a bind-mount source, a RUN step's upper
//! directory, an extracted stage.
//!
//! A tree is listed first (lstat) and read later, and anything may happen
//! in between: a file swapped for a symlink to `/etc/shadow`, a parent
//! directory swapped for a link out of the tree, a file rewritten. So a
//! [`TreeFile`] carries the [`FileIdentity`] its listing saw, and
//! [`TreeFile::open`] opens it from the tree's root directory without
//! following a symlink at any component (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or one `O_NOFOLLOW` `openat`
//! per component where the kernel has no `openat2`) and refuses a file
//! whose identity is not the listed one, rather than read another file.
//!
//! ```
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What identifies one version of a file without reading it: which inode
/// it is, and its size, mtime and ctime. Every change of content sets the
/// ctime to the current time and no system call can set it back, so a file
/// with the same identity has the same bytes.
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
    /// The identity `meta` describes.
    pub fn of(meta: &Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

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

/// A directory whose files are opened beneath it: the open directory is
/// kept, so renaming or replacing the path it was opened by later changes
/// nothing.
pub struct TreeRoot {
    fd: OwnedFd,
    path: PathBuf,
}

impl TreeRoot {
    /// Opens the directory `path` (a symlink naming the root itself is
    /// followed: whoever gave the path chose it).
    pub fn open(path: &Path) -> io::Result<TreeRoot> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(TreeRoot {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path the root was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (relative, without `..`) for reading without following
    /// a symlink at any of its components, and without blocking should it
    /// be a FIFO. The file is not checked: see [`TreeFile::open`].
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        open_beneath(self.fd.as_fd(), rel, read_flags()).map(File::from)
    }

    /// The metadata of `rel` itself (a symlink's own), reached without
    /// following a symlink on the way: a directory swapped for a link
    /// out of the tree is an error, never another file's metadata.
    pub fn symlink_metadata(&self, rel: &Path) -> io::Result<Metadata> {
        File::from(self.open_path(rel)?).metadata()
    }

    /// The target of the symlink `rel`, reached as
    /// [`TreeRoot::symlink_metadata`] reaches it.
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let target = rustix::fs::readlinkat(self.open_path(rel)?, "", Vec::new())?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))
    }

    /// The names in the directory `rel` (`""` for the root), unsorted,
    /// reached as [`TreeRoot::symlink_metadata`] reaches it.
    pub fn read_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = open_beneath(self.fd.as_fd(), rel, flags)?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }

    /// The directory `rel` (`""` for the root) opened for use as the
    /// base of `*at` calls (creating, linking, setting times beneath it),
    /// reached as [`TreeRoot::symlink_metadata`] reaches it: a writer
    /// never follows a symlink someone left in the tree.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        open_beneath(self.fd.as_fd(), rel, flags)
    }

    /// An `O_PATH` descriptor of `rel` itself (a symlink's own, should
    /// `rel` be one), reached as [`TreeRoot::symlink_metadata`] reaches
    /// it: it pins what the path named now, whatever is renamed later.
    pub fn open_path(&self, rel: &Path) -> io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        open_beneath(self.fd.as_fd(), rel, flags)
    }
}

impl fmt::Debug for TreeRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TreeRoot").field(&self.path).finish()
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
        self.root.path == other.root.path
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
        self.root.path.join(&self.path)
    }

    /// Opens the file, refusing it unless it is still the regular file
    /// that was listed: a symlink anywhere on its path, a file put in its
    /// place and a change of content are [`TreeFileError::Changed`].
    pub fn open(&self) -> Result<File, TreeFileError> {
        let file = self.root.open_file(&self.path).map_err(|err| {
            match err.raw_os_error().map(Errno::from_raw_os_error) {
                Some(Errno::LOOP) => self.changed("a symbolic link is now on its path"),
                Some(Errno::NOENT) => self.changed("it was removed"),
                Some(Errno::NOTDIR) => self.changed("a directory on its path was replaced"),
                Some(Errno::XDEV) => self.changed("its path now leads out of its directory"),
                _ => TreeFileError::Io {
                    path: self.full_path(),
                    err,
                },
            }
        })?;
        self.verify(&file)?;
        Ok(file)
    }

    /// Checks that the open `file` is still the regular file that was
    /// listed: after reading it, this catches a write made meanwhile.
    pub fn verify(&self, file: &File) -> Result<(), TreeFileError> {
        let meta = file.metadata().map_err(|err| TreeFileError::Io {
            path: self.full_path(),
            err,
        })?;
        if !meta.is_file() {
            return Err(self.changed("it is no longer a regular file"));
        }
        match self.identity.difference(&FileIdentity::of(&meta)) {
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

/// Cleared once `openat2` is found missing (before Linux 5.6, or filtered
/// by a seccomp profile), so later opens go straight to the fallback.
static HAVE_OPENAT2: AtomicBool = AtomicBool::new(true);

/// The flags of the final open: read-only, never a controlling terminal,
/// never waiting on a FIFO's writer.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// Opens `rel` below `root` with `flags` (which must hold `O_NOFOLLOW`),
/// following no symlink at any component; `""` opens the root again.
fn open_beneath(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let names = components(rel)?;
    if names.is_empty() {
        return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
    }
    if HAVE_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(root, rel, flags, Mode::empty(), resolve) {
            // seccomp profiles that predate openat2 answer EPERM or ENOSYS.
            Err(Errno::NOSYS) | Err(Errno::PERM) => HAVE_OPENAT2.store(false, Ordering::Relaxed),
            other => return other.map_err(io::Error::from),
        }
    }
    open_by_components(root, &names, flags)
}

/// The fallback for kernels without `openat2`: each directory opened from
/// the one before with `O_NOFOLLOW`, so no symlink is followed anywhere.
fn open_by_components(
    root: BorrowedFd<'_>,
    names: &[&std::ffi::OsStr],
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let Some((last, dirs)) = names.split_last() else {
        return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
    };
    let mut dir: Option<OwnedFd> = None;
    for name in dirs {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        let next = rustix::fs::openat(
            at,
            *name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    let at = dir.as_ref().map_or(root, |d| d.as_fd());
    Ok(rustix::fs::openat(at, *last, flags, Mode::empty())?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, TreeRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"inside").unwrap();
        std::fs::write(dir.path().join("outside"), b"host").unwrap();
        let root = TreeRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    // Both ways of opening must refuse the same things: the fallback runs
    // wherever openat2 is missing, which is not this test machine.
    fn both(root: &TreeRoot, rel: &str) -> [io::Result<OwnedFd>; 2] {
        let names = components(Path::new(rel)).unwrap();
        [
            open_beneath(root.as_fd(), Path::new(rel), read_flags()),
            open_by_components(root.as_fd(), &names, read_flags()),
        ]
    }

    #[test]
    fn opens_a_plain_path_either_way() {
        let (_dir, root) = tree();
        for fd in both(&root, "d/f") {
            let mut s = String::new();
            File::from(fd.unwrap()).read_to_string(&mut s).unwrap();
            assert_eq!(s, "inside");
        }
    }

    #[test]
    fn follows_no_symlink_at_any_component() {
        let (dir, root) = tree();
        let host = dir.path().join("outside");
        symlink(&host, dir.path().join("d/link")).unwrap();
        symlink(dir.path().join("d"), dir.path().join("dirlink")).unwrap();
        symlink("d", dir.path().join("rel-dirlink")).unwrap();
        for rel in ["d/link", "dirlink/f", "rel-dirlink/f"] {
            for result in both(&root, rel) {
                let err = result.expect_err(rel);
                // The fallback opens directories O_PATH, which meets a
                // symlink as a non-directory.
                let refused = [Errno::LOOP, Errno::NOTDIR].map(|e| Some(e.raw_os_error()));
                assert!(refused.contains(&err.raw_os_error()), "{rel}: {err}");
            }
        }
    }

    #[test]
    fn lists_without_following_symlinks() {
        let (dir, root) = tree();
        symlink(dir.path().join("d"), dir.path().join("dirlink")).unwrap();
        let mut names = root.read_dir(Path::new("")).unwrap();
        names.sort();
        assert_eq!(names, ["d", "dirlink", "outside"]);
        assert!(root
            .symlink_metadata(Path::new("dirlink"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            root.read_link(Path::new("dirlink")).unwrap(),
            dir.path().join("d")
        );
        assert!(root.read_dir(Path::new("dirlink")).is_err());
        assert!(root.symlink_metadata(Path::new("dirlink/f")).is_err());
        assert!(root.symlink_metadata(Path::new("")).unwrap().is_dir());
    }

    #[test]
    fn refuses_paths_that_climb_out() {
        let (_dir, root) = tree();
        for rel in ["../x", "/etc/passwd", "d/../../x"] {
            assert!(root.open_file(Path::new(rel)).is_err(), "{rel}");
        }
    }

    #[test]
    fn a_modified_file_is_refused_after_the_read() {
        let (dir, root) = tree();
        let path = dir.path().join("d/f");
        let identity = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        let file = TreeFile {
            root: Arc::new(root),
            path: "d/f".into(),
            identity,
        };
        let open = file.open().unwrap();
        std::fs::write(&path, b"inside, and more").unwrap();
        let err = file.verify(&open).unwrap_err();
        assert!(
            err.to_string().contains("changed during the build"),
            "{err}"
        );
    }
}
