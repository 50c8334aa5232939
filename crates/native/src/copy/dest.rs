//! The destination side of a COPY: the layer being built, seen on top of
//! the stage's file system, and fsutil's copy rules that fill it.

use std::collections::{BTreeMap, HashMap};

use kiln_frontend::dockerignore::Matcher;
use kiln_oci::{EntryKind, LayerEntry};

use super::mode::ModeChange;
use super::paths::{base, include_match, join, parent};
use super::tree::{ancestors, Node, NodeKind, Tree};
use super::ErrorKind;
use crate::imagefs::{FsKind, ImageFs};

/// What a destination path is, in the layer or below it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DestKind {
    Dir,
    Symlink(String),
    Other,
}

/// Whom [`Layer::mkdir_all_as`] creates directories for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    /// A COPY's destination or its parent.
    Copy,
    /// A directory copy's own top directory (and its parents).
    DirCopy,
    /// An archive's destination.
    Archive,
}

/// How copied entries get their owner, mode and the metadata of the
/// directories COPY creates.
pub(crate) struct Options {
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<ModeChange>,
    /// mtime of created directories (and inline files).
    pub now: i64,
}

/// The layer under construction over the stage's file system (`None` for
/// `--link`, which BuildKit builds on an empty one).
pub(crate) struct Layer<'a> {
    below: Option<&'a ImageFs>,
    entries: BTreeMap<String, LayerEntry>,
    opts: Options,
    /// Source hard-link keys → the layer path that holds the file.
    inodes: HashMap<String, String>,
}

