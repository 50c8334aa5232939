//! Foreign layers (`urls`, as Windows base layers have): by default fetched
//! on pull and pushed as ordinary layers; with `keep_foreign_layers`
//! passed through without their bytes, fetched only when asked. Their URLs
//! are served by a local HTTP server, which records what it was asked for.
// Linux only: these start a docker-registry (and proxies) as processes.
#![cfg(unix)]

use common::{busybox_layer, options, rt};
use kiln_oci::Digest;
use kiln_registry::{Client, ClientOptions, ErrorKind, PushOptions};
use kiln_store::{Descriptor, Store};
use kiln_testsupport::{base_images, FileServer, Proxy, Registry, RegistryOptions};
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

/// A foreign layer descriptor for `bytes` with `urls`.
fn foreign_layer(bytes: &[u8], urls: &[String]) -> Descriptor {
    let mut foreign = Descriptor::new(FOREIGN, Digest::of(bytes), bytes.len() as u64);
    foreign.extra.insert("urls".into(), serde_json::json!(urls));
    foreign
}

/// `host:port` of a URL on 127.0.0.1.
fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// The image's manifest as the registry holds it, parsed.
fn remote_manifest(client: &Client, reference: &str) -> kiln_oci::Manifest {
    let (_, bytes) = rt()
        .block_on(client.fetch_manifest(&reference.parse().unwrap()))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn kept_foreign_layers_pass_through_and_are_fetched_from_their_url_on_demand() {
    let bytes = b"the bytes of a Windows base layer".to_vec();
    let server = FileServer::start(vec![("/base.tar.gz".into(), bytes.clone())]);
    let foreign = foreign_layer(&bytes, &[server.url("/base.tar.gz")]);
    let src = tempfile::tempdir().unwrap();
    let manifest = windows_image(src.path(), &foreign);

    let registry = Registry::start();
    let proxy = Proxy::start(registry.port(), Vec::new());
    let mut opts = options(&[proxy.host(), host_of(&server.url(""))]);
    opts.keep_foreign_layers = true;
    let client = Client::new(opts);
    let reference = format!("{}/win:ltsc2019", proxy.host()).parse().unwrap();
    let pushed = rt()
        .block_on(client.push(
            &kiln_oci::Layout::create(src.path()).unwrap(),
            &manifest,
            &reference,
            &PushOptions::default(),
        ))
        .unwrap();
    assert_eq!(pushed.digest, manifest.digest);
    assert_eq!(pushed.uploaded.len(), 2, "{pushed:?}");
    assert!(!pushed.uploaded.contains(&foreign.digest));
    assert!(!in_registry(&registry, &foreign.digest));
    assert!(!proxy
        .requests()
        .iter()
        .any(|r| r.contains(&foreign.digest.to_string())));

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

    // Pushing from the store, which now has the bytes, still leaves them
    // out, and the manifest goes byte for byte.
    let copy = format!("{}/win-copy:1", proxy.host()).parse().unwrap();
    let pushed = rt()
        .block_on(client.push(&store, &manifest, &copy, &PushOptions::default()))
        .unwrap();
    assert_eq!(pushed.digest, manifest.digest);
    assert_eq!(pushed.uploaded.len(), 2, "{pushed:?}");
    assert!(!in_registry(&registry, &foreign.digest));

    // A stock registry refuses the urls, and the error says what to do.
    let stock = Registry::start_with(RegistryOptions {
        refuse_foreign_urls: true,
        ..RegistryOptions::default()
    });
    let mut opts = options(&[stock.host()]);
    opts.keep_foreign_layers = true;
    let to_stock = format!("{}/win:1", stock.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(opts).push(&store, &manifest, &to_stock, &PushOptions::default()))
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::ForeignUrlsRefused { .. }),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "manifest URL validation refuses foreign layers",
        "validation.manifests.urls.allow",
        "drop --keep-foreign-layers",
        "MANIFEST_BLOB_UNKNOWN",
    ] {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
}

