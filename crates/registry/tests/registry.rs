//! kiln-registry against a real docker-registry (see kiln-testsupport).
// Linux only: these start a docker-registry (and proxies) as processes.
#![cfg(unix)]

use common::{busybox_layer, layout_manifest, options, push_busybox, rt, tmp_is_empty};
use kiln_oci::Platform;
use kiln_registry::{Client, Credentials, ErrorKind, PushOptions};
use kiln_store::Store;
use kiln_testsupport::{base_images, Auth, BaseImages, Fault, Proxy, Registry, RegistryOptions};

mod common;

#[test]
fn push_then_pull_busybox_and_skip_present_blobs() {
    let registry = Registry::start();
    let client = Client::new(options(&[registry.host()]));
    let pushed = push_busybox(&client, &registry.host(), "tools/busybox:1");
    let want = layout_manifest(&base_images().busybox);
    assert_eq!(pushed.digest, want.digest);
    assert_eq!(pushed.uploaded.len(), 2, "{pushed:?}");
    // A second push finds every blob there already.
    let again = push_busybox(&client, &registry.host(), "tools/busybox:1");
    assert_eq!((again.uploaded.len(), again.existing.len()), (0, 2));

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/tools/busybox:1", registry.host())
        .parse()
        .unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.manifest.digest, want.digest);
    assert_eq!(pulled.fetched.len(), 2);
    assert!(pulled.index.is_none() && pulled.foreign.is_empty());
    let resolved = store.resolve(&reference.to_string()).unwrap();
    assert_eq!(resolved.descriptor.digest, want.digest);
    for digest in &pulled.fetched {
        let src = base_images()
            .busybox
            .join("blobs/sha256")
            .join(digest.hex());
        assert_eq!(
            std::fs::read(src).unwrap(),
            store.read_blob(digest).unwrap()
        );
    }
    let again = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!((again.fetched.len(), again.present.len()), (0, 2));
}

#[test]
fn pull_selects_platforms_including_windows_os_version() {
    let registry = Registry::start();
    BaseImages::skopeo_push(&base_images().platforms, &registry.host(), "multi:latest");
    let client = Client::new(options(&[registry.host()]));
    let reference = format!("{}/multi:latest", registry.host()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let platform_file = |platform: &str| {
        let p: Platform = platform.parse().unwrap();
        let pulled = rt()
            .block_on(client.pull(&store, &reference, Some(&p)))
            .unwrap();
        assert!(pulled.index.is_some());
        let manifest: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&pulled.manifest.digest).unwrap()).unwrap();
        let config: serde_json::Value = serde_json::from_slice(
            &store
                .read_blob(
                    &manifest["config"]["digest"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        format!(
            "{}/{} {}",
            config["os"].as_str().unwrap(),
            config["architecture"].as_str().unwrap(),
            config["os.version"].as_str().unwrap_or("-")
        )
    };
    assert_eq!(platform_file("linux/arm64"), "linux/arm64 -");
    assert_eq!(platform_file("linux/amd64"), "linux/amd64 -");
    assert_eq!(
        platform_file("windows(10.0.17763)/amd64"),
        "windows/amd64 10.0.17763.1234"
    );
    assert_eq!(
        platform_file("windows/amd64:10.0.20348"),
        "windows/amd64 10.0.20348.2113"
    );
    // Without a build, kiln does not guess which Windows build the hosts run.
    let windows: Platform = "windows/amd64".parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, Some(&windows)))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "windows/amd64 matches several Windows builds (10.0.17763, 10.0.20348); name the one \
             your hosts run, e.g. --platform windows/amd64:10.0.20348"
        ),
        "{err}"
    );
    let s390x: Platform = "linux/s390x".parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, Some(&s390x)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/multi:latest: no image for platform linux/s390x in the index; it has \
             linux/amd64, linux/arm64/v8, windows(10.0.17763.1234)/amd64, windows(10.0.20348.2113)/amd64; \
             pass `--platform` with one of those",
            registry.host()
        )
    );
}

#[test]
fn a_loopback_registry_speaks_plain_http_without_being_listed_insecure() {
    // As docker treats 127.0.0.0/8: `localhost:5000` needs no flag.
    let registry = Registry::start();
    let client = Client::new(options(&[]));
    let pushed = push_busybox(&client, &registry.host(), "plain:1");
    assert_eq!(pushed.uploaded.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let port = registry.host().rsplit_once(':').unwrap().1.to_string();
    let reference = format!("localhost:{port}/plain:1").parse().unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.manifest.digest, pushed.digest);
}

