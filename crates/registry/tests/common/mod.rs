//! Helpers shared by the registry tests.
#![allow(dead_code)] // Each test binary uses a different subset.

use kiln_registry::{Client, ClientOptions, PushOptions};
use kiln_store::Descriptor;
use kiln_testsupport::base_images;
use std::path::Path;
use std::time::Duration;

/// Options with no stored credentials or certs.d, quick retries, and
/// `insecure` as the insecure registries.
pub fn options(insecure: &[String]) -> ClientOptions {
    let mut o = ClientOptions::new(kiln_registry::AuthFiles {
        read: Vec::new(),
        write: "/nonexistent/kiln-test/config.json".into(),
    });
    o.insecure_registries = insecure.to_vec();
    o.cert_dirs.clear();
    o.backoff = Duration::from_millis(10);
    o.retries = 2;
    o.timeout = Duration::from_secs(5);
    o
}

/// The first entry of an OCI layout's index.
pub fn layout_manifest(layout: &Path) -> Descriptor {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    serde_json::from_value(index["manifests"][0].clone()).unwrap()
}

/// A single-threaded runtime, as the CLI uses.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Pushes the busybox base image to `host/repo_tag`.
pub fn push_busybox(client: &Client, host: &str, repo_tag: &str) -> kiln_registry::Pushed {
    let layout = &base_images().busybox;
    let dest = format!("{host}/{repo_tag}").parse().unwrap();
    rt().block_on(client.push(
        &kiln_oci::Layout::open(layout).unwrap(),
        &layout_manifest(layout),
        &dest,
        &PushOptions::default(),
    ))
    .unwrap()
}

/// The digest of busybox's only layer.
pub fn busybox_layer() -> String {
    let layout = &base_images().busybox;
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(layout_manifest(layout).digest.hex()),
        )
        .unwrap(),
    )
    .unwrap();
    manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// True when the store's tmp/ holds nothing.
pub fn tmp_is_empty(store: &kiln_store::Store) -> bool {
    std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none()
}
