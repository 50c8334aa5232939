//! The Unix extractor: every directory is opened component by component
//! from the root with `O_NOFOLLOW` ([`super::fsops`]), and everything else
//! is done relative to those descriptors.

use super::fsops::{clear_dir, file_type_at, open_dir, remove_all_at, WalkError};
use super::{ExtractOptions, Whiteouts};
use crate::layer::read::{Entry, LayerReader, Node};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Owners are restored by default when running as root, who can set them.
pub(super) fn can_restore_owners() -> bool {
    rustix::process::geteuid().is_root()
}

fn opaque_xattr(userxattr: bool) -> &'static str {
    if userxattr {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

pub(super) struct Extractor {
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
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Extractor {
    pub(super) fn open(root: &Path, options: ExtractOptions) -> Result<Extractor, String> {
        let root_fd = rfs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open {}: {e}", root.display()))?;
        Ok(Extractor {
            root: root_fd,
            options,
            created: HashSet::new(),
            whiteouts: HashSet::new(),
            dirs: Vec::new(),
        })
    }

    /// Directory times last, deepest first: adding children changed them.
    pub(super) fn finish(self) -> Result<(), (Option<String>, String)> {
        for (path, mtime) in self.dirs.iter().rev() {
            let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
            let (name, parents) = comps
                .split_last()
                .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));
            let dir = open_dir(self.root.as_fd(), parents, self.options.replace_in_the_way)
                .map_err(|e| (None, walk_reason(e)))?;
            set_mtime_at(dir.as_fd(), OsStr::from_bytes(name), *mtime, 0).map_err(|e| {
                (
                    Some(String::from_utf8_lossy(path).into_owned()),
                    format!("setting mtime: {e}"),
                )
            })?;
        }
        Ok(())
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
        let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        let (name, parents) = comps
            .split_last()
            .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));

        if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
            let dir_parents = if entry.node == Node::Opaque {
                &comps[..]
            } else {
                parents
            };
            self.reopen_whited_out_parents(dir_parents, userxattr)?;
        }
        match entry.node {
            Node::Opaque => {
                let dir = open_dir(self.root.as_fd(), &comps, self.options.replace_in_the_way)
                    .map_err(walk_reason)?;
                if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
                    return set_opaque(dir.as_fd(), userxattr);
                }
                let prefix = path.clone();
                return clear_dir(dir.as_fd(), |child| {
                    let mut p = prefix.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(child);
                    self.created.contains(&p)
                })
                .map_err(|e| format!("applying opaque whiteout: {e}"));
            }
            Node::Whiteout => {
                let dir = open_dir(self.root.as_fd(), parents, self.options.replace_in_the_way)
                    .map_err(walk_reason)?;
                if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
                    return self.overlay_whiteout(dir.as_fd(), parents, name, userxattr);
                }
                return remove_all_at(dir.as_fd(), OsStr::from_bytes(name))
                    .map_err(|e| format!("applying whiteout: {e}"));
            }
            _ => {}
        }

        let mut meta = Meta {
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            xattrs: entry.xattrs.clone(),
        };
        let mut make_opaque = None;
        if let Whiteouts::Overlay { userxattr } = self.options.whiteouts {
            meta.xattrs.retain(|(k, _)| !is_overlay_xattr(k));
            if self.whiteouts.remove(&path) && entry.node == Node::Dir {
                make_opaque = Some(userxattr);
            }
        }
        let dir = open_dir(self.root.as_fd(), parents, self.options.replace_in_the_way)
            .map_err(walk_reason)?;
        let dir = dir.as_fd();
        let name_os = OsStr::from_bytes(name);
        let existing = file_type_at(dir, name_os).map_err(|e| e.to_string())?;
        let keep_existing_dir =
            entry.node == Node::Dir && existing == Some(rfs::FileType::Directory);
        if existing.is_some() && !keep_existing_dir {
            remove_all_at(dir, name_os).map_err(|e| format!("replacing the existing file: {e}"))?;
        }
        let io_err = |what: &str, e: io::Error| format!("{what}: {e}");

        match &entry.node {
            Node::File { .. } => {
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
                io::copy(data, &mut file).map_err(|e| io_err("writing the file", e))?;
                self.finish_fd(file.as_fd(), &meta)?;
                set_mtime_at(dir, name_os, meta.mtime, 0)
                    .map_err(|e| io_err("setting mtime", e))?;
            }
            Node::Dir => {
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
            Node::Symlink(target) => {
                rfs::symlinkat(OsStr::from_bytes(target), dir, name_os)
                    .map_err(|e| io_err("creating the symlink", e.into()))?;
                self.chown_at(dir, name_os, &meta)?;
                set_xattrs_at(dir, name_os, &meta.xattrs)?;
                set_mtime_at(dir, name_os, meta.mtime, 0)
                    .map_err(|e| io_err("setting mtime", e))?;
            }
            Node::Hardlink(target) => {
                let target_comps: Vec<&[u8]> = target.split(|b| *b == b'/').collect();
                let (tname, tparents) = target_comps
                    .split_last()
                    .map_or((&b""[..], &[][..]), |(n, p)| (*n, p));
                let shown = String::from_utf8_lossy(target);
                let tdir =
                    open_dir(self.root.as_fd(), tparents, self.options.replace_in_the_way)
                        .map_err(|e| format!("hard link target {shown:?}: {}", walk_reason(e)))?;
                match file_type_at(tdir.as_fd(), OsStr::from_bytes(tname))
                    .map_err(|e| e.to_string())?
                {
                    None => return Err(format!("hard link target {shown:?} does not exist")),
                    Some(rfs::FileType::Directory) => {
                        return Err(format!("hard link target {shown:?} is a directory"))
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
            node @ (Node::CharDevice { .. } | Node::BlockDevice { .. } | Node::Fifo) => {
                let (ft, dev) = match *node {
                    Node::CharDevice { major, minor } => {
                        (rfs::FileType::CharacterDevice, rfs::makedev(major, minor))
                    }
                    Node::BlockDevice { major, minor } => {
                        (rfs::FileType::BlockDevice, rfs::makedev(major, minor))
                    }
                    _ => (rfs::FileType::Fifo, 0),
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
                set_mtime_at(dir, name_os, meta.mtime, 0)
                    .map_err(|e| io_err("setting mtime", e))?;
            }
            Node::Whiteout | Node::Opaque => unreachable!("handled above"),
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
            let dir = open_dir(
                self.root.as_fd(),
                &parents[..i - 1],
                self.options.replace_in_the_way,
            )
            .map_err(walk_reason)?;
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
            let (uid, gid) = ids(meta);
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
            let (uid, gid) = ids(meta);
            rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| format!("setting the owner: {e}"))?;
        }
        Ok(())
    }
}

fn set_opaque(dir: BorrowedFd<'_>, userxattr: bool) -> Result<(), String> {
    let key = opaque_xattr(userxattr);
    rfs::fsetxattr(dir, key, b"y", XattrFlags::empty())
        .map_err(|e| format!("setting {key} (the overlay opaque marker): {e}"))
}

fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

fn ids(meta: &Meta) -> (rfs::Uid, rfs::Gid) {
    (rfs::Uid::from_raw(meta.uid), rfs::Gid::from_raw(meta.gid))
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

/// Sets the access and modification times of `name` in `dir` (or of the
/// path `name`, with [`rustix::fs::CWD`]) to `secs` and `nanos`, not
/// following a symlink at its end: the one way every part of kiln that
/// writes files gives them a layer's or a step's times.
pub fn set_mtime_at<P: rustix::path::Arg>(
    dir: impl AsFd,
    name: P,
    secs: i64,
    nanos: u32,
) -> io::Result<()> {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos.into(),
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
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
