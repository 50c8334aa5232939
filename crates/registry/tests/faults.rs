//! Registries that refuse, stall, trickle, cut streams, ignore `Range`,
//! serve blobs of the wrong size or state wrong digests: each failure names
//! the registry, repository and reference and says what to do, and nothing
//! half-checked reaches the store.
// Linux only: these start a docker-registry (and proxies) as processes.
#![cfg(unix)]

use common::{busybox_layer, layout_manifest, options, push_busybox, rt, tmp_is_empty};
use kiln_oci::reference::Reference;
use kiln_registry::{Client, ClientOptions, Error, ErrorKind};
use kiln_store::{media_type, Descriptor, Store};
use kiln_testsupport::{base_images, BaseImages, Fault, Proxy, Registry};
use std::time::{Duration, Instant};

mod common;

#[test]
fn forbidden_says_the_account_lacks_access() {
    let registry = Registry::start();
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "busybox:1",
    );
    let proxy = Proxy::start(
        registry.port(),
        vec![
            Fault::Status {
                path: "/manifests/".into(),
                code: 403,
                times: 1,
            },
            Fault::Status {
                path: "/blobs/uploads/".into(),
                code: 403,
                times: 1,
            },
        ],
    );
    let client = Client::new(options(&[proxy.host()]));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Forbidden { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/busybox:1: access denied (403 Forbidden); the account you are logged in \
             with may not read or write this repository",
            proxy.host()
        )
    );
    // Not retried: a 403 does not go away by asking again.
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.contains("/manifests/1 "))
        .count();
    assert_eq!(gets, 1);

    let mut single = options(&[proxy.host()]);
    single.concurrency = 1;
    let layout = &base_images().busybox;
    let dest = format!("{}/other:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(single).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &common::layout_manifest(layout),
            &dest,
            &Default::default(),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("pushing {}/other@sha256:", proxy.host())),
        "{text}"
    );
    assert!(text.ends_with(": access denied (403 Forbidden); the account you are logged in with may not read or write this repository"), "{text}");
}

#[test]
fn a_stalled_registry_times_out_with_advice() {
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Stall {
            path: "/manifests/".into(),
            times: 10,
        }],
    );
    let mut opts = options(&[proxy.host()]);
    opts.timeout = Duration::from_millis(300);
    opts.retries = 1;
    let client = Client::new(opts);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let started = Instant::now();
    let err = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind, ErrorKind::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/busybox:1: the registry did not answer within 300ms (2 attempts); check \
             that it is up and the network, or allow longer with `--timeout SECONDS`",
            proxy.host()
        )
    );
}

#[test]
fn a_server_ignoring_range_is_read_again_from_the_start() {
    let registry = Registry::start();
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "busybox:1",
    );
    let layer = busybox_layer();
    let proxy = Proxy::start(
        registry.port(),
        vec![
            Fault::DropBlob {
                digest: layer.clone(),
                after: 100_000,
                times: 1,
            },
            Fault::IgnoreRange(layer.clone()),
        ],
    );
    let client = Client::new(options(&[proxy.host()]));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.fetched.len(), 2);
    let digest = layer.parse().unwrap();
    let original = std::fs::read(
        base_images()
            .busybox
            .join("blobs/sha256")
            .join(layer.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), original);
    let gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains(&format!("/blobs/{layer}")))
        .collect();
    assert_eq!(
        gets,
        vec![
            format!("GET /v2/busybox/blobs/{layer} HTTP/1.1"),
            format!("GET /v2/busybox/blobs/{layer} HTTP/1.1 [range: bytes=100000-]"),
        ]
    );
    assert!(tmp_is_empty(&store));
}

/// How a wrong `Docker-Content-Digest` error ends.
const TAIL: &str = "; the registry or something between it and kiln is not handling the content \
                    faithfully, so kiln stops here; nothing is stored or tagged from that answer, \
                    find out what the registry or a proxy in front of it does wrong";

