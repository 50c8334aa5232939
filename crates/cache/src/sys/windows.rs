//! The Windows side of [`crate::sys`]. A file's identity (volume serial,
//! file index, NTFS change time) is read from an open handle through
//! kiln-oci's [`FileIdentity::of_file`], as `std`'s metadata lacks it on
//! stable Rust. The change time plays the ctime's part: NTFS sets it on
//! every change of data or metadata, and putting it back takes
//! `SetFileInformationByHandle`, which no editor or copy tool calls to
//! restore it (unlike the last write time, which they do restore).
//!
//! An entry records what kiln-oci's Windows layer listing gives its file:
//! mode 0o755 (0o555 when read-only) as docker and BuildKit give a file
//! from a Windows client, owner 0:0, no xattrs (a Windows file has no POSIX
//! xattrs), and no devices, FIFOs or sockets, which NTFS does not hold.

use super::Attributes;
use crate::kind::EntryKind;
use kiln_oci::tree::FileIdentity;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_OPEN_REPARSE_POINT,
};

/// `ERROR_FILE_NOT_FOUND`, `ERROR_PATH_NOT_FOUND`, `ERROR_DIRECTORY` (not
/// a directory) and `ERROR_NOT_A_REPARSE_POINT`.
const RACED: [i32; 4] = [2, 3, 267, 4390];

/// A path or name as the bytes the cache keys and hashes it by: its
/// WTF-8 encoding, which is its UTF-8 when it is text (always, but for an
/// unpaired surrogate, which it keeps distinct).
pub(crate) fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_encoded_bytes()
}

/// The path [`os_bytes`] gave `bytes` for.
pub(crate) fn bytes_path(bytes: &[u8]) -> PathBuf {
    // SAFETY: every key is made by `os_bytes` of a path or of components
    // joined by '/' (see `source::normalize`), in this process: WTF-8
    // pieces split and joined at ASCII, which `from_encoded_bytes_unchecked`
    // accepts.
    PathBuf::from(unsafe { OsStr::from_encoded_bytes_unchecked(bytes) })
}

/// Refuses a reparse point that is no link: a cloud or deduplicated file
/// reads as a plain file only by recalling it, which is not reading what
/// is in the context (kiln-oci's tree reader refuses them too).
fn plain(path: &Path, meta: &Metadata) -> io::Result<()> {
    if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(io::Error::other(format!(
            "{} is a reparse point (a cloud, deduplicated or other special file), not a plain file",
            path.display()
        )));
    }
    Ok(())
}

/// The identity of the file at `path` that `meta` (its own metadata)
/// describes, from a handle: the metadata does not hold it.
pub(crate) fn listed_identity(path: &Path, meta: &Metadata) -> io::Result<FileIdentity> {
    plain(path, meta)?;
    FileIdentity::of_file(&open_listed(path)?)
}

/// The identity of the open `file`.
pub(crate) fn open_identity(file: &File, _meta: &Metadata) -> io::Result<FileIdentity> {
    FileIdentity::of_file(file)
}

/// Opens a listed file to hash it, not following a reparse point in its
/// place (which then reads as no regular file). A FIFO cannot be there:
/// Windows' named pipes live outside the file system.
pub(crate) fn open_listed(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// An entry that is neither a file, a directory nor a link is refused:
/// NTFS holds no devices, FIFOs or sockets, so it is something else.
pub(crate) fn special_kind(meta: &Metadata, path: &Path) -> io::Result<EntryKind> {
    plain(path, meta)?;
    Err(io::Error::other(format!(
        "{} is neither a file, a directory nor a link",
        path.display()
    )))
}

/// The entry's mode, owner and group: see the module documentation.
pub(crate) fn attributes(meta: &Metadata) -> Attributes {
    Attributes {
        mode: kiln_oci::tree::mode_of(meta),
        uid: 0,
        gid: 0,
    }
}

/// Whether `err`, met reading a path just after it was seen, says the
/// path is no longer what it was.
pub(crate) fn is_raced(err: &io::Error) -> bool {
    err.raw_os_error().is_some_and(|c| RACED.contains(&c))
}

/// None: a Windows file has no POSIX extended attributes.
pub(crate) fn xattrs(_path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(Vec::new())
}
