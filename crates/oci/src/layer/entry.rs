//! What goes into a layer: an explicit list of entries, from a directory
//! walk or assembled by COPY and overlay-diff code.

use std::path::PathBuf;

use crate::tree::TreeFile;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{entries_from_dir, read_xattrs};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::entries_from_dir;

/// Where a regular file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// Read from this file on disk while the tar is written. Only for files
    /// kiln wrote itself where nobody else writes: the last component is
    /// not followed if it is a symlink, but the others are.
    Path(PathBuf),
    /// Read from a tree someone else may change (a build context, a RUN
    /// step's files) while the tar is written, refusing a file that is not
    /// the one listed (see [`crate::tree`]).
    Tree(TreeFile),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// The kind of a layer entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File(FileSource),
    /// A directory.
    Dir,
    /// A symbolic link to this target (written as is, never resolved).
    Symlink(String),
    /// A hard link to this earlier entry's path in the layer.
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
    /// Deletes the path from lower layers: written as `dir/.wh.name`.
    Whiteout,
    /// Hides everything lower layers had inside this directory: written as
    /// `path/.wh..wh..opq` (the directory itself is a separate entry).
    Opaque,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// The path inside the layer, relative (`usr/bin/env`); a leading `/`
    /// or `./` is dropped when writing.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Extended attributes, written as PAX `SCHILY.xattr.<name>` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl LayerEntry {
    /// An entry of `kind` owned by root, with mode 0644 (0755 for
    /// directories), mtime 0 and no xattrs.
    pub fn new(path: impl Into<String>, kind: EntryKind) -> LayerEntry {
        let mode = match kind {
            EntryKind::Dir => 0o755,
            EntryKind::Symlink(_) => 0o777,
            EntryKind::Whiteout | EntryKind::Opaque => 0,
            _ => 0o644,
        };
        LayerEntry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    /// A regular file with inline contents.
    pub fn file(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> LayerEntry {
        LayerEntry::new(path, EntryKind::File(FileSource::Bytes(contents.into())))
    }

    /// A directory.
    pub fn dir(path: impl Into<String>) -> LayerEntry {
        LayerEntry::new(path, EntryKind::Dir)
    }

    /// A symlink.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> LayerEntry {
        LayerEntry::new(path, EntryKind::Symlink(target.into()))
    }

    /// A whiteout deleting `path` from lower layers.
    pub fn whiteout(path: impl Into<String>) -> LayerEntry {
        LayerEntry::new(path, EntryKind::Whiteout)
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: u32) -> LayerEntry {
        self.mode = mode;
        self
    }

    /// Sets the owner.
    pub fn with_owner(mut self, uid: u32, gid: u32) -> LayerEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the mtime.
    pub fn with_mtime(mut self, mtime: i64) -> LayerEntry {
        self.mtime = mtime;
        self
    }

    /// Adds an extended attribute.
    pub fn with_xattr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> LayerEntry {
        self.xattrs.push((name.into(), value.into()));
        self
    }
}
