//! The one content descriptor every crate uses. It keeps what it does not
//! interpret (`platform`, `urls`, `artifactType`, `data`, …) in `extra`
//! and writes it back as it was, which `oci-spec`'s typed descriptor does
//! not: a store or registry that rewrote index entries through it would
//! drop fields newer tools put there.

use crate::media_type;
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

    /// True for a layer a registry need not hold: one with `urls` or of a
    /// non-distributable media type. [`Descriptor::distributable`] changes it.
    pub fn is_non_distributable(&self) -> bool {
        self.is_foreign() || media_type::is_non_distributable(&self.media_type)
    }

    /// This descriptor as an ordinary layer whose bytes are pushed with the
    /// image: the non-distributable media type becomes its ordinary form
    /// ([`media_type::distributable`]) and `urls` go; digest, size,
    /// annotations and every other field stay, so the image's diff_ids do
    /// not change. The one rewrite every manifest kiln pushes or exports
    /// goes through, unless foreign layers are kept.
    pub fn distributable(&self) -> Descriptor {
        let mut out = self.clone();
        if let Some(mt) = media_type::distributable(&self.media_type) {
            out.media_type = mt.to_string();
        }
        out.extra.shift_remove("urls");
        out
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

    #[test]
    fn distributable_drops_urls_and_maps_the_type_keeping_the_rest() {
        let d = Digest::of(b"x");
        let json = format!(
            r#"{{"mediaType":"{}","digest":"{d}","size":1,"annotations":{{"a":"b"}},"urls":["https://example.com/l"],"newField":1}}"#,
            media_type::OCI_NONDISTRIBUTABLE_LAYER_GZIP
        );
        let foreign: Descriptor = serde_json::from_str(&json).unwrap();
        assert!(foreign.is_non_distributable());
        let out = foreign.distributable();
        assert!(!out.is_non_distributable());
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            format!(
                r#"{{"mediaType":"{}","digest":"{d}","size":1,"annotations":{{"a":"b"}},"newField":1}}"#,
                media_type::OCI_LAYER_GZIP
            )
        );
        // A foreign type without urls is still made distributable.
        let bare = Descriptor::new(media_type::DOCKER_FOREIGN_LAYER, d, 1);
        assert!(bare.is_non_distributable() && !bare.is_foreign());
        assert_eq!(bare.distributable().media_type, media_type::DOCKER_LAYER);
        let plain = Descriptor::new(media_type::OCI_LAYER, d, 1);
        assert_eq!(plain.distributable(), plain);
    }
}
