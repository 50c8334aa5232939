//! The OCI image format as kiln uses it.
#![deny(missing_docs)]

pub mod compression;
pub mod config;
pub mod digest;
mod json;
pub mod layer;
pub mod manifest;
pub mod reference;

pub use compression::{Compression, CompressionError};
pub use config::{ConfigBuilder, ConfigError, Healthcheck, ImageConfig};
pub use digest::{Digest, DigestWriter};
pub use layer::{
    entries_from_dir, extract_layer, write_layer, write_tar, EntryKind, ExtractError,
    ExtractOptions, FileSource, LayerDescriptor, LayerEntry, LayerError, LayerOptions, MtimePolicy,
    Ownership,
};
