//! A read-only view of an image's file system, merged from its layer tars
//! without unpacking them.
//!
//! [`ImageFs::open`] reads each layer's tar headers once, streaming, and
//! keeps one [`FsEntry`] per path of the merged tree: OCI whiteouts and
//! opaque directories are applied, hard links are recorded, and parent
//! directories a tar leaves out exist as `0755` root-owned directories.
//! File contents stay in the layer blobs; [`ImageFs::read_file`] and
//! [`ImageFs::extract`] stream them from there when asked.
//!
//! Paths are absolute and cleaned (`/etc/passwd`); symlinks are resolved
//! inside the image root the way `openat2(RESOLVE_IN_ROOT)` does, so no
//! lookup ever leaves the image.
//!
//! ```
//! use kiln_native::imagefs::{FsKind, ImageFs};
//! use kiln_oci::{write_layer, LayerEntry, LayerOptions};
//! use kiln_store::{Descriptor, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let entries = vec![
//!     LayerEntry::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
//!     LayerEntry::symlink("etc/alias", "/etc/passwd"),
//! ];
//! let (layer, writer) = write_layer(entries, &LayerOptions::default(), store.ingest()?)?;
//! writer.commit(Some(layer.digest))?;
//! let fs = ImageFs::open(&store, &[Descriptor::new(layer.media_type, layer.digest, layer.size)])?;
//!
//! assert_eq!(fs.lookup("/etc/alias").unwrap().kind, FsKind::Symlink("/etc/passwd".into()));
//! assert_eq!(fs.resolve("/etc/alias", true)?, "/etc/passwd");
//! assert!(fs.read_file("/etc/alias", 4096)?.unwrap().starts_with(b"root:"));
//! assert_eq!(fs.lookup_user("app")?, (1000, 1000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod extract;
pub(crate) mod headers;
mod index;
mod tree;
mod users;

pub use error::Error;
pub use headers::prune as prune_saved_headers;
pub use users::{RootDir, UserDb};

