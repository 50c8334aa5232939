//! The Unix side of [`crate::sys`]: flock, and a lease made in a hidden
//! directory that is renamed into place once locked.

use super::Mode;
use crate::error::{Error, Result};
use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Waits for the lock on `file`.
pub(crate) fn lock(file: &File, mode: Mode) -> std::io::Result<()> {
    let op = match mode {
        Mode::Shared => FlockOperation::LockShared,
        Mode::Exclusive => FlockOperation::LockExclusive,
    };
    flock(file, op).map_err(Into::into)
}

/// Makes the lease `id` in `leases`, locked before anyone can see it:
/// made as `.new-ID/`, locked, and only then renamed into place. Returns
/// its directory, its held lock and its `blobs` file.
pub(crate) fn make_lease(
    leases: &Path,
    id: &str,
    lock: &str,
    blobs: &str,
) -> Result<(PathBuf, File, File)> {
    let staged = leases.join(format!("{}{id}", super::NEW));
    match stage(&staged, lock, blobs) {
        Ok((lock, blobs)) => {
            let dir = leases.join(id);
            fs::rename(&staged, &dir).map_err(Error::io("placing the lease", &dir))?;
            Ok((dir, lock, blobs))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staged);
            Err(e)
        }
    }
}

/// Makes and locks a lease directory not yet visible to anyone.
fn stage(staged: &Path, lock_name: &str, blobs_name: &str) -> Result<(File, File)> {
    fs::create_dir(staged).map_err(Error::io("creating", staged))?;
    let path = staged.join(lock_name);
    let lock = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(Error::io("creating", &path))?;
    flock(&lock, FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| Error::io("locking", &path)(e.into()))?;
    let path = staged.join(blobs_name);
    let blobs = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(Error::io("creating", &path))?;
    Ok((lock, blobs))
}

/// A lease's directory, removed by its owner before the lock is let go.
#[derive(Debug)]
pub(crate) struct LeaseDir(pub(crate) PathBuf);

impl LeaseDir {
    /// Removes the directory, as the lease ends with its lock still held.
    pub(crate) fn remove_while_held(&self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Takes the lock file `path` if no one holds it: `Some` holds it for as
/// long as it lives, `None` means another holds it.
pub(crate) fn take_if_free(path: &Path) -> std::io::Result<Option<File>> {
    let f = File::open(path)?;
    Ok(flock(&f, FlockOperation::NonBlockingLockExclusive)
        .is_ok()
        .then_some(f))
}

/// Removes the dead lease directory `dir` whose lock this process took,
/// holding it until the lease is gone.
pub(crate) fn remove_taken(dir: &Path, _taken: File) {
    let _ = fs::remove_dir_all(dir);
}

/// Whether someone holds the lock file `path`.
pub(crate) fn is_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => matches!(
            flock(&f, FlockOperation::NonBlockingLockShared),
            Err(Errno::WOULDBLOCK)
        ),
        Err(_) => false,
    }
}

/// Whether a lease directory without a lock file is dead: on Unix a lease
/// is visible only once locked, so it is.
pub(crate) fn lockless_lease_is_dead(_dir: &Path, _blobs: &str) -> bool {
    true
}

/// Flushes the directory `dir`, so a rename or unlink in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Store files are world-readable like any image layout (temp files start as 0600).
pub(crate) fn set_readable(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// The store of the whole system, for root: `/var/lib/kiln`.
pub(crate) fn system_root() -> Option<PathBuf> {
    rustix::process::geteuid()
        .is_root()
        .then(|| PathBuf::from("/var/lib/kiln"))
}

/// The store below a user's home directory.
pub(crate) fn home_root(home: &Path) -> PathBuf {
    home.join(".local/share/kiln")
}

/// The path an archive entry's name (bytes) stands for.
pub(crate) fn entry_path(name: &[u8]) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(name)))
}

/// Detaches every mount at or below `path`, deepest first, so that removing
/// a dead process's directory never reaches through a mount into what is
/// mounted there.
pub(crate) fn unmount_under(path: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_point(p)))
        .filter(|p| p.starts_with(path))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = rustix::mount::unmount(
            &p,
            rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW,
        );
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_point(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mount_point(r"/plain\0"), r"/plain\0");
    }
}