/// The busybox layer's bytes.
fn layer_bytes(layer: &str) -> Vec<u8> {
    std::fs::read(
        base_images()
            .busybox
            .join("blobs/sha256")
            .join(layer.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

/// A registry holding busybox:1, and a proxy in front of it with `faults`.
fn busybox_behind(faults: Vec<Fault>) -> (Registry, Proxy) {
    let registry = Registry::start();
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "busybox:1",
    );
    let proxy = Proxy::start(registry.port(), faults);
    (registry, proxy)
}

/// Pulls busybox:1 through `proxy` into a new store, expecting failure;
/// checks that neither the layer, the tag nor a temporary file was kept.
fn failed_pull(proxy: &Proxy, opts: ClientOptions, layer: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference: Reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(opts).pull(&store, &reference, None))
        .unwrap_err();
    assert!(!store.has_blob(&layer.parse().unwrap()), "{err}");
    assert!(store.resolve(&reference.to_string()).is_err(), "{err}");
    assert!(tmp_is_empty(&store), "{err}");
    err
}

#[test]
fn a_short_blob_is_a_size_mismatch_naming_both_sizes() {
    let layer = busybox_layer();
    let bytes = layer_bytes(&layer);
    let (_registry, proxy) = busybox_behind(vec![Fault::ServeBlob {
        digest: layer.clone(),
        body: bytes[..1000].to_vec(),
    }]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    assert!(
        matches!(err.kind, ErrorKind::SizeMismatch { .. }),
        "{err:?}"
    );
    let host = proxy.host();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/busybox@{layer}: blob {layer} at http://{host}/v2/busybox/blobs/{layer} \
             is 1000 bytes, but the manifest gives its size as {}; the registry holds other bytes \
             under that digest, or something between it and kiln altered them; nothing was stored",
            bytes.len()
        )
    );
    // A complete answer of the wrong size is not resumed as if it were cut.
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.contains(&format!("/blobs/{layer}")))
        .count();
    assert_eq!(gets, 1, "{:#?}", proxy.requests());
}

#[test]
fn an_over_long_blob_is_a_size_mismatch() {
    let layer = busybox_layer();
    let mut body = layer_bytes(&layer);
    let size = body.len();
    body.extend_from_slice(&[0; 4096]);
    let (_registry, proxy) = busybox_behind(vec![Fault::ServeBlob {
        digest: layer.clone(),
        body,
    }]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    assert!(
        matches!(err.kind, ErrorKind::SizeMismatch { expected, .. } if expected == size as u64),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            " is {} bytes, but the manifest gives its size as {size};",
            size + 4096
        )),
        "{text}"
    );
}

#[test]
fn a_416_to_a_resumed_download_says_the_blob_is_the_wrong_size() {
    let layer = busybox_layer();
    let bytes = layer_bytes(&layer);
    let (_registry, proxy) = busybox_behind(vec![
        Fault::DropBlob {
            digest: layer.clone(),
            after: 50_000,
            times: 1,
        },
        Fault::ServeBlob {
            digest: layer.clone(),
            body: bytes[..40_000].to_vec(),
        },
    ]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    let text = err.to_string();
    // Not the status (a port such as 41627 may hold the digits).
    assert!(
        !text.contains(" 416") && !text.contains("(416") && !text.contains("Satisfiable"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "blob {layer} at http://{}/v2/busybox/blobs/{layer} is 40000 bytes, but the manifest \
             gives its size as {};",
            proxy.host(),
            bytes.len()
        )),
        "{text}"
    );
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.ends_with("[range: bytes=50000-]")));
}

