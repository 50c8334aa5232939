//! The Windows side of [`crate::tree`]. `std` has no `openat` here, so a
//! path below the root is reached by opening each directory on the way in
//! turn: each is refused if it is a reparse point (a symlink, a junction,
//! a mount point: anything that could lead elsewhere) or not a directory,
//! and held open without `FILE_SHARE_DELETE`, which stops anyone renaming
//! or deleting it, so the path stays the one checked until the last
//! component is opened (itself without following a reparse point).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{components, FileIdentity, HostKind, HostStat};
use crate::sys::{
    handle_info, open_no_follow, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_SHARE_WRITE,
};

/// `ERROR_FILE_NOT_FOUND` and `ERROR_PATH_NOT_FOUND`.
const NOT_FOUND: [i32; 2] = [2, 3];

impl FileIdentity {
    /// The identity of the open `file`: `std`'s [`Metadata`] holds
    /// neither the file index nor the change time on stable Rust, so the
    /// handle is asked.
    pub fn of_file(file: &File) -> io::Result<FileIdentity> {
        let info = handle_info(file)?;
        Ok(FileIdentity {
            dev: info.volume,
            ino: info.index,
            size: info.size,
            mtime: (info.write.0, info.write.1.into()),
            ctime: (info.change.0, info.change.1.into()),
        })
    }
}

/// Why a path below a root was refused rather than followed.
#[derive(Debug)]
enum Refused {
    /// A component is a reparse point.
    Link(PathBuf),
    /// A component that must be a directory is not one.
    NotDir(PathBuf),
    /// A component names an alternate data stream.
    Stream(PathBuf),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Link(p) => write!(
                f,
                "{} is a symbolic link, junction or other reparse point; it is not followed",
                p.display()
            ),
            Refused::NotDir(p) => write!(f, "{} is not a directory", p.display()),
            Refused::Stream(p) => write!(
                f,
                "{} names an alternate data stream (':'), not a file",
                p.display()
            ),
        }
    }
}

impl std::error::Error for Refused {}

fn refused(r: Refused) -> io::Error {
    let kind = match r {
        Refused::Stream(_) => io::ErrorKind::InvalidInput,
        Refused::Link(_) | Refused::NotDir(_) => io::ErrorKind::Other,
    };
    io::Error::new(kind, r)
}

/// What an error opening a listed file says changed about it, if it is
/// one a change explains.
pub(super) fn changed_reason(err: &io::Error) -> Option<&'static str> {
    if let Some(r) = err.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        return match r {
            Refused::Link(_) => Some("a symbolic link is now on its path"),
            Refused::NotDir(_) => Some("a directory on its path was replaced"),
            Refused::Stream(_) => None,
        };
    }
    match err.raw_os_error() {
        Some(code) if NOT_FOUND.contains(&code) => Some("it was removed"),
        _ => None,
    }
}

pub(super) fn mode_of(meta: &Metadata) -> u32 {
    attributes_mode(meta.file_attributes())
}

/// fsutil's rule on Windows: Go's mode (0444 when read-only, else 0666),
/// plus x for everyone, within 0755.
fn attributes_mode(attributes: u32) -> u32 {
    if attributes & FILE_ATTRIBUTE_READONLY != 0 {
        0o555
    } else {
        0o755
    }
}

/// The walk refuses a reparse point with its own error.
pub(super) fn is_link_on_path(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<Refused>())
        .is_some_and(|r| matches!(r, Refused::Link(_)))
}

/// Not found, the walk's own refusal of a non-directory,
/// `ERROR_DIRECTORY` and `ERROR_NOT_A_REPARSE_POINT`.
pub(super) fn is_raced(err: &io::Error) -> bool {
    const ERROR_DIRECTORY: i32 = 267;
    const ERROR_NOT_A_REPARSE_POINT: i32 = 4390;
    if let Some(r) = err.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        return matches!(r, Refused::NotDir(_));
    }
    err.raw_os_error().is_some_and(|code| {
        NOT_FOUND.contains(&code) || code == ERROR_DIRECTORY || code == ERROR_NOT_A_REPARSE_POINT
    })
}

/// Whether the open `file` is a regular file, and its identity now.
pub(super) fn identity_of_open(file: &File) -> io::Result<(bool, FileIdentity)> {
    let meta = file.metadata()?;
    let regular = meta.is_file() && meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT == 0;
    Ok((regular, FileIdentity::of_file(file)?))
}

/// Opens the directory `path` itself (a reparse point there is opened, not
/// followed) so that it cannot be renamed or deleted while the handle
/// lives: read access makes the open count in Windows' sharing checks,
/// and the share mode leaves out `FILE_SHARE_DELETE`.
fn pin_dir(path: &Path) -> io::Result<File> {
    let dir = OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    let md = dir.metadata()?;
    if md.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(refused(Refused::Link(path.to_path_buf())));
    }
    if !md.is_dir() {
        return Err(refused(Refused::NotDir(path.to_path_buf())));
    }
    Ok(dir)
}

