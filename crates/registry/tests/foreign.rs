//! Foreign layers (`urls`, as Windows base layers have): pushed and pulled
//! without their bytes, fetched from their URL only when asked.

use common::{busybox_layer, options, rt};
use kiln_oci::Digest;
use kiln_registry::{Client, PushOptions};
use kiln_store::{Descriptor, Store};
use kiln_testsupport::{base_images, FileServer, Proxy, Registry};
use std::path::Path;

mod common;

const FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Writes a Windows-style image (a foreign base layer with `urls`, then an
/// ordinary layer) into `dir/blobs/sha256`, without the foreign bytes.
fn windows_image(dir: &Path, foreign: &Descriptor) -> Descriptor {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let layer = std::fs::read(
        base_images()
            .busybox
            .join("blobs/sha256")
            .join(busybox_layer().strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let layer = Descriptor::new(
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        put(&layer),
        layer.len() as u64,
    );
    let config = serde_json::json!({
        "architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1234",
        "rootfs": {"type": "layers", "diff_ids": [foreign.digest, layer.digest]},
    })
    .to_string();
    let config = Descriptor::new(
        "application/vnd.docker.container.image.v1+json",
        put(config.as_bytes()),
        config.len() as u64,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": config, "layers": [foreign, layer],
    })
    .to_string();
    Descriptor::new(
        DOCKER_MANIFEST,
        put(manifest.as_bytes()),
        manifest.len() as u64,
    )
}

fn in_registry(registry: &Registry, digest: &Digest) -> bool {
    let hex = digest.hex();
    registry
        .dir()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
        .exists()
}

#[test]
fn foreign_layers_are_recorded_and_fetched_from_their_url_on_demand() {
    let bytes = b"the bytes of a Windows base layer".to_vec();
    let server = FileServer::start(vec![("/base.tar.gz".into(), bytes.clone())]);
    let mut foreign = Descriptor::new(FOREIGN, Digest::of(&bytes), bytes.len() as u64);
    foreign.extra.insert(
        "urls".into(),
        serde_json::json!([server.url("/base.tar.gz")]),
    );
    let src = tempfile::tempdir().unwrap();
    let manifest = windows_image(src.path(), &foreign);

    let registry = Registry::start();
    let proxy = Proxy::start(registry.port(), Vec::new());
    let client = Client::new(options(&[proxy.host()]));
    let reference = format!("{}/win:ltsc2019", proxy.host()).parse().unwrap();
    let pushed = rt()
        .block_on(client.push(
            &kiln_oci::Layout::create(src.path()).unwrap(),
            &manifest,
            &reference,
            &PushOptions::default(),
        ))
        .unwrap();
    assert_eq!(pushed.uploaded.len(), 2, "{pushed:?}");
    assert!(!pushed.uploaded.contains(&foreign.digest));
    assert!(!in_registry(&registry, &foreign.digest));

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.manifest.digest, manifest.digest);
    assert_eq!(pulled.foreign, vec![foreign.clone()]);
    assert_eq!(pulled.fetched.len(), 2);
    assert!(!store.has_blob(&foreign.digest));
    assert!(server.requests().is_empty());
    let blob_get = format!("GET /v2/win/blobs/{} HTTP/1.1", foreign.digest);
    assert!(!proxy.requests().contains(&blob_get));
    assert_eq!(
        store
            .resolve(&reference.to_string())
            .unwrap()
            .descriptor
            .digest,
        manifest.digest
    );
    let report = store.fsck().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.notes,
        vec![format!(
            "image {reference}: foreign layer {} is not present (it is fetched from {} when needed)",
            foreign.digest,
            server.url("/base.tar.gz")
        )]
    );

    // Asked for, it comes from the URL once the registry says 404.
    let fetched = rt()
        .block_on(client.fetch_blob(&store, &reference, &foreign))
        .unwrap();
    assert!(fetched);
    assert_eq!(store.read_blob(&foreign.digest).unwrap(), bytes);
    assert_eq!(server.requests(), vec!["GET /base.tar.gz HTTP/1.1"]);
    assert_eq!(
        proxy.requests().iter().filter(|r| **r == blob_get).count(),
        1
    );
    assert!(store.fsck().unwrap().notes.is_empty());
    let again = rt()
        .block_on(client.fetch_blob(&store, &reference, &foreign))
        .unwrap();
    assert!(!again);
    assert_eq!(server.requests().len(), 1);

    // Pushing from the store, which now has the bytes, still leaves them out.
    let copy = format!("{}/win-copy:1", proxy.host()).parse().unwrap();
    let pushed = rt()
        .block_on(client.push(&store, &manifest, &copy, &PushOptions::default()))
        .unwrap();
    assert_eq!(pushed.uploaded.len(), 2, "{pushed:?}");
    assert!(!in_registry(&registry, &foreign.digest));
}