#[test]
fn a_stream_cut_every_time_names_the_full_url_and_is_not_called_unreachable() {
    let layer = busybox_layer();
    let size = layer_bytes(&layer).len();
    let (_registry, proxy) = busybox_behind(vec![Fault::DropBlob {
        digest: layer.clone(),
        after: 100_000,
        times: 10,
    }]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    assert!(
        matches!(err.kind, ErrorKind::Interrupted { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {host}/busybox@{layer}: the connection to http://{host}/v2/busybox/blobs/{layer} \
             broke 3 times, the last after 300000 of {size} bytes (",
            host = proxy.host()
        )),
        "{text}"
    );
    assert!(text.ends_with("); the registry or something between it and kiln is closing connections; try again later"), "{text}");
}

#[test]
fn a_stated_manifest_digest_that_differs_from_the_body_is_refused() {
    let layer = busybox_layer();
    let wrong = kiln_oci::Digest::of(b"something else");
    let (_registry, proxy) = busybox_behind(vec![Fault::SetHeader {
        method: "GET".into(),
        path: "/manifests/".into(),
        name: "Docker-Content-Digest".into(),
        value: wrong.to_string(),
    }]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    assert!(
        matches!(err.kind, ErrorKind::StatedDigestMismatch { .. }),
        "{err:?}"
    );
    let host = proxy.host();
    let actual = layout_manifest(&base_images().busybox).digest;
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/busybox:1: the registry states (Docker-Content-Digest) that the \
             manifest at http://{host}/v2/busybox/manifests/1 is {wrong}, but it is {actual}{TAIL}"
        )
    );
    // The blobs are never fetched for a manifest that is refused.
    assert!(!proxy.requests().iter().any(|r| r.contains("/blobs/")));
}

#[test]
fn a_stated_blob_digest_that_differs_from_the_descriptor_is_refused() {
    let layer = busybox_layer();
    let wrong = kiln_oci::Digest::of(b"something else");
    let (_registry, proxy) = busybox_behind(vec![Fault::SetHeader {
        method: "GET".into(),
        path: format!("/blobs/{layer}"),
        name: "Docker-Content-Digest".into(),
        value: wrong.to_string(),
    }]);
    let err = failed_pull(&proxy, options(&[proxy.host()]), &layer);
    let host = proxy.host();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/busybox@{layer}: the registry states (Docker-Content-Digest) that \
             blob {layer} at http://{host}/v2/busybox/blobs/{layer} is {wrong}, but it is {layer}{TAIL}"
        )
    );
}

/// Pushes busybox through a proxy with `fault`, expecting failure.
fn failed_push(registry: &Registry, fault: Fault, repo_tag: &str) -> (Error, String) {
    let proxy = Proxy::start(registry.port(), vec![fault]);
    let layout = &base_images().busybox;
    let dest = format!("{}/{repo_tag}", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(options(&[proxy.host()])).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &layout_manifest(layout),
            &dest,
            &Default::default(),
        ))
        .unwrap_err();
    (err, proxy.host())
}

#[test]
fn a_push_answered_with_a_wrong_stated_digest_is_refused() {
    let registry = Registry::start();
    let wrong = kiln_oci::Digest::of(b"something else");
    let layer = busybox_layer();
    let manifest = layout_manifest(&base_images().busybox).digest;
    let header = |method: &str, path: &str| Fault::SetHeader {
        method: method.into(),
        path: path.into(),
        name: "Docker-Content-Digest".into(),
        value: wrong.to_string(),
    };

    let (err, host) = failed_push(&registry, header("PUT", "/manifests/"), "a:1");
    assert!(
        matches!(err.kind, ErrorKind::StatedDigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "pushing {host}/a:1: the registry states (Docker-Content-Digest) that the manifest \
             at http://{host}/v2/a/manifests/1 is {wrong}, but it is {manifest}{TAIL}"
        )
    );

    let (err, host) = failed_push(&registry, header("PUT", "/blobs/uploads/"), "b:1");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("pushing {host}/b@sha256:")),
        "{text}"
    );
    assert!(
        text.contains("states (Docker-Content-Digest) that blob sha256:")
            && text.contains(&format!(" at http://{host}/v2/b/blobs/uploads/"))
            // The upload URL's query holds the registry's upload state.
            && !text.contains("_state=")
            && !text.contains("?digest=")
            && text.contains(&format!(" is {wrong}, but it is sha256:"))
            && text.ends_with(TAIL),
        "{text}"
    );

    // A mount's answer is checked too.
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "src:1",
    );
    let proxy = Proxy::start(registry.port(), vec![header("POST", "mount=")]);
    let layout = &base_images().busybox;
    let dest = format!("{}/d:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(options(&[proxy.host()])).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &layout_manifest(layout),
            &dest,
            &kiln_registry::PushOptions {
                mount_from: vec!["src".into()],
                ..kiln_registry::PushOptions::default()
            },
        ))
        .unwrap_err();
    let text = err.to_string();
    let host = proxy.host();
    assert!(
        text.contains(&format!(
            " at http://{host}/v2/d/blobs/uploads/ is {wrong}, but it is sha256:"
        )) && text.ends_with(TAIL),
        "{text}"
    );

    // The registry has the blob already: its HEAD answer is checked too.
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "c:1",
    );
    let (err, host) = failed_push(&registry, header("HEAD", &format!("/blobs/{layer}")), "c:2");
    assert_eq!(
        err.to_string(),
        format!(
            "pushing {host}/c@{layer}: the registry states (Docker-Content-Digest) that blob \
             {layer} at http://{host}/v2/c/blobs/{layer} is {wrong}, but it is {layer}{TAIL}"
        )
    );
}

