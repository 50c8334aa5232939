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

#[test]
fn make_distributable_rewrites_foreign_layers_and_the_index_naming_them() {
    use kiln_oci::{make_distributable, media_type, Descriptor, Digest, Manifest, ManifestError};
    use std::collections::HashMap;
    let d = |b: &[u8]| Digest::of(b);
    let mut foreign = Descriptor::new(media_type::DOCKER_FOREIGN_LAYER_GZIP, d(b"f"), 1);
    foreign
        .extra
        .insert("urls".into(), serde_json::json!(["https://example.com/f"]));
    let ordinary = Descriptor::new(media_type::DOCKER_LAYER_GZIP, d(b"o"), 1);
    let config = Descriptor::new(media_type::DOCKER_CONFIG, d(b"c"), 1);
    let windows = Manifest::new(
        ManifestFormat::DockerManifest,
        config.clone(),
        vec![foreign.clone(), ordinary.clone()],
    )
    .to_json();
    let linux = Manifest::new(
        ManifestFormat::DockerManifest,
        config.clone(),
        vec![ordinary.clone()],
    )
    .to_json();
    let entry = |bytes: &[u8], os: &str| {
        Descriptor::new(media_type::DOCKER_MANIFEST, d(bytes), bytes.len() as u64)
            .with_platform(&format!("{os}/amd64").parse().unwrap())
    };
    let (win_entry, linux_entry) = (entry(&windows, "windows"), entry(&linux, "linux"));
    // An entry whose manifest is not at hand stays as it is.
    let absent = entry(b"absent", "freebsd");
    let index = kiln_oci::Index::new(
        ManifestFormat::DockerManifestList,
        vec![win_entry.clone(), linux_entry.clone(), absent.clone()],
    )
    .to_json();
    let root = Descriptor::new(
        media_type::DOCKER_MANIFEST_LIST,
        d(&index),
        index.len() as u64,
    );
    let docs: HashMap<Digest, Vec<u8>> = [
        (root.digest, index.clone()),
        (win_entry.digest, windows.clone()),
        (linux_entry.digest, linux.clone()),
    ]
    .into();
    let mut read = |desc: &Descriptor| Ok::<_, ManifestError>(docs.get(&desc.digest).cloned());
    let out = make_distributable(&root, &mut read).unwrap();
    assert_eq!(
        out.documents.len(),
        2,
        "the Windows manifest, then the index"
    );
    let (new_win, win_bytes) = &out.documents[0];
    assert_eq!(new_win.platform(), win_entry.platform());
    let Parsed::Manifest(_, m) = parse_manifest(win_bytes, None).unwrap() else {
        panic!("not a manifest");
    };
    assert_eq!(m.config, config);
    assert_eq!(m.layers, vec![foreign.distributable(), ordinary.clone()]);
    assert_eq!(m.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);
    assert!(m.layers[0].urls().is_empty());
    let (new_root, index_bytes) = &out.documents[1];
    assert_eq!(new_root, &out.root);
    assert_eq!(out.root.digest, Digest::of(index_bytes));
    let Parsed::Index(_, i) = parse_manifest(index_bytes, None).unwrap() else {
        panic!("not an index");
    };
    assert_eq!(i.manifests, vec![new_win.clone(), linux_entry, absent]);

    // Nothing to change: the same root, no documents.
    let plain = Descriptor::new(media_type::DOCKER_MANIFEST, d(&linux), linux.len() as u64);
    let mut read_plain = |_: &Descriptor| Ok::<_, ManifestError>(Some(linux.clone()));
    let out = make_distributable(&plain, &mut read_plain).unwrap();
    assert_eq!((out.root, out.documents.len()), (plain, 0));
}
