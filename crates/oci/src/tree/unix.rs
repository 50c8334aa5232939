//! The Unix side of [`crate::tree`]: every open goes through the root's
//! descriptor, following no symlink.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{components, FileIdentity, HostKind, HostStat};

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
}

/// What an error opening a listed file says changed about it, if it is
/// one a change explains.
pub(super) fn changed_reason(err: &io::Error) -> Option<&'static str> {
    match err.raw_os_error().map(Errno::from_raw_os_error)? {
        Errno::LOOP => Some("a symbolic link is now on its path"),
        Errno::NOENT => Some("it was removed"),
        Errno::NOTDIR => Some("a directory on its path was replaced"),
        Errno::XDEV => Some("its path now leads out of its directory"),
        _ => None,
    }
}

pub(super) fn mode_of(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// `O_NOFOLLOW` and `RESOLVE_NO_SYMLINKS` refuse a symlink with ELOOP.
pub(super) fn is_link_on_path(err: &io::Error) -> bool {
    err.raw_os_error() == Some(Errno::LOOP.raw_os_error())
}

/// ENOENT, ENOTDIR, and EINVAL from `readlink` of what is no link.
pub(super) fn is_raced(err: &io::Error) -> bool {
    let raw = err.raw_os_error();
    [Errno::NOENT, Errno::NOTDIR, Errno::INVAL]
        .iter()
        .any(|e| raw == Some(e.raw_os_error()))
}

/// Whether the open `file` is a regular file, and its identity now.
pub(super) fn identity_of_open(file: &File) -> io::Result<(bool, FileIdentity)> {
    let meta = file.metadata()?;
    Ok((meta.is_file(), FileIdentity::of(&meta)))
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
    /// be a FIFO. The file is not checked: see [`super::TreeFile::open`].
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        open_beneath(self.fd.as_fd(), rel, read_flags()).map(File::from)
    }

    /// The metadata of `rel` itself (a symlink's own), reached without
    /// following a symlink on the way: a directory swapped for a link
    /// out of the tree is an error, never another file's metadata.
    pub fn symlink_metadata(&self, rel: &Path) -> io::Result<Metadata> {
        File::from(self.open_path(rel)?).metadata()
    }

    /// What `rel` itself is (a symlink's own metadata), reached as
    /// [`TreeRoot::symlink_metadata`] reaches it.
    pub fn stat(&self, rel: &Path) -> io::Result<HostStat> {
        let meta = self.symlink_metadata(rel)?;
        let ft = meta.file_type();
        let (major, minor) = (
            rustix::fs::major(meta.rdev()),
            rustix::fs::minor(meta.rdev()),
        );
        let kind = if ft.is_dir() {
            HostKind::Dir
        } else if ft.is_symlink() {
            HostKind::Symlink
        } else if ft.is_file() {
            HostKind::File
        } else if ft.is_char_device() {
            HostKind::CharDevice { major, minor }
        } else if ft.is_block_device() {
            HostKind::BlockDevice { major, minor }
        } else if ft.is_fifo() {
            HostKind::Fifo
        } else {
            HostKind::Socket
        };
        Ok(HostStat {
            kind,
            mode: mode_of(&meta),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            link_key: (kind == HostKind::File && meta.nlink() > 1)
                .then(|| (meta.dev(), meta.ino())),
            identity: FileIdentity::of(&meta),
        })
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

#[cfg(test)]
mod tests {
    use super::super::TreeFile;
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::sync::Arc;

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