/// A directory whose files are opened beneath it: the directory is held
/// open so that it cannot be renamed or replaced, and paths below it are
/// reached as the module documentation says.
pub struct TreeRoot {
    dir: File,
    /// The canonical (`\\?\`) path of `dir`, which names it for as long as
    /// it is held; verbatim, so Win32 neither strips trailing dots and
    /// spaces from names nor limits their length.
    base: PathBuf,
    path: PathBuf,
}

impl TreeRoot {
    /// Opens the directory `path` (a symlink naming the root itself is
    /// followed: whoever gave the path chose it).
    pub fn open(path: &Path) -> io::Result<TreeRoot> {
        let base = std::fs::canonicalize(path)?;
        let dir = pin_dir(&base)?;
        Ok(TreeRoot {
            dir,
            base,
            path: path.to_path_buf(),
        })
    }

    /// The path the root was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (relative, without `..`) for reading without following
    /// a reparse point at any of its components. The file is not checked:
    /// see [`super::TreeFile::open`].
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        let Some((parent, last)) = self.parent(rel)? else {
            return self.dir.try_clone();
        };
        let path = parent.path.join(last);
        let file = open_no_follow(&path)?;
        if file.metadata()?.is_symlink() {
            return Err(refused(Refused::Link(path)));
        }
        Ok(file)
    }

    /// The metadata of `rel` itself (a reparse point's own), reached
    /// without following a reparse point on the way: a directory swapped
    /// for a link out of the tree is an error, never another file's
    /// metadata.
    pub fn symlink_metadata(&self, rel: &Path) -> io::Result<Metadata> {
        match self.parent(rel)? {
            None => self.dir.metadata(),
            Some((parent, last)) => std::fs::symlink_metadata(parent.path.join(last)),
        }
    }

    /// What `rel` itself is (a reparse point's own metadata), reached as
    /// [`TreeRoot::symlink_metadata`] reaches it.
    pub fn stat(&self, rel: &Path) -> io::Result<HostStat> {
        let file = match self.parent(rel)? {
            None => self.dir.try_clone()?,
            // Attributes only, so a file another program holds open
            // without sharing reads is still listed.
            Some((parent, last)) => OpenOptions::new()
                .access_mode(FILE_READ_ATTRIBUTES)
                .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
                .open(parent.path.join(last))?,
        };
        let info = handle_info(&file)?;
        let kind = if info.attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            HostKind::Symlink
        } else if info.attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
            HostKind::Dir
        } else {
            HostKind::File
        };
        let mode = attributes_mode(info.attributes);
        Ok(HostStat {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: info.write.0,
            link_key: (kind == HostKind::File && info.links > 1)
                .then_some((info.volume, info.index)),
            identity: FileIdentity::of_file(&file)?,
        })
    }

    /// The target of the symlink `rel`, reached as
    /// [`TreeRoot::symlink_metadata`] reaches it.
    pub fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        match self.parent(rel)? {
            None => std::fs::read_link(&self.base),
            Some((parent, last)) => std::fs::read_link(parent.path.join(last)),
        }
    }

    /// The names in the directory `rel` (`""` for the root), unsorted,
    /// reached as [`TreeRoot::symlink_metadata`] reaches it.
    pub fn read_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        let dir = self.open_dir(rel)?;
        std::fs::read_dir(&dir.path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    /// The directory `rel` (`""` for the root), for creating and changing
    /// files in it, reached as [`TreeRoot::symlink_metadata`] reaches it:
    /// a writer never follows a reparse point someone left in the tree.
    pub fn open_dir(&self, rel: &Path) -> io::Result<TreeDir> {
        self.walk(&components(rel)?)
    }

    /// The directory holding `rel`, and `rel`'s last name; `None` for the
    /// root itself.
    fn parent<'a>(&self, rel: &'a Path) -> io::Result<Option<(TreeDir, &'a OsStr)>> {
        let names = components(rel)?;
        let Some((last, dirs)) = names.split_last() else {
            return Ok(None);
        };
        check_name(&self.base, last)?;
        Ok(Some((self.walk(dirs)?, last)))
    }

    fn walk(&self, names: &[&OsStr]) -> io::Result<TreeDir> {
        let mut dir = TreeDir {
            pins: vec![self.dir.try_clone()?],
            path: self.base.clone(),
        };
        for name in names {
            check_name(&dir.path, name)?;
            dir.path.push(name);
            dir.pins.push(pin_dir(&dir.path)?);
        }
        Ok(dir)
    }
}

/// A `:` in a name would reach a stream of a file rather than a file.
fn check_name(dir: &Path, name: &OsStr) -> io::Result<()> {
    if name.to_string_lossy().contains(':') {
        return Err(refused(Refused::Stream(dir.join(name))));
    }
    Ok(())
}

impl fmt::Debug for TreeRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TreeRoot").field(&self.path).finish()
    }
}