#[test]
fn a_body_that_stops_arriving_fails_after_the_stall_timeout() {
    let layer = busybox_layer();
    let (_registry, proxy) = busybox_behind(vec![Fault::StallBody {
        path: format!("/blobs/{layer}"),
        after: 1000,
        times: 10,
    }]);
    let mut opts = options(&[proxy.host()]);
    opts.timeout = Duration::from_secs(1);
    opts.retries = 1;
    let started = Instant::now();
    let err = failed_pull(&proxy, opts, &layer);
    // Two stalls of a second each, and the rest is quick.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind, ErrorKind::Stalled { attempts: 2, .. }),
        "{err:?}"
    );
    let host = proxy.host();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {host}/busybox@{layer}: http://{host}/v2/busybox/blobs/{layer} sent nothing \
             for 1s after 2000 bytes (2 attempts); the registry or the network is stuck; check \
             them, or allow longer pauses with `--timeout SECONDS`"
        )
    );
}

#[test]
fn a_slow_but_steady_transfer_outlasts_the_timeout() {
    let layer = busybox_layer();
    let bytes = layer_bytes(&layer);
    let (_registry, proxy) = busybox_behind(vec![Fault::Trickle {
        path: format!("/blobs/{layer}"),
        chunk: bytes.len() / 8 + 1,
        every: Duration::from_millis(300),
    }]);
    let mut opts = options(&[proxy.host()]);
    opts.timeout = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let started = Instant::now();
    rt().block_on(Client::new(opts).pull(&store, &reference, None))
        .unwrap();
    // Eight pauses of 0.3 s: well past the 1 s timeout in total.
    assert!(started.elapsed() >= Duration::from_millis(2400));
    assert_eq!(store.read_blob(&layer.parse().unwrap()).unwrap(), bytes);
}

/// An image in an OCI layout under `dir` whose one layer has `size` bytes.
fn image_with_layer(dir: &std::path::Path, size: usize) -> (kiln_oci::Layout, Descriptor) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write = |bytes: &[u8], media_type: &str| {
        let digest = kiln_oci::Digest::of(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        Descriptor::new(media_type, digest, bytes.len() as u64)
    };
    let mut state = 1u32;
    let layer: Vec<u8> = (0..size)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let layer = write(&layer, media_type::OCI_LAYER);
    let config = write(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        media_type::OCI_CONFIG,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    });
    let manifest = write(
        &serde_json::to_vec(&manifest).unwrap(),
        media_type::OCI_MANIFEST,
    );
    (kiln_oci::Layout::create(dir).unwrap(), manifest)
}

