//! The Unix side of [`crate::sys`].

use super::StatTimes;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The times `md` reports.
pub(crate) fn stat_times(md: &Metadata) -> StatTimes {
    StatTimes {
        modified: (md.mtime(), md.mtime_nsec() as u32),
        accessed: (md.atime(), md.atime_nsec() as u32),
        changed: (md.ctime(), md.ctime_nsec() as u32),
    }
}

/// For a file with more than one name, what identifies it among the
/// others (device, inode); `None` for a file with one name. `_file` is the
/// file `md` describes, open.
pub(crate) fn link_key(md: &Metadata, _file: &File) -> io::Result<Option<(u64, u64)>> {
    Ok((md.nlink() > 1).then(|| (md.dev(), md.ino())))
}

/// Gives `file` mode 0644, as every image layout's files have.
pub(crate) fn make_world_readable(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// Flushes the directory `dir`, so a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Opens a file kiln wrote itself for reading, not following a symlink in
/// its place and not waiting should a FIFO be there.
pub(crate) fn open_source_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
}
