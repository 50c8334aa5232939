//! Foreign layers (descriptors with `urls`, as old Windows base images
//! have) through `kiln copy`, `pull`, `push` and `build`, against real
//! docker-registry processes: one that allows URLs on 127.0.0.1 and a stock
//! one that allows none. The layer's URL is served by a local HTTP server
//! that records every request, and proxies record what each registry was
//! asked; `skopeo inspect --raw` reads what the registries hold.

use kiln_oci::{write_layer, Compression, Digest, LayerEntry, LayerOptions};
use kiln_testsupport::{FileServer, Proxy, Registry, RegistryOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kiln with a clean environment and its own store under `home`.
fn kiln(home: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("KILN_ROOT", home.join("store"))
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kiln_ok(home: &Path, args: &[&str]) -> String {
    let run = kiln(home, args);
    assert_eq!(run.code, 0, "kiln {args:?} failed:\n{}", run.stderr);
    run.stdout
}

/// `skopeo inspect --raw` (with `--config`: the config) of `image`.
fn skopeo_raw(image: &str, config: bool) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if config {
        cmd.arg("--config");
    }
    let out = cmd.arg(format!("docker://{image}")).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A gzip layer holding one file.
fn layer(name: &str, text: &str) -> (kiln_oci::LayerDescriptor, Vec<u8>) {
    let options = LayerOptions {
        compression: Compression::Gzip(6),
        ..LayerOptions::default()
    };
    write_layer(vec![LayerEntry::file(name, text)], &options, Vec::new()).unwrap()
}

/// The foreign layer: its descriptor and bytes (the same every time).
fn base_layer() -> (kiln_oci::LayerDescriptor, Vec<u8>) {
    layer("base.txt", "from the foreign layer\n")
}

/// An image with a foreign base layer (its bytes at `url`, not in the
/// layout) and an ordinary layer, in an OCI layout.
struct ForeignImage {
    layout: PathBuf,
    /// The foreign layer's bytes, which the layout lacks.
    foreign_bytes: Vec<u8>,
    foreign_digest: Digest,
    /// The foreign descriptor exactly as the manifest spells it.
    foreign_json: String,
    manifest: Vec<u8>,
    diff_ids: Vec<String>,
}

fn foreign_image(dir: &Path, urls: &[String]) -> ForeignImage {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let (base, foreign_bytes) = base_layer();
    let (top, top_bytes) = layer("top.txt", "from the ordinary layer\n");
    put(&top_bytes);
    let diff_ids = vec![base.diff_id.to_string(), top.diff_id.to_string()];
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let foreign_json = format!(
        r#"{{"mediaType":"{FOREIGN}","size":{},"digest":"{}","urls":{}}}"#,
        base.size,
        base.digest,
        serde_json::to_string(urls).unwrap()
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{foreign_json},{{"mediaType":"{LAYER}","size":{},"digest":"{}"}}]}}"#,
        config.len(),
        top.size,
        top.digest
    )
    .into_bytes();
    let manifest_digest = put(&manifest);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MANIFEST}","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"1"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
    ForeignImage {
        layout,
        foreign_bytes,
        foreign_digest: base.digest,
        foreign_json,
        manifest,
        diff_ids,
    }
}

/// Copies `image` into the registry at `host` as `win:1` and pulls it
/// into the store, its foreign layer kept both times; returns its name.
fn kept_base(h: &Path, flags: &[String], image: &ForeignImage, host: &str) -> String {
    let base = format!("{host}/win:1");
    kiln_ok(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            flags,
            &[
                &format!("oci:{}", image.layout.display()),
                &format!("docker://{base}"),
            ],
        ),
    );
    kiln_ok(
        h,
        &args(&["pull", "--keep-foreign-layers"], flags, &[&base]),
    );
    base
}

/// `--insecure-registry H` for each host.
fn insecure(hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .flat_map(|h| ["--insecure-registry".to_string(), h.clone()])
        .collect()
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

fn args<'a>(head: &[&'a str], flags: &'a [String], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .chain(tail.iter().copied())
        .collect()
}

fn stock_registry() -> Registry {
    Registry::start_with(RegistryOptions {
        refuse_foreign_urls: true,
        ..RegistryOptions::default()
    })
}

