//! Writing a Windows layer on any host (the design's §1.7 recipe).
//!
//! The tar holds `Files`, then the `Files/` tree in pre-order, then an
//! empty `Hives`: hcsshim's legacy writer creates each entry without
//! creating its parents, so every ancestor is written before its children,
//! and every Linux producer that works (ggcr, ko, imgutil, BuildKit) emits
//! `Hives`. Deletions are listed one by one (`Files/dir/.wh.name`, bare
//! headers, right after their directory as HCS's exporter places
//! tombstones), never as opaque markers, which hcsshim does not understand.

use super::path::{display, fold_case, validate_name};
use super::sd::{SecurityDescriptor, DIR_SDDL, FILE_SDDL};
use super::{base64, PaxTime};
use crate::layer::tar::{write_header, write_trailer, Header};
use crate::layer::write::{open_source, write_blob, write_data};
use crate::{Compression, EntryKind, FileSource, LayerDescriptor, LayerEntry, LayerError};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// `FILE_ATTRIBUTE_DIRECTORY`.
const ATTR_DIRECTORY: u32 = 0x10;
/// `FILE_ATTRIBUTE_ARCHIVE`, which Windows sets on every new file.
const ATTR_ARCHIVE: u32 = 0x20;
/// `FILE_ATTRIBUTE_REPARSE_POINT`.
const ATTR_REPARSE_POINT: u32 = 0x400;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowsKind {
    /// A regular file.
    File(FileSource),
    /// A directory.
    Dir,
    /// A symbolic link. `target` is written with `\` separators, and an
    /// absolute `/x` as `C:\x`; `is_dir` makes it a directory link, which
    /// Windows needs to know (a file link to a directory cannot be
    /// entered).
    Symlink {
        /// The target, as the source has it.
        target: String,
        /// Whether the target is a directory.
        is_dir: bool,
    },
    /// Deletes the path from lower layers.
    Whiteout,
}

/// One entry of a Windows layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowsEntry {
    /// The path under `C:\`, as components (`["app", "x.exe"]`), spelled
    /// as the base spells any ancestor it already has. An ancestor without
    /// an entry of its own is written as a new directory (default
    /// descriptor, `SOURCE_DATE_EPOCH` or 0), so ancestors the base has
    /// need [`WindowsEntry::existing_dir`] entries, or the layer redefines
    /// them (`C:\Windows` with BuildKit's descriptor) in the merged view.
    pub path: Vec<String>,
    /// What it is.
    pub kind: WindowsKind,
    /// Last write time; clamped to `SOURCE_DATE_EPOCH` unless replayed.
    pub mtime: PaxTime,
    /// For a directory that exists in a lower layer: the PAX records of
    /// the top-most lower layer's entry for it, replayed so the merged
    /// view keeps its security descriptor, attributes and times. Only
    /// `MSWINDOWS.*`, `LIBARCHIVE.creationtime`, `atime` and `ctime` are
    /// kept; the entry's `mtime` is written as given, not clamped.
    pub replay: Option<Vec<(String, Vec<u8>)>>,
}

impl WindowsEntry {
    /// A regular file with inline contents.
    pub fn file(path: &[&str], contents: impl Into<Vec<u8>>, mtime: PaxTime) -> WindowsEntry {
        WindowsEntry::new(
            path,
            WindowsKind::File(FileSource::Bytes(contents.into())),
            mtime,
        )
    }

    /// A new directory.
    pub fn dir(path: &[&str], mtime: PaxTime) -> WindowsEntry {
        WindowsEntry::new(path, WindowsKind::Dir, mtime)
    }

    /// A directory that exists in a lower layer, with that layer's records
    /// and mtime.
    pub fn existing_dir(
        path: &[&str],
        records: Vec<(String, Vec<u8>)>,
        mtime: PaxTime,
    ) -> WindowsEntry {
        WindowsEntry {
            replay: Some(records),
            ..WindowsEntry::new(path, WindowsKind::Dir, mtime)
        }
    }

    /// A symbolic link.
    pub fn symlink(path: &[&str], target: &str, is_dir: bool, mtime: PaxTime) -> WindowsEntry {
        let kind = WindowsKind::Symlink {
            target: target.to_string(),
            is_dir,
        };
        WindowsEntry::new(path, kind, mtime)
    }

    /// A deletion.
    pub fn whiteout(path: &[&str]) -> WindowsEntry {
        WindowsEntry::new(path, WindowsKind::Whiteout, PaxTime::default())
    }

