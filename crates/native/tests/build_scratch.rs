//! FROM scratch builds: exact layers, configs, history, reproducibility.

mod build_support;

use build_support::*;
use kiln_frontend::stages::Platform;
use serde_json::json;

const EPOCH: i64 = 1_700_000_000;
const EPOCH_TEXT: &str = "2023-11-14T22:13:20Z";
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn copy_from_context_gives_exact_layer_and_config() {
    let env = Env::new();
    env.file("hello.txt", "hello\n").file("dir/a.txt", "a");
    let mut req = env.request("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY dir /data/\n");
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();

    let layers = env.layers(&built);
    assert_eq!(layers.len(), 2);
    assert_eq!(
        lines(&layers[0]),
        [format!("hello.txt file 644 0:0 {EPOCH}")]
    );
    assert_eq!(layers[0][0].data, "hello\n");
    assert_eq!(
        lines(&layers[1]),
        [
            format!("data dir 755 0:0 {EPOCH}"),
            format!("data/a.txt file 644 0:0 {EPOCH}"),
        ]
    );
    assert_eq!(layers[1][1].data, "a");

    let config = env.config(&built);
    let host = Platform::host();
    let mut want = json!({
        "architecture": host.architecture,
        "config": {"Env": [PATH], "WorkingDir": "/"},
        "created": EPOCH_TEXT,
        "history": [
            {"created": EPOCH_TEXT, "created_by": "COPY hello.txt /hello.txt # buildkit", "comment": "buildkit.dockerfile.v0"},
            {"created": EPOCH_TEXT, "created_by": "COPY dir /data/ # buildkit", "comment": "buildkit.dockerfile.v0"},
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": config["rootfs"]["diff_ids"].clone()},
    });
    if let Some(v) = &host.variant {
        want["variant"] = json!(v);
    }
    assert_eq!(config, want);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    let manifest = env.manifest(&built);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        built.config.digest.to_string()
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(built.layers, 2);
    assert!(built.tags.is_empty());
    // Untagged images stay in the store by digest.
    assert_eq!(
        env.store()
            .resolve(&built.manifest.digest.to_string())
            .unwrap()
            .descriptor
            .digest,
        built.manifest.digest
    );
    assert_fsck_clean(env.store());
}

#[test]
fn config_instructions_and_history() {
    let env = Env::new();
    let dockerfile = r#"FROM scratch
ENV A=1 B="two words"
ENV A=${A}x
ARG V=3
LABEL org.example.v=$V b=2
EXPOSE 80 53/udp
USER 1000:1000
VOLUME /data
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-c"]
HEALTHCHECK --interval=5s --retries=3 CMD check --now
CMD echo hi
ENTRYPOINT ["/app"]
ONBUILD COPY x /x
MAINTAINER someone
"#;
    let mut req = env.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    req.labels.insert("b".into(), "from-cli".into());
    let built = env.run(&req).unwrap();
    let config = env.config(&built);
    assert_eq!(
        config["config"],
        json!({
            "User": "1000:1000",
            "ExposedPorts": {"53/udp": {}, "80/tcp": {}},
            "Env": [PATH, "A=1x", "B=two words"],
            "Entrypoint": ["/app"],
            "Cmd": ["/bin/bash", "-c", "echo hi"],
            "Volumes": {"/data": {}},
            "WorkingDir": "/",
            "Labels": {"b": "from-cli", "org.example.v": "3"},
            "StopSignal": "SIGTERM",
            "ArgsEscaped": true,
            "Healthcheck": {"Test": ["CMD-SHELL", "check --now"], "Interval": 5_000_000_000i64, "Retries": 3},
            "OnBuild": ["COPY x /x"],
            "Shell": ["/bin/bash", "-c"],
        })
    );
    assert_eq!(config["author"], "someone");
    assert_eq!(
        history(&config),
        [
            "ENV A=1 B=two words (empty)",
            "ENV A=1x (empty)",
            "ARG V=3 (empty)",
            "LABEL org.example.v=3 b=2 (empty)",
            "EXPOSE [53/udp 80/tcp] (empty)",
            "USER 1000:1000 (empty)",
            "VOLUME [/data] (empty)",
            "STOPSIGNAL SIGTERM (empty)",
            "SHELL [/bin/bash -c] (empty)",
            "HEALTHCHECK {Test:[CMD-SHELL check --now] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3} (empty)",
            "CMD [\"/bin/bash\" \"-c\" \"echo hi\"] (empty)",
            "ENTRYPOINT [\"/app\"] (empty)",
            "MAINTAINER someone (empty)",
        ]
    );
    assert_eq!(built.layers, 0);
}

#[test]
fn entrypoint_drops_an_inherited_cmd_but_not_one_from_its_own_stage() {
    let env = Env::new();
    let built = env.build(
        "FROM scratch AS base\nCMD [\"base\"]\nFROM base AS child\nENTRYPOINT [\"/e\"]\nFROM base\nCMD [\"own\"]\nENTRYPOINT [\"/e\"]\n",
    );
    let config = env.config(&built);
    assert_eq!(config["config"]["Cmd"], json!(["own"]));
    assert_eq!(config["config"]["Entrypoint"], json!(["/e"]));
    let mut req = env
        .request("FROM scratch AS base\nCMD [\"base\"]\nFROM base AS child\nENTRYPOINT [\"/e\"]\n");
    req.target = Some("child".into());
    let config = env.config(&env.run(&req).unwrap());
    assert!(config["config"].get("Cmd").is_none(), "{config}");
}

#[test]
fn workdir_creates_missing_directories_owned_by_the_user() {
    let env = Env::new();
    env.file("f", "x");
    let mut req = env.request("FROM scratch\nCOPY f /srv/f\nUSER 1000:2000\nWORKDIR /srv/app/data\nWORKDIR /srv\nWORKDIR /\n");
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(
        layers.len(),
        3,
        "COPY, WORKDIR that creates, WORKDIR of an existing dir"
    );
    assert_eq!(
        lines(&layers[1]),
        [
            format!("srv dir 755 0:0 {EPOCH}"),
            format!("srv/app dir 755 1000:2000 {EPOCH}"),
            format!("srv/app/data dir 755 1000:2000 {EPOCH}"),
        ]
    );
    assert!(layers[2].is_empty(), "{:?}", layers[2]);
    let config = env.config(&built);
    assert_eq!(config["config"]["WorkingDir"], "/");
    assert_eq!(
        history(&config),
        [
            "COPY f /srv/f # buildkit",
            "USER 1000:2000 (empty)",
            "WORKDIR /srv/app/data",
            "WORKDIR /srv",
            "WORKDIR / (empty)",
        ]
    );
}

#[test]
fn workdir_resolves_the_user_as_chown_does_not_as_run_does() {
    // BuildKit's WORKDIR is a mkdir file op with `llb.WithUser(USER)`, read
    // by `readUser`: a bare uid is the gid too, whatever /etc/passwd says,
    // and names missing from /etc/passwd or /etc/group are not errors.
    let env = Env::new();
    env.file(
        "passwd",
        "root:x:0:0::/root:/bin/sh\nold:x:42:7::/:/bin/sh\napp:x:1500:1600::/:/bin/sh\n",
    );
    env.file("group", "root:x:0:\nseven:x:7:\n");
    let mut req = env.request(concat!(
        "FROM scratch\n",
        "COPY passwd group /etc/\n",
        "USER 42\nWORKDIR /a\n",
        "USER 4444\nWORKDIR /b\n",
        "USER ghost\nWORKDIR /c\n",
        "USER app:nogroup\nWORKDIR /d\n",
    ));
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    let made: Vec<String> = layers[1..].iter().flat_map(|l| lines(l)).collect();
    assert_eq!(
        made,
        [
            format!("a dir 755 42:42 {EPOCH}"),
            format!("b dir 755 4444:4444 {EPOCH}"),
            format!("c dir 755 0:0 {EPOCH}"),
            format!("d dir 755 1500:1600 {EPOCH}"),
        ]
    );
}

#[test]
fn same_inputs_give_the_same_digest_and_epoch_clamps_times() {
    let env = Env::new();
    env.file("a.txt", "a");
    let dockerfile = "FROM scratch\nCOPY a.txt /\nWORKDIR /w\nLABEL x=y\n";
    let mut req = env.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    let first = env.run(&req).unwrap();
    let second = env.run(&req).unwrap();
    assert_eq!(first.manifest.digest, second.manifest.digest);
    assert_eq!(env.config(&first)["created"], EPOCH_TEXT);
    for layer in env.layers(&first) {
        for e in layer {
            assert!(e.line.ends_with(&format!(" {EPOCH}")), "{}", e.line);
        }
    }

    // Without SOURCE_DATE_EPOCH, `created` is the build time.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let built = env.run(&env.request(dockerfile)).unwrap();
    let created = env.config(&built)["created"].as_str().unwrap().to_string();
    let year: u64 = created[..4].parse().unwrap();
    assert!(year >= 1970 + before / 31_557_600, "{created}");
    assert_ne!(built.manifest.digest, first.manifest.digest);
}

#[test]
fn zstd_and_uncompressed_layers() {
    let env = Env::new();
    env.file("a.txt", "a");
    let mut req = env.request("FROM scratch\nCOPY a.txt /\n");
    req.source_date_epoch = Some(EPOCH);
    req.compression = kiln_oci::Compression::Zstd(3);
    let zstd = env.run(&req).unwrap();
    assert_eq!(
        env.manifest(&zstd)["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    req.compression = kiln_oci::Compression::None;
    let plain = env.run(&req).unwrap();
    assert_eq!(
        env.manifest(&plain)["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    // Same tar, so the same diff_id whatever the compression.
    assert_eq!(env.config(&zstd)["rootfs"], env.config(&plain)["rootfs"]);
    assert_eq!(
        lines(&env.layers(&plain)[0]),
        [format!("a.txt file 644 0:0 {EPOCH}")]
    );
}
