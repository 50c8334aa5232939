//! Manifests and indexes, OCI and Docker v2.2, through `oci-spec`'s types.
//!
//! Docker's schema 2 manifest and manifest list have the same shape as the
//! OCI manifest and index; only the media types differ, and `oci-spec` keeps
//! docker's as [`MediaType::Other`]. So one pair of types serves both, and
//! [`Parsed`] says which of the four formats the bytes were.

use crate::json::to_go_json;
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType, Platform};
use serde_json::Value;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer, used by Windows bases.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 manifest, which kiln does not read.
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Which format a manifest document is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// [`OCI_MANIFEST`].
    OciManifest,
    /// [`OCI_INDEX`].
    OciIndex,
    /// [`DOCKER_MANIFEST`].
    DockerManifest,
    /// [`DOCKER_MANIFEST_LIST`].
    DockerManifestList,
}

impl ManifestFormat {
    /// The media type string.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestFormat::OciManifest => OCI_MANIFEST,
            ManifestFormat::OciIndex => OCI_INDEX,
            ManifestFormat::DockerManifest => DOCKER_MANIFEST,
            ManifestFormat::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// True for an index or manifest list.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestFormat::OciIndex | ManifestFormat::DockerManifestList
        )
    }
}

/// A parsed manifest document.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// An image manifest (OCI or Docker).
    Manifest(ManifestFormat, Box<ImageManifest>),
    /// An index or manifest list.
    Index(ManifestFormat, Box<ImageIndex>),
}

/// Why bytes are not a manifest kiln can read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or a field has the wrong shape.
    #[error("manifest is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A docker schema 1 manifest.
    #[error("docker schema 1 manifests are not supported; re-push the image with a current docker or use its schema 2 / OCI form")]
    Schema1,
    /// The media type is not a manifest or index.
    #[error("{0:?} is not a manifest or index media type")]
    UnknownMediaType(String),
}

/// Parses a manifest or index. The format comes from the document's
/// `mediaType`, else from `content_type` (the registry's Content-Type),
/// else from its shape (`manifests` means an index).
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    let value: Value = serde_json::from_slice(bytes)?;
    if value.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(ManifestError::Schema1);
    }
    let declared = value
        .get("mediaType")
        .and_then(Value::as_str)
        .or(content_type.filter(|c| !c.is_empty() && *c != "application/json"));
    let format = match declared {
        Some(OCI_MANIFEST) => ManifestFormat::OciManifest,
        Some(OCI_INDEX) => ManifestFormat::OciIndex,
        Some(DOCKER_MANIFEST) => ManifestFormat::DockerManifest,
        Some(DOCKER_MANIFEST_LIST) => ManifestFormat::DockerManifestList,
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => return Err(ManifestError::Schema1),
        Some(other) => return Err(ManifestError::UnknownMediaType(other.to_string())),
        None if value.get("manifests").is_some() => ManifestFormat::OciIndex,
        None => ManifestFormat::OciManifest,
    };
    Ok(if format.is_index() {
        let mut value = value;
        rename_platform_keys(&mut value, SPEC_KEYS, OCI_SPEC_KEYS);
        Parsed::Index(format, Box::new(serde_json::from_value(value)?))
    } else {
        Parsed::Manifest(format, Box::new(serde_json::from_value(value)?))
    })
}

/// A manifest as compact JSON with Go's escaping (what docker and BuildKit
/// push), so re-serialising a pulled manifest usually gives its bytes back.
pub fn manifest_to_json(manifest: &ImageManifest) -> Result<Vec<u8>, ManifestError> {
    Ok(to_go_json(&serde_json::to_value(manifest)?))
}

/// An index as compact JSON with Go's escaping.
pub fn index_to_json(index: &ImageIndex) -> Result<Vec<u8>, ManifestError> {
    let mut value = serde_json::to_value(index)?;
    rename_platform_keys(&mut value, OCI_SPEC_KEYS, SPEC_KEYS);
    Ok(to_go_json(&value))
}

/// The platform keys the image spec defines…
const SPEC_KEYS: [&str; 2] = ["os.version", "os.features"];
/// …and the names `oci-spec` 0.8 (de)serialises them under (its
/// `Platform` has no serde rename, so the fields are `os_version` and
/// `os_features`). Without this mapping a Windows index would lose
/// `os.version`.
const OCI_SPEC_KEYS: [&str; 2] = ["os_version", "os_features"];

fn rename_platform_keys(index: &mut Value, from: [&str; 2], to: [&str; 2]) {
    let Some(manifests) = index.get_mut("manifests").and_then(Value::as_array_mut) else {
        return;
    };
    for m in manifests {
        let Some(platform) = m.get_mut("platform").and_then(Value::as_object_mut) else {
            continue;
        };
        for (old, new) in from.iter().zip(to) {
            if let Some(i) = platform.keys().position(|k| k == old) {
                if let Some(v) = platform.shift_remove(*old) {
                    platform.shift_insert(i, new.to_string(), v);
                }
            }
        }
    }
}
