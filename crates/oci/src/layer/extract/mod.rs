//! Extracting a layer onto a directory without ever writing outside it.
//!
//! Refused, each as an error naming the layer and the entry: absolute
//! names, names with `..`, hard links whose target is absolute-with-`..` or
//! escapes, and any entry whose parent path passes through a symlink (even
//! one pointing inside the tree, as docker refuses) or a non-directory.
//! Symlinks themselves may point anywhere: they are only ever created,
//! never followed. OCI whiteouts are applied to what lower layers left, or,
//! for a directory that will be an overlayfs layer, stored in overlayfs'
//! own format ([`Whiteouts::Overlay`]).

mod fsops;

use crate::Digest;
use fsops::{clear_dir, file_type_at, open_dir, remove_all_at, WalkError};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How to extract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Set owners from the tar (needs root; default: when running as root).
    pub restore_owners: bool,
    /// What to do with OCI whiteout entries.
    pub whiteouts: Whiteouts,
}

impl Default for ExtractOptions {
    fn default() -> ExtractOptions {
        ExtractOptions {
            restore_owners: rustix::process::geteuid().is_root(),
            whiteouts: Whiteouts::default(),
        }
    }
}

/// What OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) become.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// Delete what lower layers left in the target directory.
    #[default]
    Apply,
    /// Keep them as overlayfs does, for a directory that will be one
    /// overlay layer: `.wh.NAME` becomes a 0/0 character device `NAME`,
    /// `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` (with `userxattr`,
    /// `user.overlay.opaque=y`) on its directory. As the OCI spec says, a
    /// whiteout hides only lower layers: a path this layer also has stays
    /// (a directory becomes opaque instead). Overlay xattrs carried in the
    /// tar are dropped, as they would steer the mount (redirects, metacopy)
    /// rather than describe a file.
    Overlay {
        /// Use the `user.overlay.*` xattrs of an overlay mounted with
        /// `userxattr` (inside a user namespace).
        userxattr: bool,
    },
}

impl Whiteouts {
    fn opaque_xattr(userxattr: bool) -> &'static str {
        if userxattr {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        }
    }
}

/// A layer entry that was refused or could not be written.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer}: {}{reason}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
pub struct ExtractError {
    /// The layer's digest.
    pub layer: Digest,
    /// The entry's name in the tar, when the error is about one entry.
    pub entry: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Extracts the layer blob `blob` (gzip, zstd or plain tar, by magic bytes)
/// onto `root`, which must exist. `layer` names the layer in errors.
pub fn extract_layer<R: Read>(
    blob: R,
    root: &Path,
    layer: &Digest,
    options: &ExtractOptions,
) -> Result<(), ExtractError> {
    let fail = |entry: Option<String>, reason: String| ExtractError {
        layer: *layer,
        entry,
        reason,
    };
    let root_fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(None, format!("cannot open {}: {e}", root.display())))?;
    let reader = decompress(blob).map_err(|e| fail(None, format!("reading the blob: {e}")))?;
    let mut ex = Extractor {
        root: root_fd,
        options: *options,
        created: HashSet::new(),
        whiteouts: HashSet::new(),
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| fail(None, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(None, format!("corrupt tar: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        ex.entry(&mut entry)
            .map_err(|reason| fail(Some(name), reason))?;
    }
    // Directory times last, deepest first: adding children changed them.
    for (path, mtime) in ex.dirs.iter().rev() {
        let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        let (name, parents) = comps
            .split_last()
            .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));
        let dir = open_dir(ex.root.as_fd(), parents).map_err(|e| fail(None, walk_reason(e)))?;
        set_mtime(dir.as_fd(), OsStr::from_bytes(name), *mtime).map_err(|e| {
            fail(
                Some(String::from_utf8_lossy(path).into_owned()),
                format!("setting mtime: {e}"),
            )
        })?;
    }
    Ok(())
}

fn decompress<'a, R: Read + 'a>(blob: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, blob);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    })
}

struct Extractor {
    root: OwnedFd,
    options: ExtractOptions,
    /// Paths this layer wrote, which an opaque whiteout must not remove.
    created: HashSet<Vec<u8>>,
    /// Overlay-format whiteout devices this layer made, which a later entry
    /// at or under the same path turns back into a (then opaque) directory.
    whiteouts: HashSet<Vec<u8>>,
    /// Directories and their mtimes, applied at the end.
    dirs: Vec<(Vec<u8>, i64)>,
}

