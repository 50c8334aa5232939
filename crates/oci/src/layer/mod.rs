//! Layers: deterministic tars written from a directory or a change set,
//! compressed and hashed in one pass, and extracted without escaping the
//! target directory.

mod entry;
mod extract;
mod format;
mod pax_time;
pub mod read;
pub(crate) mod tar;
pub(crate) mod write;

#[cfg(unix)]
pub use entry::read_xattrs;
pub use entry::{entries_from_dir, EntryKind, FileSource, LayerEntry};
pub use extract::{extract_layer, set_mtime_at, ExtractError, ExtractOptions, Whiteouts};
pub use format::LayerFormat;
pub use pax_time::{PaxTime, PaxTimeError};
pub use tar::pax_records;
pub use write::{
    compress_tar, write_layer, write_tar, LayerDescriptor, LayerError, LayerOptions, MtimePolicy,
    Ownership,
};
