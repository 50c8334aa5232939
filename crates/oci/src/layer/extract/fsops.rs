//! File-system steps for extraction that never follow a symlink: every
//! directory is opened component by component from the root with
//! `O_NOFOLLOW`, and everything else is done relative to those descriptors.

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Why a path cannot be walked safely.
pub(super) enum WalkError {
    /// A component is a symlink (the prefix up to it is given).
    Symlink(String),
    /// A component is not a directory.
    NotDir(String),
    /// A system call failed.
    Io(io::Error),
}

/// Opens the directory at `components` under `root`, creating missing ones
/// (mode 0755), refusing to pass through symlinks or non-directories; with
/// `replace`, a symlink or file in the way is removed (never followed) and
/// a directory made in its place.
pub(super) fn open_dir(
    root: BorrowedFd<'_>,
    components: &[&[u8]],
    replace: bool,
) -> Result<OwnedFd, WalkError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur =
        rfs::openat(root, ".", flags, Mode::empty()).map_err(|e| WalkError::Io(e.into()))?;
    for (i, c) in components.iter().enumerate() {
        let name = OsStr::from_bytes(c);
        let next = match rfs::openat(&cur, name, flags, Mode::empty()) {
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(WalkError::Io(e.into())),
                }
                rfs::openat(&cur, name, flags, Mode::empty())
            }
            other => other,
        };
        let next = match next {
            Err(Errno::NOTDIR | Errno::LOOP) if replace => {
                rfs::unlinkat(&cur, name, AtFlags::empty()).map_err(|e| WalkError::Io(e.into()))?;
                rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755))
                    .map_err(|e| WalkError::Io(e.into()))?;
                rfs::openat(&cur, name, flags, Mode::empty())
            }
            other => other,
        };
        cur = match next {
            Ok(fd) => fd,
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let prefix = String::from_utf8_lossy(&components[..=i].join(&b'/')).into_owned();
                let is_link = rfs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink
                });
                return Err(if is_link {
                    WalkError::Symlink(prefix)
                } else {
                    WalkError::NotDir(prefix)
                });
            }
            Err(e) => return Err(WalkError::Io(e.into())),
        };
    }
    Ok(cur)
}

/// The type of `name` in `dir` without following a symlink, if it exists.
pub(super) fn file_type_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rfs::FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(rfs::FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, for a directory, everything under it.
pub(super) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    clear_dir(sub.as_fd(), |_| false)?;
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// Removes every entry of `dir` for which `keep` is false.
pub(super) fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && !keep(name) {
            names.push(name.to_vec());
        }
    }
    for name in names {
        remove_all_at(dir, OsStr::from_bytes(&name))?;
    }
    Ok(())
}