/// Metadata gathered from the header and PAX records.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Extractor {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), String> {
        let raw = entry.path_bytes().into_owned();
        let Some(comps) = split_path(&raw)? else {
            return Ok(()); // the root itself: nothing to create
        };
        let (name, parents) = comps
            .split_last()
            .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));
        let path = comps.join(&b'/');

        if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
            self.reopen_whited_out_parents(parents, userxattr)?;
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let dir = open_dir(self.root.as_fd(), parents).map_err(walk_reason)?;
            if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
                return self.overlay_whiteout(dir.as_fd(), parents, hidden, userxattr);
            }
            if hidden == b".wh..opq" {
                let prefix = parents.join(&b'/');
                clear_dir(dir.as_fd(), |child| {
                    let mut p = prefix.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(child);
                    self.created.contains(&p)
                })
                .map_err(|e| format!("applying opaque whiteout: {e}"))?;
            } else if !hidden.starts_with(b".wh.") {
                remove_all_at(dir.as_fd(), OsStr::from_bytes(hidden))
                    .map_err(|e| format!("applying whiteout: {e}"))?;
            }
            // Other `.wh..wh.*` names are aufs bookkeeping, not content.
            return Ok(());
        }

        let mut meta = read_meta(entry)?;
        let mut make_opaque = None;
        if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
            meta.xattrs.retain(|(k, _)| !is_overlay_xattr(k));
            if self.whiteouts.remove(&path) && entry.header().entry_type().is_dir() {
                make_opaque = Some(userxattr);
            }
        }
        let dir = open_dir(self.root.as_fd(), parents).map_err(walk_reason)?;
        let dir = dir.as_fd();
        let name_os = OsStr::from_bytes(name);
        let kind = entry.header().entry_type();
        let existing = file_type_at(dir, name_os).map_err(|e| e.to_string())?;
        let keep_existing_dir = kind.is_dir() && existing == Some(rfs::FileType::Directory);
        if existing.is_some() && !keep_existing_dir {
            remove_all_at(dir, name_os).map_err(|e| format!("replacing the existing file: {e}"))?;
        }
        let io_err = |what: &str, e: io::Error| format!("{what}: {e}");

        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {
                let fd = rfs::openat(
                    dir,
                    name_os,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err("creating the file", e.into()))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(|e| io_err("writing the file", e))?;
                self.finish_fd(file.as_fd(), &meta)?;
                set_mtime(dir, name_os, meta.mtime).map_err(|e| io_err("setting mtime", e))?;
            }
            T::Directory => {
                if !keep_existing_dir {
                    rfs::mkdirat(dir, name_os, Mode::from_raw_mode(0o700))
                        .map_err(|e| io_err("creating the directory", e.into()))?;
                }
                let fd = rfs::openat(
                    dir,
                    name_os,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err("opening the directory", e.into()))?;
                self.finish_fd(fd.as_fd(), &meta)?;
                if let Some(userxattr) = make_opaque {
                    set_opaque(fd.as_fd(), userxattr)?;
                }
                self.dirs.push((path.clone(), meta.mtime));
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("symlink without a target")?
                    .into_owned();
                rfs::symlinkat(OsStr::from_bytes(&target), dir, name_os)
                    .map_err(|e| io_err("creating the symlink", e.into()))?;
                self.chown_at(dir, name_os, &meta)?;
                set_xattrs_at(dir, name_os, &meta.xattrs)?;
                set_mtime(dir, name_os, meta.mtime).map_err(|e| io_err("setting mtime", e))?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("hard link without a target")?
                    .into_owned();
                // Tar link names are relative to the archive root; docker
                // accepts a leading '/' as the same thing.
                let target_comps = split_path(trim_leading_slashes(&target))
                    .map_err(|e| {
                        format!(
                            "hard link target {:?}: {e}",
                            String::from_utf8_lossy(&target)
                        )
                    })?
                    .ok_or("hard link to the layer root")?;
                let (tname, tparents) = target_comps
                    .split_last()
                    .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));
                let tdir = open_dir(self.root.as_fd(), tparents).map_err(|e| {
                    format!(
                        "hard link target {:?}: {}",
                        String::from_utf8_lossy(&target),
                        walk_reason(e)
                    )
                })?;
                match file_type_at(tdir.as_fd(), OsStr::from_bytes(tname))
                    .map_err(|e| e.to_string())?
                {
                    None => {
                        return Err(format!(
                            "hard link target {:?} does not exist",
                            String::from_utf8_lossy(&target)
                        ))
                    }
                    Some(rfs::FileType::Directory) => {
                        return Err(format!(
                            "hard link target {:?} is a directory",
                            String::from_utf8_lossy(&target)
                        ))
                    }
                    Some(_) => {}
                }
                rfs::linkat(
                    tdir.as_fd(),
                    OsStr::from_bytes(tname),
                    dir,
                    name_os,
                    AtFlags::empty(),
                )
                .map_err(|e| io_err("creating the hard link", e.into()))?;
            }
            T::Char | T::Block | T::Fifo => {
                let (ft, dev) = match kind {
                    T::Fifo => (rfs::FileType::Fifo, 0),
                    _ => {
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == T::Char {
                            rfs::FileType::CharacterDevice
                        } else {
                            rfs::FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                rfs::mknodat(dir, name_os, ft, Mode::from_raw_mode(0o600), dev).map_err(|e| {
                    if e == Errno::PERM {
                        "creating a device node needs root (or CAP_MKNOD)".to_string()
                    } else {
                        io_err("creating the node", e.into())
                    }
                })?;
                self.chown_at(dir, name_os, &meta)?;
                rfs::chmodat(
                    dir,
                    name_os,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(|e| io_err("setting the mode", e.into()))?;
                set_xattrs_at(dir, name_os, &meta.xattrs)?;
                set_mtime(dir, name_os, meta.mtime).map_err(|e| io_err("setting mtime", e))?;
            }
            T::XGlobalHeader => return Ok(()),
            other => {
                return Err(format!(
                    "tar entry type {other:?} is not supported in layers"
                ))
            }
        }
        self.created.insert(path);
        Ok(())
    }

    /// An OCI whiteout in a directory that will be an overlay layer.
    fn overlay_whiteout(
        &mut self,
        dir: BorrowedFd<'_>,
        parents: &[&[u8]],
        hidden: &[u8],
        userxattr: bool,
    ) -> Result<(), String> {
        if hidden == b".wh..opq" {
            return set_opaque(dir, userxattr);
        }
        if hidden.starts_with(b".wh.") {
            return Ok(());
        }
        let name = OsStr::from_bytes(hidden);
        match file_type_at(dir, name).map_err(|e| e.to_string())? {
            None => {
                rfs::mknodat(
                    dir,
                    name,
                    rfs::FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .map_err(|e| format!("creating the overlay whiteout: {e}"))?;
                let mut path = parents.join(&b'/');
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(hidden);
                self.whiteouts.insert(path);
                Ok(())
            }
            // This layer's own directory replaces the lower one: hide only
            // what is below it.
            Some(rfs::FileType::Directory) => {
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("opening the directory: {e}"))?;
                set_opaque(fd.as_fd(), userxattr)
            }
            // This layer's own file already hides the lower path.
            Some(_) => Ok(()),
        }
    }

    /// An entry below a path this layer whited out (`.wh.a` then `a/b`)
    /// means a new directory there, hiding the lower one: overlay's opaque
    /// directory, made before the walk would stop at the device.
    fn reopen_whited_out_parents(
        &mut self,
        parents: &[&[u8]],
        userxattr: bool,
    ) -> Result<(), String> {
        if self.whiteouts.is_empty() {
            return Ok(());
        }
        for i in 1..=parents.len() {
            if !self.whiteouts.remove(&parents[..i].join(&b'/')) {
                continue;
            }
            let dir = open_dir(self.root.as_fd(), &parents[..i - 1]).map_err(walk_reason)?;
            let name = OsStr::from_bytes(parents[i - 1]);
            rfs::unlinkat(dir.as_fd(), name, AtFlags::empty())
                .map_err(|e| format!("replacing the overlay whiteout: {e}"))?;
            rfs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o755))
                .map_err(|e| format!("creating the directory: {e}"))?;
            let fd = rfs::openat(
                dir.as_fd(),
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("opening the directory: {e}"))?;
            set_opaque(fd.as_fd(), userxattr)?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid/setgid), then xattrs (chown
    /// clears `security.capability`).
    fn finish_fd(&self, fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), String> {
        if self.options.restore_owners {
            let (uid, gid) = ids(meta)?;
            rfs::fchown(fd, Some(uid), Some(gid)).map_err(|e| format!("setting the owner: {e}"))?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| format!("setting the mode: {e}"))?;
        for (k, v) in &meta.xattrs {
            match rfs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
                Ok(()) | Err(Errno::OPNOTSUPP) => {}
                Err(e) => return Err(format!("setting xattr {k}: {e}")),
            }
        }
        Ok(())
    }

    fn chown_at(&self, dir: BorrowedFd<'_>, name: &OsStr, meta: &Meta) -> Result<(), String> {
        if self.options.restore_owners {
            let (uid, gid) = ids(meta)?;
            rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| format!("setting the owner: {e}"))?;
        }
        Ok(())
    }
}

