//! The Windows side of [`crate::sys`].
//!
//! The store lock is `LockFileEx` (through `windows-sys`: `std`'s file
//! locks are newer than kiln's Rust version), held and waited for as
//! flock is on Unix, and released when its handle closes, however the
//! process ends.
//!
//! A lease's lock is its `lock` file held open without read or write
//! sharing: no one else can open it to read while the owner lives, which
//! is how [`is_held`] tells, and Windows closes the handle when the owner
//! dies. The lease cannot be made in a hidden directory and renamed into
//! place as on Unix, because Windows refuses to rename a directory while a
//! file in it is open; it is made in place instead, its `lock` created
//! already held (`create_new` without sharing is one step), and a lease
//! directory seen without a `lock` is one being made (or a removal cut
//! short): it is removed only when empty, see [`lockless_lease_is_dead`].

use super::Mode;
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};

use windows_sys::Win32::Storage::FileSystem::{
    LockFileEx, FILE_SHARE_DELETE, FILE_SHARE_READ, LOCKFILE_EXCLUSIVE_LOCK,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// `ERROR_SHARING_VIOLATION`: another handle's share mode refuses the open.
const SHARING_VIOLATION: i32 = 32;

/// Waits for the lock on `file`: the whole file's byte range, shared or
/// exclusive.
pub(crate) fn lock(file: &File, mode: Mode) -> io::Result<()> {
    let flags = match mode {
        Mode::Shared => 0,
        Mode::Exclusive => LOCKFILE_EXCLUSIVE_LOCK,
    };
    let mut overlapped = OVERLAPPED::default();
    // SAFETY: the handle is open while `file` is borrowed, and the call
    // (synchronous: the file is not opened for overlapped I/O) is done
    // with `overlapped` when it returns.
    let ok = unsafe {
        LockFileEx(
            file.as_raw_handle(),
            flags,
            0,
            u32::MAX,
            u32::MAX,
            &mut overlapped,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the lease `id` in `leases` in place (see the module
/// documentation): its directory, its `lock` created held, then its
/// `blobs` file. Returns its directory, its held lock and its `blobs` file.
pub(crate) fn make_lease(
    leases: &Path,
    id: &str,
    lock: &str,
    blobs: &str,
) -> Result<(PathBuf, File, File)> {
    let dir = leases.join(id);
    fs::create_dir(&dir).map_err(Error::io("creating", &dir))?;
    let made = (|| {
        let path = dir.join(lock);
        // Deletion stays shared so that the owner can remove its lease
        // while it holds it, as on Unix.
        let lock = OpenOptions::new()
            .create_new(true)
            .write(true)
            .share_mode(FILE_SHARE_DELETE)
            .open(&path)
            .map_err(Error::io("creating", &path))?;
        let path = dir.join(blobs);
        // Readable by GC in other processes, and held open without write
        // sharing, so that the removal of a lockless lease never takes it.
        let blobs = OpenOptions::new()
            .create_new(true)
            .append(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_DELETE)
            .open(&path)
            .map_err(Error::io("creating", &path))?;
        Ok((lock, blobs))
    })();
    match made {
        Ok((lock, blobs)) => Ok((dir, lock, blobs)),
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// A lease's directory, removed when dropped, after the lease's files
/// (which its owner drops first): while they are open, Windows (or wine,
/// without POSIX delete semantics) only marks them for deletion, and the
/// directory cannot go.
#[derive(Debug)]
pub(crate) struct LeaseDir(pub(crate) PathBuf);

impl LeaseDir {
    /// Nothing yet: the directory goes when this is dropped.
    pub(crate) fn remove_while_held(&self) {}
}

impl Drop for LeaseDir {
    fn drop(&mut self) {
        // `blobs` before `lock`: cut short between the two, the lease
        // still has its lock file (free, so dead, and reclaimed whole),
        // never a lockless directory with something left in it.
        let _ = fs::remove_file(self.0.join(super::BLOBS));
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Opens `path` for reading, sharing nothing but deletion: it succeeds
/// only when no one else has the file open to read or write, and holds it
/// so until the handle closes. `None` when someone has it open.
fn take(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_DELETE)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(SHARING_VIOLATION) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the lock file `path` if no one holds it: `Some` holds it for as
/// long as it lives (its removal still allowed), `None` means another
/// holds it.
pub(crate) fn take_if_free(path: &Path) -> io::Result<Option<File>> {
    take(path)
}

/// Removes the dead lease directory `dir` whose lock this process took.
/// The lock is let go first: while a handle is open, Windows (or wine,
/// without POSIX delete semantics) only marks the file for deletion, and
/// the directory cannot go. Its owner is dead and its id is never used
/// again, so no one can take the lease back meanwhile.
pub(crate) fn remove_taken(dir: &Path, taken: File) {
    drop(taken);
    let _ = fs::remove_dir_all(dir);
}

/// Whether someone holds the lock file `path`: an open to read, sharing
/// everything, fails only against a handle that shares no reading.
pub(crate) fn is_held(path: &Path) -> bool {
    matches!(
        File::open(path),
        Err(e) if e.raw_os_error() == Some(SHARING_VIOLATION)
    )
}

/// A lease directory without a lock file is one being made (its maker
/// creates the lock next) or one whose removal was cut short: never
/// treated as dead, as its maker's work could go with it. Removed here
/// only as far as nothing live is in it: its `blobs` file if no one has it
/// open (a maker holds its own), then the directory if that left it empty.
pub(crate) fn lockless_lease_is_dead(dir: &Path, blobs: &str) -> bool {
    let path = dir.join(blobs);
    if let Ok(Some(_held)) = take(&path) {
        let _ = fs::remove_file(&path);
    }
    let _ = fs::remove_dir(dir);
    false
}

/// Nothing to do: a directory cannot be flushed through a handle `std`
/// opens (it needs backup semantics and write access), and NTFS commits a
/// rename or a removal to its metadata log itself.
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Nothing to do: access to a Windows file is its ACL, inherited from its
/// directory, and `std`'s permissions there are only the read-only
/// attribute, which would stop the blob ever being replaced or removed.
pub(crate) fn set_readable(_file: &File) -> io::Result<()> {
    Ok(())
}

/// None: Windows has no root user whose store is the system's; an
/// elevated administrator has its own profile, and so its own store.
pub(crate) fn system_root() -> Option<PathBuf> {
    None
}

/// The store below a user's profile directory, where Windows programs
/// keep their local data.
pub(crate) fn home_root(home: &Path) -> PathBuf {
    home.join(r"AppData\Local\kiln")
}

/// The path an archive entry's name (bytes) stands for; `None`, and the
/// entry skipped, for a name that is not UTF-8 (no JSON file in the
/// archive can name it, so nothing would read it) or that holds a `:`
/// (which would write an alternate data stream, and no OCI layout or
/// docker-archive file name has one).
pub(crate) fn entry_path(name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    (!name.contains(':')).then(|| PathBuf::from(name))
}

/// Nothing to do: no mount reaches into a directory here that removing it
/// could go through. A volume mounted in a folder is a reparse point, and
/// `std`'s `remove_dir_all` removes a reparse point without entering it.
pub(crate) fn unmount_under(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_lock_cannot_be_taken_and_is_free_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (lease, lock, blobs) = make_lease(dir.path(), "1.2.3", "lock", "blobs").unwrap();
        assert_eq!(lease, dir.path().join("1.2.3"));
        let path = lease.join("lock");
        assert!(is_held(&path));
        assert!(take_if_free(&path).unwrap().is_none());
        // GC reads what the lease holds while its owner writes it.
        let text = fs::read_to_string(lease.join("blobs")).unwrap();
        assert_eq!(text, "");
        // Nothing is removed from a lease whose owner lives.
        assert!(!lockless_lease_is_dead(&lease, "blobs"));
        assert!(lease.join("blobs").exists());
        drop((lock, blobs));
        assert!(!is_held(&path));
        let taken = take_if_free(&path).unwrap().expect("free");
        // Taken, it counts as held, and its removal is still allowed.
        assert!(is_held(&path));
        assert!(take_if_free(&path).unwrap().is_none());
        drop(taken);
        assert!(take_if_free(&path).unwrap().is_some());
        assert!(take_if_free(&lease.join("absent")).is_err());
    }

    #[test]
    fn a_lockless_lease_loses_only_what_no_one_holds() {
        let dir = tempfile::tempdir().unwrap();
        let lease = dir.path().join("1.2.3");
        fs::create_dir(&lease).unwrap();
        fs::write(lease.join("blobs"), b"").unwrap();
        let open = OpenOptions::new()
            .append(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_DELETE)
            .open(lease.join("blobs"))
            .unwrap();
        assert!(!lockless_lease_is_dead(&lease, "blobs"));
        assert!(lease.join("blobs").exists(), "its maker holds it");
        drop(open);
        assert!(!lockless_lease_is_dead(&lease, "blobs"));
        assert!(!lease.exists(), "a removal cut short is finished");
    }

    #[test]
    fn the_store_lock_excludes_and_shares_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.lock");
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let (a, b) = (open(), open());
        lock(&a, Mode::Shared).unwrap();
        lock(&b, Mode::Shared).unwrap();
        drop((a, b));
        let a = open();
        lock(&a, Mode::Exclusive).unwrap();
        let waiter = std::thread::spawn({
            let b = open();
            move || {
                lock(&b, Mode::Exclusive).unwrap();
                std::time::Instant::now()
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let released = std::time::Instant::now();
        drop(a);
        assert!(waiter.join().unwrap() >= released, "waited for the holder");
    }

    #[test]
    fn archive_names_that_windows_cannot_hold_are_skipped() {
        assert_eq!(
            entry_path(b"blobs/sha256/ab"),
            Some("blobs/sha256/ab".into())
        );
        assert_eq!(entry_path(b"a\xffb"), None);
        assert_eq!(entry_path(b"index.json:hidden"), None);
        assert_eq!(
            home_root(Path::new(r"C:\Users\u")),
            Path::new(r"C:\Users\u\AppData\Local\kiln")
        );
    }
}