    fn new(path: &[&str], kind: WindowsKind, mtime: PaxTime) -> WindowsEntry {
        WindowsEntry {
            path: path.iter().map(|c| c.to_string()).collect(),
            kind,
            mtime,
            replay: None,
        }
    }
}

/// Converts the entries kiln's Linux side produces (a COPY change set, a
/// directory walk) to Windows entries. Hard links become copies of their
/// target, which must be an earlier file in the list (link output is only
/// an optimisation); a symlink is a directory link when its target,
/// resolved lexically, is a directory in the list. Devices, fifos and
/// opaque markers are refused: hcsshim would import the first two as
/// empty files and ignore the last.
pub fn entries_from_layer(
    entries: Vec<LayerEntry>,
) -> Result<Vec<WindowsEntry>, WindowsLayerError> {
    let split = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect()
    };
    let dirs: std::collections::HashSet<Vec<String>> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| split(&e.path))
        .collect();
    let mut files: HashMap<Vec<String>, FileSource> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let path = split(&e.path);
        let refuse = |reason: &str| WindowsLayerError::NotSupported {
            path: display(&path),
            reason: reason.to_string(),
        };
        let kind = match e.kind {
            EntryKind::File(source) => {
                files.insert(path.clone(), source.clone());
                WindowsKind::File(source)
            }
            EntryKind::Dir => WindowsKind::Dir,
            EntryKind::Symlink(target) => {
                let mut resolved: Vec<String> = if target.starts_with('/') {
                    Vec::new()
                } else {
                    path[..path.len().saturating_sub(1)].to_vec()
                };
                for c in target.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            resolved.pop();
                        }
                        c => resolved.push(c.to_string()),
                    }
                }
                let is_dir = dirs.contains(&resolved);
                WindowsKind::Symlink { target, is_dir }
            }
            EntryKind::Hardlink(target) => match files.get(&split(&target)) {
                Some(source) => WindowsKind::File(source.clone()),
                None => {
                    return Err(refuse(&format!(
                        "hard link to {target:?}, which is not a file earlier in this layer"
                    )))
                }
            },
            EntryKind::Whiteout => WindowsKind::Whiteout,
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } | EntryKind::Fifo => {
                return Err(refuse(
                    "Windows layers cannot hold devices or fifos (hcsshim would import it as an empty file)",
                ))
            }
            EntryKind::Opaque => {
                return Err(refuse(
                    "hcsshim ignores opaque whiteouts; list each deleted path instead",
                ))
            }
        };
        out.push(WindowsEntry {
            path,
            kind,
            mtime: PaxTime::from_secs(e.mtime),
            replay: None,
        });
    }
    Ok(out)
}

/// How to write a Windows layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowsLayerOptions {
    /// Blob compression (gzip for Windows bases).
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
    /// `SOURCE_DATE_EPOCH`: the latest mtime written, and the time of the
    /// directories the writer adds (0 without it).
    pub source_date_epoch: Option<i64>,
    /// Report Docker's layer media type rather than OCI's, for a base
    /// whose manifest is Docker schema 2.
    pub docker_media_type: bool,
}

impl Default for WindowsLayerOptions {
    fn default() -> WindowsLayerOptions {
        WindowsLayerOptions {
            compression: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            source_date_epoch: None,
            docker_media_type: false,
        }
    }
}

