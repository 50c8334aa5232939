//! The file-system steps of the import on Unix: everything relative to a
//! directory descriptor reached without following a symlink.

use crate::windows::PaxTime;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

/// A folder directory, open.
pub(super) type Dir = OwnedFd;

pub(super) fn mkdir(dir: &Dir, name: &str) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
    Ok(())
}

/// Creates `name` in `dir`, failing if it exists; a symlink there is not
/// followed.
pub(super) fn create(dir: &Dir, name: &str) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o644))?;
    Ok(File::from(fd))
}

fn timestamps(access: PaxTime, write: PaxTime) -> Timestamps {
    let spec = |t: PaxTime| Timespec {
        tv_sec: t.secs as _,
        tv_nsec: t.nanos as _,
    };
    Timestamps {
        last_access: spec(access),
        last_modification: spec(write),
    }
}

pub(super) fn set_times_at(
    dir: &Dir,
    name: &str,
    access: PaxTime,
    write: PaxTime,
) -> io::Result<()> {
    rustix::fs::utimensat(
        dir,
        name,
        &timestamps(access, write),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

pub(super) fn set_file_times(file: &File, access: PaxTime, write: PaxTime) -> io::Result<()> {
    rustix::fs::futimens(file, &timestamps(access, write))?;
    Ok(())
}
