//! The Unix side of [`crate::sys`].

use super::Attributes;
use crate::kind::EntryKind;
use kiln_oci::tree::FileIdentity;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A path or name as the bytes the cache keys and hashes it by.
pub(crate) fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

/// The path [`os_bytes`] gave `bytes` for.
pub(crate) fn bytes_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// The identity of the file at `_path` that `meta` (its lstat) describes.
pub(crate) fn listed_identity(_path: &Path, meta: &Metadata) -> io::Result<FileIdentity> {
    Ok(FileIdentity::of(meta))
}

/// The identity of the open `_file`, whose metadata is `meta`.
pub(crate) fn open_identity(_file: &File, meta: &Metadata) -> io::Result<FileIdentity> {
    Ok(FileIdentity::of(meta))
}

/// Opens a listed file to hash it. NONBLOCK: if the file was swapped for a
/// FIFO since the lstat, opening it must not wait for a writer.
pub(crate) fn open_listed(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

/// The kind of an entry that is neither a file, a directory nor a link.
pub(crate) fn special_kind(meta: &Metadata, _path: &Path) -> io::Result<EntryKind> {
    let ft = meta.file_type();
    let rdev = meta.rdev() as rustix::fs::Dev;
    let device = || (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    Ok(if ft.is_char_device() {
        let (major, minor) = device();
        EntryKind::CharDevice { major, minor }
    } else if ft.is_block_device() {
        let (major, minor) = device();
        EntryKind::BlockDevice { major, minor }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        EntryKind::Socket
    })
}

/// The entry's mode, owner and group.
pub(crate) fn attributes(meta: &Metadata) -> Attributes {
    Attributes {
        mode: kiln_oci::tree::mode_of(meta),
        uid: meta.uid(),
        gid: meta.gid(),
    }
}

/// Whether `err`, met reading a path just after it was seen, says the
/// path is no longer what it was.
pub(crate) fn is_raced(err: &io::Error) -> bool {
    let raced = [
        rustix::io::Errno::NOENT,
        rustix::io::Errno::NOTDIR,
        rustix::io::Errno::LOOP,
        rustix::io::Errno::INVAL,
    ]
    .map(|e| Some(e.raw_os_error()));
    raced.contains(&err.raw_os_error())
}

/// The extended attributes of `path` itself (not a link's target); none on
/// a file system without them.
pub(crate) fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match read_sized(|buf| rustix::fs::llistxattr(path, buf)) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        match read_sized(|buf| rustix::fs::lgetxattr(path, name_os, buf)) {
            Ok(value) => out.push((name.to_vec(), value)),
            // Removed between listing and reading.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Calls `read` with a growing buffer until the value fits (it may grow
/// between a size query and the read).
fn read_sized(mut read: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