#[test]
fn tls_with_the_registry_ca_and_without_it() {
    let registry = Registry::start_with(RegistryOptions {
        tls: true,
        auth: Auth::None,
        ..RegistryOptions::default()
    });
    let mut opts = options(&[]);
    opts.ca_certs = vec![registry.ca_cert()];
    let pushed = push_busybox(&Client::new(opts), &registry.host(), "busybox:tls");
    assert_eq!(pushed.uploaded.len(), 2);

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let reference = format!("{}/busybox:tls", registry.host()).parse().unwrap();
    let err = rt()
        .block_on(Client::new(options(&[])).pull(&store, &reference, None))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {}/busybox:tls: TLS failed talking to https://{}/v2/",
            registry.host(),
            registry.host()
        )),
        "{text}"
    );
    assert!(text.contains("--ca-cert FILE"), "{text}");
    // An insecure registry skips verification.
    let pulled = rt()
        .block_on(Client::new(options(&[registry.host()])).pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.fetched.len(), 2);
}

fn creds() -> Credentials {
    Credentials {
        username: "kiln".into(),
        password: "hunter2".into(),
    }
}

fn auth_round_trip(auth: Auth) -> Registry {
    let registry = Registry::start_with(RegistryOptions {
        tls: false,
        auth,
        ..RegistryOptions::default()
    });
    let anonymous = Client::new(options(&[registry.host()]));
    let layout = &base_images().busybox;
    let dest = format!("{}/private/busybox:1", registry.host())
        .parse()
        .unwrap();
    let err = rt()
        .block_on(anonymous.push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &layout_manifest(layout),
            &dest,
            &PushOptions::default(),
        ))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("run `kiln login {}`", registry.host())),
        "{err}"
    );

    let mut opts = options(&[registry.host()]);
    opts.credentials.insert(registry.host(), creds());
    let client = Client::new(opts);
    push_busybox(&client, &registry.host(), "private/busybox:1");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pulled = rt().block_on(client.pull(&store, &dest, None)).unwrap();
    assert_eq!(pulled.fetched.len(), 2);
    rt().block_on(client.login(&registry.host(), &creds()))
        .unwrap();
    let wrong = Credentials {
        username: "kiln".into(),
        password: "wrong".into(),
    };
    let err = rt()
        .block_on(client.login(&registry.host(), &wrong))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
    registry
}

#[test]
fn basic_auth() {
    auth_round_trip(Auth::Basic {
        user: "kiln".into(),
        password: "hunter2".into(),
    });
}

#[test]
fn token_auth_with_real_jwts() {
    let registry = auth_round_trip(Auth::Token {
        user: "kiln".into(),
        password: "hunter2".into(),
    });
    // Tokens are reused per scope, not fetched per request.
    let issued = registry.issuer().unwrap().requests();
    assert!((2..=8).contains(&issued), "{issued} token requests");
}

#[test]
fn a_token_server_that_fails_for_a_moment_is_retried() {
    let registry = Registry::start_with(RegistryOptions {
        auth: Auth::Token {
            user: "kiln".into(),
            password: "hunter2".into(),
        },
        ..RegistryOptions::default()
    });
    let mut opts = options(&[registry.host()]);
    opts.credentials.insert(registry.host(), creds());
    push_busybox(
        &Client::new(opts.clone()),
        &registry.host(),
        "private/busybox:1",
    );
    let reference: kiln_oci::reference::Reference =
        format!("{}/private/busybox:1", registry.host())
            .parse()
            .unwrap();
    let issuer = registry.issuer().unwrap();

    // Two 503s, then tokens: the pull goes through on its retries.
    issuer.fail_next(2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt().block_on(Client::new(opts.clone()).pull(&store, &reference, None))
        .unwrap();

    // Failing for longer than the retries last: the error says who failed
    // and how often it was asked.
    issuer.fail_next(usize::MAX);
    let err = rt()
        .block_on(Client::new(opts).pull(&store, &reference, None))
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::Server {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("from its token server at {}", issuer.realm())),
        "{err}"
    );
}

#[test]
fn corrupt_blob_aborts_and_leaves_nothing() {
    let registry = Registry::start();
    let client = Client::new(options(&[registry.host()]));
    push_busybox(&client, &registry.host(), "busybox:1");
    let layer = busybox_layer();
    let proxy = Proxy::start(registry.port(), vec![Fault::CorruptBlob(layer.clone())]);
    let client = Client::new(options(&[proxy.host()]));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::DigestMismatch { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {}/busybox@{layer}: blob {layer} has digest sha256:",
            proxy.host()
        )),
        "{text}"
    );
    assert!(text.ends_with("nothing was stored"), "{text}");
    assert!(!store.has_blob(&layer.parse().unwrap()));
    assert!(store.resolve(&reference.to_string()).is_err());
    assert!(tmp_is_empty(&store));
}

