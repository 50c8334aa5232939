//! kiln's local content store: an OCI image layout on disk.
//!
//! Layout under the root (`KILN_ROOT`, see [`Store::default_root`]):
//! `content/` is a standard OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) with tags as `org.opencontainers.image.ref.name`
//! annotations holding full references (`docker.io/library/busybox:latest`);
//! `tmp/<lease>/` holds each process's work in flight; `leases/` holds the
//! leases of the processes using the store (see [`Store::open`]), and
//! `index.lock` orders index updates, blob commits and GC.
//!
//! Every change is crash-safe: blobs are written to `tmp/`, fsynced, checked
//! against their digest and renamed into place; `index.json` is replaced by
//! rename. A process killed at any point leaves a store [`Store::fsck`]
//! finds consistent, at worst with stray temp files that the next
//! [`Store::open`] removes.
//!
//! ```
//! use kiln_store::{Descriptor, Store, media_type};
//! use std::io::Write;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let config = store.put_bytes(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)?;
//! let mut w = store.ingest()?;
//! write!(w, r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
//!        media_type::OCI_CONFIG, config.digest, config.size)?;
//! let manifest = w.commit(None)?;
//! let desc = Descriptor::new(media_type::OCI_MANIFEST, manifest.digest, manifest.size);
//! store.tag(&"example:v1".parse()?, &desc)?;
//! assert_eq!(store.resolve("example:v1")?.descriptor.digest, manifest.digest);
//! assert!(store.fsck()?.problems.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod archive;
mod content;
mod descriptor;
mod error;
mod fsutil;
mod gc;
mod images;
mod lease;
mod store;
mod sys;

pub use archive::ArchiveImage;
pub use descriptor::{children, media_type, Descriptor, IndexFile, CONTAINERD_NAME, REF_NAME};
pub use error::{Error, Result};
pub use gc::{FsckReport, GcReport};
pub use images::{Image, Resolved};
pub use lease::LeaseUsage;
pub use store::{BlobInfo, BlobWriter, Store};
