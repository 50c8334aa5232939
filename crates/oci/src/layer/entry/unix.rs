//! Listing a directory as layer entries on Unix, where a file has the
//! mode, owner, device numbers and xattrs a layer records.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::{EntryKind, FileSource, LayerEntry};
use crate::tree::{FileIdentity, TreeFile, TreeRoot};

/// Lists the tree under `root` (not `root` itself) as layer entries, in
/// layer order. Symlinks are not followed; a file with several links becomes
/// a file at its first path and hard links at the others; sockets are
/// skipped, as docker does. Overlayfs' own xattrs (`trusted.overlay.*`,
/// `user.overlay.*`) are left out. Regular files are [`FileSource::Tree`]
/// sources: writing the layer fails if one changes after this listing.
pub fn entries_from_dir(root: &Path) -> io::Result<Vec<LayerEntry>> {
    let mut out = Vec::new();
    let mut inodes = HashMap::new();
    let tree = Arc::new(TreeRoot::open(root)?);
    walk(&tree, root, "", &mut out, &mut inodes)?;
    Ok(out)
}

fn walk(
    tree: &Arc<TreeRoot>,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<LayerEntry>,
    inodes: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    // Listed through the tree, so a directory swapped for a symlink
    // meanwhile is an error rather than a listing of where it points.
    let mut names = tree.read_dir(&crate::name::to_path(prefix.trim_end_matches('/')))?;
    names.sort();
    for name in names {
        let spelled = crate::name::from_os(&name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let path = dir.join(&name);
        let rel = format!("{prefix}{spelled}");
        let rel_path = crate::name::to_path(&rel);
        let md = tree.symlink_metadata(&rel_path)?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            let target = tree.read_link(&rel_path)?;
            EntryKind::Symlink(
                crate::name::from_os_string(target.into_os_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            )
        } else if ft.is_socket() {
            continue;
        } else if md.nlink() > 1 && inodes.contains_key(&(md.dev(), md.ino())) {
            EntryKind::Hardlink(inodes[&(md.dev(), md.ino())].clone())
        } else {
            if md.nlink() > 1 {
                inodes.insert((md.dev(), md.ino()), rel.clone());
            }
            if ft.is_file() {
                EntryKind::File(FileSource::Tree(TreeFile {
                    root: Arc::clone(tree),
                    path: rel_path.clone().into_owned(),
                    identity: FileIdentity::of(&md),
                }))
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else {
                let dev = md.rdev();
                let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
                if ft.is_char_device() {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
        };
        let is_dir = kind == EntryKind::Dir;
        out.push(LayerEntry {
            path: rel.clone(),
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            xattrs: read_xattrs(&path)?,
        });
        if is_dir {
            walk(tree, &path, &format!("{rel}/"), out, inodes)?;
        }
    }
    Ok(())
}

/// The xattrs of `path` (not following symlinks), sorted by name, without
/// overlayfs' own (`trusted.overlay.*`, `user.overlay.*`), which describe
/// the mount, not the file. A file system without xattrs gives none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    let mut out = Vec::new();
    for raw in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(raw).into_owned();
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let len = match rustix::fs::lgetxattr_query(path, raw) {
            Ok(len) => len,
            // Removed between list and get.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; len];
        let got = rustix::fs::lgetxattr(path, raw, &mut value[..])?;
        value.truncate(got);
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}
