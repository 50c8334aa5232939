//! The OCI image format as kiln uses it.
//!
//! * [`digest`]: content digests and a writer that hashes what passes through.
#![deny(missing_docs)]

pub mod digest;

pub use digest::{Digest, DigestWriter};
