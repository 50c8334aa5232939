//! The store as kiln-oci's content interfaces: the registry client pulls
//! into it (an [`Ingester`]) and pushes from it (a [`Provider`]) without
//! knowing it.

use crate::error::Error;
use crate::store::{BlobWriter, Store};
use kiln_oci::content::{ContentError, Ingest, Ingester, Provider};
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest};
use std::fs::File;

fn content_error(e: Error) -> ContentError {
    match e {
        Error::DigestMismatch {
            expected, actual, ..
        } => ContentError::DigestMismatch { expected, actual },
        other => ContentError::Other(other.to_string()),
    }
}

impl Provider for Store {
    fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        if !Store::has_blob(self, digest) {
            return Err(ContentError::NotFound(*digest));
        }
        Store::open_blob(self, digest).map_err(content_error)
    }

    fn has_blob(&self, digest: &Digest) -> bool {
        Store::has_blob(self, digest)
    }
}

impl Ingest for BlobWriter<'_> {
    fn written(&self) -> u64 {
        self.len()
    }

    fn commit(self: Box<Self>, expected: &Digest) -> Result<(), ContentError> {
        BlobWriter::commit(*self, Some(*expected))
            .map(drop)
            .map_err(content_error)
    }
}

impl Ingester for Store {
    /// A blob a pull finds present is held in this process's lease, so a
    /// prune before the pull names the image cannot take it away.
    fn has_blob(&self, digest: &Digest) -> bool {
        self.hold(digest).unwrap_or(false)
    }

    fn ingest(&self) -> Result<Box<dyn Ingest + '_>, ContentError> {
        Ok(Box::new(Store::ingest(self).map_err(content_error)?))
    }

    fn put_image(
        &self,
        name: Option<&Reference>,
        manifest: &Descriptor,
    ) -> Result<(), ContentError> {
        match name {
            Some(r) => self.tag(r, manifest),
            None => self.add_untagged(manifest),
        }
        .map_err(content_error)
    }
}
