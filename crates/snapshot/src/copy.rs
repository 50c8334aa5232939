//! The copy driver: a full copy of the merged layers as the writable root,
//! a diff against the layers, and change sets stored as layer directories
//! in overlay format (so both drivers share one layer store).

use crate::diff::{entry_for, lstat, sorted_names, Links};
use crate::fsutil::{self, Meta};
use crate::view::{self, Lower};
use crate::Error;
use kiln_oci::tree::TreeRoot;
use kiln_oci::{read_xattrs, EntryKind, FileSource, LayerEntry};
use rustix::fs::FileType;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How layer directories are read and written.
#[derive(Clone, Copy)]
pub(crate) struct Format<'a> {
    /// The opaque-directory xattr (`trusted.overlay.opaque` or
    /// `user.overlay.opaque`).
    pub opaque_key: &'a str,
    /// Whether owners can be set (root).
    pub restore_owners: bool,
}

fn meta_of<'a>(md: &Metadata, xattrs: &'a [(String, Vec<u8>)]) -> Meta<'a> {
    Meta {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime: (md.mtime(), md.mtime_nsec()),
        xattrs,
        is_symlink: md.file_type().is_symlink(),
    }
}

/// Copies the merged view of `lowers` (layer directories, top-most first)
/// into the existing, empty directory `dest`.
pub(crate) fn copy_tree(lowers: &[PathBuf], dest: &Path, format: Format<'_>) -> Result<(), Error> {
    let mut links = HashMap::new();
    copy_dir(lowers, dest, format, &mut links)
}

fn copy_dir(
    dirs: &[PathBuf],
    dest: &Path,
    format: Format<'_>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let entries = view::list(dirs, format.opaque_key).map_err(|e| Error::Io {
        action: "reading the layers for",
        path: dest.to_path_buf(),
        source: e,
    })?;
    for (name, lower) in entries {
        let to = dest.join(&name);
        match lower {
            Lower::Dir(sub) => {
                fs::create_dir(&to).map_err(Error::io("creating the directory", &to))?;
                copy_dir(&sub, &to, format, links)?;
                // After the children, whose creation changed its mtime.
                copy_meta(&sub[0], &to, format)?;
            }
            Lower::Other(from) => copy_node(&from, &to, format, links)?,
        }
    }
    Ok(())
}

fn copy_meta(from: &Path, to: &Path, format: Format<'_>) -> Result<(), Error> {
    let md = lstat(from)?;
    let xattrs = read_xattrs(from).map_err(Error::io("reading the xattrs of", from))?;
    fsutil::set_meta(to, &meta_of(&md, &xattrs), format.restore_owners)
        .map_err(Error::io("setting the metadata of", to))
}

fn copy_node(
    from: &Path,
    to: &Path,
    format: Format<'_>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let md = lstat(from)?;
    let ft = md.file_type();
    if md.nlink() > 1 && !ft.is_dir() {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return fs::hard_link(first, to).map_err(Error::io("creating the hard link", to));
        }
        links.insert((md.dev(), md.ino()), to.to_path_buf());
    }
    let made = if ft.is_file() {
        // std's copy uses copy_file_range, which reflinks where it can.
        fs::copy(from, to).map(drop)
    } else if ft.is_symlink() {
        fs::read_link(from).and_then(|target| symlink(target, to))
    } else if ft.is_socket() {
        return Ok(());
    } else {
        let kind = if ft.is_fifo() {
            FileType::Fifo
        } else if ft.is_char_device() {
            FileType::CharacterDevice
        } else {
            FileType::BlockDevice
        };
        let dev = md.rdev();
        fsutil::mknod(to, kind, rustix::fs::major(dev), rustix::fs::minor(dev))
    };
    made.map_err(Error::io("copying to", to))?;
    copy_meta(from, to, format)
}

/// The changes in the copy `merged` against the layers `lowers`. Files
/// whose metadata and size match the layer's are compared by content only
/// when their ctime (which nothing can set back) is not older than
/// `prepared`, the ctime of a file written when the copy was complete.
pub(crate) fn changes(
    merged: &Path,
    lowers: &[PathBuf],
    prepared: (i64, i64),
    format: Format<'_>,
) -> Result<Vec<LayerEntry>, Error> {
    let mut diff = Differ {
        root: Arc::new(TreeRoot::open(merged).map_err(Error::io("opening", merged))?),
        format,
        prepared,
        links: Links::default(),
    };
    let (_, entries) = diff.dir(merged, "", lowers)?;
    Ok(entries)
}

