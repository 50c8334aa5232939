//! The Windows side of [`crate::sys`].

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::windows::fs::FileExt;
use std::path::Path;

/// Creates `dir` and its parents. Windows has no mode to give them: access
/// is the ACL inherited from the directory above, and a credentials file
/// lives in the user's profile (`%USERPROFILE%\.docker`), whose ACL admits
/// only the user, SYSTEM and administrators, as docker's own file there.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).create(dir)
}

/// Creates or truncates `path` for writing; private as its directory is,
/// see [`create_private_dir`].
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Fills `buf` from `file` at `offset`. Each read names its offset, so
/// reads of one file from several uploads at once do not disturb each
/// other (`seek_read` moves the file position too, which nothing here
/// uses).
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positioned_reads_fill_the_buffer_and_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        read_exact_at(&file, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        read_exact_at(&file, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"0123");
        let err = read_exact_at(&file, &mut buf, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn private_files_are_created_with_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        create_private_dir(&sub).unwrap();
        use std::io::Write;
        create_private_file(&sub.join("config.json"))
            .unwrap()
            .write_all(b"{}")
            .unwrap();
        create_private_file(&sub.join("config.json")).unwrap();
        assert_eq!(std::fs::read(sub.join("config.json")).unwrap(), b"");
    }
}
