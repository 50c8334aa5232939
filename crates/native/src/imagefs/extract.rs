//! Writing part of the image to disk.
//!
//! Rather than a second, subtly different extractor, the entries to write
//! are turned into small tar streams that [`kiln_oci::extract_layer`]
//! applies; it never follows a symlink or writes outside `dest`. There is
//! one stream per layer that holds file contents under the path (its
//! entries read from the blob and renamed on the fly, in a producer
//! thread), then one stream with symlinks, device nodes, and last the
//! directories, so their modes and mtimes are set after their contents.

use super::tree::Layer;
use super::{DataRef, Error, FsEntry, FsKind, ImageFs};
use kiln_oci::layer::read::{LayerReader, ReadError};
use kiln_oci::{extract_layer, Digest, ExtractOptions};
use kiln_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use tar::EntryType as T;

/// A path relative to `dest` and the entry to write there.
type Item<'a> = (String, &'a FsEntry);

/// Bytes handed from the producer to the extractor at a time.
const CHUNK: usize = 256 * 1024;

pub(super) fn extract(
    fs: &ImageFs,
    store: &Store,
    path: &str,
    dest: &Path,
    options: &ExtractOptions,
) -> Result<(), Error> {
    let resolved = fs.resolve(path, true)?;
    let Some(top) = fs.tree.get(&resolved) else {
        return Err(Error::NotFound { path: resolved });
    };
    let fail = |reason: String| Error::Extract {
        path: resolved.clone(),
        dest: dest.to_path_buf(),
        reason,
    };

    let items: Vec<Item<'_>> = if top.is_dir() {
        let skip = if resolved == "/" {
            1
        } else {
            resolved.len() + 1
        };
        fs.tree
            .descendants(&resolved)
            .map(|(k, e)| (k[skip..].to_string(), e))
            .collect()
    } else {
        let name = resolved.rsplit('/').next().unwrap_or_default();
        vec![(name.to_string(), top)]
    };

    // Files sharing contents (hard links of each other) are grouped; the
    // first path of a group gets the bytes, the others link to it.
    let mut files: BTreeMap<DataRef, Vec<Item<'_>>> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for (rel, e) in items {
        match (&e.kind, e.data) {
            (FsKind::Dir, _) => dirs.push((rel, e)),
            (FsKind::File | FsKind::Hardlink(_), Some(data)) => {
                files.entry(data).or_default().push((rel, e))
            }
            _ => nodes.push((rel, e)),
        }
    }
    let mut by_layer: BTreeMap<usize, HashMap<u64, Vec<Item<'_>>>> = BTreeMap::new();
    for (data, group) in files {
        by_layer
            .entry(data.layer)
            .or_default()
            .insert(data.ordinal, group);
    }

    for (index, wanted) in &by_layer {
        let layer = &fs.tree.layers[*index];
        let blob = store.open_blob(&layer.digest).map_err(|err| Error::Store {
            layer: layer.digest,
            err,
        })?;
        run_pass(dest, options, &fail, |out| {
            copy_files(layer, blob, wanted, out)
        })?;
    }
    if !nodes.is_empty() || !dirs.is_empty() {
        run_pass(dest, options, &fail, |out| {
            for (rel, e) in nodes.iter().chain(&dirs) {
                append_node(out, rel, e).map_err(Produce::from_io)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Why the producer side of a pass stopped.
enum Produce {
    /// The extractor stopped reading (it finished or failed).
    Hangup,
    /// The producer itself failed.
    Fail(Error),
}

impl Produce {
    fn from_io(e: io::Error) -> Produce {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Produce::Hangup
        } else {
            Produce::Fail(Error::Extract {
                path: String::new(),
                dest: Default::default(),
                reason: e.to_string(),
            })
        }
    }
}

/// Runs `produce` (writing a tar) on a thread while the extractor applies
/// what it writes to `dest`.
fn run_pass<F>(
    dest: &Path,
    options: &ExtractOptions,
    fail: &dyn Fn(String) -> Error,
    produce: F,
) -> Result<(), Error>
where
    F: FnOnce(&mut tar::Builder<ChunkWriter>) -> Result<(), Produce> + Send,
{
    let (tx, rx) = mpsc::sync_channel(4);
    let (produced, extracted) = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut out = tar::Builder::new(ChunkWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            });
            produce(&mut out)?;
            out.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(Produce::from_io)
        });
        let reader = ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        // The digest only labels the extractor's own errors, which are
        // reworded below.
        let extracted = extract_layer(reader, dest, &Digest::of(b""), options);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(Produce::Fail(fail("the tar producer panicked".into()))));
        (produced, extracted)
    });
    match (produced, extracted) {
        (Err(Produce::Fail(Error::Extract { reason, .. })), _) => Err(fail(reason)),
        (Err(Produce::Fail(e)), _) => Err(e),
        (_, Err(e)) => Err(fail(match e.entry {
            Some(entry) => format!("entry {entry:?}: {}", e.reason),
            None => e.reason,
        })),
        // A hang-up after a successful extraction is the extractor not
        // reading the archive's trailing padding.
        (Ok(()) | Err(Produce::Hangup), Ok(_)) => Ok(()),
    }
}