/// Why a Windows layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WindowsLayerError {
    /// An entry Windows cannot hold, or that contradicts another.
    #[error("{path}: {reason}")]
    NotSupported {
        /// The container path, `C:\…`.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading a source or writing the output failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

impl From<io::Error> for WindowsLayerError {
    fn from(e: io::Error) -> WindowsLayerError {
        WindowsLayerError::Layer(LayerError::Io(e))
    }
}

/// Writes Windows layers; holds the encoded security descriptors.
#[derive(Clone, Debug)]
pub struct WindowsLayerWriter {
    options: WindowsLayerOptions,
    file_sd: Vec<u8>,
    dir_sd: Vec<u8>,
}

impl WindowsLayerWriter {
    /// A writer with these options.
    pub fn new(options: WindowsLayerOptions) -> WindowsLayerWriter {
        let encode = |sddl| {
            let sd = SecurityDescriptor::parse_sddl(sddl).expect("built-in SDDL parses");
            base64::encode(&sd.to_bytes()).into_bytes()
        };
        WindowsLayerWriter {
            options,
            file_sd: encode(FILE_SDDL),
            dir_sd: encode(DIR_SDDL),
        }
    }

    /// Writes `entries` as a layer blob into `dest` in one pass and
    /// returns its descriptor and `dest`. A later entry for a path
    /// replaces an earlier one.
    pub fn write<W: Write>(
        &self,
        entries: Vec<WindowsEntry>,
        dest: W,
    ) -> Result<(LayerDescriptor, W), WindowsLayerError> {
        let tree = Tree::build(entries)?;
        let o = &self.options;
        let (mut descriptor, dest) = write_blob(o.compression, o.threads, dest, |out| {
            self.write_tree(&tree, out)
        })?;
        if o.docker_media_type {
            descriptor.media_type = o.compression.docker_media_type();
        }
        Ok((descriptor, dest))
    }

    /// Writes `entries` as an uncompressed tar into `out`.
    pub fn write_tar<W: Write>(
        &self,
        entries: Vec<WindowsEntry>,
        mut out: W,
    ) -> Result<W, WindowsLayerError> {
        let tree = Tree::build(entries)?;
        self.write_tree(&tree, &mut out)?;
        Ok(out)
    }

    fn write_tree<W: Write>(&self, tree: &Tree, mut out: W) -> Result<(), WindowsLayerError> {
        let root_time = PaxTime::from_secs(self.options.source_date_epoch.unwrap_or(0));
        self.write_root(&mut out, "Files", root_time)?;
        let mut path = Vec::new();
        self.write_children(&mut out, &tree.root, &mut path, root_time)?;
        self.write_root(&mut out, "Hives", root_time)?;
        write_trailer(&mut out)?;
        Ok(())
    }

    /// `Files` and `Hives` get attributes and times but no descriptor, as
    /// every Linux producer writes them.
    fn write_root<W: Write>(&self, out: &mut W, name: &str, t: PaxTime) -> io::Result<()> {
        let mut pax = Vec::new();
        attr_and_times(&mut pax, ATTR_DIRECTORY, t);
        write_header(out, &header(name, b'5', 0o40755, 0, t, "", &pax))
    }

    fn write_children<W: Write>(
        &self,
        out: &mut W,
        node: &Node,
        path: &mut Vec<String>,
        synthesised: PaxTime,
    ) -> Result<(), WindowsLayerError> {
        let tar_dir = tar_name(path);
        for (name, _) in node.children.iter().filter(|(_, c)| c.is_whiteout()) {
            let marker = format!("{tar_dir}/.wh.{name}");
            write_header(
                out,
                &header(&marker, b'0', 0, 0, PaxTime::default(), "", &[]),
            )?;
        }
        for (name, child) in node.children.iter().filter(|(_, c)| !c.is_whiteout()) {
            path.push(name.clone());
            self.write_node(out, child, path, synthesised)?;
            if !child.children.is_empty() {
                self.write_children(out, child, path, synthesised)?;
            }
            path.pop();
        }
        Ok(())
    }

    fn write_node<W: Write>(
        &self,
        out: &mut W,
        node: &Node,
        path: &[String],
        synthesised: PaxTime,
    ) -> Result<(), WindowsLayerError> {
        let name = tar_name(path);
        let clamp = |t: PaxTime| match self.options.source_date_epoch {
            Some(epoch) => t.min(PaxTime::from_secs(epoch)),
            None => t,
        };
        let mut pax = Vec::new();
        let Some(entry) = &node.entry else {
            attr_and_times(&mut pax, ATTR_DIRECTORY, synthesised);
            pax.push(("MSWINDOWS.rawsd".into(), self.dir_sd.clone()));
            write_header(out, &header(&name, b'5', 0o40755, 0, synthesised, "", &pax))?;
            return Ok(());
        };
        match &entry.kind {
            WindowsKind::Dir => {
                if let Some(records) = &entry.replay {
                    replayed(&mut pax, records, entry.mtime, path)?;
                    write_header(out, &header(&name, b'5', 0o40755, 0, entry.mtime, "", &pax))?;
                } else {
                    let t = clamp(entry.mtime);
                    attr_and_times(&mut pax, ATTR_DIRECTORY, t);
                    pax.push(("MSWINDOWS.rawsd".into(), self.dir_sd.clone()));
                    write_header(out, &header(&name, b'5', 0o40755, 0, t, "", &pax))?;
                }
            }
            WindowsKind::File(source) => {
                let t = clamp(entry.mtime);
                attr_and_times(&mut pax, ATTR_ARCHIVE, t);
                pax.push(("MSWINDOWS.rawsd".into(), self.file_sd.clone()));
                let mut h = header(&name, b'0', 0o100644, 0, t, "", &pax);
                match source {
                    FileSource::Bytes(b) => {
                        h.size = b.len() as u64;
                        write_header(out, &h)?;
                        write_data(out, &mut &b[..], h.size, None, &|| Ok(()))?;
                    }
                    FileSource::Path(p) => {
                        let (mut f, size) = open_source(p)?;
                        h.size = size;
                        write_header(out, &h)?;
                        write_data(out, &mut f, size, Some(p.as_path()), &|| Ok(()))?;
                    }
                    FileSource::Tree(t) => {
                        // The listed size and file, checked again after
                        // the copy, as for Linux layers.
                        let f = t.open().map_err(LayerError::from)?;
                        h.size = t.identity.size;
                        write_header(out, &h)?;
                        let path = t.full_path();
                        let verify = || t.verify(&f).map_err(LayerError::from);
                        write_data(out, &mut &f, h.size, Some(&path), &verify)?;
                    }
                }
            }
            WindowsKind::Symlink { target, is_dir } => {
                let t = clamp(entry.mtime);
                let (attr, sd) = if *is_dir {
                    (ATTR_DIRECTORY | ATTR_REPARSE_POINT, &self.dir_sd)
                } else {
                    (ATTR_ARCHIVE | ATTR_REPARSE_POINT, &self.file_sd)
                };
                attr_and_times(&mut pax, attr, t);
                pax.push(("MSWINDOWS.rawsd".into(), sd.clone()));
                let link = windows_link_target(target);
                write_header(out, &header(&name, b'2', 0o120777, 0, t, &link, &pax))?;
            }
            WindowsKind::Whiteout => unreachable!("whiteouts are written by their directory"),
        }
        Ok(())
    }
}

/// `Files/a/b` for `["a", "b"]`.
fn tar_name(path: &[String]) -> String {
    let mut name = String::from("Files");
    for c in path {
        name.push('/');
        name.push_str(c);
    }
    name
}

/// A Windows layer entry's header: owner 0, no device numbers, the PAX
/// records given; shared with the transport-folder exporter.
pub(super) fn header<'a>(
    name: &'a str,
    typeflag: u8,
    mode: u32,
    size: u64,
    mtime: PaxTime,
    linkname: &'a str,
    pax: &'a [(String, Vec<u8>)],
) -> Header<'a> {
    Header {
        name,
        typeflag,
        mode,
        uid: 0,
        gid: 0,
        size,
        mtime: mtime.secs,
        linkname,
        devmajor: 0,
        devminor: 0,
        xattrs: &[],
        pax,
    }
}