/// True when a request line a proxy saw names `digest`.
fn asked_for(proxy: &Proxy, digest: &Digest) -> bool {
    let d = digest.to_string();
    proxy.requests().iter().any(|r| r.contains(&d))
}

#[test]
fn copy_keeps_foreign_layers_or_makes_them_ordinary() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = FileServer::start(vec![("/base.tar.gz".into(), base_layer().1)]);
    let url = server.url("/base.tar.gz");
    let image = foreign_image(h, std::slice::from_ref(&url));
    let allow = Registry::start();
    let allow_proxy = Proxy::start(allow.port(), Vec::new());
    let stock = stock_registry();
    let stock_proxy = Proxy::start(stock.port(), Vec::new());
    let flags = insecure(&[
        allow.host(),
        allow_proxy.host(),
        stock.host(),
        stock_proxy.host(),
        host_of(&url),
    ]);
    let layout = format!("oci:{}", image.layout.display());
    let kept = format!("{}/win:1", allow_proxy.host());

    // Kept: the manifest goes byte for byte, the layer is neither fetched
    // nor uploaded.
    let out = kiln_ok(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            &flags,
            &[&layout, &format!("docker://{kept}")],
        ),
    );
    assert!(
        out.contains(&format!("Digest: {}", Digest::of(&image.manifest))),
        "{out}"
    );
    assert_eq!(skopeo_raw(&kept, false), image.manifest);
    let again = format!("{}/win:kept", allow_proxy.host());
    kiln_ok(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            &flags,
            &[&format!("docker://{kept}"), &format!("docker://{again}")],
        ),
    );
    assert_eq!(skopeo_raw(&again, false), image.manifest);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert!(
        !asked_for(&allow_proxy, &image.foreign_digest),
        "{:?}",
        allow_proxy.requests()
    );

    // Kept, to a stock registry: refused, and the error says how to allow it.
    let run = kiln(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            &flags,
            &[
                &format!("docker://{kept}"),
                &format!("docker://{}/win:refused", stock.host()),
            ],
        ),
    );
    assert_ne!(run.code, 0);
    for part in [
        "the registry refused the manifest",
        "MANIFEST_BLOB_UNKNOWN",
        "its manifest URL validation refuses foreign layers",
        "`validation.manifests.urls.allow` in its configuration",
        "or drop --keep-foreign-layers",
    ] {
        assert!(
            run.stderr.contains(part),
            "{part:?} not in:\n{}",
            run.stderr
        );
    }

    // By default, to a stock registry: fetched from the URL once, pushed as
    // an ordinary layer without urls; the config and its diff_ids unchanged.
    let ordinary = format!("{}/win:1", stock_proxy.host());
    kiln_ok(
        h,
        &args(
            &["copy"],
            &flags,
            &[&format!("docker://{kept}"), &format!("docker://{ordinary}")],
        ),
    );
    assert_eq!(server.requests(), vec!["GET /base.tar.gz HTTP/1.1"]);
    let raw: Value = serde_json::from_slice(&skopeo_raw(&ordinary, false)).unwrap();
    let original: Value = serde_json::from_slice(&image.manifest).unwrap();
    let base = &raw["layers"][0];
    assert_eq!(base["mediaType"], LAYER);
    assert!(base.get("urls").is_none(), "{raw}");
    assert_eq!(base["digest"], original["layers"][0]["digest"]);
    assert_eq!(base["size"], original["layers"][0]["size"]);
    assert_eq!(raw["layers"][1], original["layers"][1]);
    assert_eq!(raw["config"], original["config"]);
    let config: Value = serde_json::from_slice(&skopeo_raw(&ordinary, true)).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(image.diff_ids)
    );
    assert!(
        stock_proxy
            .requests()
            .iter()
            .any(|r| r.starts_with("PUT ")
                && r.contains(&format!("digest={}", image.foreign_digest))),
        "{:?}",
        stock_proxy.requests()
    );

    // By default, to an OCI layout: the layer's bytes and an ordinary
    // descriptor (skopeo reads the layout back).
    let out_dir = h.join("out");
    kiln_ok(
        h,
        &args(
            &["copy"],
            &flags,
            &[
                &format!("docker://{kept}"),
                &format!("oci:{}", out_dir.display()),
            ],
        ),
    );
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", out_dir.display()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{:?}", inspect);
    let raw: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(raw["layers"][0]["mediaType"], LAYER);
    assert!(raw["layers"][0].get("urls").is_none());
    assert_eq!(
        std::fs::read(
            out_dir
                .join("blobs/sha256")
                .join(image.foreign_digest.hex())
        )
        .unwrap(),
        image.foreign_bytes
    );
    // Each copy pulls into a staging store of its own.
    assert_eq!(server.requests().len(), 2);
    // Kept, a layout gets the descriptor as it was and no bytes.
    let kept_dir = h.join("kept-out");
    kiln_ok(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            &flags,
            &[
                &format!("docker://{kept}"),
                &format!("oci:{}", kept_dir.display()),
            ],
        ),
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(kept_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        Digest::of(&image.manifest).to_string()
    );
    assert!(!kept_dir
        .join("blobs/sha256")
        .join(image.foreign_digest.hex())
        .exists());
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_foreign_layer_pointing_nowhere_is_named_with_each_url_tried() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let urls = [
        format!("http://{dead}/base.tar.gz"),
        "https://127.0.0.1:9/not-marked.tar.gz".to_string(),
    ];
    let image = foreign_image(h, &urls);
    let allow = Registry::start();
    let flags = insecure(&[allow.host(), dead.clone()]);
    let reference = format!("{}/win:1", allow.host());
    kiln_ok(
        h,
        &args(
            &["copy", "--keep-foreign-layers"],
            &flags,
            &[
                &format!("oci:{}", image.layout.display()),
                &format!("docker://{reference}"),
            ],
        ),
    );
    let run = kiln(
        h,
        &args(&["pull", "--retry-times", "0"], &flags, &[&reference]),
    );
    assert_ne!(run.code, 0);
    for part in [
        format!(
            "foreign layer {} could not be fetched from anywhere kiln tried",
            image.foreign_digest
        ),
        format!("the registry {} does not have it", allow.host()),
        format!("{}: cannot connect", urls[0]),
        format!(
            "{} is at 127.0.0.1, a loopback, private or link-local address",
            urls[1]
        ),
        "or pass --keep-foreign-layers".to_string(),
    ] {
        assert!(
            run.stderr.contains(&part),
            "{part:?} not in:\n{}",
            run.stderr
        );
    }
    // Kept, the pull needs nothing from the URLs.
    kiln_ok(
        h,
        &args(&["pull", "--keep-foreign-layers"], &flags, &[&reference]),
    );
}