#[test]
fn a_slow_but_steady_upload_outlasts_the_timeout() {
    // 12 MB at 3 MB/s: four seconds, past the 3 s timeout, and more than
    // the socket buffers can swallow at once, so the body is seen moving.
    const SIZE: usize = 12 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (blobs, manifest) = image_with_layer(dir.path(), SIZE);
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::TrickleUpload {
            path: "/blobs/uploads/".into(),
            chunk: 300 << 10,
            every: Duration::from_millis(100),
        }],
    );
    let mut opts = options(&[proxy.host()]);
    opts.timeout = Duration::from_secs(3);
    opts.retries = 0;
    let dest = format!("{}/big:1", proxy.host()).parse().unwrap();
    let started = Instant::now();
    let pushed = rt()
        .block_on(Client::new(opts).push(&blobs, &manifest, &dest, &Default::default()))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(pushed.uploaded.len(), 2);
    assert_eq!(pushed.digest, manifest.digest);
}

#[test]
fn an_upload_that_gets_no_answer_fails_after_the_stall_timeout() {
    let registry = Registry::start();
    // The proxy reads the whole body of the final PUT, then never answers.
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Stall {
            path: "_state=".into(),
            times: 10,
        }],
    );
    let mut opts = options(&[proxy.host()]);
    opts.timeout = Duration::from_secs(1);
    opts.retries = 1;
    opts.concurrency = 1;
    let layout = &base_images().busybox;
    let dest = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let started = Instant::now();
    let err = rt()
        .block_on(Client::new(opts).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &layout_manifest(layout),
            &dest,
            &Default::default(),
        ))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind, ErrorKind::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with(": the registry did not answer within 1s (2 attempts); check that it is up and the network, or allow longer with `--timeout SECONDS`"),
        "{err}"
    );
}

#[test]
fn a_connection_closed_before_the_answer_is_not_called_unreachable() {
    let layer = busybox_layer();
    let (_registry, proxy) = busybox_behind(vec![Fault::Hangup {
        path: "/manifests/".into(),
        times: 10,
    }]);
    let mut opts = options(&[proxy.host()]);
    opts.retries = 1;
    let err = failed_pull(&proxy, opts, &layer);
    assert!(
        matches!(err.kind, ErrorKind::Dropped { attempts: 2, .. }),
        "{err:?}"
    );
    let host = proxy.host();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {host}/busybox:1: the connection to http://{host}/v2/busybox/manifests/1 broke \
             before an answer came, 2 times ("
        )),
        "{text}"
    );
    assert!(
        text.ends_with("); the registry or something between it and kiln is closing connections; try again later"),
        "{text}"
    );
}

#[test]
fn errors_name_upload_urls_without_their_query() {
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Hangup {
            path: "_state=".into(),
            times: 10,
        }],
    );
    let mut opts = options(&[proxy.host()]);
    opts.retries = 1;
    opts.concurrency = 1;
    let layout = &base_images().busybox;
    let dest = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(opts).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &layout_manifest(layout),
            &dest,
            &Default::default(),
        ))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Dropped { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "the connection to http://{}/v2/busybox/blobs/uploads/",
            proxy.host()
        )),
        "{text}"
    );
    // The query holds the registry's upload state: noise at best.
    assert!(!text.contains("_state="), "{text}");
    assert!(!text.contains("digest=sha256"), "{text}");
}

#[test]
fn a_platform_manifest_of_another_size_than_the_index_says_is_refused() {
    let layout = &base_images().platforms;
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let top = layout_manifest(layout).digest.to_string();
    let index: serde_json::Value = serde_json::from_slice(&blob(&top)).unwrap();
    let entry = &index["manifests"][0];
    let child = entry["digest"].as_str().unwrap().to_string();
    let size = entry["size"].as_u64().unwrap();
    let platform = format!(
        "{}/{}",
        entry["platform"]["os"].as_str().unwrap(),
        entry["platform"]["architecture"].as_str().unwrap()
    );
    let mut body = blob(&child);
    body.extend_from_slice(&[b' '; 100]);
    let registry = Registry::start();
    BaseImages::skopeo_push(layout, &registry.host(), "multi:1");
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::ServeBlob {
            digest: child.clone(),
            body,
        }],
    );
    let client = Client::new(options(&[proxy.host()]));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference: Reference = format!("{}/multi:1", proxy.host()).parse().unwrap();
    let host = proxy.host();
    let expected = format!(
        "pulling {host}/multi@{child}: the manifest at http://{host}/v2/multi/manifests/{child} is \
         {} bytes, but the index gives its size as {size}; the registry holds other bytes under \
         that digest, or something between it and kiln altered them; nothing was stored",
        size + 100
    );
    let err = rt()
        .block_on(client.pull(&store, &reference, Some(&platform.parse().unwrap())))
        .unwrap_err();
    assert_eq!(err.to_string(), expected);
    let err = rt()
        .block_on(client.pull_all(&store, &reference))
        .unwrap_err();
    assert_eq!(err.to_string(), expected);
    assert!(store.resolve(&reference.to_string()).is_err());
    assert!(tmp_is_empty(&store));
}