/// Streams `layer` and writes the entries in `wanted` (by position) under
/// their new names.
fn copy_files<W: Write>(
    layer: &Layer,
    blob: File,
    wanted: &HashMap<u64, Vec<Item<'_>>>,
    out: &mut tar::Builder<W>,
) -> Result<(), Produce> {
    let fail = |reason: String| {
        Produce::Fail(Error::Layer {
            layer: layer.digest,
            entry: None,
            reason,
        })
    };
    let read_fail = |e: ReadError| {
        Produce::Fail(Error::Layer {
            layer: layer.digest,
            entry: e.entry,
            reason: e.reason,
        })
    };
    let mut reader = LayerReader::new(blob).map_err(read_fail)?;
    let mut left = wanted.len();
    while left > 0 {
        let Some(entry) = reader.next_entry().map_err(read_fail)? else {
            break;
        };
        let i = entry.ordinal;
        let Some(group) = wanted.get(&i) else {
            continue;
        };
        left -= 1;
        let Some(((first, e), links)) = group.split_first() else {
            continue;
        };
        let mut counted = Counted {
            inner: &mut reader,
            n: 0,
        };
        append(out, first, e, T::Regular, None, e.size, &mut counted).map_err(Produce::from_io)?;
        if counted.n != e.size {
            return Err(fail(format!(
                "entry {i} has {} bytes, not the {} its header gave when indexed",
                counted.n, e.size
            )));
        }
        for (other, e) in links {
            append(out, other, e, T::Link, Some(first), 0, io::empty())
                .map_err(Produce::from_io)?;
        }
    }
    if left > 0 {
        return Err(fail(format!(
            "{left} entries indexed earlier are missing; the blob changed since"
        )));
    }
    Ok(())
}

/// Writes an entry whose contents are not needed: a directory, symlink,
/// device node or named pipe.
fn append_node<W: Write>(out: &mut tar::Builder<W>, name: &str, e: &FsEntry) -> io::Result<()> {
    let (ty, link) = match &e.kind {
        FsKind::Dir => (T::Directory, None),
        FsKind::Symlink(target) => (T::Symlink, Some(target.as_str())),
        FsKind::CharDevice { .. } => (T::Char, None),
        FsKind::BlockDevice { .. } => (T::Block, None),
        FsKind::Fifo => (T::Fifo, None),
        // Files always have contents in a layer; an empty one is the
        // honest fallback if one ever does not.
        FsKind::File | FsKind::Hardlink(_) => (T::Regular, None),
    };
    append(out, name, e, ty, link, 0, io::empty())
}

/// Appends one entry: a PAX header with the full name, link target,
/// xattrs and negative mtimes, then the GNU header and the data.
fn append<W: Write, R: Read>(
    out: &mut tar::Builder<W>,
    name: &str,
    e: &FsEntry,
    ty: T,
    link: Option<&str>,
    size: u64,
    data: R,
) -> io::Result<()> {
    // Names are written as the bytes they stand for (`kiln_oci::name`).
    let name_bytes = kiln_oci::name::to_bytes(name);
    let link_bytes = link.map(kiln_oci::name::to_bytes);
    let mut records: Vec<(String, &[u8])> = vec![("path".into(), &name_bytes)];
    if let Some(link) = &link_bytes {
        records.push(("linkpath".into(), link));
    }
    let mtime = e.mtime.to_string();
    if e.mtime < 0 {
        records.push(("mtime".into(), mtime.as_bytes()));
    }
    for (k, v) in &e.xattrs {
        records.push((format!("SCHILY.xattr.{k}"), v));
    }
    let body = kiln_oci::pax_records(records.iter().map(|(k, v)| (k.as_str(), *v)));
    let mut pax = tar::Header::new_ustar();
    pax.set_path("PaxHeader")?;
    pax.set_entry_type(T::XHeader);
    pax.set_mode(0o644);
    pax.set_size(body.len() as u64);
    pax.set_cksum();
    out.append(&pax, &body[..])?;

    let mut h = tar::Header::new_gnu();
    if let Some(gnu) = h.as_gnu_mut() {
        // The PAX path is what counts; this is for people reading the tar.
        let n = name_bytes.len().min(gnu.name.len() - 1);
        gnu.name[..n].copy_from_slice(&name_bytes[..n]);
    }
    h.set_entry_type(ty);
    h.set_mode(e.mode);
    h.set_uid(e.uid.into());
    h.set_gid(e.gid.into());
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(size);
    if let FsKind::CharDevice { major, minor } | FsKind::BlockDevice { major, minor } = e.kind {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    h.set_cksum();
    out.append(&h, data)
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// The producer's end of the pipe between the threads.
struct ChunkWriter {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the extractor stopped reading"))
    }
}

/// The extractor's end of the pipe; the end of the stream is the
/// producer dropping its sender.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
