//! The merged view of a stack of unpacked layers, resolved the way
//! overlayfs resolves it, without mounting anything: what the copy driver
//! copies from and compares against.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a name in a merged directory is.
pub(crate) enum Lower {
    /// A directory, backed by these layer directories (top-most first; the
    /// first gives its metadata, all give its contents).
    Dir(Vec<PathBuf>),
    /// Anything else, from the top-most layer that has it.
    Other(PathBuf),
}

/// An overlay whiteout: a 0/0 character device.
pub(crate) fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether `dir` carries the opaque marker `key` (`…overlay.opaque=y`).
pub(crate) fn is_opaque(dir: &Path, key: &str) -> io::Result<bool> {
    let mut value = [0u8; 4];
    match rustix::fs::lgetxattr(dir, key, &mut value[..]) {
        Ok(n) => Ok(&value[..n] == b"y"),
        // Absent, a longer value than "y", or no xattrs on this file system.
        Err(
            rustix::io::Errno::NODATA | rustix::io::Errno::RANGE | rustix::io::Errno::OPNOTSUPP,
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The entries of the merged directory made of `dirs` (the same directory
/// in each layer that contributes to it, top-most first), by name.
pub(crate) fn list(dirs: &[PathBuf], key: &str) -> io::Result<BTreeMap<OsString, Lower>> {
    let mut names = BTreeSet::new();
    for dir in dirs {
        for entry in fs::read_dir(dir)? {
            names.insert(entry?.file_name());
        }
    }
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(lower) = resolve(dirs, &name, key)? {
            out.insert(name, lower);
        }
    }
    Ok(out)
}

/// What `name` is in the merged directory, or `None` when a whiteout hides
/// it. Going down the layers, a whiteout or a non-directory ends the search,
/// as does an opaque directory (after contributing itself).
fn resolve(dirs: &[PathBuf], name: &OsString, key: &str) -> io::Result<Option<Lower>> {
    let mut found = Vec::new();
    for dir in dirs {
        let path = dir.join(name);
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if md.is_dir() {
            let opaque = is_opaque(&path, key)?;
            found.push(path);
            if opaque {
                break;
            }
        } else {
            if found.is_empty() && !is_whiteout(&md) {
                return Ok(Some(Lower::Other(path)));
            }
            break;
        }
    }
    Ok((!found.is_empty()).then_some(Lower::Dir(found)))
}