/// `fileattr` and the four times. atime and ctime are always written:
/// without them the importer converts Go's zero time, whose UnixNano is
/// undefined (≈ year 1754).
fn attr_and_times(pax: &mut Vec<(String, Vec<u8>)>, attr: u32, t: PaxTime) {
    pax.push(("MSWINDOWS.fileattr".into(), attr.to_string().into_bytes()));
    times(pax, t, t, t, t);
}

/// The PAX time records as go-winio's `BasicInfoHeader` has Go's tar
/// writer emit them: creation, access and change times always, mtime only
/// when the header's whole seconds cannot hold it.
pub(super) fn times(
    pax: &mut Vec<(String, Vec<u8>)>,
    creation: PaxTime,
    access: PaxTime,
    change: PaxTime,
    write: PaxTime,
) {
    let text = |t: PaxTime| t.to_string().into_bytes();
    pax.push(("LIBARCHIVE.creationtime".into(), text(creation)));
    pax.push(("atime".into(), text(access)));
    pax.push(("ctime".into(), text(change)));
    if write.nanos != 0 {
        pax.push(("mtime".into(), text(write)));
    }
}

/// A lower layer's records for a directory, restricted to the Win32
/// metadata, with attributes and times filled in where it had none.
fn replayed(
    pax: &mut Vec<(String, Vec<u8>)>,
    records: &[(String, Vec<u8>)],
    mtime: PaxTime,
    path: &[String],
) -> Result<(), WindowsLayerError> {
    let refuse = |reason: &str| WindowsLayerError::NotSupported {
        path: display(path),
        reason: reason.to_string(),
    };
    for (k, v) in records {
        let keep = k.starts_with("MSWINDOWS.")
            || matches!(k.as_str(), "LIBARCHIVE.creationtime" | "atime" | "ctime");
        if keep {
            pax.push((k.clone(), v.clone()));
        }
    }
    if pax.iter().any(|(k, _)| k == "MSWINDOWS.mountpoint") {
        return Err(refuse("the base has a junction here; entries cannot be written through it (write to its target)"));
    }
    match pax.iter().find(|(k, _)| k == "MSWINDOWS.fileattr") {
        Some((_, v)) => {
            let attr: u32 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| refuse("the base's MSWINDOWS.fileattr is not a number"))?;
            if attr & ATTR_DIRECTORY == 0 || attr & ATTR_REPARSE_POINT != 0 {
                return Err(refuse(
                    "the base has no plain directory here (a file or a reparse point)",
                ));
            }
        }
        None => pax.push((
            "MSWINDOWS.fileattr".into(),
            ATTR_DIRECTORY.to_string().into_bytes(),
        )),
    }
    let time = mtime.to_string().into_bytes();
    for key in ["LIBARCHIVE.creationtime", "atime", "ctime"] {
        if !pax.iter().any(|(k, _)| k == key) {
            pax.push((key.into(), time.clone()));
        }
    }
    if mtime.nanos != 0 {
        pax.push(("mtime".into(), time));
    }
    Ok(())
}