#[test]
fn builds_keep_or_make_ordinary_their_bases_foreign_layers() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = FileServer::start(vec![("/base.tar.gz".into(), base_layer().1)]);
    let url = server.url("/base.tar.gz");
    let image = foreign_image(h, std::slice::from_ref(&url));
    let allow = Registry::start();
    let allow_proxy = Proxy::start(allow.port(), Vec::new());
    let stock = stock_registry();
    let flags = insecure(&[
        allow.host(),
        allow_proxy.host(),
        stock.host(),
        host_of(&url),
    ]);
    let base = kept_base(h, &flags, &image, &allow.host());
    assert!(server.requests().is_empty());
    std::fs::create_dir(h.join("ctx")).unwrap();
    std::fs::write(
        h.join("ctx/Dockerfile"),
        format!("FROM {base}\nLABEL org.example.built=yes\n"),
    )
    .unwrap();

    // Kept: the base's descriptor byte for byte, its bytes not uploaded.
    // A Docker manifest: distribution checks the blob of a Docker foreign
    // layer listed in an OCI manifest, allowed URL or not.
    let app = format!("{}/app:kept", allow_proxy.host());
    kiln_ok(
        h,
        &args(
            &[
                "build",
                "--keep-foreign-layers",
                "--format",
                "docker",
                "--push",
                "-t",
                &app,
            ],
            &flags,
            &["ctx"],
        ),
    );
    // The same fields and values; kiln writes a new manifest in its own
    // key order (mediaType, digest, size, then the rest as they were).
    let raw: Value = serde_json::from_slice(&skopeo_raw(&app, false)).unwrap();
    let foreign: Value = serde_json::from_str(&image.foreign_json).unwrap();
    assert_eq!(raw["layers"][0], foreign);
    assert!(
        !asked_for(&allow_proxy, &image.foreign_digest),
        "{:?}",
        allow_proxy.requests()
    );
    assert!(
        server.requests().is_empty(),
        "a build of config steps never reads a kept layer"
    );
    // A step that reads the base's files fetches it then.
    std::fs::write(
        h.join("ctx/Dockerfile.copy"),
        format!("FROM {base}\nCOPY Dockerfile /x\n"),
    )
    .unwrap();
    kiln_ok(
        h,
        &args(
            &[
                "build",
                "--keep-foreign-layers",
                "-f",
                "ctx/Dockerfile.copy",
                "-o",
                "type=oci,dest=copied",
            ],
            &flags,
            &["ctx"],
        ),
    );
    assert_eq!(server.requests().len(), 1);

    // By default: an ordinary layer with its bytes, accepted by a stock
    // registry; the diff_ids are the base's.
    let app = format!("{}/app:1", stock.host());
    kiln_ok(h, &args(&["build", "--push", "-t", &app], &flags, &["ctx"]));
    let raw: Value = serde_json::from_slice(&skopeo_raw(&app, false)).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(raw["layers"][0].get("urls").is_none(), "{raw}");
    assert_eq!(raw["layers"][0]["digest"], image.foreign_digest.to_string());
    let config: Value = serde_json::from_slice(&skopeo_raw(&app, true)).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(image.diff_ids)
    );
    assert_eq!(server.requests().len(), 1, "the store has the bytes");
}

