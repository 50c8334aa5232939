//! Builds on images: pulled from a registry, from the store, from named
//! build contexts, with the base's ENV and ONBUILD triggers.

mod build_support;

use build_support::*;
use kiln_backend::NamedContext;
use kiln_testsupport::{base_images, BaseImages, Registry};
use serde_json::json;

const EPOCH: i64 = 1_700_000_000;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn from_busybox_pulled_from_a_registry_then_from_the_store() {
    let mut registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let env = Env::with_registry(&host);
    env.file("hello.sh", "#!/bin/sh\necho hi\n");
    let dockerfile =
        format!("FROM {host}/busybox:1\nENV PATH=/app:$PATH\nWORKDIR /app\nCOPY hello.sh ./\n");
    let mut req = env.request(&dockerfile);
    req.source_date_epoch = Some(EPOCH);
    req.tags.push("hello:1".parse().unwrap());
    let built = env.run(&req).unwrap();

    let config = env.config(&built);
    assert_eq!(
        config["config"]["Env"],
        json!([format!("PATH=/app:{PATH}")])
    );
    assert_eq!(config["config"]["Cmd"], json!(["sh"]));
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert_eq!(
        history(&config),
        [
            "scripts/make-base-images",
            &format!("ENV PATH=/app:{PATH} (empty)"),
            "WORKDIR /app",
            "COPY hello.sh ./ # buildkit",
        ]
    );
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 3);
    assert!(
        layers[0]
            .iter()
            .any(|e| e.line.starts_with("./bin/busybox file 755")),
        "{:?}",
        lines(&layers[0])[..3].to_vec()
    );
    assert_eq!(lines(&layers[1]), [format!("app dir 755 0:0 {EPOCH}")]);
    // The COPY layer carries its parent directory, as a snapshot diff does.
    assert_eq!(
        lines(&layers[2]),
        [
            format!("app dir 755 0:0 {EPOCH}"),
            format!("app/hello.sh file 644 0:0 {EPOCH}")
        ]
    );
    // The base was pulled into the store under its name, and the result tagged.
    let names: Vec<String> = env
        .store()
        .images()
        .unwrap()
        .iter()
        .filter_map(|i| i.reference.as_ref().map(|r| r.to_string()))
        .collect();
    assert!(names.contains(&format!("{host}/busybox:1")), "{names:?}");
    assert!(
        names.contains(&"docker.io/library/hello:1".to_string()),
        "{names:?}"
    );

    // Without the registry, the store's copy is used.
    registry.stop();
    let again = env.run(&req).unwrap();
    assert_eq!(again.manifest.digest, built.manifest.digest);
    // --pull insists on the registry.
    req.pull = kiln_backend::PullPolicy::Always;
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("Dockerfile:1:6: base image {host}/busybox:1: ")),
        "{err}"
    );
}