fn set_opaque(dir: BorrowedFd<'_>, userxattr: bool) -> Result<(), String> {
    let key = Whiteouts::opaque_xattr(userxattr);
    rfs::fsetxattr(dir, key, b"y", XattrFlags::empty())
        .map_err(|e| format!("setting {key} (the overlay opaque marker): {e}"))
}

fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

fn ids(meta: &Meta) -> Result<(rfs::Uid, rfs::Gid), String> {
    let uid = u32::try_from(meta.uid).ok().filter(|u| *u != u32::MAX);
    let gid = u32::try_from(meta.gid).ok().filter(|g| *g != u32::MAX);
    match (uid, gid) {
        (Some(u), Some(g)) => Ok((rfs::Uid::from_raw(u), rfs::Gid::from_raw(g))),
        _ => Err(format!(
            "owner {}:{} is not a valid uid:gid",
            meta.uid, meta.gid
        )),
    }
}

/// xattrs on a node with no descriptor of its own (symlinks, devices), via
/// the parent's descriptor in /proc, so no path is resolved from `/`.
fn set_xattrs_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    xattrs: &[(String, Vec<u8>)],
) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    for (k, v) in xattrs {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name.as_bytes());
        match rfs::lsetxattr(OsStr::from_bytes(&p), k.as_str(), v, XattrFlags::empty()) {
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => return Err(format!("setting xattr {k}: {e}")),
        }
    }
    Ok(())
}