impl<'a> Layer<'a> {
    pub(crate) fn new(below: Option<&'a ImageFs>, opts: Options) -> Layer<'a> {
        Layer {
            below,
            entries: BTreeMap::new(),
            opts,
            inodes: HashMap::new(),
        }
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    fn kind(&self, path: &str) -> Option<DestKind> {
        if path.is_empty() {
            return Some(DestKind::Dir);
        }
        if let Some(e) = self.entries.get(path) {
            return Some(match &e.kind {
                EntryKind::Dir => DestKind::Dir,
                EntryKind::Symlink(t) => DestKind::Symlink(t.clone()),
                _ => DestKind::Other,
            });
        }
        let entry = self.below?.lookup(&format!("/{path}"))?;
        Some(match &entry.kind {
            FsKind::Dir => DestKind::Dir,
            FsKind::Symlink(t) => DestKind::Symlink(t.clone()),
            _ => DestKind::Other,
        })
    }

    /// Resolves symlinks on `path` inside the root (an absolute target
    /// starts again at the root, `..` stops there).
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<String, ErrorKind> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(comp);
            if !follow_last && todo.iter().all(|c| c.is_empty() || c == ".") {
                break;
            }
            if let Some(DestKind::Symlink(target)) = self.kind(&done.join("/")) {
                hops += 1;
                if hops > 255 {
                    return Err(ErrorKind::SymlinkLoop {
                        path: format!("/{path}"),
                    });
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_string));
            }
        }
        Ok(done.join("/"))
    }

    /// fsutil's `MkdirAll` as COPY calls it: creates the missing
    /// directories of `path` (following symlinks) owned by the `--chown`
    /// owner (else root), with an octal `--chmod` mode (BuildKit passes it
    /// as the directories' permission), else 0755.
    pub(crate) fn mkdir_all(&mut self, path: &str) -> Result<(), ErrorKind> {
        self.mkdir_all_as(path, Leaf::Copy)
    }

    /// [`Self::mkdir_all`] for an archive's destination, which BuildKit
    /// makes 0755 whatever `--chmod` says (`MkdirAll(dest, 0755, …)`).
    pub(crate) fn mkdir_all_for_archive(&mut self, path: &str) -> Result<(), ErrorKind> {
        self.mkdir_all_as(path, Leaf::Archive)
    }

    /// The directories fsutil's `MkdirAll` creates get an octal `--chmod`
    /// mode (COPY, not an archive's destination); a symbolic one reaches
    /// only the directory a directory copy itself creates
    /// ([`Leaf::DirCopy`]), as fsutil copies the source directory's mode.
    fn mkdir_all_as(&mut self, path: &str, leaf: Leaf) -> Result<(), ErrorKind> {
        let resolved = self.resolve(path, true)?;
        if resolved.is_empty() {
            return Ok(());
        }
        let mut dirs = ancestors(&resolved);
        dirs.push(&resolved);
        for dir in dirs {
            match self.kind(dir) {
                Some(DestKind::Dir) => {}
                Some(_) => {
                    return Err(ErrorKind::NotADirectory {
                        path: format!("/{dir}"),
                    })
                }
                None => {
                    let chmod = self.opts.chmod.as_ref().filter(|m| match leaf {
                        Leaf::Archive => false,
                        Leaf::Copy => m.is_octal(),
                        Leaf::DirCopy => m.is_octal() || dir == resolved,
                    });
                    let mode = chmod.map_or(0o755, |m| m.apply(0o755, true));
                    let (uid, gid) = self.opts.chown.unwrap_or((0, 0));
                    let entry = LayerEntry::dir(dir)
                        .with_mode(mode)
                        .with_owner(uid, gid)
                        .with_mtime(self.opts.now);
                    self.entries.insert(dir.to_string(), entry);
                }
            }
        }
        Ok(())
    }

    /// Creates `path` as a root-owned 0755 directory if it is missing, as
    /// an archive's implied parent directories are; a symlink or file in
    /// the way is an error.
    pub(crate) fn mkdir_plain(&mut self, path: &str, mtime: i64) -> Result<(), ErrorKind> {
        match self.kind(path) {
            Some(DestKind::Dir) => Ok(()),
            Some(_) => Err(ErrorKind::NotADirectory {
                path: format!("/{path}"),
            }),
            None => {
                let entry = LayerEntry::dir(path).with_mtime(mtime);
                self.entries.insert(path.to_string(), entry);
                Ok(())
            }
        }
    }

    /// Adds an entry built elsewhere (archive extraction), replacing what
    /// the layer had at its path.
    pub(crate) fn put(&mut self, entry: LayerEntry) -> Result<(), ErrorKind> {
        if entry.kind != EntryKind::Dir && self.kind(&entry.path) == Some(DestKind::Dir) {
            return Err(ErrorKind::ReplaceDir {
                path: format!("/{}", entry.path),
            });
        }
        if entry.kind == EntryKind::Dir
            && matches!(self.kind(&entry.path), Some(k) if k != DestKind::Dir)
        {
            return Err(ErrorKind::NotADirectory {
                path: format!("/{}", entry.path),
            });
        }
        self.entries.insert(entry.path.clone(), entry);
        Ok(())
    }

    /// The entries in layer order, with every parent directory that was
    /// not created taken from the file system below as it is there.
    pub(crate) fn finish(mut self) -> Vec<LayerEntry> {
        if let Some(below) = self.below {
            let paths: Vec<String> = self.entries.keys().cloned().collect();
            for path in &paths {
                for dir in ancestors(path) {
                    if self.entries.contains_key(dir) {
                        continue;
                    }
                    if let Some(e) = below.lookup(&format!("/{dir}")) {
                        let mut entry = LayerEntry::dir(dir)
                            .with_mode(e.mode & 0o7777)
                            .with_owner(e.uid, e.gid)
                            .with_mtime(e.mtime);
                        entry.xattrs = e.xattrs.clone();
                        self.entries.insert(dir.to_string(), entry);
                    }
                }
            }
        }
        let mut out: Vec<LayerEntry> = self.entries.into_values().collect();
        out.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        out
    }
}

