//! The file-system steps of the import on Windows: names joined to a
//! [`TreeDir`], whose directories are held open so the path names what was
//! checked; no reparse point is followed. Names reach here only after the
//! import simulator's rules accepted them as Windows names.

use crate::sys::{set_file_times as set_times, set_times_no_follow, FILE_FLAG_OPEN_REPARSE_POINT};
use crate::tree::TreeDir;
use crate::windows::PaxTime;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;

/// A folder directory, held open.
pub(super) type Dir = TreeDir;

pub(super) fn mkdir(dir: &Dir, name: &str) -> io::Result<()> {
    std::fs::create_dir(dir.path().join(name))
}

/// Creates `name` in `dir`, failing if it exists (`CREATE_NEW` also fails
/// on a symlink there rather than follow it).
pub(super) fn create(dir: &Dir, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(dir.path().join(name))
}

pub(super) fn set_times_at(
    dir: &Dir,
    name: &str,
    access: PaxTime,
    write: PaxTime,
) -> io::Result<()> {
    set_times_no_follow(
        &dir.path().join(name),
        (access.secs, access.nanos),
        (write.secs, write.nanos),
    )
}

pub(super) fn set_file_times(file: &File, access: PaxTime, write: PaxTime) -> io::Result<()> {
    set_times(file, (access.secs, access.nanos), (write.secs, write.nanos))
}