#[test]
fn dropped_connection_resumes_with_range_and_5xx_is_retried() {
    let registry = Registry::start();
    let client = Client::new(options(&[registry.host()]));
    push_busybox(&client, &registry.host(), "busybox:1");
    let layer = busybox_layer();
    let proxy = Proxy::start(
        registry.port(),
        vec![
            Fault::DropBlob {
                digest: layer.clone(),
                after: 100_000,
                times: 1,
            },
            Fault::Status {
                path: "/manifests/".into(),
                code: 503,
                times: 2,
            },
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
    let requests = proxy.requests();
    let manifest_gets = requests
        .iter()
        .filter(|r| r.contains("/manifests/1 "))
        .count();
    assert_eq!(manifest_gets, 3, "{requests:#?}");
    let ranged: Vec<_> = requests
        .iter()
        .filter(|r| r.contains("[range: bytes=100000-]"))
        .collect();
    assert_eq!(ranged.len(), 1, "{requests:#?}");
    assert!(ranged[0].starts_with(&format!("GET /v2/busybox/blobs/{layer}")));
}

#[test]
fn stopped_registry_and_missing_tag_say_what_to_do() {
    let mut registry = Registry::start();
    let client = Client::new(options(&[registry.host()]));
    push_busybox(&client, &registry.host(), "busybox:1");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let missing = format!("{}/busybox:nope", registry.host()).parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &missing, None))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/busybox:nope: manifest not found (404): MANIFEST_UNKNOWN: manifest unknown; \
             check the name and tag, or that it was pushed",
            registry.host()
        )
    );
    registry.stop();
    let reference = format!("{}/busybox:1", registry.host()).parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pulling {}/busybox:1: cannot reach the registry at",
            registry.host()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("check that it is running and the address is right"),
        "{text}"
    );
}

#[test]
fn cross_repository_mount_and_chunked_upload() {
    let registry = Registry::start();
    let client = Client::new(options(&[registry.host()]));
    push_busybox(&client, &registry.host(), "a/busybox:1");
    let layout = &base_images().busybox;
    let manifest = layout_manifest(layout);
    let dest = format!("{}/b/busybox:1", registry.host()).parse().unwrap();
    let opts = PushOptions {
        mount_from: vec!["a/busybox".into()],
        ..PushOptions::default()
    };
    let pushed = rt()
        .block_on(client.push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &manifest,
            &dest,
            &opts,
        ))
        .unwrap();
    assert_eq!(
        (pushed.mounted.len(), pushed.uploaded.len()),
        (2, 0),
        "{pushed:?}"
    );

    let mut chunked = options(&[registry.host()]);
    chunked.chunk_size = Some(64 * 1024);
    let client = Client::new(chunked);
    let pushed = push_busybox(&client, &registry.host(), "c/busybox:1");
    assert_eq!(pushed.uploaded.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/c/busybox:1", registry.host()).parse().unwrap();
    let pulled = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap();
    assert_eq!(pulled.manifest.digest, manifest.digest);
}

#[test]
fn rate_limiting_that_does_not_stop_gives_up_with_advice() {
    let registry = Registry::start();
    let proxy = Proxy::start(
        registry.port(),
        vec![Fault::Status {
            path: "/manifests/".into(),
            code: 429,
            times: 10,
        }],
    );
    let client = Client::new(options(&[proxy.host()]));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = format!("{}/busybox:1", proxy.host()).parse().unwrap();
    let err = rt()
        .block_on(client.pull(&store, &reference, None))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {}/busybox:1: the registry is rate limiting requests (429 Too Many Requests) and kept \
             doing so after 3 attempts; wait and try again, or log in for a higher limit",
            proxy.host()
        )
    );
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.contains("/manifests/1 "))
        .count();
    assert_eq!(gets, 3);
}

/// Every call a push made to its [`kiln_registry::PushProgress`], in order:
/// what, the blob's digest, and the bytes it said.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(&'static str, String, u64)>>);

impl kiln_registry::PushProgress for Recorded {
    fn upload_started(&self, blob: &kiln_oci::Descriptor) {
        let mut calls = self.0.lock().unwrap();
        calls.push(("started", blob.digest.to_string(), 0));
    }

    fn upload_progress(&self, blob: &kiln_oci::Descriptor, sent: u64) {
        let mut calls = self.0.lock().unwrap();
        calls.push(("sent", blob.digest.to_string(), sent));
    }

    fn blob_done(&self, blob: &kiln_oci::Descriptor, outcome: kiln_registry::BlobOutcome) {
        let what = match outcome {
            kiln_registry::BlobOutcome::Uploaded => "uploaded",
            kiln_registry::BlobOutcome::Mounted => "mounted",
            kiln_registry::BlobOutcome::Existing => "existing",
        };
        let mut calls = self.0.lock().unwrap();
        calls.push((what, blob.digest.to_string(), blob.size));
    }
}

