//! Manifest and index parsing and serialisation, OCI and Docker.

use kiln_oci::manifest::{parse_manifest, ManifestFormat, Parsed};

const DOCKER_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1470},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":3401613}]}"#;
const OCI_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1470},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":12}],"annotations":{"org.opencontainers.image.title":"a \u0026 b"}}"#;
const DOCKER_LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":528,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
const OCI_INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":528,"platform":{"architecture":"amd64","os":"windows","os.version":"10.0.20348.2227"}}]}"#;

#[test]
fn manifests_round_trip_in_all_four_formats() {
    for (doc, format) in [
        (DOCKER_MANIFEST, ManifestFormat::DockerManifest),
        (OCI_MANIFEST, ManifestFormat::OciManifest),
        (DOCKER_LIST, ManifestFormat::DockerManifestList),
        (OCI_INDEX, ManifestFormat::OciIndex),
    ] {
        let bytes = match parse_manifest(doc.as_bytes(), None).unwrap() {
            Parsed::Manifest(f, m) => {
                assert_eq!(f, format);
                m.to_json()
            }
            Parsed::Index(f, i) => {
                assert_eq!(f, format);
                i.to_json()
            }
        };
        assert_eq!(String::from_utf8(bytes).unwrap(), doc, "{format:?}");
    }
}

#[test]
fn fields_are_read_and_platforms_keep_os_version() {
    let Parsed::Index(_, index) = parse_manifest(OCI_INDEX.as_bytes(), None).unwrap() else {
        panic!("expected an index")
    };
    let platform = index.manifests[0].platform().unwrap();
    assert_eq!(platform.os_version.as_deref(), Some("10.0.20348.2227"));
    let Parsed::Manifest(_, m) = parse_manifest(DOCKER_MANIFEST.as_bytes(), None).unwrap() else {
        panic!("expected a manifest")
    };
    assert_eq!(m.layers[0].size, 3401613);
    assert_eq!(
        m.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
}

#[test]
fn format_falls_back_to_content_type_then_shape() {
    let bare = r#"{"schemaVersion":2,"manifests":[]}"#;
    assert!(matches!(
        parse_manifest(bare.as_bytes(), None).unwrap(),
        Parsed::Index(ManifestFormat::OciIndex, _)
    ));
    assert!(matches!(
        parse_manifest(
            bare.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.list.v2+json")
        )
        .unwrap(),
        Parsed::Index(ManifestFormat::DockerManifestList, _)
    ));
}

#[test]
fn unsupported_documents_say_why() {
    let schema1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
    assert!(parse_manifest(schema1.as_bytes(), None)
        .unwrap_err()
        .to_string()
        .starts_with("docker schema 1 manifests are not supported"));
    let other = r#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
    assert_eq!(
        parse_manifest(other.as_bytes(), None)
            .unwrap_err()
            .to_string(),
        "\"text/plain\" is not a manifest or index media type"
    );
}
