//! The wclayer transport folder, the format Windows' HCS `ExportLayer`
//! writes and `ImportLayer` reads, converted to and from an OCI Windows
//! layer on any host: the portable half of the HCS backend. On Windows
//! the backend has HCS export a container's layer into a folder and hands
//! it to [`folder_to_layer`]; to reuse a layer it has [`layer_to_folder`]
//! write a folder for `ImportLayer` and list what to apply to the
//! imported layer afterwards ([`ImportedFolder`]).
//!
//! The format, as hcsshim's `legacyLayerReader`/`legacyLayerWriter`
//! (`internal/wclayer/legacy.go`) read and write it:
//! - `Files/…`: the container's files. Each file holds its 4-byte
//!   little-endian Win32 attributes, then its [`stream`] (security
//!   descriptor, EAs, reparse data, data, alternate data streams). A
//!   directory is an (empty) directory plus a sibling file
//!   `<dir>.$wcidirs$` holding its attributes and stream.
//! - `Hives/…`: registry hive deltas as plain files.
//! - `tombstones.txt`: deleted paths, a UTF-8 BOM and `Version 1.0`, then
//!   one `\path` (relative to `Files`) per line. `ExportLayer` writes it;
//!   hcsshim's writer has not since 2018, nor does [`layer_to_folder`].
//!
//! An image's base layer takes no folder: hcsshim's base-layer writer
//! writes its files straight into the layer directory, and
//! [`BaseLayerReader`] reads such a layer entry by entry for a Windows host
//! to do the same (`kiln_hcs::host::import_base_layer`).
//!
//! See `docs/windows-transport.md` for what was verified where.

mod base;
mod export;
mod header;
mod import;
mod meta;
pub mod stream;

pub use base::{BaseEntry, BaseFile, BaseLayerReader};
pub use export::{folder_to_layer, folder_to_tar, FolderOptions, TimeSource};
pub use header::FileBasicInfo;
pub use import::{layer_to_folder, ImportedFolder};

use crate::LayerError;
use std::io;

/// The folder entry that carries the metadata of directory `<dir>`.
const DIR_SUFFIX: &str = ".$wcidirs$";
/// The first line of `tombstones.txt`.
const TOMBSTONES_HEADER: &str = "\u{feff}Version 1.0";

/// Why a folder or a layer could not be converted: the entry (a folder
/// path or a tar name) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", entry.as_ref().map(|e| format!("{e}: ")).unwrap_or_default())]
pub struct TransportError {
    /// The entry, when one is to blame.
    pub entry: Option<String>,
    /// What is wrong, or what failed.
    pub reason: String,
}

impl TransportError {
    fn at(entry: impl Into<String>, reason: impl Into<String>) -> TransportError {
        TransportError {
            entry: Some(entry.into()),
            reason: reason.into(),
        }
    }
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> TransportError {
        TransportError {
            entry: None,
            reason: format!("writing the layer: {e}"),
        }
    }
}

impl From<LayerError> for TransportError {
    fn from(e: LayerError) -> TransportError {
        TransportError {
            entry: None,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
