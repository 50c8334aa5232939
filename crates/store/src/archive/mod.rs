//! Moving images in and out of the store as files: OCI image layouts
//! (directory or tar) and docker-archives (`docker save` format).

mod export;
mod load;
mod sink;

use crate::descriptor::Descriptor;
use kiln_oci::reference::Reference;

/// An image going into or coming out of an archive, with its names.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveImage {
    /// The image's manifest (or index) descriptor.
    pub descriptor: Descriptor,
    /// Its names; empty for an untagged image.
    pub tags: Vec<Reference>,
}
