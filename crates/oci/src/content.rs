//! Where content comes from and goes to, as containerd's content store
//! interfaces: the registry client pulls into an [`Ingester`] and pushes
//! from a [`Provider`], so it needs no store of its own. kiln's store
//! implements both; an OCI layout directory is a [`Provider`] too.

use crate::descriptor::Descriptor;
use crate::reference::Reference;
use crate::Digest;
use std::fs::File;
use std::io::{self, Write};

/// Why content could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The bytes written do not hash to the digest they were expected to.
    #[error("the content is {actual}, not the expected {expected}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// A blob that is not there.
    #[error("blob {0} is not present")]
    NotFound(Digest),
    /// Anything else, in the implementation's words (which name the path).
    #[error("{0}")]
    Other(String),
}

/// Blobs to read: the source of a push.
pub trait Provider: Sync {
    /// Opens blob `digest` for reading; a file, so a chunked upload can
    /// seek back to where the registry says it stopped.
    fn open_blob(&self, digest: &Digest) -> Result<File, ContentError>;

    /// Whether blob `digest` is present.
    fn has_blob(&self, digest: &Digest) -> bool;
}

/// One blob being written; it appears only when committed, verified.
pub trait Ingest: Write + Send {
    /// Bytes written so far (where a resumed download continues).
    fn written(&self) -> u64;

    /// Makes the blob visible if its bytes hash to `expected`; otherwise
    /// drops them and answers [`ContentError::DigestMismatch`].
    fn commit(self: Box<Self>, expected: &Digest) -> Result<(), ContentError>;
}

/// Where pulled content goes: blobs, then the image record naming them.
pub trait Ingester: Sync {
    /// Whether blob `digest` is present (and need not be fetched).
    fn has_blob(&self, digest: &Digest) -> bool;

    /// Starts writing one blob.
    fn ingest(&self) -> Result<Box<dyn Ingest + '_>, ContentError>;

    /// Records the image `manifest` (whose blobs are all present) under
    /// `name`, or untagged for a pull by digest.
    fn put_image(
        &self,
        name: Option<&Reference>,
        manifest: &Descriptor,
    ) -> Result<(), ContentError>;

    /// Writes a small blob whole (a manifest) and checks it is `digest`.
    fn put_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<(), ContentError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut w = self.ingest()?;
        w.write_all(bytes)
            .map_err(|e| ContentError::Other(format!("writing blob {digest}: {e}")))?;
        w.commit(digest)
    }
}

impl Provider for crate::layout::Layout {
    fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        crate::layout::Layout::open_blob(self, digest).map_err(|e| match e {
            crate::layout::LayoutError::Invalid { .. } => ContentError::NotFound(*digest),
            other => ContentError::Other(other.to_string()),
        })
    }

    fn has_blob(&self, digest: &Digest) -> bool {
        crate::layout::Layout::has_blob(self, digest)
    }
}

impl From<io::Error> for ContentError {
    fn from(e: io::Error) -> ContentError {
        ContentError::Other(e.to_string())
    }
}
