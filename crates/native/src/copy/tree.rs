//! Where COPY reads from: a directory on disk (the build context, a
//! download, a git checkout) or an image's file system, behind one trait so
//! the copy rules are written once.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_frontend::dockerignore::Matcher;
use kiln_oci::tree::{FileIdentity, HostKind, TreeFile, TreeRoot};
use kiln_oci::FileSource;

use super::paths::{join, parent};
use super::ErrorKind;
use crate::imagefs::{FsKind, ImageFs};

/// What a path is, as COPY copies it: [`FsKind`] without hard links, which
/// COPY keeps as a link key shared by the paths of one file
/// ([`Node::link_key`]) whether they come from an image or the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    File,
    Dir,
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

/// A path's metadata, as COPY needs it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Paths with the same key are hard links of one file.
    pub link_key: Option<String>,
    /// Where a regular file's bytes are, and which file was seen there
    /// (a context's socket, sent as an empty file, has its bytes here).
    pub content: Option<FileSource>,
}

impl Node {
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }
}

/// A read-only tree of files; paths are clean, relative and `/`-separated,
/// `""` being the root.
pub(crate) trait Tree {
    /// The node at `path`, symlinks not followed; `None` when missing.
    fn node(&self, path: &str) -> Result<Option<Node>, ErrorKind>;
    /// The names inside the directory `path`, sorted.
    fn children(&self, path: &str) -> Result<Vec<String>, ErrorKind>;
    /// Whether a symlink may lead out of the tree (an error) or stays
    /// clamped at its root (an image, where `/` is the root).
    fn strict(&self) -> bool;
    /// Names the tree in "not found" errors.
    fn describe(&self) -> &str;
    /// `path` with its existing components in the tree's own spelling: a
    /// Windows image's names are case-insensitive, and what is read from it
    /// must be named as the image names it.
    fn spell(&self, path: &str) -> String {
        path.to_string()
    }

    /// Resolves every symlink on `path` (the last one too when
    /// `follow_last`) inside the tree.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<String, ErrorKind> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    if done.pop().is_none() && self.strict() {
                        return Err(ErrorKind::SymlinkEscapes {
                            path: path.to_string(),
                        });
                    }
                    continue;
                }
                _ => {}
            }
            done.push(comp);
            let last = todo.iter().all(|c| c.is_empty() || c == ".");
            if last && !follow_last {
                break;
            }
            let here = done.join("/");
            if let Some(Node {
                kind: NodeKind::Symlink(target),
                ..
            }) = self.node(&here)?
            {
                hops += 1;
                if hops > 255 {
                    return Err(ErrorKind::SymlinkLoop {
                        path: path.to_string(),
                    });
                }
                done.pop();
                if target.starts_with('/') {
                    if self.strict() {
                        return Err(ErrorKind::SymlinkEscapes {
                            path: path.to_string(),
                        });
                    }
                    done.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_string));
            }
        }
        Ok(self.spell(&done.join("/")))
    }
}

/// A directory on disk. For the build context, paths `.dockerignore`
/// excludes do not exist and owners read as root, as BuildKit's context
/// transfer sends them. Whoever owns the directory may change it while the
/// step runs, so it is read beneath its root without following symlinks,
/// and its files are read only if still the ones listed.
pub(crate) struct DiskTree {
    root: Arc<TreeRoot>,
    /// What the build cache hashed, each file's listing is checked with.
    hashed: Option<Arc<HashMap<PathBuf, FileIdentity>>>,
    visible: Option<HashSet<String>>,
    reset_owner: bool,
    /// The mode of every regular file, for a directory of files kiln
    /// wrote with a known mode: NTFS keeps no POSIX mode to read back.
    file_mode: Option<u32>,
    strict: bool,
    name: String,
}

impl DiskTree {
    /// The build context: `.dockerignore` applied, owners reset, symlinks
    /// may not leave it.
    pub(crate) fn context(
        root: &Path,
        ignore: &Matcher,
        hashed: Option<Arc<HashMap<PathBuf, FileIdentity>>>,
    ) -> Result<DiskTree, ErrorKind> {
        let visible = if ignore.is_empty() {
            None
        } else {
            let walked = ignore.walk(root).map_err(|e| ErrorKind::Context {
                reason: e.to_string(),
            })?;
            Some(
                walked
                    .into_iter()
                    .map(|e| spelled(e.path.into_os_string()))
                    .collect::<Result<_, _>>()?,
            )
        };
        Ok(DiskTree {
            root: open_root(root)?,
            hashed,
            visible,
            reset_owner: true,
            file_mode: None,
            strict: true,
            name: "build context".into(),
        })
    }