fn set_mtime(dir: BorrowedFd<'_>, name: &OsStr, mtime: i64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode().map_err(|e| format!("bad mode: {e}"))? & 0o7777,
        uid: h.uid().map_err(|e| format!("bad uid: {e}"))?,
        gid: h.gid().map_err(|e| format!("bad gid: {e}"))?,
        mtime: h.mtime().map_err(|e| format!("bad mtime: {e}"))? as i64,
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| format!("bad PAX header: {e}"))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| format!("bad PAX record: {e}"))?;
            let Ok(key) = ext.key() else { continue };
            let num = || -> Result<&str, String> {
                ext.value().map_err(|_| format!("PAX {key} is not text"))
            };
            match key {
                "uid" => meta.uid = num()?.parse().map_err(|_| "bad PAX uid".to_string())?,
                "gid" => meta.gid = num()?.parse().map_err(|_| "bad PAX gid".to_string())?,
                "mtime" => {
                    let whole = num()?.split('.').next().unwrap_or_default();
                    meta.mtime = whole.parse().map_err(|_| "bad PAX mtime".to_string())?;
                }
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs
                            .push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

/// Splits a tar name into components; `None` for the root itself.
fn split_path(raw: &[u8]) -> Result<Option<Vec<&[u8]>>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path: layer entries must be relative to the layer root".into());
    }
    let mut comps = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains \"..\", which would escape the layer root".into()),
            c => comps.push(c),
        }
    }
    Ok((!comps.is_empty()).then_some(comps))
}

fn trim_leading_slashes(p: &[u8]) -> &[u8] {
    let n = p.iter().take_while(|b| **b == b'/').count();
    &p[n..]
}

fn walk_reason(e: WalkError) -> String {
    match e {
        WalkError::Symlink(p) => {
            format!("parent {p:?} is a symlink; writing through symlinks is refused")
        }
        WalkError::NotDir(p) => format!("parent {p:?} is not a directory"),
        WalkError::Io(e) => format!("opening the parent directory: {e}"),
    }
}
