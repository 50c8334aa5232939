//! `kiln pipeline` through the binary, with real builds: waves in
//! dependency order, the images of a wave at once, a base built by the
//! pipeline and found in the store, `--only`, `--set`, `--fail-fast`,
//! errors before anything builds, and `--push` checked with skopeo.
//! RUN steps use the local busybox base, served by a local registry.

use kiln_testsupport::{base_images, BaseImages, Registry};
use std::path::Path;
use std::process::{Command, Output};

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A project: the pipeline file and each image's directory with its files.
fn project(pipeline: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ZPipeline.yaml"), pipeline).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// A registry serving the busybox base as `busybox:1`.
fn registry() -> (Registry, String) {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    (registry, host)
}

/// The images the run printed as built, in order.
fn built(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": built ").map(|(n, _)| n.to_string()))
        .collect()
}

/// Reads `path` from the image `tag` of the store in `dir`.
fn file_in_image(dir: &Path, tag: &str, path: &str) -> String {
    let out_dir = dir.join(format!("export-{}", tag.replace([':', '/'], "_")));
    let dockerfile = dir.join("Dockerfile.export");
    std::fs::write(&dockerfile, format!("FROM {tag}\n")).unwrap();
    let out = kiln(
        dir,
        &[
            "build",
            "-f",
            dockerfile.to_str().unwrap(),
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            "-",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::read_to_string(out_dir.join(path.trim_start_matches('/'))).unwrap()
}

#[test]
fn a_base_built_by_the_pipeline_is_found_in_the_store_and_vars_reach_the_build() {
    let (_registry, host) = registry();
    let pipeline = "vars:
  TAG: dev
images:
  app:
    context: app
    depends_on: [base]
    build_args:
      BASE: local/base:${TAG}
    tags: ['local/app:${TAG}']
  base:
    context: base
    build_args: {HOST: '${REGISTRY}'}
    tags: ['local/base:${TAG}']
  docs:
    context: docs
    tags: ['local/docs:${TAG}']
";
    let dir = project(
        pipeline,
        &[
            (
                "base/Dockerfile",
                "ARG HOST\nFROM ${HOST}/busybox:1\nRUN echo base > /base.txt\n",
            ),
            (
                "app/Dockerfile",
                "ARG BASE\nFROM ${BASE}\nRUN cat /base.txt > /app.txt && echo app >> /app.txt\n",
            ),
            ("docs/Dockerfile", "FROM scratch\nCOPY README /\n"),
            ("docs/README", "docs\n"),
        ],
    );
    let out = kiln(
        dir.path(),
        &[
            "pipeline",
            "--set",
            &format!("REGISTRY={host}"),
            "--set",
            "TAG=v2",
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wave 1: base, docs\nwave 2: app\n"), "{err}");
    assert!(
        err.contains("pipeline: 3 built, 0 failed, 0 not built"),
        "{err}"
    );
    let order = built(&out);
    assert_eq!(order.last().map(String::as_str), Some("app"), "{order:?}");
    // local/base:v2 names docker.io, which this machine cannot reach: the
    // app's FROM found the pipeline's base in the store.
    assert_eq!(
        file_in_image(dir.path(), "local/app:v2", "/app.txt"),
        "base\napp\n"
    );
}

#[test]
fn independent_images_build_at_once() {
    let (_registry, host) = registry();
    // Each waits for the other's mark in a shared cache mount: built one
    // after the other, the first would give up after a minute and fail.
    let wait = |me: &str, other: &str| {
        format!(
            "FROM {host}/busybox:1\n\
             RUN --mount=type=cache,id=rendezvous,target=/sync,sharing=shared \
             touch /sync/{me} && i=0 && while [ ! -f /sync/{other} ]; do \
             i=$((i+1)); [ $i -lt 60 ] || exit 1; sleep 1; done\n"
        )
    };
    let dir = project(
        "images:\n  left: {context: left}\n  right: {context: right}\n",
        &[
            ("left/Dockerfile", &wait("left", "right")),
            ("right/Dockerfile", &wait("right", "left")),
        ],
    );
    let out = kiln(dir.path(), &["pipeline"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wave 1: left, right\n"), "{err}");
    let mut names = built(&out);
    names.sort();
    assert_eq!(names, ["left", "right"]);
}

const WITH_A_BROKEN_IMAGE: &str = "images:
  good: {context: good}
  bad: {context: bad}
  after-good: {context: good, depends_on: [good], file: good/Dockerfile.next}
  after-bad: {context: good, depends_on: [bad], file: good/Dockerfile.next}
";

fn broken_project() -> tempfile::TempDir {
    project(
        WITH_A_BROKEN_IMAGE,
        &[
            ("good/Dockerfile", "FROM scratch\nCOPY a /\n"),
            ("good/Dockerfile.next", "FROM scratch\nCOPY a /next\n"),
            ("good/a", "a\n"),
            ("bad/Dockerfile", "FROM scratch\nCOPY missing /\n"),
        ],
    )
}

#[test]
fn without_fail_fast_everything_that_can_build_builds() {
    let dir = broken_project();
    let out = kiln(dir.path(), &["pipeline"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    let mut names = built(&out);
    names.sort();
    assert_eq!(names, ["after-good", "good"], "{err}");
    assert!(err.contains("bad: failed: "), "{err}");
    assert!(
        err.contains("after-bad: skipped: it depends on bad, which did not build"),
        "{err}"
    );
    assert!(
        err.contains("pipeline: 2 built, 1 failed, 1 not built"),
        "{err}"
    );
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let dir = broken_project();
    let out = kiln(dir.path(), &["pipeline", "--fail-fast"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad: failed: "), "{err}");
    assert!(
        err.contains("--fail-fast: not building after-good, after-bad")
            || err.contains("--fail-fast: not building after-bad, after-good"),
        "{err}"
    );
    assert!(!built(&out).contains(&"after-good".to_string()), "{err}");
}

#[test]
fn only_builds_the_images_named_and_their_dependencies() {
    let dir = broken_project();
    let out = kiln(dir.path(), &["pipeline", "--only", "after-good"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(built(&out), ["good", "after-good"]);
    assert!(!err.contains("bad"), "{err}");
    let out = kiln(dir.path(), &["pipeline", "--only", "nope"]);
    assert!(text(&out.stderr).contains("--only nope: no such image in the pipeline"));
}

#[test]
fn cycles_and_unknown_dependencies_fail_before_anything_builds() {
    let dir = project(
        "images:\n  a: {context: a, depends_on: [b]}\n  b: {context: a, depends_on: [a]}\n  c: {context: a}\n",
        &[("a/Dockerfile", "FROM scratch\nCOPY f /\n"), ("a/f", "f")],
    );
    let out = kiln(dir.path(), &["pipeline"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ZPipeline.yaml:2:32: images depend on each other in a cycle: a → b → a"),
        "{err}"
    );
    assert!(
        err.contains(
            "\n 2 |   a: {context: a, depends_on: [b]}\n   |                                ^"
        ),
        "{err}"
    );
    assert!(built(&out).is_empty());
    assert!(!err.contains("wave"), "{err}");

    std::fs::write(
        dir.path().join("ZPipeline.yaml"),
        "images:\n  c: {context: a}\n  a:\n    context: a\n    depends_on: [c, d]\n",
    )
    .unwrap();
    let out = kiln(dir.path(), &["pipeline"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("ZPipeline.yaml:5:21: image \"a\" depends on \"d\", which is not an image of this pipeline"),
        "{err}"
    );
    assert!(built(&out).is_empty());
}

#[test]
fn push_sends_every_image_to_its_registry() {
    let (_registry, host) = registry();
    let dir = project(
        "vars: {REG: unset}\nimages:\n  base:\n    context: base\n    tags: ['${REG}/pipe/base:1']\n  app:\n    context: app\n    depends_on: [base]\n    build_args: {REG: '${REG}'}\n    tags: ['${REG}/pipe/app:1']\n",
        &[
            ("base/Dockerfile", "FROM scratch\nCOPY f /\n"),
            ("base/f", "base\n"),
            ("app/Dockerfile", "ARG REG\nFROM ${REG}/pipe/base:1\nCOPY g /\n"),
            ("app/g", "app\n"),
        ],
    );
    let out = kiln(
        dir.path(),
        &["pipeline", "--push", "--set", &format!("REG={host}")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (repo, layers) in [("pipe/base:1", 1), ("pipe/app:1", 2)] {
        let inspect = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{host}/{repo}"))
            .output()
            .expect("skopeo");
        assert!(inspect.status.success(), "{}", text(&inspect.stderr));
        let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(json["Layers"].as_array().unwrap().len(), layers, "{repo}");
    }
}

#[test]
fn fail_fast_interrupts_the_builds_still_running() {
    let (_registry, host) = registry();
    let dir = project(
        "images:\n  slow: {context: slow}\n  bad: {context: bad}\n",
        &[
            (
                "slow/Dockerfile",
                &format!("FROM {host}/busybox:1\nRUN sleep 120\n"),
            ),
            // Fails once the slow build's RUN is under way.
            (
                "bad/Dockerfile",
                &format!("FROM {host}/busybox:1\nRUN sleep 3 && exit 1\n"),
            ),
        ],
    );
    let started = std::time::Instant::now();
    let out = kiln(dir.path(), &["pipeline", "--fail-fast"]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad: failed: "), "{err}");
    assert!(err.contains("slow: interrupted"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the sleeping build ran on: {err}"
    );
}

#[test]
fn platforms_build_an_index_and_defaults_fill_the_images() {
    let dir = project(
        "defaults:\n  context: ctx\n  platforms: [linux/amd64, linux/arm64]\nimages:\n  multi:\n    tags: [local/multi:1]\n  single:\n    tags: [local/single:1]\n    platforms: [linux/arm64]\n",
        &[("ctx/Dockerfile", "FROM scratch\nCOPY f /\n"), ("ctx/f", "f\n")],
    );
    let out = kiln(dir.path(), &["pipeline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inspect = |tag: &str| -> serde_json::Value {
        let out = kiln(dir.path(), &["inspect", tag]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // docker's shape: an array of one.
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list[0].clone()
    };
    let multi = inspect("local/multi:1");
    assert_eq!(
        multi["MediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&str> = multi["Index"]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    let single = inspect("local/single:1");
    assert_eq!(single["Platform"], "linux/arm64", "{single}");
}