#[test]
fn push_progress_counts_each_blob_to_its_size_in_chunks_and_reports_mounts() {
    let registry = Registry::start();
    let layout = &base_images().busybox;
    let manifest = layout_manifest(layout);
    let image: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(manifest.digest.hex())).unwrap(),
    )
    .unwrap();
    let blobs: Vec<(String, u64)> = std::iter::once(&image["config"])
        .chain(image["layers"].as_array().unwrap())
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let push = |client: &Client, to: &str, mount_from: Vec<String>| {
        let recorded = std::sync::Arc::new(Recorded::default());
        let opts = PushOptions {
            mount_from,
            progress: Some(recorded.clone()),
        };
        let dest = format!("{}/{to}", registry.host()).parse().unwrap();
        rt().block_on(client.push(
            &kiln_oci::Layout::open(layout).unwrap(),
            &manifest,
            &dest,
            &opts,
        ))
        .unwrap();
        drop(opts);
        let recorded = std::sync::Arc::try_unwrap(recorded).ok().unwrap();
        recorded.0.into_inner().unwrap()
    };

    // In 64 KiB chunks: each blob's count grows chunk by chunk, across
    // the chunks' requests, to its size.
    let mut chunked = options(&[registry.host()]);
    chunked.chunk_size = Some(64 * 1024);
    let calls = push(&Client::new(chunked), "p/busybox:1", Vec::new());
    for (digest, size) in &blobs {
        let of_blob: Vec<(&str, u64)> = calls
            .iter()
            .filter(|c| &c.1 == digest)
            .map(|c| (c.0, c.2))
            .collect();
        let mut want = vec![("started", 0)];
        let mut at = 0;
        while at < *size {
            at = (at + 64 * 1024).min(*size);
            want.push(("sent", at));
        }
        want.push(("uploaded", *size));
        assert_eq!(of_blob, want, "{digest}");
    }
    assert_eq!(
        calls.len(),
        blobs
            .iter()
            .map(|(_, s)| s.div_ceil(64 * 1024) as usize + 2)
            .sum::<usize>()
    );

    // Mounted from there, nothing is sent.
    let client = Client::new(options(&[registry.host()]));
    let mut got = push(&client, "q/busybox:1", vec!["p/busybox".into()]);
    got.sort();
    let mut want: Vec<(&str, String, u64)> = blobs
        .iter()
        .map(|(d, s)| ("mounted", d.clone(), *s))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_layer_listed_twice_is_pushed_once_and_pulled_once() {
    // Two steps that made the same change give one blob twice in a
    // manifest; it went up twice, side by side.
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = kiln_oci::Layout::create(dir.path()).unwrap();
    let base = kiln_oci::Layout::open(&base_images().busybox).unwrap();
    let manifest = layout_manifest(&base_images().busybox);
    let mut image: serde_json::Value =
        serde_json::from_slice(&base.read_blob(&manifest.digest).unwrap()).unwrap();
    for d in std::iter::once(&image["config"]).chain(image["layers"].as_array().unwrap()) {
        let digest: kiln_oci::Digest = d["digest"].as_str().unwrap().parse().unwrap();
        layout
            .write_blob(&digest, base.open_blob(&digest).unwrap())
            .unwrap();
    }
    let layer = image["layers"][0].clone();
    image["layers"] = serde_json::json!([layer.clone(), layer.clone()]);
    let twice = layout
        .put_bytes(
            manifest.media_type.as_str(),
            &serde_json::to_vec(&image).unwrap(),
        )
        .unwrap();
    let recorded = std::sync::Arc::new(Recorded::default());
    let opts = PushOptions {
        mount_from: Vec::new(),
        progress: Some(recorded.clone()),
    };
    let dest = format!("{}/twice:1", registry.host()).parse().unwrap();
    let client = Client::new(options(&[registry.host()]));
    rt().block_on(client.push(&layout, &twice, &dest, &opts))
        .unwrap();
    drop(opts);
    let calls = std::sync::Arc::try_unwrap(recorded)
        .ok()
        .unwrap()
        .0
        .into_inner()
        .unwrap();
    let layer_digest = layer["digest"].as_str().unwrap();
    let done: Vec<&str> = calls
        .iter()
        .filter(|c| c.1 == layer_digest && c.0 != "sent")
        .map(|c| c.0)
        .collect();
    assert_eq!(done, ["started", "uploaded"]);

    let proxy = Proxy::start(registry.port(), Vec::new());
    let client = Client::new(options(&[proxy.host()]));
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let reference = format!("{}/twice:1", proxy.host()).parse().unwrap();
    rt().block_on(client.pull(&store, &reference, None))
        .unwrap();
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{layer_digest}")))
        .count();
    assert_eq!(gets, 1, "{:?}", proxy.requests());
}
