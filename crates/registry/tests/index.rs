//! Multi-platform images: every platform pulled, and the index pushed
//! again byte for byte.
// Linux only: these start a docker-registry (and proxies) as processes.
#![cfg(unix)]

use common::{layout_manifest, options, rt};
use kiln_registry::{Client, PushOptions};
use kiln_store::Store;
use kiln_testsupport::{base_images, BaseImages, Registry};

mod common;

#[test]
fn pull_all_platforms_then_push_the_same_index() {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().platforms, &host, "multi:latest");
    let original = layout_manifest(&base_images().platforms);
    let original_bytes = std::fs::read(
        base_images()
            .platforms
            .join("blobs/sha256")
            .join(original.digest.hex()),
    )
    .unwrap();
    let client = Client::new(options(std::slice::from_ref(&host)));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{host}/multi:latest").parse().unwrap();
    let pulled = rt().block_on(client.pull_all(&store, &reference)).unwrap();
    assert_eq!(pulled.top.digest, original.digest);
    let platforms: Vec<String> = pulled
        .manifests
        .iter()
        .map(|m| m.platform().unwrap().to_string())
        .collect();
    assert_eq!(
        platforms,
        [
            "linux/amd64",
            "linux/arm64/v8",
            "windows(10.0.17763.1234)/amd64",
            "windows(10.0.20348.2113)/amd64"
        ]
    );
    // A config and a layer for each platform.
    assert_eq!((pulled.fetched.len(), pulled.present.len()), (8, 0));
    for m in &pulled.manifests {
        assert!(store.has_blob(&m.digest));
    }
    assert_eq!(
        store
            .resolve(&reference.to_string())
            .unwrap()
            .descriptor
            .digest,
        original.digest
    );
    assert!(store.fsck().unwrap().problems.is_empty());
    let again = rt().block_on(client.pull_all(&store, &reference)).unwrap();
    assert_eq!((again.fetched.len(), again.present.len()), (0, 8));

    let copy = format!("{host}/copy:all").parse().unwrap();
    let top = store.resolve(&reference.to_string()).unwrap().descriptor;
    let pushed = rt()
        .block_on(client.push(&store, &top, &copy, &PushOptions::default()))
        .unwrap();
    assert_eq!(pushed.digest, original.digest);
    assert_eq!(pushed.uploaded.len(), 8);
    let (desc, bytes) = rt().block_on(client.fetch_manifest(&copy)).unwrap();
    assert_eq!(desc.digest, original.digest);
    assert_eq!(bytes, original_bytes);

    // An index pulled for one platform cannot be pushed whole.
    let one_dir = tempfile::tempdir().unwrap();
    let one = Store::open(one_dir.path()).unwrap();
    let arm = "linux/arm64".parse().unwrap();
    let pulled = rt()
        .block_on(client.pull(&one, &reference, Some(&arm)))
        .unwrap();
    let index = pulled.index.unwrap();
    // A pull stores no index; a layout with one platform of one does.
    one.put_bytes(&original_bytes).unwrap();
    one.tag(&reference, &index).unwrap();
    let err = rt()
        .block_on(client.push(&one, &index, &copy, &PushOptions::default()))
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "pushing {host}/copy:all: the image is an index, and its manifest sha256:"
        )),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(
            " (linux/amd64) is not here: only some of its platforms were pulled; pull it again \
             with `kiln pull --all-platforms` to push every platform"
        ),
        "{err}"
    );
}