#[test]
fn push_and_export_fetch_or_keep_foreign_layers() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = FileServer::start(vec![("/base.tar.gz".into(), base_layer().1)]);
    let url = server.url("/base.tar.gz");
    let image = foreign_image(h, std::slice::from_ref(&url));
    let allow = Registry::start();
    let stock = stock_registry();
    let flags = insecure(&[allow.host(), stock.host(), host_of(&url)]);
    let base = kept_base(h, &flags, &image, &allow.host());

    // Without the bytes, exports that need them say so; a kept OCI layout
    // does not need them.
    let run = kiln(h, &["export", "-o", "needs-bytes", &base]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains(&format!(
            "foreign layer {} is not in the store",
            image.foreign_digest
        )) && run.stderr.contains("--keep-foreign-layers"),
        "{}",
        run.stderr
    );
    let run = kiln(h, &["save", "-o", "needs-bytes.tar", &base]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("a docker-archive carries every layer's bytes"),
        "{}",
        run.stderr
    );
    kiln_ok(h, &["export", "--keep-foreign-layers", "-o", "kept", &base]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(h.join("kept/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        Digest::of(&image.manifest).to_string()
    );
    assert!(server.requests().is_empty());

    // Kept, a stock registry refuses the push.
    let to_stock = format!("{}/win:pushed", stock.host());
    let run = kiln(
        h,
        &args(
            &["push", "--keep-foreign-layers"],
            &flags,
            &[&base, &to_stock],
        ),
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("its manifest URL validation refuses foreign layers"),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());

    // By default the push fetches the layer from its URL and sends it as
    // an ordinary layer; then the store has it for an export.
    let out = kiln_ok(h, &args(&["push"], &flags, &[&base, &to_stock]));
    assert!(
        !out.contains(&Digest::of(&image.manifest).to_string()),
        "a new manifest: {out}"
    );
    assert_eq!(server.requests(), vec!["GET /base.tar.gz HTTP/1.1"]);
    let raw: Value = serde_json::from_slice(&skopeo_raw(&to_stock, false)).unwrap();
    assert_eq!(raw["layers"][0]["mediaType"], LAYER);
    assert!(raw["layers"][0].get("urls").is_none());
    kiln_ok(h, &["export", "-o", "ordinary", &base]);
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", h.join("ordinary").display()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{inspect:?}");
    let raw: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(raw["layers"][0]["mediaType"], LAYER);
    assert!(raw["layers"][0].get("urls").is_none());
    kiln_ok(h, &["save", "-o", "all-bytes.tar", &base]);
    assert_eq!(server.requests().len(), 1);
}