    /// A directory kiln made (a download, a checkout, an inline file):
    /// owners reset to root, and regular files of mode `file_mode` when
    /// kiln gave them one.
    pub(crate) fn scratch(
        root: &Path,
        name: &str,
        file_mode: Option<u32>,
    ) -> Result<DiskTree, ErrorKind> {
        Ok(DiskTree {
            root: open_root(root)?,
            hashed: None,
            visible: None,
            reset_owner: true,
            file_mode,
            strict: false,
            name: name.into(),
        })
    }

    fn visible(&self, path: &str) -> bool {
        path.is_empty() || self.visible.as_ref().is_none_or(|v| v.contains(path))
    }
}

impl Tree for DiskTree {
    fn node(&self, path: &str) -> Result<Option<Node>, ErrorKind> {
        if !self.visible(path) {
            return Ok(None);
        }
        let os_path = kiln_oci::name::to_path(path);
        let full = self.root.path().join(&os_path);
        let st = match self.root.stat(&os_path) {
            Ok(st) => st,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(io_error("reading", &full, e)),
        };
        let kind = match st.kind {
            HostKind::Dir => NodeKind::Dir,
            HostKind::Symlink => {
                let target = self
                    .root
                    .read_link(&os_path)
                    .map_err(|e| io_error("reading", &full, e))?;
                NodeKind::Symlink(spelled(target.into_os_string())?)
            }
            // BuildKit's context transfer (fsutil's stat) sends a socket as
            // an empty regular file with the socket's permissions.
            HostKind::File | HostKind::Socket => NodeKind::File,
            HostKind::CharDevice { major, minor } => NodeKind::CharDevice { major, minor },
            HostKind::BlockDevice { major, minor } => NodeKind::BlockDevice { major, minor },
            HostKind::Fifo => NodeKind::Fifo,
        };
        let (uid, gid) = if self.reset_owner {
            (0, 0)
        } else {
            (st.uid, st.gid)
        };
        let is_socket = st.kind == HostKind::Socket;
        let is_file = st.kind == HostKind::File;
        let hashed = self.hashed.as_ref().and_then(|h| h.get(os_path.as_ref()));
        if let Some(hashed) = hashed.filter(|_| is_file) {
            if let Some(change) = hashed.difference(&st.identity) {
                return Err(ErrorKind::Io {
                    what: format!("reading {}", full.display()),
                    reason: format!("it changed during the build ({change} since the build cache hashed it); nothing may change a build's sources while it runs"),
                });
            }
        }
        Ok(Some(Node {
            link_key: st.link_key.map(|(dev, ino)| format!("{dev}:{ino}")),
            content: if is_socket {
                Some(FileSource::Bytes(Vec::new()))
            } else {
                is_file.then(|| {
                    FileSource::Tree(TreeFile {
                        root: Arc::clone(&self.root),
                        path: os_path.clone().into_owned(),
                        identity: st.identity,
                    })
                })
            },
            mode: match self.file_mode {
                Some(mode) if kind == NodeKind::File => mode,
                _ => st.mode,
            },
            kind,
            uid,
            gid,
            mtime: st.mtime,
            xattrs: host_xattrs(&full)?,
        }))
    }

    fn children(&self, path: &str) -> Result<Vec<String>, ErrorKind> {
        let os_path = kiln_oci::name::to_path(path);
        let full = self.root.path().join(&os_path);
        let mut names = Vec::new();
        let listed = self
            .root
            .read_dir(&os_path)
            .map_err(|e| io_error("listing", &full, e))?;
        for name in listed {
            let name = spelled(name)?;
            if self.visible(&join(path, &name)) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn strict(&self) -> bool {
        self.strict
    }

    fn describe(&self) -> &str {
        &self.name
    }
}

/// An image's file system; file contents come from a subtree that
/// [`ImageFs::extract`] wrote to disk.
pub(crate) struct ImageTree<'a> {
    pub fs: &'a ImageFs,
    /// The step's scratch directory, which the extractions are in.
    pub scratch: Arc<TreeRoot>,
    /// Image path (relative) whose subtree is extracted at the directory
    /// (relative to `scratch`).
    pub extracted: Vec<(String, PathBuf)>,
}

impl ImageTree<'_> {
    /// Where [`ImageFs::extract`] put the file at `path`, as it is there
    /// now: a directory's contents go straight into the extraction
    /// directory, a file becomes `<dir>/<name>`.
    fn content(&self, path: &str) -> Result<Option<TreeFile>, ErrorKind> {
        let found = self.extracted.iter().rev().find_map(|(base, dir)| {
            let rel = if path == base {
                Some(super::paths::base(path))
            } else if base.is_empty() {
                Some(path)
            } else {
                path.strip_prefix(base.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
            };
            rel.map(|rel| dir.join(kiln_oci::name::to_path(rel)))
        });
        let Some(rel) = found else {
            return Ok(None);
        };
        let full = self.scratch.path().join(&rel);
        let st = match self.scratch.stat(&rel) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &full, e)),
        };
        Ok((st.kind == HostKind::File).then(|| TreeFile {
            root: Arc::clone(&self.scratch),
            path: rel,
            identity: st.identity,
        }))
    }
}

