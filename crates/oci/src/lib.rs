//! The OCI image format as kiln uses it: digests, image configs (kept
//! byte-exact, docker fields included), the BuildKit-compatible config
//! builder, manifests and indexes, deterministic layer tars, parallel
//! compression, and extraction that cannot escape its directory.
//!
//! ```
//! use kiln_oci::{extract_layer, write_layer, Compression, ConfigBuilder, ExtractOptions,
//!                ImageConfig, LayerEntry, LayerOptions, MtimePolicy};
//!
//! // A layer from a change set, timestamps clamped for reproducibility.
//! let entries = vec![LayerEntry::file("app/hello.txt", "hello\n").with_mtime(1_700_000_000)];
//! let options = LayerOptions {
//!     compression: Compression::Gzip(6),
//!     mtime: MtimePolicy::Clamp(1_600_000_000),
//!     ..LayerOptions::default()
//! };
//! let (layer, blob) = write_layer(entries, &options, Vec::new())?;
//! assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
//!
//! // The image config that goes with it.
//! let mut config = ConfigBuilder::new(ImageConfig::new("linux", "amd64"))
//!     .with_source_date_epoch(Some(1_600_000_000));
//! config.add_layer(layer.diff_id, "COPY hello.txt /app/");
//! config.cmd(&["cat".into(), "/app/hello.txt".into()], false);
//! let config = config.build(0);
//! assert_eq!(config.diff_ids()?, [layer.diff_id]);
//! assert_eq!(config.created(), Some("2020-09-13T12:26:40Z"));
//!
//! // And back onto disk.
//! let dir = tempfile::tempdir()?;
//! extract_layer(&blob[..], dir.path(), &layer.digest, &ExtractOptions::default())?;
//! assert_eq!(std::fs::read(dir.path().join("app/hello.txt"))?, b"hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod compression;
pub mod config;
pub mod content;
pub mod descriptor;
pub mod digest;
mod json;
pub mod layer;
pub mod layout;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod path;
pub mod platform;
pub mod reference;
mod sys;
pub mod tree;
pub mod windows;

pub use compression::{Compression, CompressionError};
pub use config::{ConfigBuilder, ConfigError, Healthcheck, ImageConfig};
pub use descriptor::Descriptor;
pub use digest::{Digest, DigestWriter};
#[cfg(unix)]
pub use layer::read_xattrs;
pub use layer::{
    compress_tar, entries_from_dir, extract_layer, pax_records, write_layer, write_tar, EntryKind,
    ExtractError, ExtractOptions, FileSource, LayerDescriptor, LayerEntry, LayerError, LayerFormat,
    LayerOptions, MtimePolicy, Ownership, Whiteouts,
};
pub use layout::{Layout, LayoutError};
pub use manifest::{
    make_distributable, parse_manifest, Distributable, Index, Manifest, ManifestError,
    ManifestFormat, Parsed,
};
pub use platform::{
    select_platform, select_platform_strict, AmbiguousPlatform, ImageOs, Platform, PlatformError,
};
