//! Reading a layer blob: one reader and one set of rules for every part of
//! kiln that looks inside a layer (RUN's snapshots, the image view behind
//! `COPY --from`, exports, `ADD` of an archive), so they can never disagree
//! about what a layer holds.
//!
//! The rules, each refused with an error naming the entry:
//! - names are relative to the layer root: a leading `/` is dropped (as
//!   containerd and docker read it), `.` and empty components are ignored,
//!   and `..` is refused;
//! - a whiteout must name something: `.wh.`, `.wh..` and `.wh...` are refused
//!   (the last would delete the parent of the directory it sits in);
//!   `.wh..wh..opq` marks an opaque directory, and other `.wh..wh.*` names
//!   are aufs bookkeeping, skipped; nothing may be under a `.wh.` name;
//! - a hard link must point at a file this layer wrote earlier, the only
//!   target every extractor can find (containerd's overlay applier looks in
//!   the layer's own directory);
//! - the root may only be a directory; names, link targets and xattr names
//!   hold no NUL; symlinks have a target; owners fit 32 bits;
//! - unknown entry types and GNU sparse files are refused, not skipped.
//!
//! The blob is decompressed by its magic bytes, and [`LayerReader::finish`]
//! reads it to the end, so a gzip trailer (CRC and length) is checked, and
//! returns the digest of the uncompressed stream: the layer's diff_id, for
//! callers to compare with what the image config claims.

mod tar;

pub use self::tar::{Header, TarError, TarReader, MAX_EXTENSION};

use crate::compression::decompress;
use crate::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io::{self, Read};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file with this many bytes of data.
    File {
        /// Data size.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symlink to this target (never resolved by the reader).
    Symlink(Vec<u8>),
    /// A hard link to the file at this (cleaned) path, written earlier in
    /// the same layer.
    Hardlink(Vec<u8>),
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
    /// An OCI whiteout: the entry's path is deleted from lower layers.
    Whiteout,
    /// An opaque marker: lower layers' contents of the directory at the
    /// entry's path are hidden.
    Opaque,
}

/// One entry of a layer, checked against the rules above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The cleaned path, relative, without a leading or trailing `/`
    /// (`usr/bin/env`); empty for the layer root. For a whiteout, the path
    /// it deletes; for an opaque marker, its directory.
    pub path: Vec<u8>,
    /// The name as the tar has it, for messages.
    pub name: Vec<u8>,
    /// What it is.
    pub node: Node,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time in seconds.
    pub mtime: i64,
    /// Nanoseconds after `mtime` (from a fractional PAX `mtime`).
    pub mtime_nanos: u32,
    /// Extended attributes (`SCHILY.xattr.*` PAX records).
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The other PAX records no field above holds, in order: a Windows
    /// layer's `MSWINDOWS.*`, `LIBARCHIVE.creationtime`, `atime`, `ctime`.
    pub records: Vec<(String, Vec<u8>)>,
    /// The entry's position in the tar, counting only entries this reader
    /// returns or skips (not extension headers).
    pub ordinal: u64,
}

impl Entry {
    /// The path as text, for messages.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A layer that breaks the rules or cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
pub struct ReadError {
    /// The entry's name in the tar, when the error is about one entry.
    pub entry: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl ReadError {
    fn stream(reason: impl Into<String>) -> ReadError {
        ReadError {
            entry: None,
            reason: reason.into(),
        }
    }
}

fn tar_error(e: TarError) -> ReadError {
    match e {
        TarError::Io(e) => ReadError::stream(format!("reading the layer: {e}")),
        TarError::Format(m) => ReadError::stream(format!("corrupt tar: {m}")),
    }
}

/// Hashes every byte read through it: the uncompressed stream's digest is
/// the layer's diff_id.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Reads a layer's entries in order; the current file's data is read
/// through [`Read`].
pub struct LayerReader<'a> {
    tar: TarReader<Hashing<Box<dyn Read + Send + 'a>>>,
    ordinal: u64,
    /// Non-directory paths this layer wrote: the only valid hard link
    /// targets.
    files: HashSet<Vec<u8>>,
}

impl<'a> LayerReader<'a> {
    /// Reads the layer blob `blob`: gzip, zstd or a plain tar, by its magic
    /// bytes.
    pub fn new<R: Read + Send + 'a>(blob: R) -> Result<LayerReader<'a>, ReadError> {
        let stream =
            decompress(blob).map_err(|e| ReadError::stream(format!("reading the layer: {e}")))?;
        Ok(LayerReader {
            tar: TarReader::new(Hashing {
                inner: stream,
                hasher: Sha256::new(),
                len: 0,
            }),
            ordinal: 0,
            files: HashSet::new(),
        })
    }

