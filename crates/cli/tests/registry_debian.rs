//! `kiln pull` of a real Debian 12 image: made by mmdebstrap (see
//! `scripts/make-base-images --debian`), pushed to a real docker-registry
//! with skopeo, pulled by kiln into a fresh store and read back from there.

use flate2::read::GzDecoder;
use kiln_oci::{Digest, DigestWriter};
use kiln_store::Store;
use kiln_testsupport::{debian_image, BaseImages, Registry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;

/// Files of the layer the test reads, by path without the leading `./`.
const WANTED: [&str; 3] = ["etc/debian_version", "usr/lib/os-release", "usr/bin/bash"];

fn json_blob(store: &Store, digest: &str) -> Value {
    serde_json::from_slice(&store.read_blob(&digest.parse().unwrap()).unwrap()).unwrap()
}

/// The sha256 of the uncompressed layer and the contents of the WANTED
/// entries it holds, each read from the store's blob.
fn read_layer(store: &Store, digest: &Digest) -> (Digest, BTreeMap<String, Vec<u8>>) {
    let mut hashed = DigestWriter::new(io::sink());
    io::copy(
        &mut GzDecoder::new(store.open_blob(digest).unwrap()),
        &mut hashed,
    )
    .unwrap();
    let (diff_id, _, _) = hashed.finish();

    let mut found = BTreeMap::new();
    let mut archive = tar::Archive::new(GzDecoder::new(store.open_blob(digest).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let path = path.strip_prefix(".").unwrap_or(&path);
        if let Some(name) = WANTED.iter().find(|w| Path::new(w) == path) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            found.insert(name.to_string(), bytes);
        }
    }
    (diff_id, found)
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn pull_debian_bookworm_and_read_it_back() {
    let debian = debian_image();
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&debian.layout, &host, "library/debian:12");
    let index: Value =
        serde_json::from_slice(&std::fs::read(debian.layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();

    let home = tempfile::tempdir().unwrap();
    let reference = format!("{host}/library/debian:12");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["pull", "--insecure-registry", &host, &reference])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join("docker"))
        .env("KILN_ROOT", home.path().join("store"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Pulled {reference}\nDigest: {manifest_digest}\n")
    );

    let store = Store::open(home.path().join("store")).unwrap();
    let resolved = store.resolve(&reference).unwrap();
    assert_eq!(resolved.descriptor.digest.to_string(), manifest_digest);
    let manifest = json_blob(&store, manifest_digest);
    let config = json_blob(&store, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], oci_arch());
    assert_eq!(
        config["config"],
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["bash"],
        })
    );
    assert_eq!(config["rootfs"]["diff_ids"], json!([debian.diff_id]));

    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_digest: Digest = layers[0]["digest"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        std::fs::metadata(store.blob_path(&layer_digest))
            .unwrap()
            .len(),
        layers[0]["size"].as_u64().unwrap()
    );
    let (diff_id, files) = read_layer(&store, &layer_digest);
    // The pulled layer unpacks to exactly the tar mmdebstrap wrote.
    assert_eq!(diff_id.to_string(), debian.diff_id);

    let version = String::from_utf8(files["etc/debian_version"].clone()).unwrap();
    let minor = version.trim().strip_prefix("12.");
    assert!(
        minor.is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit())),
        "/etc/debian_version is {version:?}, expected 12.N"
    );
    let os_release = String::from_utf8(files["usr/lib/os-release"].clone()).unwrap();
    assert!(
        os_release.lines().any(|l| l == "VERSION_CODENAME=bookworm"),
        "{os_release}"
    );
    // Cmd ["bash"] finds a real program on the image's PATH.
    assert_eq!(&files["usr/bin/bash"][..4], b"\x7fELF");
}
