//! The OCI image format as kiln uses it.
//!
//! * [`digest`]: content digests and a writer that hashes what passes through.
//! * [`reference`]: image references (`registry/repo:tag@digest`) with docker's normalisation.
#![deny(missing_docs)]

pub mod digest;
pub mod reference;

pub use digest::{Digest, DigestWriter};