/// Opens the root of a tree COPY reads.
pub(crate) fn open_root(dir: &Path) -> Result<Arc<TreeRoot>, ErrorKind> {
    TreeRoot::open(dir)
        .map(Arc::new)
        .map_err(|e| io_error("opening", dir, e))
}

impl Tree for ImageTree<'_> {
    fn node(&self, path: &str) -> Result<Option<Node>, ErrorKind> {
        let Some(entry) = self.fs.lookup(&format!("/{path}")) else {
            return Ok(None);
        };
        let (kind, link_key) = match &entry.kind {
            FsKind::File => (NodeKind::File, Some(path.to_string())),
            FsKind::Hardlink(target) => (
                NodeKind::File,
                Some(target.trim_start_matches('/').to_string()),
            ),
            FsKind::Dir => (NodeKind::Dir, None),
            FsKind::Symlink(t) => (NodeKind::Symlink(t.clone()), None),
            FsKind::CharDevice { major, minor } => (
                NodeKind::CharDevice {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            FsKind::BlockDevice { major, minor } => (
                NodeKind::BlockDevice {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            FsKind::Fifo => (NodeKind::Fifo, None),
        };
        let content = match kind {
            NodeKind::File => self.content(path)?.map(FileSource::Tree),
            _ => None,
        };
        Ok(Some(Node {
            kind,
            mode: entry.mode & 0o7777,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            xattrs: entry.xattrs.clone(),
            link_key,
            content,
        }))
    }

    fn spell(&self, path: &str) -> String {
        self.fs
            .spell(&format!("/{path}"))
            .trim_start_matches('/')
            .to_string()
    }

    fn children(&self, path: &str) -> Result<Vec<String>, ErrorKind> {
        let mut names: Vec<String> = self
            .fs
            .read_dir(&format!("/{path}"))
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort();
        Ok(names)
    }

    fn strict(&self) -> bool {
        false
    }

    fn describe(&self) -> &str {
        "the source image"
    }
}

/// Lists `path`'s subtree below `base` depth first, for wildcard matching;
/// a directory that matches is not entered.
pub(crate) fn walk_matches(
    tree: &dyn Tree,
    base: &str,
    rel: &str,
    pattern: &str,
    out: &mut Vec<String>,
) -> Result<(), ErrorKind> {
    let dir = join(base, rel);
    for name in tree.children(&dir)? {
        let child_rel = join(rel, &name);
        let child = join(base, &child_rel);
        let is_dir = tree.node(&child)?.is_some_and(|n| n.is_dir());
        if super::paths::go_match(pattern, &child_rel) {
            out.push(child);
        } else if is_dir {
            walk_matches(tree, base, &child_rel, pattern, out)?;
        }
    }
    Ok(())
}

/// A name read from disk as kiln spells it (`kiln_oci::name`): names that
/// are not UTF-8 are carried, not replaced.
fn spelled(name: std::ffi::OsString) -> Result<String, ErrorKind> {
    kiln_oci::name::from_os_string(name).map_err(|e| ErrorKind::Context {
        reason: e.to_string(),
    })
}

fn io_error(what: &str, path: &Path, err: io::Error) -> ErrorKind {
    // Paths are read only after the directories on them were seen to be
    // directories: a symlink met on the way was put there since.
    let reason = if kiln_oci::tree::is_link_on_path(&err) {
        "it changed during the build: a symbolic link is now on its path".to_string()
    } else {
        err.to_string()
    };
    ErrorKind::Io {
        what: format!("{what} {}", path.display()),
        reason,
    }
}

/// The parent directories of a relative path, outermost first.
pub(crate) fn ancestors(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut p = parent(path);
    while !p.is_empty() {
        out.push(p);
        p = parent(p);
    }
    out.reverse();
    out
}

/// The extended attributes COPY keeps of a host file.
#[cfg(unix)]
fn host_xattrs(full: &Path) -> Result<Vec<(String, Vec<u8>)>, ErrorKind> {
    kiln_oci::read_xattrs(full).map_err(|e| io_error("reading xattrs of", full, e))
}

/// NTFS extended attributes are not POSIX xattrs: a Windows context has
/// none to give, as in BuildKit.
#[cfg(windows)]
fn host_xattrs(_full: &Path) -> Result<Vec<(String, Vec<u8>)>, ErrorKind> {
    Ok(Vec::new())
}