struct Differ<'a> {
    root: Arc<TreeRoot>,
    format: Format<'a>,
    prepared: (i64, i64),
    links: Links,
}

impl Differ<'_> {
    /// The changes under the directory `copy` (`prefix` in the layer) whose
    /// lower side is `lowers`, and whether to mark it opaque: when every
    /// name the layers had there is gone, one opaque marker says it (as
    /// overlay records a directory that was removed and made again) instead
    /// of a whiteout per name.
    fn dir(
        &mut self,
        copy: &Path,
        prefix: &str,
        lowers: &[PathBuf],
    ) -> Result<(bool, Vec<LayerEntry>), Error> {
        let lower = view::list(lowers, self.format.opaque_key).map_err(|e| Error::Io {
            action: "reading the layers under",
            path: copy.to_path_buf(),
            source: e,
        })?;
        let mine: BTreeSet<String> = sorted_names(copy)?.into_iter().collect();
        let opaque = !lower.is_empty()
            && lower
                .keys()
                .all(|n| kiln_oci::name::from_os(n).map_or(true, |n| !mine.contains(n.as_ref())));
        let mut names = mine.clone();
        for name in lower.keys() {
            names.insert(kiln_oci::name::from_os(name)?.into_owned());
        }
        let mut out = Vec::new();
        for name in names {
            let rel = format!("{prefix}{name}");
            let os_name = kiln_oci::name::to_path(&name);
            let path = copy.join(&os_name);
            match (mine.contains(&name), lower.get(os_name.as_os_str())) {
                (false, _) if opaque => {}
                (false, _) => out.push(LayerEntry::whiteout(rel)),
                (true, None) => self.added(&path, &rel, false, &mut out)?,
                (true, Some(lower)) => self.compare(&path, &rel, lower, &mut out)?,
            }
        }
        Ok((opaque, out))
    }

    /// `path` and, for a directory, everything under it, all new; with
    /// `opaque`, the directory hides whatever the layers had there.
    fn added(
        &mut self,
        path: &Path,
        rel: &str,
        opaque: bool,
        out: &mut Vec<LayerEntry>,
    ) -> Result<(), Error> {
        let md = lstat(path)?;
        let Some(entry) = entry_for(&self.root, path, rel, &md, &mut self.links)? else {
            return Ok(());
        };
        out.push(entry);
        if md.is_dir() {
            if opaque {
                out.push(LayerEntry::new(rel, EntryKind::Opaque));
            }
            for name in sorted_names(path)? {
                self.added(&path.join(&name), &format!("{rel}/{name}"), false, out)?;
            }
        }
        Ok(())
    }

    fn compare(
        &mut self,
        path: &Path,
        rel: &str,
        lower: &Lower,
        out: &mut Vec<LayerEntry>,
    ) -> Result<(), Error> {
        let md = lstat(path)?;
        match lower {
            Lower::Dir(sub) if md.is_dir() => {
                let (opaque, children) = self.dir(path, &format!("{rel}/"), sub)?;
                if opaque
                    || !children.is_empty()
                    || !same_meta(&md, path, &lstat(&sub[0])?, &sub[0])?
                {
                    let entry = entry_for(&self.root, path, rel, &md, &mut self.links)?;
                    out.extend(entry);
                    if opaque {
                        out.push(LayerEntry::new(rel, EntryKind::Opaque));
                    }
                    out.extend(children);
                }
                Ok(())
            }
            // A new directory where the layers had a file: overlay marks a
            // directory made over a whiteout opaque.
            Lower::Other(_) if md.is_dir() => self.added(path, rel, true, out),
            Lower::Dir(_) => self.added(path, rel, false, out),
            Lower::Other(from) => {
                if self.node_changed(&md, path, from)? {
                    self.added(path, rel, false, out)?;
                }
                Ok(())
            }
        }
    }

    fn node_changed(&self, md: &Metadata, path: &Path, from: &Path) -> Result<bool, Error> {
        let lmd = lstat(from)?;
        let (ft, lft) = (md.file_type(), lmd.file_type());
        let same_kind = (ft.is_file() && lft.is_file())
            || (ft.is_symlink() && lft.is_symlink())
            || (ft.is_fifo() && lft.is_fifo())
            || (ft.is_char_device() && lft.is_char_device() && md.rdev() == lmd.rdev())
            || (ft.is_block_device() && lft.is_block_device() && md.rdev() == lmd.rdev())
            || (ft.is_socket() && lft.is_socket());
        if !same_kind || md.size() != lmd.size() || !same_meta(md, path, &lmd, from)? {
            return Ok(true);
        }
        if ft.is_symlink() {
            let read = |p: &Path| fs::read_link(p).map_err(Error::io("reading the symlink", p));
            return Ok(read(path)? != read(from)?);
        }
        if ft.is_file() && (md.ctime(), md.ctime_nsec()) >= self.prepared {
            return Ok(!same_content(path, from)?);
        }
        Ok(false)
    }
}