    /// The next entry, or `None` at the end of the archive. Data the caller
    /// did not read of the previous entry is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        loop {
            let Some(h) = self.tar.next_header().map_err(tar_error)? else {
                return Ok(None);
            };
            let ordinal = self.ordinal;
            self.ordinal += 1;
            let name = h.name.clone();
            let fail = |reason: String| ReadError {
                entry: Some(String::from_utf8_lossy(&name).into_owned()),
                reason,
            };
            match self.check(h, ordinal).map_err(fail)? {
                Some(entry) => return Ok(Some(entry)),
                None => continue,
            }
        }
    }

    /// Reads what is left of the blob (checking a compressed stream's
    /// trailer) and returns the digest and size of the uncompressed stream.
    pub fn finish(mut self) -> Result<(Digest, u64), ReadError> {
        while self.next_entry()?.is_some() {}
        let mut rest = self.tar.into_inner();
        io::copy(&mut rest, &mut io::sink())
            .map_err(|e| ReadError::stream(format!("reading the end of the layer: {e}")))?;
        Ok((Digest::from_bytes(rest.hasher.finalize().into()), rest.len))
    }

    /// Applies the rules to one header; `None` for an entry that is
    /// skipped (aufs bookkeeping).
    fn check(&mut self, mut h: Header, ordinal: u64) -> Result<Option<Entry>, String> {
        if h.name.contains(&0) {
            return Err("the name contains a NUL byte".into());
        }
        let comps = clean(&h.name)?;
        let mut xattrs = Vec::new();
        let mut records = Vec::new();
        for (k, v) in std::mem::take(&mut h.pax) {
            if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                if x.is_empty() || x.contains('\0') {
                    return Err(format!("invalid xattr name {x:?}"));
                }
                xattrs.push((x.to_string(), v));
            } else {
                records.push((k, v));
            }
        }
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| format!("{what} {v} is not a valid id"))
        };
        let mut entry = Entry {
            path: comps.join(&b'/'),
            name: h.name.clone(),
            node: Node::Dir,
            mode: h.mode,
            uid: id(h.uid, "uid")?,
            gid: id(h.gid, "gid")?,
            mtime: h.mtime,
            mtime_nanos: h.mtime_nanos,
            xattrs,
            records,
            ordinal,
        };

        if let Some((last, parents)) = comps.split_last() {
            if let Some(p) = parents.iter().find(|p| p.starts_with(b".wh.")) {
                return Err(format!(
                    "{:?} is a whiteout name, so nothing can be under it",
                    String::from_utf8_lossy(p)
                ));
            }
            if let Some(hidden) = last.strip_prefix(b".wh.") {
                if hidden == b".wh..opq" {
                    entry.path = parents.join(&b'/');
                    entry.node = Node::Opaque;
                    return Ok(Some(entry));
                }
                if hidden.starts_with(b".wh.") {
                    return Ok(None);
                }
                if matches!(hidden, b"" | b"." | b"..") {
                    return Err(format!(
                        "invalid whiteout name {:?}: it names no file",
                        String::from_utf8_lossy(last)
                    ));
                }
                let mut path = parents.to_vec();
                path.push(hidden);
                entry.path = path.join(&b'/');
                entry.node = Node::Whiteout;
                return Ok(Some(entry));
            }
        }

        let link = |h: &Header, what: &str| -> Result<Vec<u8>, String> {
            if h.linkname.is_empty() {
                return Err(format!("{what} without a target"));
            }
            if h.linkname.contains(&0) {
                return Err(format!("{what} target contains a NUL byte"));
            }
            Ok(h.linkname.clone())
        };
        entry.node = match h.typeflag {
            // Pre-POSIX tars mark directories only by a trailing slash.
            b'0' | b'\0' | b'7' if h.name.ends_with(b"/") => Node::Dir,
            b'0' | b'\0' | b'7' => Node::File { size: h.size },
            b'5' => Node::Dir,
            b'2' => Node::Symlink(link(&h, "symlink")?),
            b'1' => {
                let target = link(&h, "hard link")?;
                let cleaned = clean(&target)
                    .map_err(|e| {
                        format!(
                            "hard link target {:?}: {e}",
                            String::from_utf8_lossy(&target)
                        )
                    })?
                    .join(&b'/');
                if !self.files.contains(&cleaned) {
                    return Err(format!(
                        "hard link target {:?} is not a file written earlier in this layer",
                        String::from_utf8_lossy(&target)
                    ));
                }
                Node::Hardlink(cleaned)
            }
            b'3' => Node::CharDevice {
                major: h.devmajor,
                minor: h.devminor,
            },
            b'4' => Node::BlockDevice {
                major: h.devmajor,
                minor: h.devminor,
            },
            b'6' => Node::Fifo,
            b'S' => return Err("GNU sparse files are not supported in layers".into()),
            other => {
                return Err(format!(
                    "unsupported tar entry type {}",
                    typeflag_name(other)
                ))
            }
        };
        if entry.path.is_empty() {
            if entry.node != Node::Dir {
                return Err("the layer root must be a directory".into());
            }
        } else if entry.node == Node::Dir {
            self.files.remove(&entry.path);
        } else {
            self.files.insert(entry.path.clone());
        }
        Ok(Some(entry))
    }
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tar.read(buf)
    }
}

/// A type flag for messages: `'Z' (0x5a)`.
fn typeflag_name(t: u8) -> String {
    if t.is_ascii_graphic() {
        format!("'{}' (0x{t:02x})", t as char)
    } else {
        format!("0x{t:02x}")
    }
}

/// Splits a name into components: a leading `/`, empty and `.` components
/// dropped, `..` refused.
pub fn clean(name: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains \"..\", which would escape the layer root".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}
