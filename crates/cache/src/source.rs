//! Digests of the files a COPY or ADD reads.

use crate::key::put_bytes;
use kiln_oci::Digest;
use std::path::{Component, Path, PathBuf};

pub use crate::kind::EntryKind;

/// One file, directory or link in a source, as far as its digest goes.
/// [`crate::StatSession::source_entry`] reads one from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The path relative to the source root (`""` for the root itself);
    /// `.` components, a leading `/` and repeated or trailing slashes are
    /// ignored.
    pub path: PathBuf,
    /// The file type and its type-specific data.
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`); type bits
    /// are ignored, since `kind` says the type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Extended attributes as (name, value), in any order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Computes the digest of a set of source entries, BuildKit style: entries
/// are taken in path order whatever order they are added in, and the mtime
/// is never part of it (a [`SourceEntry`] has none).
///
/// Entries with the same path are all hashed, in the order they were added.
///
/// ```
/// use kiln_cache::{EntryKind, SourceEntry, SourceHasher};
/// use kiln_oci::Digest;
///
/// let file = |path: &str, mode| SourceEntry {
///     path: path.into(),
///     kind: EntryKind::File { size: 2, content: Digest::of(b"hi") },
///     mode, uid: 0, gid: 0, xattrs: Vec::new(),
/// };
/// let digest = |entries: &[SourceEntry]| {
///     let mut h = SourceHasher::new();
///     entries.iter().for_each(|e| h.add(e));
///     h.finish()
/// };
/// assert_eq!(digest(&[file("a", 0o644), file("b", 0o644)]), digest(&[file("b", 0o644), file("./a", 0o644)]));
/// assert_ne!(digest(&[file("a", 0o644)]), digest(&[file("a", 0o755)]));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SourceHasher {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl SourceHasher {
    /// An empty set.
    pub fn new() -> SourceHasher {
        SourceHasher::default()
    }

    /// Adds one entry.
    pub fn add(&mut self, entry: &SourceEntry) {
        self.entries
            .push((normalize(&entry.path), encode_entry(entry)));
    }

    /// The digest of every entry added.
    pub fn finish(mut self) -> Digest {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = b"kiln-source/v1\0".to_vec();
        out.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        for (path, rest) in &self.entries {
            put_bytes(&mut out, path);
            put_bytes(&mut out, rest);
        }
        Digest::of(&out)
    }
}

/// The path as `/`-joined components, so spellings of one path agree.
pub(crate) fn normalize(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for c in path.components() {
        let part = match c {
            Component::Normal(p) => crate::sys::os_bytes(p),
            Component::ParentDir => b"..",
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    out
}

fn encode_entry(e: &SourceEntry) -> Vec<u8> {
    let mut out = Vec::new();
    let tag = match &e.kind {
        EntryKind::File { .. } => b'f',
        EntryKind::Dir => b'd',
        EntryKind::Symlink { .. } => b'l',
        EntryKind::CharDevice { .. } => b'c',
        EntryKind::BlockDevice { .. } => b'b',
        EntryKind::Fifo => b'p',
        EntryKind::Socket => b's',
    };
    out.push(tag);
    out.extend_from_slice(&(e.mode & 0o7777).to_be_bytes());
    out.extend_from_slice(&e.uid.to_be_bytes());
    out.extend_from_slice(&e.gid.to_be_bytes());
    match &e.kind {
        EntryKind::File { size, content } => {
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(content.bytes());
        }
        EntryKind::Symlink { target } => {
            put_bytes(&mut out, crate::sys::os_bytes(target.as_os_str()))
        }
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            out.extend_from_slice(&major.to_be_bytes());
            out.extend_from_slice(&minor.to_be_bytes());
        }
        EntryKind::Dir | EntryKind::Fifo | EntryKind::Socket => {}
    }
    let mut xattrs: Vec<_> = e.xattrs.iter().collect();
    xattrs.sort();
    out.extend_from_slice(&(xattrs.len() as u64).to_be_bytes());
    for (name, value) in xattrs {
        put_bytes(&mut out, name);
        put_bytes(&mut out, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_a_path_normalize_alike() {
        for p in ["a/b", "./a/b", "/a/b", "a//b/", "a/./b"] {
            assert_eq!(normalize(Path::new(p)), b"a/b", "{p}");
        }
        assert_eq!(normalize(Path::new(".")), b"");
        assert_eq!(normalize(Path::new("../x")), b"../x");
    }
}
