//! Writing a layer: entries → deterministic tar → diff_id → compressor →
//! digest → destination, in one streaming pass.

use super::entry::{EntryKind, FileSource, LayerEntry};
use super::tar::{write_header, write_padding, write_trailer, Header};
use crate::tree::{TreeFile, TreeFileError};
use crate::{Compression, Digest, DigestWriter};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Whose ownership the tar records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// Each entry's own uid/gid.
    #[default]
    Keep,
    /// This uid/gid for every entry.
    Set {
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Which modification times the tar records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MtimePolicy {
    /// Each entry's own mtime.
    #[default]
    Keep,
    /// No later than this (BuildKit's `rewrite-timestamp` with
    /// `SOURCE_DATE_EPOCH`).
    Clamp(i64),
    /// Exactly this for every entry.
    Set(i64),
}

/// How to write a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// Ownership normalisation.
    pub ownership: Ownership,
    /// Timestamp normalisation.
    pub mtime: MtimePolicy,
    /// Blob compression.
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
}

impl Default for LayerOptions {
    fn default() -> LayerOptions {
        LayerOptions {
            ownership: Ownership::Keep,
            mtime: MtimePolicy::Keep,
            compression: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A written layer blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// sha256 of the uncompressed tar (goes in the config's `rootfs`).
    pub diff_id: Digest,
    /// sha256 of the blob as written.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The OCI media type for the blob.
    pub media_type: &'static str,
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry's path is unusable.
    #[error("layer entry {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A source file could not be read.
    #[error("reading {}: {err}", path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
    /// A source file changed size while it was being written into the layer.
    #[error("{} changed size while being added to the layer (expected {expected} bytes, got {actual}); retry when nothing is writing to it", path.display())]
    SourceChanged {
        /// The file.
        path: PathBuf,
        /// Size when listed.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A file of a tree (a build context, a RUN step's files) could not be
    /// read, or is not the file that was listed: it changed during the
    /// build.
    #[error(transparent)]
    Tree(#[from] TreeFileError),
    /// Writing the output failed.
    #[error("writing the layer: {0}")]
    Io(#[from] io::Error),
}

/// Writes `entries` as a compressed layer blob into `dest`, returning its
/// descriptor and `dest`. Entries are sorted and parent directories added,
/// so the same input always gives the same bytes.
pub fn write_layer<W: Write>(
    entries: Vec<LayerEntry>,
    options: &LayerOptions,
    dest: W,
) -> Result<(LayerDescriptor, W), LayerError> {
    write_blob(options.compression, options.threads, dest, |tar| {
        write_tar(entries, options, tar).map(drop)
    })
}

/// Compresses an uncompressed layer tar read from `tar` into `dest` with
/// `compression`, returning the blob's descriptor (its `diff_id` hashed
/// from what was read) and `dest`. The bytes are exactly those
/// [`write_layer`] writes for the same tar: the encoders cut their input
/// into fixed blocks, so how the tar arrives does not matter. A build
/// stores a step's layer uncompressed and compresses it later with this.
pub fn compress_tar<R: Read, W: Write>(
    mut tar: R,
    compression: Compression,
    threads: usize,
    dest: W,
) -> io::Result<(LayerDescriptor, W)> {
    write_blob(compression, threads, dest, |out| {
        io::copy(&mut tar, out).map(drop)
    })
}

/// The one-pass pipeline every layer format shares: `tar` writes the
/// uncompressed archive into a writer that hashes it (the diff_id) on its
/// way into the compressor, whose output is hashed again (the digest) on
/// its way into `dest`.
pub(crate) fn write_blob<W: Write, E: From<io::Error>>(
    compression: Compression,
    threads: usize,
    dest: W,
    tar: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(LayerDescriptor, W), E> {
    if compression == Compression::None {
        // The blob is the tar: one hash gives both digests, which saves a
        // full sha256 pass (about 0.8 s per GiB) on large layers.
        let mut out = DigestWriter::new(dest);
        tar(&mut out)?;
        let (diff_id, size, dest) = out.finish();
        let descriptor = LayerDescriptor {
            diff_id,
            digest: diff_id,
            size,
            media_type: compression.media_type(),
        };
        return Ok((descriptor, dest));
    }
    let blob = DigestWriter::new(dest);
    let encoder = compression.encoder(blob, threads)?;
    let mut out = DigestWriter::new(encoder);
    tar(&mut out)?;
    let (diff_id, _, encoder) = out.finish();
    let (digest, size, dest) = encoder.finish()?.finish();
    let descriptor = LayerDescriptor {
        diff_id,
        digest,
        size,
        media_type: compression.media_type(),
    };
    Ok((descriptor, dest))
}

/// Writes `entries` as an uncompressed tar into `out` (compression in
/// `options` is ignored) and returns `out`.
pub fn write_tar<W: Write>(
    entries: Vec<LayerEntry>,
    options: &LayerOptions,
    mut out: W,
) -> Result<W, LayerError> {
    for (name, entry) in prepare(entries)? {
        write_entry(&mut out, &name, &entry, options)?;
    }
    write_trailer(&mut out)?;
    Ok(out)
}

/// Normalises paths, turns whiteouts into their marker names, adds missing
/// parent directories, and orders entries as a sorted directory walk
/// (each directory's opaque marker first). A later entry for the same
/// path replaces an earlier one.
fn prepare(entries: Vec<LayerEntry>) -> Result<Vec<(String, LayerEntry)>, LayerError> {
    let mut by_name: BTreeMap<SortKey, (String, LayerEntry)> = BTreeMap::new();
    for entry in entries {
        let path = clean(&entry.path)?;
        let name = match entry.kind {
            EntryKind::Whiteout => {
                let (dir, base) = path
                    .rsplit_once('/')
                    .map_or(("", path.as_str()), |(d, b)| (d, b));
                if dir.is_empty() {
                    format!(".wh.{base}")
                } else {
                    format!("{dir}/.wh.{base}")
                }
            }
            EntryKind::Opaque => format!("{path}/.wh..wh..opq"),
            _ => path,
        };
        by_name.insert(SortKey::of(&name), (name, entry));
    }
    let mut parents = Vec::new();
    for (name, _) in by_name.values() {
        let mut dir = name.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            parents.push(parent.to_string());
            dir = parent;
        }
    }
    for p in parents {
        by_name
            .entry(SortKey::of(&p))
            .or_insert_with(|| (p.clone(), LayerEntry::dir(p)));
    }
    Ok(by_name.into_values().collect())
}

/// Orders names component by component, with `.wh..wh..opq` before its
/// siblings so extraction hides lower contents before adding new ones.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SortKey(Vec<(bool, Vec<u8>)>);

impl SortKey {
    fn of(name: &str) -> SortKey {
        SortKey(
            name.split('/')
                .map(|c| (c != ".wh..wh..opq", crate::name::to_bytes(c).into_owned()))
                .collect(),
        )
    }
}

fn clean(path: &str) -> Result<String, LayerError> {
    let bad = |reason| LayerError::BadPath {
        path: path.to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("\"..\" is not allowed in layer paths")),
            c if c.contains('\0') => return Err(bad("NUL bytes are not allowed in layer paths")),
            // A reader takes such a name for a whiteout (and `.wh...` for
            // one deleting the parent directory), never for the file.
            c if c.starts_with(".wh.") => {
                return Err(bad(
                    "names starting with \".wh.\" mark OCI whiteouts; a file by that name cannot be stored in a layer",
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(bad("the layer root itself cannot be an entry"));
    }
    Ok(parts.join("/"))
}

fn write_entry<W: Write>(
    out: &mut W,
    name: &str,
    e: &LayerEntry,
    options: &LayerOptions,
) -> Result<(), LayerError> {
    let (uid, gid) = match options.ownership {
        Ownership::Keep => (e.uid, e.gid),
        Ownership::Set { uid, gid } => (uid, gid),
    };
    let mtime = match options.mtime {
        MtimePolicy::Keep => e.mtime,
        MtimePolicy::Clamp(limit) => e.mtime.min(limit),
        MtimePolicy::Set(t) => t,
    };
    let dir_name;
    let mut h = Header {
        name,
        typeflag: b'0',
        mode: e.mode & 0o7777,
        uid,
        gid,
        size: 0,
        mtime,
        linkname: "",
        devmajor: 0,
        devminor: 0,
        xattrs: &e.xattrs,
        pax: &[],
    };
    let mut data: Option<Box<dyn Read + '_>> = None;
    let mut source_path = None;
    let mut tree_file: Option<(&TreeFile, File)> = None;
    match &e.kind {
        EntryKind::File(FileSource::Bytes(b)) => {
            h.size = b.len() as u64;
            data = Some(Box::new(&b[..]));
        }
        EntryKind::File(FileSource::Path(p)) => {
            let (f, size) = open_source(p)?;
            h.size = size;
            data = Some(Box::new(f));
            source_path = Some(p.clone());
        }
        EntryKind::File(FileSource::Tree(t)) => {
            // The size listed, which the opened file was just checked to
            // have: the header cannot disagree with what the listing saw.
            h.size = t.identity.size;
            let f = t.open()?;
            source_path = Some(t.full_path());
            data = Some(Box::new(f.try_clone().map_err(|err| {
                LayerError::Source {
                    path: t.full_path(),
                    err,
                }
            })?));
            tree_file = Some((t, f));
        }
        EntryKind::Dir => {
            dir_name = format!("{name}/");
            h.name = &dir_name;
            h.typeflag = b'5';
        }
        EntryKind::Symlink(t) => {
            h.typeflag = b'2';
            h.linkname = t;
        }
        EntryKind::Hardlink(t) => {
            h.typeflag = b'1';
            h.linkname = t.trim_start_matches('/');
        }
        EntryKind::CharDevice { major, minor } => {
            h.typeflag = b'3';
            (h.devmajor, h.devminor) = (*major, *minor);
        }
        EntryKind::BlockDevice { major, minor } => {
            h.typeflag = b'4';
            (h.devmajor, h.devminor) = (*major, *minor);
        }
        EntryKind::Fifo => h.typeflag = b'6',
        EntryKind::Whiteout | EntryKind::Opaque => {}
    }
    write_header(out, &h)?;
    if let Some(mut data) = data {
        // A write while the file was read may have torn what went into
        // the tar: the build fails rather than keep a layer nobody wrote.
        let verify = || match &tree_file {
            Some((t, f)) => t.verify(f).map_err(LayerError::from),
            None => Ok(()),
        };
        write_data(out, &mut data, h.size, source_path.as_deref(), &verify)?;
    }
    Ok(())
}

/// Opens a file kiln wrote itself, with its size now, not following a
/// symlink in its place and not waiting should a FIFO be there.
pub(crate) fn open_source(path: &Path) -> Result<(File, u64), LayerError> {
    let source = |err| LayerError::Source {
        path: path.to_path_buf(),
        err,
    };
    let file = crate::sys::open_source_file(path).map_err(source)?;
    let md = file.metadata().map_err(source)?;
    if !md.is_file() {
        return Err(source(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, md.len()))
}

/// Copies exactly `size` bytes of an entry's data, then the padding, so a
/// file growing under us cannot corrupt the archive; a short read is an
/// error. `verify` checks the source is still the file that was listed
/// (on a short read, to report a swap rather than a size, and after the
/// copy); `path` names the source in errors.
pub(crate) fn write_data<W: Write + ?Sized>(
    out: &mut W,
    data: &mut dyn Read,
    size: u64,
    path: Option<&Path>,
    verify: &dyn Fn() -> Result<(), LayerError>,
) -> Result<(), LayerError> {
    let path = || path.map(Path::to_path_buf).unwrap_or_default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match data.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(LayerError::Source { path: path(), err }),
        };
        if n == 0 {
            verify()?;
            return Err(LayerError::SourceChanged {
                path: path(),
                expected: size,
                actual: size - left,
            });
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    verify()?;
    write_padding(out, size)?;
    Ok(())
}
