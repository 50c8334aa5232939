//! Extracting a layer onto a directory without ever writing outside it.
//!
//! Entries are read by [`crate::layer::read`], whose rules refuse names
//! with `..`, whiteouts that name nothing (`.wh..`), hard links to anything
//! but an earlier file of the layer, and more. The extractor adds its own:
//! any entry whose parent path passes through a symlink (even one pointing
//! inside the tree, as docker refuses) or a non-directory is refused.
//! Symlinks themselves may point anywhere: they are only ever created,
//! never followed. OCI whiteouts are applied to what lower layers left, or,
//! for a directory that will be an overlayfs layer, stored in overlayfs'
//! own format ([`Whiteouts::Overlay`]).

#[cfg(unix)]
mod fsops;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

pub use sys::set_mtime_at;

use crate::layer::read::{LayerReader, ReadError};
use crate::Digest;
use std::io::Read;
use std::path::Path;

/// How to extract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Set owners from the tar (needs root; default: when running as root).
    pub restore_owners: bool,
    /// What to do with OCI whiteout entries.
    pub whiteouts: Whiteouts,
    /// Replace a symlink or file that stands where a parent directory goes
    /// (removing it, never following it) instead of refusing the entry:
    /// writing into a directory a previous output filled, as BuildKit's
    /// local exporter does.
    pub replace_in_the_way: bool,
}

impl Default for ExtractOptions {
    fn default() -> ExtractOptions {
        ExtractOptions {
            restore_owners: sys::can_restore_owners(),
            whiteouts: Whiteouts::default(),
            replace_in_the_way: false,
        }
    }
}

/// What OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) become.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// Delete what lower layers left in the target directory.
    #[default]
    Apply,
    /// Keep them as overlayfs does, for a directory that will be one
    /// overlay layer: `.wh.NAME` becomes a 0/0 character device `NAME`,
    /// `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` (with `userxattr`,
    /// `user.overlay.opaque=y`) on its directory. As the OCI spec says, a
    /// whiteout hides only lower layers: a path this layer also has stays
    /// (a directory becomes opaque instead). Overlay xattrs carried in the
    /// tar are dropped, as they would steer the mount (redirects, metacopy)
    /// rather than describe a file.
    Overlay {
        /// Use the `user.overlay.*` xattrs of an overlay mounted with
        /// `userxattr` (inside a user namespace).
        userxattr: bool,
    },
}

/// A layer entry that was refused or could not be written.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer}: {}{reason}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
pub struct ExtractError {
    /// The layer's digest.
    pub layer: Digest,
    /// The entry's name in the tar, when the error is about one entry.
    pub entry: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Extracts the layer blob `blob` (gzip, zstd or plain tar, by magic bytes)
/// onto `root`, which must exist, and returns the layer's diff_id (the
/// digest of the uncompressed tar, read to its end) for the caller to
/// compare with what the image claims before trusting the result. `layer`
/// names the layer in errors. The layer's entries follow the rules of
/// [`crate::layer::read`].
///
/// On Windows a (Linux) layer's files, directories, links and whiteouts
/// are extracted, but not what a Windows file cannot hold: modes, owners
/// and xattrs are not applied (its directory's ACL governs access), device
/// nodes and FIFOs are refused, as are names Windows cannot store
/// faithfully, [`Whiteouts::Overlay`] and `restore_owners`. A symlink is
/// created as a file symlink with the target as the layer spells it (which
/// needs Developer Mode or the symlink privilege).
pub fn extract_layer<R: Read + Send>(
    blob: R,
    root: &Path,
    layer: &Digest,
    options: &ExtractOptions,
) -> Result<Digest, ExtractError> {
    let fail = |entry: Option<String>, reason: String| ExtractError {
        layer: *layer,
        entry,
        reason,
    };
    let from_read = |e: ReadError| fail(e.entry, e.reason);
    let mut ex = sys::Extractor::open(root, *options).map_err(|reason| fail(None, reason))?;
    let mut reader = LayerReader::new(blob).map_err(from_read)?;
    while let Some(entry) = reader.next_entry().map_err(from_read)? {
        ex.entry(&entry, &mut reader)
            .map_err(|reason| fail(Some(entry.display_name()), reason))?;
    }
    let (diff_id, _) = reader.finish().map_err(from_read)?;
    ex.finish().map_err(|(entry, reason)| fail(entry, reason))?;
    Ok(diff_id)
}
