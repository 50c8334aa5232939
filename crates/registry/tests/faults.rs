//! Registries that refuse, stall, or ignore `Range`: each failure names
//! the registry, repository and reference and says what to do.

use common::{busybox_layer, options, push_busybox, rt, tmp_is_empty};
use kiln_registry::{Client, ErrorKind};
use kiln_store::Store;
use kiln_testsupport::{base_images, Fault, Proxy, Registry};
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
            &kiln_registry::BlobDir::of_layout(layout),
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