/// One source of a COPY as fsutil's `Copy` takes it.
pub(crate) struct CopyJob<'t> {
    pub tree: &'t dyn Tree,
    /// The source as matched, before following symlinks: its last
    /// component names the copy inside a destination directory.
    pub name_path: String,
    /// The source with symlinks followed (or not, for inline files,
    /// downloads and checkouts).
    pub src: String,
    /// `true` for context and stage sources: a directory's contents are
    /// copied, not the directory.
    pub dir_contents: bool,
    /// `--parents` include patterns, relative to `src`.
    pub includes: Vec<String>,
    /// `--exclude` patterns, relative to `src`.
    pub excludes: Option<&'t Matcher>,
}

impl Layer<'_> {
    /// Copies one source to `dest` (absolute, clean, no trailing slash,
    /// already created as a directory when it had one).
    pub(crate) fn copy(&mut self, job: &CopyJob, dest: &str) -> Result<(), ErrorKind> {
        let node = job
            .tree
            .node(&job.src)?
            .ok_or_else(|| ErrorKind::NotFound {
                path: job.name_path.clone(),
                place: job.tree.describe().to_string(),
            })?;
        // The source's symlinks were followed when it was found: one there
        // now was put in its place since, and would go into the layer as
        // a link to wherever it points.
        if job.dir_contents && matches!(node.kind, NodeKind::Symlink(_)) {
            return Err(ErrorKind::Io {
                what: format!("reading {}", job.name_path),
                reason: "it changed during the build: it is now a symbolic link; nothing may change a build's sources while it runs".into(),
            });
        }
        // prepareTargetDir.
        let mut dest = self.resolve(dest, true)?;
        let dest_kind = self.kind(&dest);
        if (!job.dir_contents && node.is_dir() && dest_kind.is_some())
            || (!node.is_dir() && dest_kind == Some(DestKind::Dir))
        {
            dest = join(&dest, base(&job.name_path));
        }
        if job.dir_contents && node.is_dir() && dest_kind.is_none() {
            self.mkdir_all_as(&dest.clone(), Leaf::DirCopy)?;
        } else {
            self.mkdir_all(parent(&dest))?;
        }
        // fsutil keeps hard links within one source only.
        self.inodes.clear();
        let skip_includes = job.includes.is_empty();
        self.copy_node(job, &job.src, "", &dest, false, skip_includes)
    }

    /// Copies each entry of the directory `src` into `target`.
    fn copy_children(
        &mut self,
        job: &CopyJob,
        src: &str,
        comps: &str,
        target: &str,
        skip_includes: bool,
    ) -> Result<(), ErrorKind> {
        for name in job.tree.children(src)? {
            self.copy_node(
                job,
                &join(src, &name),
                &join(comps, &name),
                &join(target, &name),
                true,
                skip_includes,
            )?;
        }
        Ok(())
    }

    fn copy_node(
        &mut self,
        job: &CopyJob,
        src: &str,
        comps: &str,
        target: &str,
        overwrite: bool,
        mut skip_includes: bool,
    ) -> Result<(), ErrorKind> {
        let Some(node) = job.tree.node(src)? else {
            return Ok(());
        };
        let mut included = false;
        if !comps.is_empty() {
            if !skip_includes {
                let mut matched = false;
                let mut partial = true;
                for pattern in &job.includes {
                    let (m, p) = include_match(pattern, comps, node.is_dir());
                    if m {
                        matched = true;
                        if !p {
                            partial = false;
                            break;
                        }
                    }
                }
                if !matched || (!node.is_dir() && partial) {
                    return Ok(());
                }
                included = true;
                skip_includes = !partial;
            }
            if let Some(m) = job.excludes.filter(|m| m.is_excluded(comps)) {
                // fsutil still walks an excluded directory when there are
                // exceptions (`!pattern`): one may re-include something in
                // it, which then makes the directory as its parent.
                if node.is_dir() && m.patterns().iter().any(|p| p.is_exception()) {
                    self.copy_children(job, src, comps, target, skip_includes)?;
                }
                return Ok(());
            }
        }
        // Missing only below a directory that was excluded.
        let orphan = self.kind(parent(target)).is_none();
        if !node.is_dir() {
            if included || orphan {
                self.create_parent_dirs(job, src, comps, target, orphan)?;
            }
            if self.kind(target) == Some(DestKind::Dir) {
                return Err(ErrorKind::ReplaceDir {
                    path: format!("/{target}"),
                });
            }
        } else if skip_includes {
            self.create_parent_dirs(job, src, comps, target, orphan)?;
        }
        let mut set_info = true;
        let kind = match &node.kind {
            NodeKind::Dir => {
                let mut created = false;
                if skip_includes {
                    match self.kind(target) {
                        None => {
                            created = true;
                            self.entries
                                .insert(target.to_string(), LayerEntry::dir(target));
                        }
                        Some(DestKind::Dir) => {}
                        Some(_) => {
                            return Err(ErrorKind::NotADirectory {
                                path: format!("/{target}"),
                            })
                        }
                    }
                }
                self.copy_children(job, src, comps, target, skip_includes)?;
                if !overwrite || !skip_includes {
                    set_info = created;
                }
                EntryKind::Dir
            }
            NodeKind::File => match node.link_key.as_ref().and_then(|k| self.inodes.get(k)) {
                Some(first) => EntryKind::Hardlink(first.clone()),
                None => {
                    if let Some(key) = &node.link_key {
                        self.inodes.insert(key.clone(), target.to_string());
                    }
                    let content = node.content.clone().ok_or_else(|| ErrorKind::Io {
                        what: format!("reading {src}"),
                        reason: "its contents were not extracted".into(),
                    })?;
                    EntryKind::File(content)
                }
            },
            NodeKind::Symlink(t) => EntryKind::Symlink(t.clone()),
            NodeKind::CharDevice { major, minor } => EntryKind::CharDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::BlockDevice { major, minor } => EntryKind::BlockDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::Fifo => EntryKind::Fifo,
        };
        if set_info {
            let entry = self.with_info(LayerEntry::new(target, kind), &node);
            self.entries.insert(target.to_string(), entry);
        }
        Ok(())
    }

    /// fsutil's `copyFileInfo`: owner (`--chown` or the source's), mode
    /// (`--chmod` applied, symlinks keep theirs), mtime and xattrs.
    fn with_info(&self, mut entry: LayerEntry, node: &Node) -> LayerEntry {
        let (uid, gid) = self.opts.chown.unwrap_or((node.uid, node.gid));
        entry.uid = uid;
        entry.gid = gid;
        entry.mode = match (&node.kind, &self.opts.chmod) {
            (NodeKind::Symlink(_), _) => 0o777,
            (_, Some(m)) => m.apply(node.mode, node.is_dir()),
            (_, None) => node.mode,
        };
        entry.mtime = node.mtime;
        entry.xattrs = node.xattrs.clone();
        entry
    }

    /// With `--parents`, or when the target's parent is missing (`orphan`:
    /// an excluded directory was not made): the source directories leading
    /// to a copied entry are created with their own metadata when missing.
    fn create_parent_dirs(
        &mut self,
        job: &CopyJob,
        src: &str,
        comps: &str,
        target: &str,
        orphan: bool,
    ) -> Result<(), ErrorKind> {
        if job.includes.is_empty() && !orphan {
            return Ok(());
        }
        let depth = comps.matches('/').count();
        let (mut s, mut t) = (src.to_string(), target.to_string());
        let mut pairs = Vec::new();
        for _ in 0..depth {
            s = parent(&s).to_string();
            t = parent(&t).to_string();
            pairs.push((s.clone(), t.clone()));
        }
        for (s, t) in pairs.into_iter().rev() {
            let resolved = job.tree.resolve(&s, true)?;
            let Some(node) = job.tree.node(&resolved)? else {
                return Ok(());
            };
            match self.kind(&t) {
                None => {
                    let entry = self.with_info(LayerEntry::dir(t.clone()), &node);
                    self.entries.insert(t, entry);
                }
                Some(DestKind::Dir) => {}
                Some(_) => {
                    return Err(ErrorKind::NotADirectory {
                        path: format!("/{t}"),
                    })
                }
            }
        }
        Ok(())
    }
}