use kiln_oci::layer::read::{LayerReader, ReadError};
use kiln_oci::{Digest, DigestWriter, ExtractOptions, LayerFormat};
use kiln_store::{Descriptor, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use tree::Tree;

/// Symlinks followed in one resolution before giving up, as Linux does.
const MAX_SYMLINKS: usize = 40;

/// A merged, read-only view of an image's layers. Cloning is cheap: the
/// index is shared until [`ImageFs::push_layer`] changes one of the clones.
#[derive(Clone, Debug)]
pub struct ImageFs {
    tree: Arc<Tree>,
}

/// What a path is.
///
/// Not `kiln_oci::EntryKind`, which is what a layer writer is given: that
/// one carries where a file's bytes come from and whiteouts, this one what
/// a merged image shows (a hard link's target by its path at the time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link with this target, as stored (never resolved).
    Symlink(String),
    /// A hard link to the file that was at this absolute path when the
    /// link's layer was applied. The link keeps that file's contents and
    /// metadata even if a later layer replaced or removed the path.
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One path of the merged tree, with the metadata from its tar header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsEntry {
    /// What it is.
    pub kind: FsKind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes of a regular file (or of a hard link's file); 0
    /// otherwise.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Nanoseconds after `mtime`.
    pub mtime_nanos: u32,
    /// Extended attributes from PAX `SCHILY.xattr.*` records, in tar order.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// In a Windows image, the entry's other PAX records (`MSWINDOWS.*`,
    /// `LIBARCHIVE.creationtime`, `atime`, `ctime`), which a layer that
    /// names this directory again replays; empty elsewhere.
    pub records: Vec<(String, Vec<u8>)>,
    /// Index (in the `layers` given to [`ImageFs::open`], then pushed
    /// ones) of the layer that defined this path; for a directory no tar
    /// named, the layer that implied it.
    pub layer: usize,
    /// Where a regular file's bytes are (also for hard links).
    data: Option<DataRef>,
}

/// The tar entry holding a file's bytes: layer index and the entry's
/// position among the layer's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct DataRef {
    layer: usize,
    ordinal: u64,
}

impl FsEntry {
    /// A root-owned directory with mode 0755 and mtime 0, as implied by a
    /// tar that names a path inside it but not the directory itself.
    fn implicit_dir(layer: usize) -> FsEntry {
        FsEntry {
            kind: FsKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            mtime_nanos: 0,
            xattrs: Vec::new(),
            records: Vec::new(),
            layer,
            data: None,
        }
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == FsKind::Dir
    }

    /// For regular files and hard links: an identity of the file's
    /// contents. Two entries with the same key are hard links of one file
    /// (unlike comparing [`FsKind::Hardlink`] targets, this stays right
    /// when a later layer replaced the path a link was made to).
    pub fn content_key(&self) -> Option<(usize, u64)> {
        self.data.map(|d| (d.layer, d.ordinal))
    }
}

impl ImageFs {
    /// An empty file system (`FROM scratch`): just the root directory.
    pub fn empty() -> ImageFs {
        ImageFs::empty_as(LayerFormat::Linux)
    }

    /// An empty file system whose layers will be in `format`.
    pub fn empty_as(format: LayerFormat) -> ImageFs {
        ImageFs {
            tree: Arc::new(Tree::new(format)),
        }
    }

    /// Indexes `layers` (bottom first) from `store`, reading each blob's
    /// tar headers once; blobs may be gzip, zstd or plain tar.
    pub fn open(store: &Store, layers: &[Descriptor]) -> Result<ImageFs, Error> {
        ImageFs::open_as(store, layers, LayerFormat::Linux)
    }

    /// [`ImageFs::open`] for layers in `format`. A Windows image's view is
    /// its `C:` drive: `Files/` is the root, `Hives/`, `UtilityVM/` and
    /// alternate data streams are left out, link targets are read as
    /// Windows paths, and lookups ignore case as NTFS does, answering in
    /// the spelling the image has.
    pub fn open_as(
        store: &Store,
        layers: &[Descriptor],
        format: LayerFormat,
    ) -> Result<ImageFs, Error> {
        let mut tree = Tree::new(format);
        for layer in layers {
            apply(&mut tree, store, layer)?;
        }
        Ok(ImageFs {
            tree: Arc::new(tree),
        })
    }

    /// Adds `layer` on top, as the next layer index. On error `self` is
    /// unchanged.
    pub fn push_layer(&mut self, store: &Store, layer: &Descriptor) -> Result<(), Error> {
        let mut tree = Tree::clone(&self.tree);
        apply(&mut tree, store, layer)?;
        self.tree = Arc::new(tree);
        Ok(())
    }

    /// The number of layers indexed.
    pub fn layer_count(&self) -> usize {
        self.tree.layers.len()
    }

    /// How this image's layers lay out their files.
    pub fn format(&self) -> LayerFormat {
        self.tree.format
    }

    /// `path` cleaned, with the components that exist spelled as the image
    /// spells them (only a Windows image's spelling can differ from the
    /// path's); no symlink is followed.
    pub fn spell(&self, path: &str) -> String {
        self.tree.spell(&tree::clean(path))
    }

    /// The entry at `path` (cleaned lexically; no symlink is followed).
    /// `/` and the empty path are the root.
    pub fn lookup(&self, path: &str) -> Option<&FsEntry> {
        self.tree.get(&self.spell(path))
    }

    /// `path` as an absolute, cleaned path with every symlink on the way
    /// resolved inside the image root, like `openat2(RESOLVE_IN_ROOT)`:
    /// `..` at the root stays at the root and absolute link targets start
    /// at the image root. The last component is followed only when
    /// `follow_last` is set (or `path` ends in `/`). Components that do not
    /// exist are kept as written, giving the path a new file would get.
    /// Fails on more than 40 links and on a non-directory used as a
    /// directory.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, Error> {
        let follow_last = follow_last || path.ends_with('/') || path.ends_with("/.");
        let mut out: Vec<String> = Vec::new();
        let mut todo: Vec<String> = components_rev(path);
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                out.pop();
                continue;
            }
            out.push(c);
            let current = self.tree.spell(&tree::join(&out));
            if let Some((_, name)) = current.rsplit_once('/') {
                if let Some(last) = out.last_mut() {
                    *last = name.to_string();
                }
            }
            let Some(entry) = self.tree.get(&current) else {
                continue;
            };
            match &entry.kind {
                FsKind::Symlink(target) if follow_last || !todo.is_empty() => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Error::SymlinkLoop {
                            path: path.to_string(),
                        });
                    }
                    out.pop();
                    if target.starts_with('/') {
                        out.clear();
                    }
                    todo.extend(components_rev(target));
                }
                FsKind::Dir => {}
                // Linux refuses `file/..` too, so any further component is an error.
                _ if !todo.is_empty() => {
                    return Err(Error::NotADirectory {
                        path: path.to_string(),
                        component: current,
                    });
                }
                _ => {}
            }
        }
        Ok(tree::join(&out))
    }

    /// The contents of the regular file at `path` (symlinks followed inside
    /// the root), or `None` if nothing is there. Fails for directories and
    /// other non-files, and for files larger than `limit` bytes.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let resolved = self.resolve(path, true)?;
        let Some(entry) = self.tree.get(&resolved) else {
            return Ok(None);
        };
        let data = match (&entry.kind, entry.data) {
            (FsKind::File | FsKind::Hardlink(_), Some(data)) => data,
            (FsKind::Dir, _) => return Err(Error::IsADirectory { path: resolved }),
            (kind, _) => {
                return Err(Error::NotAFile {
                    path: resolved,
                    kind: kind_name(kind),
                })
            }
        };
        if entry.size > limit {
            return Err(Error::TooLarge {
                path: resolved,
                size: entry.size,
                limit,
            });
        }
        let layer = &self.tree.layers[data.layer];
        let mut out = Vec::with_capacity(entry.size as usize);
        index::with_entry(layer, data.ordinal, |reader| {
            reader.take(entry.size).read_to_end(&mut out).map(drop)
        })?;
        Ok(Some(out))
    }

    /// The blob digest of layer `index` (as [`FsEntry::layer`] and
    /// [`FsEntry::content_key`] count them).
    pub fn layer_digest(&self, index: usize) -> Option<Digest> {
        self.tree.layers.get(index).map(|l| l.digest)
    }

    /// The sha256 of the bytes of each file named by its
    /// [`FsEntry::content_key`] in `wanted`: each layer holding one is
    /// streamed once, up to the last file wanted from it, and nothing is
    /// held in memory but the digests. A key naming no layer of this view
    /// is left out of the answer.
    pub fn content_digests(
        &self,
        wanted: &[(usize, u64)],
    ) -> Result<HashMap<(usize, u64), Digest>, Error> {
        let mut by_layer: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
        for &(layer, ordinal) in wanted {
            by_layer.entry(layer).or_default().insert(ordinal);
        }
        let mut out = HashMap::new();
        for (index, mut ordinals) in by_layer {
            let Some(layer) = self.tree.layers.get(index) else {
                continue;
            };
            let fail = |e: ReadError| Error::Layer {
                layer: layer.digest,
                entry: e.entry,
                reason: e.reason,
            };
            let mut reader = LayerReader::new(index::open_layer(layer)?).map_err(fail)?;
            while !ordinals.is_empty() {
                let Some(entry) = reader.next_entry().map_err(fail)? else {
                    break;
                };
                if !ordinals.remove(&entry.ordinal) {
                    continue;
                }
                let mut hashed = DigestWriter::new(io::sink());
                io::copy(&mut reader, &mut hashed).map_err(|e| Error::Layer {
                    layer: layer.digest,
                    entry: Some(entry.display_name()),
                    reason: format!("reading entry {}: {e}", entry.ordinal),
                })?;
                out.insert((index, entry.ordinal), hashed.finish().0);
            }
            if let Some(missing) = ordinals.first() {
                return Err(Error::Layer {
                    layer: layer.digest,
                    entry: None,
                    reason: format!(
                        "the blob has no entry {missing} any more; it changed since it was indexed"
                    ),
                });
            }
        }
        Ok(out)
    }

    /// The children of the directory at `path` (cleaned lexically; no
    /// symlink is followed), sorted by name. Empty if `path` is not a
    /// directory; resolve it first to follow links.
    pub fn read_dir(&self, path: &str) -> Vec<(String, &FsEntry)> {
        self.tree.children(&self.spell(path))
    }

    /// Every entry under the directory at `path` (cleaned lexically, not
    /// followed), as `(absolute path, entry)` in sorted order, parents
    /// before their children.
    pub fn walk(&self, path: &str) -> Vec<(&str, &FsEntry)> {
        self.tree.descendants(&self.spell(path)).collect()
    }

    /// Writes the file or directory at `path` (symlinks resolved inside the
    /// root, the last one followed) into the existing directory `dest`: a
    /// directory's contents go directly into `dest` (whose own metadata is
    /// left alone; see [`ImageFs::lookup`] for it), anything else becomes
    /// `dest/<name>`. Modes (setuid, sticky included), owners (when running
    /// as root), mtimes, xattrs, symlinks and device nodes are kept; files
    /// that are hard links of each other inside the subtree are hard links
    /// in `dest`. Contents stream from the layer blobs, and only layers
    /// holding a file under `path` are read.
    pub fn extract(&self, store: &Store, path: &str, dest: &Path) -> Result<(), Error> {
        extract::extract(self, store, path, dest, &ExtractOptions::default())
    }

    /// [`ImageFs::extract`] with the extractor's `options` (say, owners
    /// left to whoever writes the files).
    pub fn extract_with(
        &self,
        store: &Store,
        path: &str,
        dest: &Path,
        options: &ExtractOptions,
    ) -> Result<(), Error> {
        extract::extract(self, store, path, dest, options)
    }

    /// Looks a user up the way a container's `USER` does (runc's rules):
    /// a name is searched in `/etc/passwd`, giving its uid and primary gid;
    /// a number is used as is, with the gid of the first passwd entry that
    /// has that uid, or 0. The empty string is root.
    pub fn lookup_user(&self, user: &str) -> Result<(u32, u32), Error> {
        UserDb::user(self, user)
    }

    /// Looks a group up: a number is used as is, a name is searched in
    /// `/etc/group`.
    pub fn lookup_group(&self, group: &str) -> Result<u32, Error> {
        UserDb::group(self, group)
    }

    /// A RUN process's supplementary groups, as BuildKit gives them: the
    /// groups `/etc/group` lists `user` (a name, or a uid `/etc/passwd`
    /// names) in; none when USER named a group too (`explicit_group`).
    pub fn supplementary_groups(
        &self,
        user: &str,
        explicit_group: bool,
    ) -> Result<Vec<u32>, Error> {
        UserDb::groups(self, user, explicit_group)
    }

    /// The uid and gid for a `COPY`/`ADD --chown` value, following
    /// BuildKit (`llb.WithUser` and the file op's `readUser`) exactly:
    ///
    /// * the value splits at its first `:` into a user and a group part;
    /// * a user part that is `root` or a number gives that uid and the same
    ///   gid; a name gives its uid and primary gid from `/etc/passwd`;
    /// * a group part that is `root` or a number gives that gid; a name
    ///   gives its gid from `/etc/group`;
    /// * an empty part counts as id 0 (so `user:` means gid 0, and `:5`
    ///   means uid 0, gid 5);
    /// * a name missing from the file (or a missing file) is **not** an
    ///   error: the user part then gives 0:0 and the group part leaves the
    ///   gid as it was. BuildKit does this; docker's classic builder and
    ///   buildah fail instead.
    ///
    /// Negative numbers are refused.
    pub fn resolve_chown(&self, spec: &str) -> Result<(u32, u32), Error> {
        users::resolve_chown(self, spec)
    }
}

