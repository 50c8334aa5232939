//! What the client needs of manifests beyond kiln-oci's model: the media
//! types it asks for and how it tells which one it got. The bytes are
//! stored and pushed unchanged, so digests never move.

use kiln_oci::{media_type, Parsed};
use serde_json::Value;

/// Media types asked for when fetching a manifest.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

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

/// Parses a manifest or index of media type `mt` with kiln-oci's one
/// parser; the error says what is wrong with it.
pub fn parse(mt: &str, bytes: &[u8]) -> Result<Parsed, String> {
    if !media_type::is_manifest(mt) && !media_type::is_index(mt) {
        return Err(format!(
            "the manifest has media type {mt}, which kiln does not support (only OCI and Docker schema 2 manifests and indexes)"
        ));
    }
    kiln_oci::parse_manifest(bytes, Some(mt)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_carry_platforms() {
        let d = kiln_oci::Digest::of(b"m");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{d}","size":3,"platform":{{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}}}}]}}"#,
            media_type::OCI_MANIFEST
        );
        let mt = media_type_of(Some("text/plain"), index.as_bytes());
        assert_eq!(mt, media_type::OCI_INDEX);
        let Ok(Parsed::Index(_, index)) = parse(&mt, index.as_bytes()) else {
            panic!("not an index");
        };
        assert_eq!(
            index.manifests[0].platform().unwrap().to_string(),
            "windows(10.0.17763.1)/amd64"
        );
    }

    #[test]
    fn schema1_and_unknown_types_are_refused() {
        let err = parse(media_type::DOCKER_MANIFEST, br#"{"schemaVersion":1}"#).unwrap_err();
        assert!(err.contains("docker schema 1"), "{err}");
        let err = parse("text/html", b"{}").unwrap_err();
        assert!(
            err.contains("text/html, which kiln does not support"),
            "{err}"
        );
    }
}
