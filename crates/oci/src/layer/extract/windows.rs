//! The Windows extractor. Every parent directory is checked component by
//! component from the root (a symlink, junction or other reparse point on
//! the way is refused, as on Unix) and then held open through a
//! [`TreeDir`], which stops it being renamed or replaced while the entry
//! is written; the entry itself is created without following a reparse
//! point in its place.
//!
//! What a Windows file cannot hold is not applied: the mode (access is the
//! ACL the target directory passes on, and the read-only attribute would
//! only stop later layers replacing the file; moby's Windows extraction
//! skips modes too), the owner (a uid names no Windows account, so
//! `restore_owners` is refused) and xattrs (NTFS has no POSIX xattrs).

use super::{ExtractOptions, Whiteouts};
use crate::layer::read::{Entry, LayerReader, Node};
use crate::sys::{set_file_times, set_times_no_follow, FILE_FLAG_OPEN_REPARSE_POINT};
use crate::tree::{TreeDir, TreeRoot};
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io;
use std::os::windows::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Never by default: a layer's uid and gid name no Windows account.
pub(super) fn can_restore_owners() -> bool {
    false
}

/// Sets the access and modification times of `name` in the directory
/// `dir` (or of `name` itself when it is absolute) to `secs` and `nanos`,
/// not following a symlink or other reparse point at its end: the one way
/// every part of kiln that writes files gives them a layer's or a step's
/// times. Windows has no directory descriptors in `std`, so `dir` is a
/// path.
pub fn set_mtime_at(dir: &Path, name: impl AsRef<Path>, secs: i64, nanos: u32) -> io::Result<()> {
    set_times_no_follow(&dir.join(name), (secs, nanos), (secs, nanos))
}

pub(super) struct Extractor {
    root: TreeRoot,
    /// Paths this layer wrote, which an opaque whiteout must not remove.
    created: HashSet<Vec<u8>>,
    /// Directories and their mtimes, applied at the end.
    dirs: Vec<(Vec<u8>, i64)>,
    /// [`ExtractOptions::replace_in_the_way`].
    replace: bool,
}

