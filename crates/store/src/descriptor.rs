//! Descriptors, the index file, and the edges between blobs.
//!
//! Manifests are walked generically (as JSON) so that OCI and Docker v2
//! media types, and fields kiln does not know, pass through unchanged.

use crate::error::{Error, Result};
use kiln_oci::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Media types the store understands when walking from a manifest to its blobs.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed OCI layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Gzip-compressed OCI layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Zstd-compressed OCI layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker v2 schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";

    /// True for single-image manifests (OCI or Docker).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// True for multi-platform indexes (OCI or Docker).
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }
}

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and docker use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI content descriptor. Fields kiln does not interpret (`platform`,
/// `urls`, `artifactType`, …) are kept in `extra` and written back as they were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Annotations; the store keeps tags here under [`REF_NAME`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Everything else in the descriptor.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with no annotations or extra fields.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: BTreeMap::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// The descriptor's `urls`: where a foreign (non-distributable) layer,
    /// such as a Windows base layer, is downloaded from. Empty for ordinary blobs.
    pub fn urls(&self) -> Vec<&str> {
        self.extra
            .get("urls")
            .and_then(|u| u.as_array())
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str())
            .collect()
    }

    /// True for a foreign layer: one with `urls`. Registries do not hold
    /// it and licences often forbid copying it, so the store accepts
    /// images without its bytes; they are fetched only when needed.
    pub fn is_foreign(&self) -> bool {
        !self.urls().is_empty()
    }

    /// `os/architecture[/variant]` from the descriptor's `platform`, if it has one.
    pub fn platform(&self) -> Option<String> {
        let p = self.extra.get("platform")?;
        let os = p.get("os")?.as_str()?;
        let arch = p.get("architecture")?.as_str()?;
        Some(match p.get("variant").and_then(|v| v.as_str()) {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    }
}

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
    let what = || format!("{} {}", desc.media_type, desc.digest);
    if !media_type::is_manifest(&desc.media_type) && !media_type::is_index(&desc.media_type) {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(what(), format!("not valid JSON: {e}")))?;
    let field = |name: &str| -> Result<Vec<Descriptor>> {
        match value.get(name) {
            None => Ok(Vec::new()),
            Some(v) if v.is_array() => serde_json::from_value(v.clone())
                .map_err(|e| Error::invalid(what(), format!("bad `{name}` descriptors: {e}"))),
            Some(v) => serde_json::from_value(v.clone())
                .map(|d| vec![d])
                .map_err(|e| Error::invalid(what(), format!("bad `{name}` descriptor: {e}"))),
        }
    };
    if media_type::is_index(&desc.media_type) {
        return field("manifests");
    }
    let config = field("config")?;
    if config.is_empty() {
        return Err(Error::invalid(what(), "the manifest has no config"));
    }
    let mut out = config;
    out.extend(field("layers")?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_keeps_unknown_fields() {
        let d = Digest::of(b"x");
        let json = format!(
            r#"{{"mediaType":"{}","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}"#,
            media_type::OCI_MANIFEST
        );
        let desc: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(desc.platform().as_deref(), Some("linux/arm64/v8"));
        assert_eq!(serde_json::to_string(&desc).unwrap(), json);
        assert!(!desc.is_foreign());
        let foreign: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{d}","size":1,"urls":["https://example.com/l",7]}}"#
        ))
        .unwrap();
        assert_eq!(foreign.urls(), vec!["https://example.com/l"]);
        assert!(foreign.is_foreign());
    }

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
        let layer = Descriptor::new(media_type::OCI_LAYER_TAR, Digest::of(b"t"), 1);
        assert!(children(&layer, b"not json").unwrap().is_empty());
    }
}
