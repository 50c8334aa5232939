//! The one content descriptor every crate uses. It keeps what it does not
//! interpret (`platform`, `urls`, `artifactType`, `data`, …) in `extra`
//! and writes it back as it was, which `oci-spec`'s typed descriptor does
//! not: a store or registry that rewrote index entries through it would
//! drop fields newer tools put there.

use crate::platform::Platform;
use crate::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Annotations; a store keeps tags here under
    /// `org.opencontainers.image.ref.name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Everything else in the descriptor, in its order.
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
    /// such as a Windows base layer, is downloaded from. Empty for
    /// ordinary blobs.
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
    /// it and licences often forbid copying it, so a store accepts images
    /// without its bytes; they are fetched only when needed.
    pub fn is_foreign(&self) -> bool {
        !self.urls().is_empty()
    }

    /// The descriptor's `platform` (index entries), if it has one.
    pub fn platform(&self) -> Option<Platform> {
        Platform::from_json(self.extra.get("platform")?)
    }

    /// Sets (or with `None`, removes) the `platform`.
    pub fn set_platform(&mut self, platform: Option<&Platform>) {
        match platform {
            Some(p) => {
                self.extra.insert("platform".into(), p.to_json());
            }
            None => {
                self.extra.shift_remove("platform");
            }
        }
    }

    /// This descriptor with the platform set.
    pub fn with_platform(mut self, platform: &Platform) -> Descriptor {
        self.set_platform(Some(platform));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type;

    #[test]
    fn descriptor_keeps_unknown_fields() {
        let d = Digest::of(b"x");
        let json = format!(
            r#"{{"mediaType":"{}","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8","future":1}},"newField":[1]}}"#,
            media_type::OCI_MANIFEST
        );
        let desc: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(desc.platform().unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(serde_json::to_string(&desc).unwrap(), json);
        assert!(!desc.is_foreign());
        let foreign: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"{}","digest":"{d}","size":1,"urls":["https://example.com/l",7]}}"#,
            media_type::DOCKER_FOREIGN_LAYER_GZIP
        ))
        .unwrap();
        assert_eq!(foreign.urls(), vec!["https://example.com/l"]);
        assert!(foreign.is_foreign());
    }
}
