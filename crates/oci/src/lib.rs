//! The OCI image format as kiln uses it.
#![deny(missing_docs)]

pub mod compression;
pub mod config;
pub mod digest;
mod json;
pub mod manifest;
pub mod reference;

pub use compression::{Compression, CompressionError};
pub use config::{ConfigBuilder, ConfigError, Healthcheck, ImageConfig};
pub use digest::{Digest, DigestWriter};
