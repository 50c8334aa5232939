//! Small file-system steps shared by the drivers, none following a symlink
//! at the last component.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, XattrFlags, CWD};
use rustix::io::Errno;
use std::fs;
use std::io;
use std::path::Path;

/// The metadata to give a node.
pub(crate) struct Meta<'a> {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub xattrs: &'a [(String, Vec<u8>)],
    pub is_symlink: bool,
}

/// Sets owner (when `restore_owners`), then mode (chown clears setuid),
/// then xattrs (chown clears `security.capability`), then the mtime.
pub(crate) fn set_meta(path: &Path, meta: &Meta<'_>, restore_owners: bool) -> io::Result<()> {
    if restore_owners {
        rfs::chownat(
            CWD,
            path,
            Some(rfs::Uid::from_raw(meta.uid)),
            Some(rfs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    // Symlinks have no mode of their own on Linux.
    if !meta.is_symlink {
        rfs::chmodat(
            CWD,
            path,
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    for (name, value) in meta.xattrs {
        match rfs::lsetxattr(path, name.as_str(), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("setting xattr {name}: {e}"),
                ))
            }
        }
    }
    set_mtime(path, meta.mtime)
}

/// Sets atime and mtime to `mtime` (seconds, nanoseconds).
pub(crate) fn set_mtime(path: &Path, (sec, nsec): (i64, i64)) -> io::Result<()> {
    let nsec = u32::try_from(nsec).map_err(|_| io::Error::other("nanoseconds out of range"))?;
    kiln_oci::layer::set_mtime_at(CWD, path, sec, nsec)
}

/// Creates a device node or fifo.
pub(crate) fn mknod(path: &Path, kind: FileType, major: u32, minor: u32) -> io::Result<()> {
    rfs::mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(0o600),
        rfs::makedev(major, minor),
    )?;
    Ok(())
}

/// Creates an overlay whiteout (a 0/0 character device) at `path`.
pub(crate) fn whiteout(path: &Path) -> io::Result<()> {
    rfs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rfs::makedev(0, 0),
    )?;
    Ok(())
}

/// Creates a directory with mode 0755 whatever the umask.
pub(crate) fn mkdir_0755(path: &Path) -> io::Result<()> {
    fs::create_dir(path)?;
    chmod_0755(path)
}

/// Sets mode 0755: directories made by tempfile are 0700, and the root of
/// an overlay's upper layer becomes the container's `/`.
pub(crate) fn chmod_0755(path: &Path) -> io::Result<()> {
    rfs::chmod(path, Mode::from_raw_mode(0o755))?;
    Ok(())
}

/// Removes `path` and everything under it; a missing path is fine.
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(md) if md.is_dir() => match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        _ => match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// The bytes of the files under `path`, not following symlinks.
pub(crate) fn tree_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| tree_size(&e.path()))
            .sum(),
        Ok(md) => md.len(),
        Err(_) => 0,
    }
}

/// Renames `from` to `to` unless `to` exists; `Ok(false)` when it did.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    match rfs::renameat_with(CWD, from, CWD, to, rfs::RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