/// The names of a layer path, each one Windows stores as it is.
fn names(path: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(path)
        .map_err(|_| "the name is not UTF-8, so no Windows file can have it".to_string())?;
    let comps: Vec<&str> = text.split('/').collect();
    for c in &comps {
        if let Some(reason) = crate::path::windows_name_problem(c) {
            return Err(format!("{c:?}: {reason}"));
        }
    }
    Ok(comps)
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn is_link(md: &std::fs::Metadata) -> bool {
    md.is_symlink() || md.file_attributes() & crate::sys::FILE_ATTRIBUTE_REPARSE_POINT != 0
}

/// Removes `path` and, for a directory, everything under it; a symlink or
/// junction is removed itself, never what it points to (nor does `std`'s
/// `remove_dir_all` follow one inside).
fn remove_all(path: &Path) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if md.file_type().is_symlink_dir() {
        std::fs::remove_dir(path)
    } else if md.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

impl Extractor {
    pub(super) fn open(root: &Path, options: ExtractOptions) -> Result<Extractor, String> {
        if options.restore_owners {
            return Err(
                "restoring owners is not supported on Windows: a layer's uid and gid name no Windows account"
                    .into(),
            );
        }
        if let Whiteouts::Overlay { .. } = options.whiteouts {
            return Err(
                "overlay-format whiteouts are for Linux's overlayfs, which Windows does not have"
                    .into(),
            );
        }
        let root =
            TreeRoot::open(root).map_err(|e| format!("cannot open {}: {e}", root.display()))?;
        Ok(Extractor {
            root,
            created: HashSet::new(),
            dirs: Vec::new(),
            replace: options.replace_in_the_way,
        })
    }

    /// Directory times last, deepest first: adding children changed them.
    pub(super) fn finish(self) -> Result<(), (Option<String>, String)> {
        for (path, mtime) in self.dirs.iter().rev() {
            let shown = || String::from_utf8_lossy(path).into_owned();
            let comps = names(path).map_err(|e| (Some(shown()), e))?;
            let (name, parents) = comps.split_last().expect("split yields one item");
            let dir = self
                .root
                .open_dir(Path::new(&parents.join("/")))
                .map_err(|e| (None, format!("opening the parent directory: {e}")))?;
            set_mtime_at(dir.path(), name, *mtime, 0)
                .map_err(|e| (Some(shown()), format!("setting mtime: {e}")))?;
        }
        Ok(())
    }

    /// The directory `comps` below the root, created (with its missing
    /// parents) if need be; a reparse point or a non-directory on the way
    /// is refused.
    fn open_dir(&self, comps: &[&str]) -> Result<TreeDir, String> {
        for i in 1..=comps.len() {
            let prefix = comps[..i].join("/");
            let in_the_way = self
                .root
                .symlink_metadata(Path::new(&prefix))
                .is_ok_and(|md| is_link(&md) || !md.is_dir());
            if in_the_way && self.replace {
                // Removed itself, never followed; made a directory below.
                let parent = self
                    .root
                    .open_dir(Path::new(&comps[..i - 1].join("/")))
                    .map_err(|e| format!("opening the parent directory: {e}"))?;
                remove_all(&parent.path().join(comps[i - 1]))
                    .map_err(|e| format!("removing {prefix:?} to make a directory there: {e}"))?;
            }
            match self.root.symlink_metadata(Path::new(&prefix)) {
                Ok(md) if is_link(&md) => {
                    return Err(format!(
                        "parent {prefix:?} is a symlink; writing through symlinks is refused"
                    ))
                }
                Ok(md) if !md.is_dir() => {
                    return Err(format!("parent {prefix:?} is not a directory"))
                }
                Ok(_) => {}
                Err(e) if not_found(&e) => {
                    let parent = self
                        .root
                        .open_dir(Path::new(&comps[..i - 1].join("/")))
                        .map_err(|e| format!("opening the parent directory: {e}"))?;
                    match std::fs::create_dir(parent.path().join(comps[i - 1])) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(format!("creating the directory {prefix:?}: {e}")),
                    }
                }
                Err(e) => return Err(format!("opening the parent directory: {e}")),
            }
        }
        self.root
            .open_dir(Path::new(&comps.join("/")))
            .map_err(|e| format!("opening the parent directory: {e}"))
    }

    pub(super) fn entry(
        &mut self,
        entry: &Entry,
        data: &mut LayerReader<'_>,
    ) -> Result<(), String> {
        if entry.path.is_empty() {
            // The root itself: the target directory stays as it is.
            return Ok(());
        }
        let path = entry.path.clone();
        let comps = match (names(&path), &entry.node) {
            (Ok(comps), _) => comps,
            // No file by a name Windows cannot hold can be here to delete.
            (Err(_), Node::Whiteout) => return Ok(()),
            (Err(e), _) => return Err(e),
        };
        let (name, parents) = comps.split_last().expect("split yields one item");
        match entry.node {
            Node::Opaque => {
                let dir = self.open_dir(&comps)?;
                return self
                    .clear_dir(&dir, &path)
                    .map_err(|e| format!("applying opaque whiteout: {e}"));
            }
            Node::Whiteout => {
                let dir = self.open_dir(parents)?;
                return remove_all(&dir.path().join(name))
                    .map_err(|e| format!("applying whiteout: {e}"));
            }
            _ => {}
        }

        let dir = self.open_dir(parents)?;
        let target = dir.path().join(name);
        let existing = match std::fs::symlink_metadata(&target) {
            Ok(md) => Some(md),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(e.to_string()),
        };
        let keep_existing_dir = entry.node == Node::Dir
            && existing
                .as_ref()
                .is_some_and(|md| md.is_dir() && !is_link(md));
        if existing.is_some() && !keep_existing_dir {
            remove_all(&target).map_err(|e| format!("replacing the existing file: {e}"))?;
        }
        let io_err = |what: &str, e: io::Error| format!("{what}: {e}");
        let mtime = (entry.mtime, 0);

        match &entry.node {
            Node::File { .. } => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
                    .open(&target)
                    .map_err(|e| io_err("creating the file", e))?;
                io::copy(data, &mut file).map_err(|e| io_err("writing the file", e))?;
                set_file_times(&file, mtime, mtime).map_err(|e| io_err("setting mtime", e))?;
            }
            Node::Dir => {
                if !keep_existing_dir {
                    std::fs::create_dir(&target)
                        .map_err(|e| io_err("creating the directory", e))?;
                }
                self.dirs.push((path.clone(), entry.mtime));
            }
            Node::Symlink(link) => {
                let link = std::str::from_utf8(link).map_err(|_| {
                    "the symlink's target is not UTF-8, so no Windows symlink can hold it"
                        .to_string()
                })?;
                // Whether the target is a file or a directory is only known
                // by following it, which the extractor never does: a file
                // symlink keeps the target as the layer spells it.
                std::os::windows::fs::symlink_file(link, &target).map_err(|e| {
                    io_err(
                        "creating the symlink (Windows needs Developer Mode or the symbolic link privilege)",
                        e,
                    )
                })?;
                set_times_no_follow(&target, mtime, mtime)
                    .map_err(|e| io_err("setting mtime", e))?;
            }
            Node::Hardlink(link) => {
                let shown = String::from_utf8_lossy(link);
                let tcomps = names(link).map_err(|e| format!("hard link target {shown:?}: {e}"))?;
                let (tname, tparents) = tcomps.split_last().expect("split yields one item");
                let tdir = self
                    .open_dir(tparents)
                    .map_err(|e| format!("hard link target {shown:?}: {e}"))?;
                let tpath = tdir.path().join(tname);
                match std::fs::symlink_metadata(&tpath) {
                    Err(e) if not_found(&e) => {
                        return Err(format!("hard link target {shown:?} does not exist"))
                    }
                    Err(e) => return Err(e.to_string()),
                    Ok(md) if md.is_dir() => {
                        return Err(format!("hard link target {shown:?} is a directory"))
                    }
                    Ok(_) => {}
                }
                std::fs::hard_link(&tpath, &target)
                    .map_err(|e| io_err("creating the hard link", e))?;
            }
            Node::CharDevice { .. } | Node::BlockDevice { .. } | Node::Fifo => {
                return Err(
                    "device nodes and FIFOs cannot be created on Windows, whose file systems have none"
                        .into(),
                );
            }
            Node::Whiteout | Node::Opaque => unreachable!("handled above"),
        }
        self.created.insert(path);
        Ok(())
    }

    /// Removes every entry of `dir` (the layer path `prefix`) that this
    /// layer did not write.
    fn clear_dir(&self, dir: &TreeDir, prefix: &[u8]) -> io::Result<()> {
        for entry in std::fs::read_dir(dir.path())? {
            let name = entry?.file_name();
            let mut p = prefix.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name.to_string_lossy().as_bytes());
            if !self.created.contains(&p) {
                remove_all(&dir.path().join(&name))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{extract_layer, write_layer, Digest, ExtractOptions, LayerEntry, LayerOptions};
    use crate::{Compression, EntryKind, Whiteouts};
    use std::path::Path;

    fn layer(entries: Vec<LayerEntry>) -> Vec<u8> {
        let options = LayerOptions {
            compression: Compression::None,
            ..LayerOptions::default()
        };
        write_layer(entries, &options, Vec::new()).unwrap().1
    }

    fn extract(blob: &[u8], root: &Path) -> Result<Digest, String> {
        extract_layer(blob, root, &Digest::of(b""), &ExtractOptions::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn files_dirs_links_whiteouts_and_times_land_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("old/sub")).unwrap();
        std::fs::write(root.join("old/sub/x"), b"lower").unwrap();
        std::fs::write(root.join("gone"), b"lower").unwrap();
        let blob = layer(vec![
            LayerEntry::file("app/hello.txt", "hello").with_mtime(1_600_000_000),
            LayerEntry::dir("app").with_mtime(1_500_000_000),
            LayerEntry::new(
                "app/z-again.txt",
                EntryKind::Hardlink("app/hello.txt".into()),
            ),
            LayerEntry::whiteout("gone"),
            LayerEntry::new("old", EntryKind::Opaque),
            LayerEntry::file("old/kept", "new"),
        ]);
        extract(&blob, root).unwrap();
        assert_eq!(std::fs::read(root.join("app/hello.txt")).unwrap(), b"hello");
        std::fs::write(root.join("app/hello.txt"), b"HELLO").unwrap();
        assert_eq!(
            std::fs::read(root.join("app/z-again.txt")).unwrap(),
            b"HELLO"
        );
        assert!(!root.join("gone").exists());
        assert!(!root.join("old/sub").exists());
        assert_eq!(std::fs::read(root.join("old/kept")).unwrap(), b"new");
        let mtime = |p: &str| {
            let md = std::fs::metadata(root.join(p)).unwrap();
            crate::sys::stat_times(&md).modified
        };
        assert_eq!(mtime("app"), (1_500_000_000, 0));
    }

    #[test]
    fn what_windows_cannot_hold_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (entry, words) in [
            (LayerEntry::file("a:b", "x"), "alternate data stream"),
            (LayerEntry::file("con", "x"), "DOS device name"),
            (LayerEntry::file("trailing.", "x"), "ends with a dot"),
            (
                LayerEntry::new("dev/null", EntryKind::CharDevice { major: 1, minor: 3 }),
                "cannot be created on Windows",
            ),
            (
                LayerEntry::new("fifo", EntryKind::Fifo),
                "cannot be created on Windows",
            ),
        ] {
            let err = extract(&layer(vec![entry]), dir.path()).unwrap_err();
            assert!(err.contains(words), "want {words:?}: {err}");
        }
        // Nothing was written for them, not even a stream of a file "a".
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.iter().all(|n| n == "dev"), "{left:?}");

        let blob = layer(vec![LayerEntry::file("f", "x")]);
        for (options, words) in [
            (
                ExtractOptions {
                    restore_owners: true,
                    ..ExtractOptions::default()
                },
                "restoring owners is not supported on Windows",
            ),
            (
                ExtractOptions {
                    whiteouts: Whiteouts::Overlay { userxattr: false },
                    ..ExtractOptions::default()
                },
                "overlayfs",
            ),
        ] {
            let err = extract_layer(&blob[..], dir.path(), &Digest::of(b""), &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{err}");
        }
        assert!(!ExtractOptions::default().restore_owners);
    }

    #[test]
    fn a_file_standing_where_a_parent_should_be_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blob = layer(vec![
            LayerEntry::file("f", "x"),
            LayerEntry::file("f/g", "y"),
        ]);
        // The writer sorts "f" first; as a file it cannot be a parent.
        let err = extract(&blob, dir.path()).unwrap_err();
        assert!(err.contains(r#"parent "f" is not a directory"#), "{err}");
    }

    #[test]
    fn replace_in_the_way_makes_a_directory_where_a_file_stood() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"old").unwrap();
        std::fs::write(dir.path().join("keep"), b"kept").unwrap();
        let blob = layer(vec![LayerEntry::file("f/g", "y")]);
        let options = ExtractOptions {
            replace_in_the_way: true,
            ..ExtractOptions::default()
        };
        extract_layer(&blob[..], dir.path(), &Digest::of(b""), &options).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f").join("g")).unwrap(), b"y");
        assert_eq!(std::fs::read(dir.path().join("keep")).unwrap(), b"kept");
    }
}