/// A symlink target as Windows stores it: `\` separators, and the
/// container root `/x` as `C:\x` (a bare `\x` would be drive-relative to
/// whatever drive the reader is on).
fn windows_link_target(target: &str) -> String {
    let t = target.replace('/', "\\");
    if t.starts_with('\\') && !t.starts_with("\\\\") {
        format!("C:{t}")
    } else {
        t
    }
}

/// The entries as a tree keyed by name, byte-ordered, with NTFS's
/// case-insensitive uniqueness enforced per directory.
struct Tree {
    root: Node,
}

#[derive(Default)]
struct Node {
    entry: Option<WindowsEntry>,
    children: BTreeMap<String, Node>,
    /// Folded name → name as spelled, to catch `A` next to `a`.
    folded: HashMap<String, String>,
}

impl Node {
    fn is_whiteout(&self) -> bool {
        matches!(&self.entry, Some(e) if e.kind == WindowsKind::Whiteout)
    }

    fn child(&mut self, name: &str, path: &[String]) -> Result<&mut Node, WindowsLayerError> {
        let key = fold_case(name);
        match self.folded.get(&key) {
            Some(spelled) if spelled != name => {
                return Err(WindowsLayerError::NotSupported {
                    path: display(path),
                    reason: format!(
                        "collides with {spelled:?} in the same directory: Windows file names are case-insensitive"
                    ),
                })
            }
            Some(_) => {}
            None => {
                self.folded.insert(key, name.to_string());
            }
        }
        Ok(self.children.entry(name.to_string()).or_default())
    }
}

impl Tree {
    fn build(entries: Vec<WindowsEntry>) -> Result<Tree, WindowsLayerError> {
        let mut root = Node::default();
        for entry in entries {
            let refuse = |reason: String| WindowsLayerError::NotSupported {
                path: display(&entry.path),
                reason,
            };
            if entry.path.is_empty() {
                return Err(refuse("C:\\ itself cannot be an entry".into()));
            }
            for c in &entry.path {
                validate_name(c).map_err(|e| refuse(e.to_string()))?;
                if c.starts_with(".wh.") {
                    return Err(refuse(
                        "names starting with \".wh.\" mark whiteouts; such a file cannot be stored"
                            .into(),
                    ));
                }
            }
            if entry.replay.is_some() && entry.kind != WindowsKind::Dir {
                return Err(refuse(
                    "only directories can replay a lower layer's records".into(),
                ));
            }
            if let WindowsKind::Symlink { target, .. } = &entry.kind {
                if target.is_empty() || target.contains('\0') {
                    return Err(refuse("symlink without a usable target".into()));
                }
            }
            let mut node = &mut root;
            for (i, c) in entry.path.iter().enumerate() {
                let prefix = &entry.path[..=i];
                node = node.child(c, prefix)?;
                if i + 1 < entry.path.len() {
                    match &node.entry {
                        Some(e) if e.kind != WindowsKind::Dir => {
                            return Err(WindowsLayerError::NotSupported {
                                path: display(prefix),
                                reason: "has entries under it but is not a directory in this layer"
                                    .into(),
                            })
                        }
                        _ => {}
                    }
                }
            }
            if entry.kind != WindowsKind::Dir && !node.children.is_empty() {
                return Err(refuse(
                    "has entries under it but is not a directory in this layer".into(),
                ));
            }
            node.entry = Some(entry);
        }
        Ok(Tree { root })
    }
}

#[cfg(test)]
mod tests;