#[test]
fn by_default_foreign_layers_are_fetched_and_pushed_as_ordinary_layers() {
    let bytes = b"the bytes of another Windows base layer".to_vec();
    // The URL redirects once, on the same (insecure-marked) host.
    let server =
        FileServer::start_with_redirects(vec![("/real.tar.gz".into(), bytes.clone())], Vec::new());
    let redirector = FileServer::start_with_redirects(
        Vec::new(),
        vec![("/base.tar.gz".into(), server.url("/real.tar.gz"))],
    );
    let foreign = foreign_layer(&bytes, &[redirector.url("/base.tar.gz")]);
    let src = tempfile::tempdir().unwrap();
    let manifest = windows_image(src.path(), &foreign);
    let source = Registry::start();
    let insecure = vec![
        source.host(),
        host_of(&server.url("")),
        host_of(&redirector.url("")),
    ];
    let mut keep = options(&insecure);
    keep.keep_foreign_layers = true;
    let reference = format!("{}/win:ltsc2019", source.host()).parse().unwrap();
    rt().block_on(Client::new(keep).push(
        &kiln_oci::Layout::create(src.path()).unwrap(),
        &manifest,
        &reference,
        &PushOptions::default(),
    ))
    .unwrap();

    let stock = Registry::start_with(RegistryOptions {
        refuse_foreign_urls: true,
        ..RegistryOptions::default()
    });
    let proxy = Proxy::start(stock.port(), Vec::new());
    let mut all = insecure.clone();
    all.push(proxy.host());
    let client = Client::new(options(&all));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert!(pulled.fetched.contains(&foreign.digest), "{pulled:?}");
    assert_eq!(store.read_blob(&foreign.digest).unwrap(), bytes);
    assert_eq!(redirector.requests(), vec!["GET /base.tar.gz HTTP/1.1"]);
    assert_eq!(server.requests(), vec!["GET /real.tar.gz HTTP/1.1"]);
    // The store keeps the manifest as pulled.
    assert_eq!(pulled.manifest.digest, manifest.digest);

    let dest = format!("{}/win:copy", proxy.host());
    let pushed = rt()
        .block_on(client.push(
            &store,
            &pulled.manifest,
            &dest.parse().unwrap(),
            &PushOptions::default(),
        ))
        .unwrap();
    assert_ne!(pushed.digest, manifest.digest);
    assert!(pushed.uploaded.contains(&foreign.digest), "{pushed:?}");
    assert!(in_registry(&stock, &foreign.digest));
    let upload = proxy
        .requests()
        .into_iter()
        .find(|r| r.starts_with("PUT ") && r.contains(&foreign.digest.to_string()));
    assert!(upload.is_some(), "{:?}", proxy.requests());
    let remote = remote_manifest(&client, &dest);
    let original: kiln_oci::Manifest =
        serde_json::from_slice(&store.read_blob(&manifest.digest).unwrap()).unwrap();
    assert_eq!(remote.config, original.config, "same config, same diff_ids");
    assert_eq!(
        remote.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert!(remote.layers[0].urls().is_empty());
    assert_eq!(
        (remote.layers[0].digest, remote.layers[0].size),
        (foreign.digest, foreign.size)
    );
    assert_eq!(remote.layers[1], original.layers[1]);
    // Nothing was fetched again for the push.
    assert_eq!(server.requests().len(), 1);
}

/// A client for the tests of refusals: quick, nothing retried.
fn strict(insecure: &[String]) -> ClientOptions {
    let mut o = options(insecure);
    o.retries = 0;
    o
}

#[test]
fn a_foreign_layer_from_nowhere_names_every_place_tried() {
    let bytes = b"a layer nobody serves".to_vec();
    let server = FileServer::start(Vec::new());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    // The registry's allow list takes URLs on 127.0.0.1 only.
    let unmarked = "https://127.0.0.1:9/not-marked.tar.gz".to_string();
    let urls = [
        server.url("/missing.tar.gz"),
        format!("http://{dead}/gone.tar.gz"),
        unmarked,
    ];
    let foreign = foreign_layer(&bytes, &urls);
    let src = tempfile::tempdir().unwrap();
    let manifest = windows_image(src.path(), &foreign);
    let registry = Registry::start();
    let insecure = vec![registry.host(), host_of(&server.url("")), dead.clone()];
    let mut keep = strict(&insecure);
    keep.keep_foreign_layers = true;
    let reference = format!("{}/win:nowhere", registry.host()).parse().unwrap();
    rt().block_on(Client::new(keep).push(
        &kiln_oci::Layout::create(src.path()).unwrap(),
        &manifest,
        &reference,
        &PushOptions::default(),
    ))
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = rt()
        .block_on(Client::new(strict(&insecure)).pull(&store, &reference, None))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::ForeignLayer { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "foreign layer {} could not be fetched",
            foreign.digest
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "the registry {} does not have it",
            registry.host()
        )),
        "{text}"
    );
    for part in [
        format!("{}: not found (404)", urls[0]),
        format!("{}: cannot connect (", urls[1]),
        format!(
            "{} is at 127.0.0.1, a loopback, private or link-local address",
            urls[2]
        ),
    ] {
        assert!(text.contains(&part), "{part:?} not in: {text}");
    }
    assert!(text.contains("--keep-foreign-layers"), "{text}");
    assert!(!store.has_blob(&foreign.digest));
    assert!(store.resolve(&reference.to_string()).is_err());
    assert_eq!(server.requests(), vec!["GET /missing.tar.gz HTTP/1.1"]);

    // URLs no registry would take are refused before any connection.
    let elsewhere = foreign_layer(
        &bytes,
        &[
            "file:///etc/passwd".to_string(),
            "http://example.com/l.tar.gz".to_string(),
            "https://10.1.2.3/l.tar.gz".to_string(),
            "https://169.254.169.254/latest/meta-data".to_string(),
        ],
    );
    let err = rt()
        .block_on(Client::new(strict(&[])).fetch_foreign(&store, None, &elsewhere))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("the registry"), "{err}");
    for part in [
        "file:///etc/passwd is a file: URL",
        "http://example.com/l.tar.gz is plain http",
        "https://10.1.2.3/l.tar.gz is at 10.1.2.3",
        "is at 169.254.169.254",
    ] {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
}

