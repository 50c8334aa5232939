//! Windows container layers, written on any host: the tar format hcsshim
//! imports (`Files/` for `C:\`, `Hives/` for registry deltas, Win32
//! metadata in `MSWINDOWS.*` and `LIBARCHIVE.*` PAX records), the pieces
//! it is made of, and a checker that reads a layer the way the importer
//! does.
//!
//! - [`sd`]: security descriptors, SDDL ↔ self-relative binary.
//! - [`PaxTime`]: PAX times in go-winio's format.
//! - [`path`]: Dockerfile paths on `C:` and NTFS name rules.
//! - [`WindowsLayerWriter`]: entries → a layer blob, one pass.
//! - [`check_layer`]: the import simulator.
//! - [`transport`]: HCS's transport folder ↔ layer, and a base layer read
//!   entry by entry, for the HCS backend.

mod base64;
mod check;
pub mod path;
pub mod sd;
pub mod transport;
mod writer;

pub use check::{check_layer, CheckError};
// PAX times are a tar matter, kept with the tar code; Windows layers are
// their main user, so they are named here too.
pub use crate::layer::{PaxTime, PaxTimeError};
pub use transport::{
    folder_to_layer, folder_to_tar, layer_to_folder, BaseEntry, BaseFile, BaseLayerReader,
    FileBasicInfo, FolderOptions, ImportedFolder, TimeSource, TransportError,
};
pub use writer::{
    entries_from_layer, WindowsEntry, WindowsKind, WindowsLayerError, WindowsLayerOptions,
    WindowsLayerWriter,
};
