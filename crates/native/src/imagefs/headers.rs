//! The headers of big layers, kept beside the store so a layer is read
//! once, not by every build that looks at its files.
//!
//! Indexing a layer reads and decompresses its whole blob: 1.5 s for a
//! Debian base and a 300 MB `apt-get install` layer, which every build
//! whose step reads the stage's files (a `COPY` of one edited source file)
//! paid again. The entries a layer's reader returns depend on the blob's
//! bytes alone, so they are saved under the blob's digest
//! (`$KILN_ROOT/layer-headers/<hex>`) the first time and read from there
//! after. A file that is missing, damaged or from another version is only
//! a miss: the blob is read again.
//!
//! The format is kiln's own, length-prefixed, ended by the sha256 of what
//! precedes it, since nothing outside kiln reads it and a serde format
//! would need a new dependency for what is forty lines here.

use kiln_oci::layer::read::{Entry, Node};
use kiln_oci::Digest;
use kiln_store::Store;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// Layers whose blob is smaller are indexed from the blob each time: it
/// takes milliseconds, and their headers would only add files.
pub(crate) const MIN_BLOB: u64 = 1 << 20;

const MAGIC: &[u8; 8] = b"kilnhdr1";
const DIR: &str = "layer-headers";

fn path(store: &Store, digest: &Digest) -> PathBuf {
    store.root().join(DIR).join(digest.hex())
}

/// The saved entries of the blob `digest`, if any are intact.
pub(crate) fn load(store: &Store, digest: &Digest) -> Option<Vec<Entry>> {
    let bytes = std::fs::read(path(store, digest)).ok()?;
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC || r.take(32)? != digest.bytes() {
        return None;
    }
    let count = r.u64()?;
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        entries.push(r.entry()?);
    }
    r.0.is_empty().then_some(entries)
}

/// Saves `entries` as the headers of blob `digest`; failing to only costs
/// the next build a read of the blob.
pub(crate) fn save(store: &Store, digest: &Digest, entries: &[Entry]) {
    let mut out = Vec::with_capacity(64 * entries.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(digest.bytes());
    put_u64(&mut out, entries.len() as u64);
    for e in entries {
        put_entry(&mut out, e);
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    let dest = path(store, digest);
    let _ = std::fs::create_dir_all(store.root().join(DIR)).and_then(|()| {
        let mut tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())?;
        std::io::Write::write_all(&mut tmp, &out)?;
        tmp.persist(&dest).map(drop).map_err(|e| e.error)
    });
}

/// Saves the headers of blob `from` (if saved) as those of blob `to`,
/// another encoding of the same tar (a layer's tar and its compressed
/// blob): their readers return the same entries.
pub(crate) fn copy(store: &Store, from: &Digest, to: &Digest) {
    if let Some(entries) = load(store, from) {
        save(store, to, &entries);
    }
}

/// Removes the saved headers of blobs no longer in the store (after GC);
/// returns how many went.
pub fn prune(store: &Store) -> usize {
    let Ok(dir) = std::fs::read_dir(store.root().join(DIR)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let blob = format!("sha256:{name}").parse::<Digest>().ok();
        if blob.is_some_and(|d| store.has_blob(&d)) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(String, Vec<u8>)]) {
    put_u64(out, pairs.len() as u64);
    for (k, v) in pairs {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v);
    }
}

fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    put_bytes(out, &e.path);
    put_bytes(out, &e.name);
    match &e.node {
        Node::File { size } => {
            out.push(0);
            put_u64(out, *size);
        }
        Node::Dir => out.push(1),
        Node::Symlink(t) => {
            out.push(2);
            put_bytes(out, t);
        }
        Node::Hardlink(t) => {
            out.push(3);
            put_bytes(out, t);
        }
        Node::CharDevice { major, minor } => {
            out.push(4);
            put_u64(out, u64::from(*major) << 32 | u64::from(*minor));
        }
        Node::BlockDevice { major, minor } => {
            out.push(5);
            put_u64(out, u64::from(*major) << 32 | u64::from(*minor));
        }
        Node::Fifo => out.push(6),
        Node::Whiteout => out.push(7),
        Node::Opaque => out.push(8),
    }
    put_u64(out, u64::from(e.mode) << 32 | u64::from(e.mtime_nanos));
    put_u64(out, u64::from(e.uid) << 32 | u64::from(e.gid));
    put_u64(out, e.mtime as u64);
    put_pairs(out, &e.xattrs);
    put_pairs(out, &e.records);
    put_u64(out, e.ordinal);
}

/// Reads what `put_*` wrote; `None` at anything out of place.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n).map(<[u8]>::to_vec)
    }

    fn pairs(&mut self) -> Option<Vec<(String, Vec<u8>)>> {
        let n = self.u64()?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push((String::from_utf8(self.bytes()?).ok()?, self.bytes()?));
        }
        Some(out)
    }

    fn entry(&mut self) -> Option<Entry> {
        let path = self.bytes()?;
        let name = self.bytes()?;
        let split = |v: u64| ((v >> 32) as u32, v as u32);
        let node = match self.take(1)?[0] {
            0 => Node::File { size: self.u64()? },
            1 => Node::Dir,
            2 => Node::Symlink(self.bytes()?),
            3 => Node::Hardlink(self.bytes()?),
            4 => {
                let (major, minor) = split(self.u64()?);
                Node::CharDevice { major, minor }
            }
            5 => {
                let (major, minor) = split(self.u64()?);
                Node::BlockDevice { major, minor }
            }
            6 => Node::Fifo,
            7 => Node::Whiteout,
            8 => Node::Opaque,
            _ => return None,
        };
        let (mode, mtime_nanos) = split(self.u64()?);
        let (uid, gid) = split(self.u64()?);
        let mtime = self.u64()? as i64;
        Some(Entry {
            path,
            name,
            node,
            mode,
            uid,
            gid,
            mtime,
            mtime_nanos,
            xattrs: self.pairs()?,
            records: self.pairs()?,
            ordinal: self.u64()?,
        })
    }
}