/// Indexes `layer` into `tree`: from its saved headers when it is big and
/// they are there ([`headers`]), else from its blob (saving them).
fn apply(tree: &mut Tree, store: &Store, layer: &Descriptor) -> Result<(), Error> {
    let blob = store.open_blob(&layer.digest).map_err(|err| Error::Store {
        layer: layer.digest,
        err,
    })?;
    let path = store.blob_path(&layer.digest);
    // The descriptor's size, which names the blob as its digest does.
    let big = layer.size >= headers::MIN_BLOB;
    if big {
        if let Some(entries) = headers::load(store, &layer.digest) {
            return tree.apply_saved(layer.digest, path, &entries);
        }
    }
    let mut keep = big.then(Vec::new);
    tree.apply_layer(layer.digest, path, blob, keep.as_mut())?;
    if let Some(entries) = keep {
        headers::save(store, &layer.digest, &entries);
    }
    Ok(())
}

/// The components of `path` in reverse order (so popping gives them in
/// order), without empty and `.` components.
fn components_rev(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(str::to_string)
        .collect()
}

/// A kind's name for messages.
fn kind_name(kind: &FsKind) -> &'static str {
    match kind {
        FsKind::File => "regular file",
        FsKind::Dir => "directory",
        FsKind::Symlink(_) => "symbolic link",
        FsKind::Hardlink(_) => "hard link",
        FsKind::CharDevice { .. } => "character device",
        FsKind::BlockDevice { .. } => "block device",
        FsKind::Fifo => "named pipe",
    }
}