#[test]
fn foreign_urls_on_hosts_not_marked_insecure_are_refused_even_after_redirects() {
    let bytes = b"a layer on the loopback".to_vec();
    let server = FileServer::start(vec![("/l.tar.gz".into(), bytes.clone())]);
    // A host marked insecure redirecting to one that is not.
    let redirector = FileServer::start_with_redirects(
        Vec::new(),
        vec![("/l.tar.gz".into(), server.url("/l.tar.gz"))],
    );
    let registry = Registry::start();
    for (url, insecure, why) in [
        (
            server.url("/l.tar.gz"),
            vec![registry.host()],
            "over https only",
        ),
        (
            redirector.url("/l.tar.gz"),
            vec![registry.host(), host_of(&redirector.url(""))],
            "redirected: ",
        ),
    ] {
        let foreign = foreign_layer(&bytes, std::slice::from_ref(&url));
        let src = tempfile::tempdir().unwrap();
        let manifest = windows_image(src.path(), &foreign);
        let mut keep = strict(&insecure);
        keep.keep_foreign_layers = true;
        let reference = format!("{}/win:refused", registry.host()).parse().unwrap();
        rt().block_on(Client::new(keep).push(
            &kiln_oci::Layout::create(src.path()).unwrap(),
            &manifest,
            &reference,
            &PushOptions::default(),
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = rt()
            .block_on(Client::new(strict(&insecure)).pull(&store, &reference, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{why:?} not in: {err}");
        assert!(!store.has_blob(&foreign.digest));
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(redirector.requests().len(), 1);
}
