//! Just enough of manifests and indexes to walk them; the bytes themselves
//! are stored and pushed unchanged, so digests never move.

use crate::platform::Platform;
use kiln_store::{media_type, Descriptor};
use serde_json::Value;

/// Media types asked for when fetching a manifest.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// One entry of an index, with its platform.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    /// The manifest's descriptor, as in the index.
    pub descriptor: Descriptor,
    /// Its `platform`, if it has one.
    pub platform: Option<Platform>,
}

/// A parsed manifest or index.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// A single-platform image.
    Image {
        /// The config blob.
        config: Descriptor,
        /// The layers, bottom first.
        layers: Vec<Descriptor>,
    },
    /// A multi-platform index.
    Index(Vec<IndexEntry>),
}

/// The media type of a manifest: the registry's `Content-Type` when it is
/// one kiln knows, else the document's `mediaType`, else guessed from its shape.
pub(crate) fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    let known = |mt: &str| media_type::is_manifest(mt) || media_type::is_index(mt);
    if let Some(ct) = content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
        if known(ct) {
            return ct.to_string();
        }
    }
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(mt) if known(mt) => mt.to_string(),
        _ if value.get("manifests").is_some() => media_type::OCI_INDEX.to_string(),
        _ => media_type::OCI_MANIFEST.to_string(),
    }
}

/// Parses a manifest or index of media type `mt`; the error says what is
/// wrong with it.
pub fn parse(mt: &str, bytes: &[u8]) -> Result<Parsed, String> {
    if !media_type::is_manifest(mt) && !media_type::is_index(mt) {
        return Err(format!(
            "the manifest has media type {mt}, which kiln does not support (only OCI and Docker schema 2 manifests and indexes)"
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err("the manifest is Docker schema 1, which kiln does not support; push the image again with a current client".into());
    }
    let descs = |field: &str| -> Result<Vec<Descriptor>, String> {
        match value.get(field) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| format!("the manifest's `{field}` is not a list of descriptors: {e}")),
        }
    };
    if media_type::is_index(mt) {
        let entries = descs("manifests")?
            .into_iter()
            .map(|descriptor| {
                let platform = descriptor.extra.get("platform").and_then(platform_of);
                IndexEntry {
                    descriptor,
                    platform,
                }
            })
            .collect();
        return Ok(Parsed::Index(entries));
    }
    let config = value
        .get("config")
        .ok_or("the manifest has no config")?
        .clone();
    let config: Descriptor = serde_json::from_value(config)
        .map_err(|e| format!("the manifest's config is not a descriptor: {e}"))?;
    Ok(Parsed::Image {
        config,
        layers: descs("layers")?,
    })
}

fn platform_of(v: &Value) -> Option<Platform> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(Platform {
        os: s("os")?,
        architecture: s("architecture")?,
        variant: s("variant"),
        os_version: s("os.version"),
    })
}

/// The `urls` of a descriptor (foreign layers), empty for ordinary blobs.
pub fn urls(desc: &Descriptor) -> Vec<String> {
    desc.urls().into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_carry_platforms_and_urls_are_read() {
        let d = kiln_oci::Digest::of(b"m");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{d}","size":3,"platform":{{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}}}}]}}"#,
            media_type::OCI_MANIFEST
        );
        let mt = media_type_of(Some("text/plain"), index.as_bytes());
        assert_eq!(mt, media_type::OCI_INDEX);
        let Ok(Parsed::Index(entries)) = parse(&mt, index.as_bytes()) else {
            panic!("not an index");
        };
        assert_eq!(
            entries[0].platform.as_ref().unwrap().to_string(),
            "windows(10.0.17763.1)/amd64"
        );
        let layer: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{d}","size":1,"urls":["https://example.com/l"]}}"#
        ))
        .unwrap();
        assert_eq!(urls(&layer), vec!["https://example.com/l".to_string()]);
    }

    #[test]
    fn schema1_and_unknown_types_are_refused() {
        let err = parse(media_type::DOCKER_MANIFEST, br#"{"schemaVersion":1}"#).unwrap_err();
        assert!(err.contains("Docker schema 1"), "{err}");
        let err = parse("text/html", b"{}").unwrap_err();
        assert!(
            err.contains("text/html, which kiln does not support"),
            "{err}"
        );
    }
}