#[test]
fn a_token_server_that_hangs_up_is_not_called_unreachable_and_is_retried() {
    let registry = Registry::start();
    push_busybox(
        &Client::new(options(&[registry.host()])),
        &registry.host(),
        "busybox:1",
    );
    let token_server = Proxy::start(
        registry.port(),
        vec![Fault::Hangup {
            path: "/token".into(),
            times: 10,
        }],
    );
    let realm = format!("http://{}/token", token_server.host());
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Challenge {
            path: "/manifests/".into(),
            value: format!(r#"Bearer realm="{realm}",service="test""#),
            times: 1,
        }],
    );
    let err = failed_pull(&proxy, options(&[proxy.host()]), &busybox_layer());
    assert!(matches!(err.kind, ErrorKind::Dropped { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {}/busybox:1: the connection to {realm} broke before an answer came, 3 times \
             (fetching a token: ",
            proxy.host()
        )),
        "{text}"
    );
    // The token request's query names the account and scopes.
    assert!(!text.contains("scope="), "{text}");
}

#[test]
fn a_manifest_cut_part_way_is_fetched_again() {
    let layout = &base_images().platforms;
    let top = layout_manifest(layout).digest.to_string();
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(top.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let entry = &index["manifests"][0];
    let child = entry["digest"].as_str().unwrap().to_string();
    let platform = format!(
        "{}/{}",
        entry["platform"]["os"].as_str().unwrap(),
        entry["platform"]["architecture"].as_str().unwrap()
    );
    let registry = Registry::start();
    BaseImages::skopeo_push(layout, &registry.host(), "multi:1");
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::DropBlob {
            digest: child.clone(),
            after: 100,
            times: 1,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference: Reference = format!("{}/multi:1", proxy.host()).parse().unwrap();
    let pulled = rt()
        .block_on(Client::new(options(&[proxy.host()])).pull(
            &store,
            &reference,
            Some(&platform.parse().unwrap()),
        ))
        .unwrap();
    assert_eq!(pulled.manifest.digest.to_string(), child);
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.contains(&format!("/manifests/{child}")))
        .count();
    assert_eq!(gets, 2, "{:#?}", proxy.requests());
}

#[test]
fn an_upload_cut_part_way_starts_again_in_a_new_upload() {
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::CutUpload {
            path: "/blobs/uploads/".into(),
            after: 100_000,
            times: 2,
        }],
    );
    let layout = &base_images().busybox;
    let manifest = layout_manifest(layout);
    let dest = format!("{}/busybox:cut", proxy.host()).parse().unwrap();
    let pushed = rt()
        .block_on(Client::new(options(&[proxy.host()])).push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &manifest,
            &dest,
            &Default::default(),
        ))
        .unwrap();
    assert_eq!(pushed.digest, manifest.digest);
    // The registry holds the whole image: skopeo reads every blob back.
    let out = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--quiet"])
        .arg(format!("docker://{}/busybox:cut", registry.host()))
        .arg(format!("dir:{}", out.path().display()))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    // Each cut upload was started again with a POST of its own.
    let posts = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/blobs/uploads/"))
        .count();
    assert_eq!(posts, 2 + 2, "{:#?}", proxy.requests());
}