/// A directory below a [`TreeRoot`], reached without following a reparse
/// point. It and every directory above it up to the root are held open
/// while this lives, so none can be renamed or replaced: its
/// [`TreeDir::path`] keeps naming it, and creating `path().join(name)`
/// creates `name` in it.
#[derive(Debug)]
pub struct TreeDir {
    pins: Vec<File>,
    path: PathBuf,
}

impl TreeDir {
    /// The directory's full (`\\?\`) path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory.
    pub fn handle(&self) -> &File {
        self.pins.last().expect("a TreeDir holds at least the root")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{TreeFile, TreeFileError};
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    fn tree() -> (tempfile::TempDir, TreeRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"inside").unwrap();
        std::fs::write(dir.path().join("outside"), b"host").unwrap();
        let root = TreeRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    fn listed(dir: &Path, root: TreeRoot, rel: &str) -> TreeFile {
        let identity = FileIdentity::of_file(&File::open(dir.join(rel)).unwrap()).unwrap();
        TreeFile {
            root: Arc::new(root),
            path: rel.into(),
            identity,
        }
    }

    #[test]
    fn opens_lists_and_stats_below_the_root() {
        let (_dir, root) = tree();
        let mut s = String::new();
        root.open_file(Path::new("d/f"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "inside");
        let mut names = root.read_dir(Path::new("")).unwrap();
        names.sort();
        assert_eq!(names, ["d", "outside"]);
        assert_eq!(root.read_dir(Path::new("d")).unwrap(), ["f"]);
        assert!(root.symlink_metadata(Path::new("d")).unwrap().is_dir());
        assert_eq!(root.symlink_metadata(Path::new("d/f")).unwrap().len(), 6);
        assert!(root.symlink_metadata(Path::new("")).unwrap().is_dir());
        let dir = root.open_dir(Path::new("d")).unwrap();
        assert!(dir.path().ends_with("d"));
        assert!(dir.handle().metadata().unwrap().is_dir());
    }

    #[test]
    fn refuses_paths_that_climb_out_or_name_streams() {
        let (_dir, root) = tree();
        for rel in ["../x", "C:\\Windows\\win.ini", "\\x", "d/../../x"] {
            assert!(root.open_file(Path::new(rel)).is_err(), "{rel}");
        }
        let err = root.open_file(Path::new("d/f:hidden")).unwrap_err();
        assert!(err.to_string().contains("alternate data stream"), "{err}");
        let err = root.open_dir(Path::new("d/f")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn follows_no_symlink_at_any_component() {
        let (dir, root) = tree();
        let host = dir.path().join("outside");
        let made = std::os::windows::fs::symlink_file(&host, dir.path().join("d/link"))
            .and_then(|()| std::os::windows::fs::symlink_dir("d", dir.path().join("dirlink")));
        if let Err(e) = made {
            // Creating symlinks needs SeCreateSymbolicLinkPrivilege (or
            // Developer Mode); without it no tree can hold one either.
            eprintln!("skipped: cannot create symlinks here: {e}");
            return;
        }
        if !std::fs::symlink_metadata(dir.path().join("dirlink")).is_ok_and(|m| m.is_symlink()) {
            // Wine 8 makes a Unix symlink and then shows it as what it
            // points to: it has no reparse points to refuse.
            eprintln!("skipped: this host does not show symlinks as reparse points");
            return;
        }
        for rel in ["d/link", "dirlink/f"] {
            let err = root.open_file(Path::new(rel)).expect_err(rel);
            assert_eq!(
                changed_reason(&err),
                Some("a symbolic link is now on its path"),
                "{rel}: {err}"
            );
        }
        assert!(root.read_dir(Path::new("dirlink")).is_err());
        assert!(root.symlink_metadata(Path::new("dirlink/f")).is_err());
        assert!(root
            .symlink_metadata(Path::new("dirlink"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            root.read_link(Path::new("dirlink")).unwrap(),
            Path::new("d")
        );
    }

    #[test]
    fn a_modified_file_is_refused_after_the_read() {
        let (dir, root) = tree();
        let file = listed(dir.path(), root, "d/f");
        let open = file.open().unwrap();
        file.verify(&open).unwrap();
        std::fs::write(dir.path().join("d/f"), b"inside, and more").unwrap();
        let err = file.verify(&open).unwrap_err();
        assert!(
            err.to_string().contains("its size went from 6 to 16"),
            "{err}"
        );
    }

    #[test]
    fn a_replaced_or_removed_file_is_refused() {
        let (dir, root) = tree();
        let file = listed(dir.path(), root, "d/f");
        let path = dir.path().join("d/f");
        // Same name, same size, another file: only its index tells.
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        std::fs::write(&path, b"INSIDE").unwrap();
        match file.open() {
            Err(TreeFileError::Changed { reason, .. }) => {
                assert_eq!(reason, "it was replaced by another file")
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
        match file.open() {
            Err(TreeFileError::Changed { reason, .. }) => assert_eq!(reason, "it was removed"),
            other => panic!("{other:?}"),
        }
    }
}
