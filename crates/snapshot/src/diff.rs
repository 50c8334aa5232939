//! Turning changed files into layer entries, and the overlay driver's diff:
//! its upper directory already is the change set.

use crate::view::{is_opaque, is_whiteout};
use crate::Error;
use kiln_oci::tree::{FileIdentity, TreeFile, TreeRoot};
use kiln_oci::{read_xattrs, EntryKind, FileSource, LayerEntry};
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Paths already emitted for multiply-linked inodes, so later links to the
/// same inode become hard-link entries pointing at the first.
#[derive(Default)]
pub(crate) struct Links(HashMap<(u64, u64), String>);

/// The layer entry for the file at `path` (whose path in the layer is
/// `rel`, and below `root`), or `None` for a socket, which layers do not
/// carry. A regular file is read from `root` when the layer is written,
/// and only if it is still the file listed here: a process the step left
/// behind could otherwise swap it for a symlink to a host file.
pub(crate) fn entry_for(
    root: &Arc<TreeRoot>,
    path: &Path,
    rel: &str,
    md: &Metadata,
    links: &mut Links,
) -> Result<Option<LayerEntry>, Error> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(Error::io("reading the symlink", path))?;
        EntryKind::Symlink(kiln_oci::name::from_os_string(target.into_os_string())?)
    } else if ft.is_socket() {
        return Ok(None);
    } else if let Some(first) = links.0.get(&(md.dev(), md.ino())) {
        EntryKind::Hardlink(first.clone())
    } else {
        if md.nlink() > 1 {
            links.0.insert((md.dev(), md.ino()), rel.to_string());
        }
        if ft.is_file() {
            EntryKind::File(FileSource::Tree(TreeFile {
                root: Arc::clone(root),
                path: kiln_oci::name::to_path(rel).into_owned(),
                identity: FileIdentity::of(md),
            }))
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
            if ft.is_char_device() {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        }
    };
    Ok(Some(LayerEntry {
        path: rel.to_string(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        xattrs: read_xattrs(path).map_err(Error::io("reading the xattrs of", path))?,
    }))
}

/// The sorted names in `dir`, spelled as `kiln_oci::name` spells them.
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
        let name = entry.map_err(Error::io("listing", dir))?.file_name();
        names.push(kiln_oci::name::from_os_string(name)?);
    }
    names.sort();
    Ok(names)
}

pub(crate) fn lstat(path: &Path) -> Result<Metadata, Error> {
    fs::symlink_metadata(path).map_err(Error::io("reading the metadata of", path))
}

/// The changes recorded in an overlay upper directory, in layer order.
/// `lowers` are the lower layer directories, top-most first: a directory
/// overlay copied up (a file made and removed in it, say) but that holds
/// no change and kept its lower metadata is left out, as the copy driver
/// and BuildKit's differ leave it out.
pub(crate) fn upper_changes(
    upper: &Path,
    lowers: &[PathBuf],
    opaque_key: &str,
) -> Result<Vec<LayerEntry>, Error> {
    let mut out = Vec::new();
    let root = Arc::new(TreeRoot::open(upper).map_err(Error::io("opening", upper))?);
    walk_upper(
        &root,
        upper,
        "",
        lowers,
        opaque_key,
        &mut out,
        &mut Links::default(),
    )?;
    Ok(out)
}

/// Whether the directory `path` (`rel` in the layer) has the same mode,
/// owner, mtime and xattrs as the top-most lower directory at `rel`.
fn same_as_lower(path: &Path, md: &Metadata, rel: &str, lowers: &[PathBuf]) -> Result<bool, Error> {
    for lower in lowers {
        let candidate = lower.join(kiln_oci::name::to_path(rel));
        let Ok(lmd) = fs::symlink_metadata(&candidate) else {
            continue;
        };
        if !lmd.is_dir() {
            return Ok(false);
        }
        if md.mode() & 0o7777 != lmd.mode() & 0o7777
            || (md.uid(), md.gid()) != (lmd.uid(), lmd.gid())
            || (md.mtime(), md.mtime_nsec()) != (lmd.mtime(), lmd.mtime_nsec())
        {
            return Ok(false);
        }
        let xattrs = |p: &Path| read_xattrs(p).map_err(Error::io("reading the xattrs of", p));
        return Ok(xattrs(path)? == xattrs(&candidate)?);
    }
    Ok(false)
}

fn walk_upper(
    root: &Arc<TreeRoot>,
    dir: &Path,
    prefix: &str,
    lowers: &[PathBuf],
    key: &str,
    out: &mut Vec<LayerEntry>,
    links: &mut Links,
) -> Result<(), Error> {
    for name in sorted_names(dir)? {
        let path = dir.join(kiln_oci::name::to_path(&name));
        let rel = format!("{prefix}{name}");
        let md = lstat(&path)?;
        if is_whiteout(&md) {
            out.push(LayerEntry::whiteout(rel));
            continue;
        }
        let Some(entry) = entry_for(root, &path, &rel, &md, links)? else {
            continue;
        };
        if !md.is_dir() {
            out.push(entry);
            continue;
        }
        let opaque = is_opaque(&path, key).map_err(Error::io("reading the xattrs of", &path))?;
        let mut below = Vec::new();
        walk_upper(
            root,
            &path,
            &format!("{rel}/"),
            lowers,
            key,
            &mut below,
            links,
        )?;
        if below.is_empty() && !opaque && same_as_lower(&path, &md, &rel, lowers)? {
            continue;
        }
        out.push(entry);
        if opaque {
            out.push(LayerEntry::new(rel.clone(), EntryKind::Opaque));
        }
        out.append(&mut below);
    }
    Ok(())
}
