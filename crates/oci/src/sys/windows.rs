//! The Windows side of [`crate::sys`], on `std` and two `kernel32`
//! queries `std` does not expose on stable Rust (a file's index, link count
//! and change time), called through `windows-sys`.

use super::{StatTimes, UnixTime};
use std::fs::{File, FileTimes, Metadata, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use windows_sys::Win32::Storage::FileSystem::{
    FileBasicInfo, GetFileInformationByHandle, GetFileInformationByHandleEx,
    BY_HANDLE_FILE_INFORMATION, FILE_BASIC_INFO,
};
pub(crate) use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_READ_ATTRIBUTES,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_ATTRIBUTES,
};

/// 100 ns intervals from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// What an open handle says of its file, beyond `std`'s [`Metadata`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandleInfo {
    /// The serial number of the volume the file is on.
    pub volume: u64,
    /// The file's index on its volume: with `volume`, which file it is.
    pub index: u64,
    /// How many names the file has.
    pub links: u32,
    /// Size in bytes.
    pub size: u64,
    /// Win32 attributes.
    pub attributes: u32,
    /// Last write.
    pub write: UnixTime,
    /// NTFS's change time: the last change of data or metadata.
    pub change: UnixTime,
}

/// Queries the open `file`.
pub(crate) fn handle_info(file: &File) -> io::Result<HandleInfo> {
    let mut by_handle = BY_HANDLE_FILE_INFORMATION::default();
    let mut basic = FILE_BASIC_INFO::default();
    let handle = file.as_raw_handle();
    // SAFETY: the handle is open for as long as `file` is borrowed, and
    // each call writes at most the size of the struct it is given.
    let ok = unsafe {
        GetFileInformationByHandle(handle, &mut by_handle) != 0
            && GetFileInformationByHandleEx(
                handle,
                FileBasicInfo,
                (&mut basic as *mut FILE_BASIC_INFO).cast(),
                std::mem::size_of::<FILE_BASIC_INFO>() as u32,
            ) != 0
    };
    if !ok {
        return Err(io::Error::last_os_error());
    }
    let high_low = |high: u32, low: u32| (u64::from(high) << 32) | u64::from(low);
    Ok(HandleInfo {
        volume: u64::from(by_handle.dwVolumeSerialNumber),
        index: high_low(by_handle.nFileIndexHigh, by_handle.nFileIndexLow),
        links: by_handle.nNumberOfLinks,
        size: high_low(by_handle.nFileSizeHigh, by_handle.nFileSizeLow),
        attributes: by_handle.dwFileAttributes,
        write: filetime_to_unix(basic.LastWriteTime),
        change: filetime_to_unix(basic.ChangeTime),
    })
}

/// A FILETIME as seconds and nanoseconds since the Unix epoch.
pub(crate) fn filetime_to_unix(ft: i64) -> UnixTime {
    let since = i128::from(ft) - i128::from(FILETIME_UNIX_EPOCH);
    let secs = since.div_euclid(10_000_000) as i64;
    let nanos = (since.rem_euclid(10_000_000) * 100) as u32;
    (secs, nanos)
}

/// Seconds and nanoseconds since the Unix epoch as a [`SystemTime`].
pub(crate) fn unix_to_system_time(secs: i64, nanos: u32) -> io::Result<SystemTime> {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(nanos.into())))
    };
    t.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("time {secs}.{nanos:09} is out of range"),
        )
    })
}

/// The times `md` reports.
pub(crate) fn stat_times(md: &Metadata) -> StatTimes {
    let modified = filetime_to_unix(md.last_write_time() as i64);
    StatTimes {
        modified,
        accessed: filetime_to_unix(md.last_access_time() as i64),
        // `std` reports no change time without the open file (stable Rust
        // has no `MetadataExt::change_time`); the last write is the
        // nearest time it does report. Callers that hold the file and
        // need NTFS's change time use `handle_info`.
        changed: modified,
    }
}

/// For a file with more than one name, what identifies it among the
/// others (volume, file index); `None` for a file with one name. `std`'s
/// [`Metadata`] has neither the link count nor the index on stable Rust,
/// so the open `file` is asked.
pub(crate) fn link_key(_md: &Metadata, file: &File) -> io::Result<Option<(u64, u64)>> {
    let info = handle_info(file)?;
    Ok((info.links > 1).then_some((info.volume, info.index)))
}

/// Nothing to do: access to a Windows file is its ACL, inherited from its
/// directory, and `std`'s permissions there are only the read-only
/// attribute, which would stop the file ever being replaced.
pub(crate) fn make_world_readable(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Nothing to do: a directory cannot be flushed through a handle `std`
/// opens (it needs backup semantics and write access), and NTFS commits a
/// rename to its metadata log itself.
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Opens `path` for reading without following a reparse point at its end:
/// a symlink or junction there is opened itself, for the caller to refuse.
pub(crate) fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// Opens a file kiln wrote itself for reading, not following a reparse
/// point in its place (which then reads as no regular file). A FIFO cannot
/// be there: Windows' named pipes live outside the file system.
pub(crate) fn open_source_file(path: &Path) -> io::Result<File> {
    open_no_follow(path)
}

/// Sets the last access and last write times of `path` (a file, a
/// directory or a reparse point itself, never what one points to).
pub(crate) fn set_times_no_follow(
    path: &Path,
    accessed: UnixTime,
    modified: UnixTime,
) -> io::Result<()> {
    let file = OpenOptions::new()
        .access_mode(FILE_WRITE_ATTRIBUTES)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    set_file_times(&file, accessed, modified)
}

/// Sets the last access and last write times of the open `file`.
pub(crate) fn set_file_times(
    file: &File,
    accessed: UnixTime,
    modified: UnixTime,
) -> io::Result<()> {
    let times = FileTimes::new()
        .set_accessed(unix_to_system_time(accessed.0, accessed.1)?)
        .set_modified(unix_to_system_time(modified.0, modified.1)?);
    file.set_times(times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn filetimes_convert_both_sides_of_the_unix_epoch() {
        assert_eq!(filetime_to_unix(FILETIME_UNIX_EPOCH), (0, 0));
        assert_eq!(filetime_to_unix(FILETIME_UNIX_EPOCH + 15), (0, 1500));
        assert_eq!(filetime_to_unix(FILETIME_UNIX_EPOCH - 1), (-1, 999_999_900));
        assert_eq!(
            unix_to_system_time(-1, 999_999_900).unwrap(),
            UNIX_EPOCH - Duration::from_nanos(100)
        );
    }

    #[test]
    fn handles_report_identity_links_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        File::create(&a).unwrap().write_all(b"12345").unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        let fa = File::open(&a).unwrap();
        let fb = File::open(dir.path().join("b")).unwrap();
        let (ia, ib) = (handle_info(&fa).unwrap(), handle_info(&fb).unwrap());
        assert_eq!((ia.volume, ia.index), (ib.volume, ib.index));
        assert_eq!((ia.links, ia.size), (2, 5));
        assert_eq!(
            link_key(&fa.metadata().unwrap(), &fa).unwrap(),
            Some((ia.volume, ia.index))
        );

        set_times_no_follow(&a, (1_000_000_000, 0), (1_600_000_000, 500)).unwrap();
        let info = handle_info(&File::open(&a).unwrap()).unwrap();
        assert_eq!(info.write, (1_600_000_000, 500));
        let md = std::fs::metadata(&a).unwrap();
        assert_eq!(stat_times(&md).modified, (1_600_000_000, 500));
        assert_eq!(stat_times(&md).accessed, (1_000_000_000, 0));
    }
}
