//! Manifests and indexes, OCI and Docker v2.2: the one place kiln reads
//! and writes them.
//!
//! Docker's schema 2 manifest and manifest list have the same shape as the
//! OCI manifest and index; only the media types differ. So one pair of
//! types serves both, and [`Parsed`] says which of the four formats the
//! bytes were. The types are kiln's own rather than `oci-spec`'s so that
//! every descriptor keeps the fields kiln does not interpret, and a
//! re-serialised document keeps its key order and Go's escaping.

use crate::descriptor::Descriptor;
use crate::json::to_go_json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use crate::media_type::{
    DOCKER_CONFIG, DOCKER_FOREIGN_LAYER_GZIP, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    OCI_MANIFEST,
};
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

/// An image manifest (OCI or Docker schema 2), in the image spec's key
/// order; unknown fields are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, when the document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// For artifacts: what the manifest describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Manifest {
    /// A manifest of `format` (an image manifest format) with these parts.
    pub fn new(format: ManifestFormat, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(format.media_type().to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// Compact JSON with Go's escaping, as docker and BuildKit write it.
    pub fn to_json(&self) -> Vec<u8> {
        to_go_json(&serde_json::to_value(self).expect("a manifest is always JSON"))
    }
}

/// An image index or Docker manifest list; unknown fields are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, when the document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// For artifacts: what the index describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Index {
    /// An index of `format` (an index format) with these entries.
    pub fn new(format: ManifestFormat, manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(format.media_type().to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// Compact JSON with Go's escaping.
    pub fn to_json(&self) -> Vec<u8> {
        to_go_json(&serde_json::to_value(self).expect("an index is always JSON"))
    }
}

/// A parsed manifest document.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// An image manifest (OCI or Docker).
    Manifest(ManifestFormat, Box<Manifest>),
    /// An index or manifest list.
    Index(ManifestFormat, Box<Index>),
}

impl Parsed {
    /// The format the document is in.
    pub fn format(&self) -> ManifestFormat {
        match self {
            Parsed::Manifest(f, _) | Parsed::Index(f, _) => *f,
        }
    }

    /// The blobs it points at: config then layers for a manifest, the
    /// entries for an index.
    pub fn children(&self) -> Vec<Descriptor> {
        match self {
            Parsed::Manifest(_, m) => {
                let mut out = vec![m.config.clone()];
                out.extend(m.layers.iter().cloned());
                out
            }
            Parsed::Index(_, i) => i.manifests.clone(),
        }
    }
}

/// An image whose non-distributable layers were made distributable
/// ([`make_distributable`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Distributable {
    /// The image's root (manifest or index) after the rewrite; the one
    /// given when nothing needed it.
    pub root: Descriptor,
    /// The manifests and index written anew, each with its bytes, every
    /// child before the index naming it; empty when nothing changed.
    pub documents: Vec<(Descriptor, Vec<u8>)>,
}

/// Rewrites the image `root` so every layer is an ordinary one
/// ([`Descriptor::distributable`]): its manifests with such layers get new
/// bytes and digests, and so does an index naming them. Configs, diff_ids
/// and other layers are untouched. `read` gives a manifest's or index's
/// bytes, or `None` for an index entry not at hand (a platform never
/// pulled), which is left as it is.
pub fn make_distributable<E, F>(root: &Descriptor, read: &mut F) -> Result<Distributable, E>
where
    E: From<ManifestError>,
    F: FnMut(&Descriptor) -> Result<Option<Vec<u8>>, E>,
{
    let mut documents = Vec::new();
    let root = rewrite(root, read, &mut documents)?;
    Ok(Distributable { root, documents })
}

fn rewrite<E, F>(
    desc: &Descriptor,
    read: &mut F,
    documents: &mut Vec<(Descriptor, Vec<u8>)>,
) -> Result<Descriptor, E>
where
    E: From<ManifestError>,
    F: FnMut(&Descriptor) -> Result<Option<Vec<u8>>, E>,
{
    let Some(bytes) = read(desc)? else {
        return Ok(desc.clone());
    };
    let bytes = match parse_manifest(&bytes, Some(&desc.media_type))? {
        Parsed::Manifest(_, mut m) => {
            if !m.layers.iter().any(Descriptor::is_non_distributable) {
                return Ok(desc.clone());
            }
            m.layers = m.layers.iter().map(Descriptor::distributable).collect();
            m.to_json()
        }
        Parsed::Index(_, mut index) => {
            let mut changed = false;
            for entry in &mut index.manifests {
                if !crate::media_type::is_manifest(&entry.media_type)
                    && !crate::media_type::is_index(&entry.media_type)
                {
                    continue;
                }
                let new = rewrite(entry, read, documents)?;
                changed |= new.digest != entry.digest;
                *entry = new;
            }
            if !changed {
                return Ok(desc.clone());
            }
            index.to_json()
        }
    };
    let mut new = desc.clone();
    new.digest = crate::Digest::of(&bytes);
    new.size = bytes.len() as u64;
    documents.push((new.clone(), bytes));
    Ok(new)
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
    /// An image manifest without a config.
    #[error("the manifest has no config")]
    NoConfig,
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
        Parsed::Index(format, Box::new(serde_json::from_value(value)?))
    } else {
        if value.get("config").is_none() {
            return Err(ManifestError::NoConfig);
        }
        Parsed::Manifest(format, Box::new(serde_json::from_value(value)?))
    })
}