/// Mode, owner, mtime and xattrs; symlinks' modes are meaningless.
fn same_meta(a: &Metadata, a_path: &Path, b: &Metadata, b_path: &Path) -> Result<bool, Error> {
    let mode_matters = !a.file_type().is_symlink();
    if (mode_matters && a.mode() & 0o7777 != b.mode() & 0o7777)
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || (a.mtime(), a.mtime_nsec()) != (b.mtime(), b.mtime_nsec())
    {
        return Ok(false);
    }
    let xattrs = |p: &Path| read_xattrs(p).map_err(Error::io("reading the xattrs of", p));
    Ok(xattrs(a_path)? == xattrs(b_path)?)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, Error> {
    // Both were just seen as regular files; one replaced by a symlink or a
    // FIFO since must not be followed or waited on.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(p)
            .map_err(Error::io("opening", p))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(Error::io("reading", a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(Error::io("reading", b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Stores `entries` (a change set from [`changes`]) in the existing, empty
/// directory `dest` as an overlay-format layer. Files are moved, not
/// copied, out of the snapshot being committed.
pub(crate) fn write_layer_dir(
    entries: &[LayerEntry],
    dest: &Path,
    format: Format<'_>,
) -> Result<(), Error> {
    let mut dirs = Vec::new();
    for e in entries {
        let to = dest.join(&e.path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(Error::io("creating the directory", parent))?;
        }
        let meta = Meta {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: (e.mtime, 0),
            xattrs: &e.xattrs,
            is_symlink: matches!(e.kind, EntryKind::Symlink(_)),
        };
        let set_meta = |to: &Path| {
            fsutil::set_meta(to, &meta, format.restore_owners)
                .map_err(Error::io("setting the metadata of", to))
        };
        match &e.kind {
            EntryKind::Dir => {
                if !to.is_dir() {
                    fs::create_dir(&to).map_err(Error::io("creating the directory", &to))?;
                }
                set_meta(&to)?;
                dirs.push((to, e.mtime));
            }
            EntryKind::Opaque => {
                rustix::fs::lsetxattr(
                    &to,
                    format.opaque_key,
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(|e| Error::Io {
                    action: "marking opaque",
                    path: to.clone(),
                    source: e.into(),
                })?;
            }
            EntryKind::Whiteout => {
                fsutil::whiteout(&to).map_err(Error::io("creating the whiteout", &to))?
            }
            // The inode already has the entry's metadata, which came from it.
            EntryKind::File(FileSource::Path(from)) => {
                fs::rename(from, &to).map_err(Error::io("moving into the layer", from))?
            }
            // The layer tar was written from this file: what is kept must
            // be the same file, unchanged.
            EntryKind::File(FileSource::Tree(file)) => {
                let from = file.full_path();
                file.open().map_err(|e| Error::Io {
                    action: "moving into the layer",
                    path: from.clone(),
                    source: io::Error::other(e.to_string()),
                })?;
                fs::rename(&from, &to).map_err(Error::io("moving into the layer", &from))?
            }
            EntryKind::File(FileSource::Bytes(bytes)) => {
                fs::write(&to, bytes).map_err(Error::io("writing", &to))?;
                set_meta(&to)?;
            }
            EntryKind::Symlink(target) => {
                symlink(target, &to).map_err(Error::io("creating the symlink", &to))?;
                set_meta(&to)?;
            }
            EntryKind::Hardlink(target) => {
                let target = dest.join(target);
                fs::hard_link(&target, &to).map_err(Error::io("creating the hard link", &to))?
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                let kind = if matches!(e.kind, EntryKind::CharDevice { .. }) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                fsutil::mknod(&to, kind, *major, *minor)
                    .map_err(Error::io("creating the device", &to))?;
                set_meta(&to)?;
            }
            EntryKind::Fifo => {
                fsutil::mknod(&to, FileType::Fifo, 0, 0)
                    .map_err(Error::io("creating the fifo", &to))?;
                set_meta(&to)?;
            }
        }
    }
    // Deepest first: filling a directory changed its mtime.
    for (dir, mtime) in dirs.iter().rev() {
        fsutil::set_mtime(dir, (*mtime, 0)).map_err(Error::io("setting the mtime of", dir))?;
    }
    Ok(())
}
