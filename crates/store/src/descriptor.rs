//! Descriptors, the index file, and the edges between blobs.
//!
//! Manifests are read through kiln-oci's field-preserving types, so OCI
//! and Docker v2 media types, and fields kiln does not know, pass through
//! unchanged.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Media types: kiln-oci's, the one definition.
pub use kiln_oci::media_type;

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and docker use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Descriptors: kiln-oci's, the one type.
pub use kiln_oci::Descriptor;

/// The `index.json` of an OCI image layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexFile {
    /// Always 2.
    pub schema_version: u32,
    /// The index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One entry per image (tagged or not).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for IndexFile {
    fn default() -> IndexFile {
        IndexFile {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }
}

/// The blobs a manifest or index points at: config then layers for a
/// manifest, the platform manifests for an index, nothing for other blobs.
pub fn children(desc: &Descriptor, bytes: &[u8]) -> Result<Vec<Descriptor>> {
    if !media_type::is_manifest(&desc.media_type) && !media_type::is_index(&desc.media_type) {
        return Ok(Vec::new());
    }
    kiln_oci::parse_manifest(bytes, Some(&desc.media_type))
        .map(|p| p.children())
        .map_err(|e| {
            Error::invalid(
                format!("{} {}", desc.media_type, desc.digest),
                e.to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_oci::Digest;

    #[test]
    fn children_of_manifest_and_index() {
        let c = Descriptor::new(media_type::OCI_CONFIG, Digest::of(b"c"), 1);
        let l = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"l"), 2);
        let m = serde_json::json!({"schemaVersion": 2, "config": c, "layers": [l]});
        let mdesc = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"m"), 3);
        let kids = children(&mdesc, m.to_string().as_bytes()).unwrap();
        assert_eq!(kids, vec![c, l]);

        let i = serde_json::json!({"schemaVersion": 2, "manifests": [mdesc]});
        let idesc = Descriptor::new(media_type::DOCKER_MANIFEST_LIST, Digest::of(b"i"), 4);
        assert_eq!(
            children(&idesc, i.to_string().as_bytes()).unwrap(),
            vec![mdesc.clone()]
        );

        let err = children(&mdesc, b"{}").unwrap_err().to_string();
        assert!(err.ends_with("the manifest has no config"), "{err}");
        let layer = Descriptor::new(media_type::OCI_LAYER, Digest::of(b"t"), 1);
        assert!(children(&layer, b"not json").unwrap().is_empty());
    }
}