#[test]
fn onbuild_triggers_of_a_base_image_run_first() {
    let env = Env::new();
    env.file("a", "from the trigger\n");
    let mut base = env.request(
        "FROM scratch\nENV GREETING=hi\nONBUILD COPY a /from-trigger\nONBUILD LABEL greeting=$GREETING\n",
    );
    base.tags.push("local/onbuild:1".parse().unwrap());
    base.source_date_epoch = Some(EPOCH);
    let parent = env.run(&base).unwrap();
    assert_eq!(
        env.config(&parent)["config"]["OnBuild"],
        json!(["COPY a /from-trigger", "LABEL greeting=$GREETING"])
    );

    let mut req = env.request("FROM local/onbuild:1\nLABEL after=1\n");
    req.source_date_epoch = Some(EPOCH);
    let built = env.run(&req).unwrap();
    let config = env.config(&built);
    assert_eq!(
        history(&config),
        [
            "ENV GREETING=hi (empty)",
            "COPY a /from-trigger # buildkit",
            "LABEL greeting=hi (empty)",
            "LABEL after=1 (empty)",
        ]
    );
    assert!(config["config"].get("OnBuild").is_none(), "{config}");
    let layers = env.layers(&built);
    assert_eq!(
        lines(&layers[0]),
        [format!("from-trigger file 644 0:0 {EPOCH}")]
    );

    // A trigger that fails points at the FROM line.
    std::fs::remove_file(env.ctx().join("a")).unwrap();
    let err = env
        .run(&env.request("\nFROM local/onbuild:1\n"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Dockerfile:2: "), "{err}");
}

#[test]
fn onbuild_triggers_keep_their_heredocs() {
    // BuildKit's parser hangs the heredoc on the ONBUILD line, and
    // parseOnBuild appends each body and its terminator to the trigger.
    let env = Env::new();
    let mut base = env.request("FROM scratch\nONBUILD COPY <<EOF /t\nfrom the image\nEOF\n");
    base.tags.push("local/onbuild-heredoc:1".parse().unwrap());
    let parent = env.run(&base).unwrap();
    assert_eq!(
        env.config(&parent)["config"]["OnBuild"],
        json!(["COPY <<EOF /t\nfrom the image\nEOF"])
    );
    let built = env
        .run(&env.request("FROM local/onbuild-heredoc:1\n"))
        .unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers[0][0].data, "from the image\n");

    // The same trigger on a stage of the same Dockerfile.
    let built = env
        .run(
            &env.request("FROM scratch AS p\nONBUILD COPY <<EOF /s\nfrom the stage\nEOF\nFROM p\n"),
        )
        .unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers[0][0].data, "from the stage\n");
}

#[test]
fn named_build_contexts() {
    let env = Env::new();
    let extra = env.path("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("f.txt"), "extra\n").unwrap();
    let mut req = env.request("FROM bb\nCOPY --from=files f.txt /f.txt\n");
    req.source_date_epoch = Some(EPOCH);
    req.build_contexts.insert(
        "bb".into(),
        NamedContext::OciLayout {
            path: base_images().busybox.clone(),
            reference: Some("latest".into()),
        },
    );
    req.build_contexts
        .insert("files".into(), NamedContext::Dir(extra));
    let built = env.run(&req).unwrap();
    let layers = env.layers(&built);
    assert_eq!(layers.len(), 2);
    assert_eq!(lines(&layers[1]), [format!("f.txt file 644 0:0 {EPOCH}")]);
    assert_eq!(layers[1][0].data, "extra\n");
    assert_eq!(env.config(&built)["config"]["Cmd"], json!(["sh"]));

    // docker-image:// points a name at another image.
    let mut req = env.request("FROM alpine\nLABEL x=1\n");
    req.build_contexts.insert(
        "alpine".into(),
        NamedContext::Image(format!("sha256:{}", "0".repeat(64))),
    );
    let err = env.run(&req).unwrap_err().to_string();
    assert!(
        err.starts_with("Dockerfile:1:6: base image alpine: "),
        "{err}"
    );
    assert_eq!(
        "oci-layout:///x/y:v1".parse::<NamedContext>().unwrap(),
        NamedContext::OciLayout {
            path: "/x/y".into(),
            reference: Some("v1".into())
        }
    );
    assert!("git://x"
        .parse::<NamedContext>()
        .unwrap_err()
        .contains("not supported"));
}

#[test]
fn history_entries_get_buildkits_times_and_a_cached_rebuild_keeps_them() {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let env = Env::with_registry(&host);
    env.file("a.txt", "a\n");
    let dockerfile = format!("FROM {host}/busybox:1\nENV A=1\nCOPY a.txt /\nLABEL l=1\n");
    let req = env.request(&dockerfile);
    let built = env.run(&req).unwrap();
    let config = env.config(&built);
    let times: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created"].as_str().expect("every entry has a time"))
        .collect();
    assert_eq!(times.len(), 4, "{times:?}");
    // ENV (before the first new layer) and LABEL (after it) take the COPY
    // layer's time; the base's entry keeps its own.
    assert_eq!(times[1], times[2]);
    assert_eq!(times[3], times[2]);
    assert_ne!(times[0], times[2]);

    // A second later, every step is a cache hit and its layer keeps the
    // time it was first made: the same config, the same image.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = env.run(&req).unwrap();
    assert_eq!(again.manifest.digest, built.manifest.digest);
}
