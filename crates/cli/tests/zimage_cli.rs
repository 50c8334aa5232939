//! ZImagefiles through the binary: `kiln build` finds them, builds them to
//! the image their Dockerfile translation builds (with the same cache),
//! `kiln convert` prints that translation, and errors point at the YAML.

use kiln_testsupport::base_images;
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds in `dir` (its own store) with a fixed epoch; returns the image id
/// and the progress.
fn build(dir: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "build",
        "--source-date-epoch",
        "1700000000",
        "--iidfile",
        "iid",
    ];
    args.extend_from_slice(extra);
    let out = kiln(dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = std::fs::read_to_string(dir.join("iid")).unwrap();
    (id, stderr(&out))
}

const SCRATCH_ZIMAGEFILE: &str = r#"version: "1"
args:
  GREETING: hello
stages:
  build:
    base: scratch
    steps:
      - copy: [hello.txt, "with space.txt"]
        to: /src/
        chmod: "0640"
      - env: {STAGE: build}
  app:
    base: scratch
    steps:
      - workdir: /app
      - copy: /src/
        from: build
        to: ./
        owner: "1000:1000"
env: {SAY: "${GREETING} world", LITERAL: "\\$HOME"}
labels: {org.opencontainers.image.title: zimage demo}
expose: [8080, 53/udp]
volumes: [/data]
user: "1000"
healthcheck:
  test: [/app/hello, --check]
  interval: 30s
stopsignal: SIGINT
entrypoint: [/app/hello]
cmd: [--serve]
"#;

fn scratch_context(dir: &Path) {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(ctx.join("with space.txt"), "spaced\n").unwrap();
    std::fs::write(ctx.join("ZImagefile"), SCRATCH_ZIMAGEFILE).unwrap();
}

#[test]
fn a_zimagefile_and_its_dockerfile_build_the_same_image_from_the_same_cache() {
    let zimage = tempfile::tempdir().unwrap();
    let z = zimage.path();
    scratch_context(z);
    // Found in the context without -f, as there is no Dockerfile.
    let (from_yaml, _) = build(z, &["ctx"]);

    let converted = kiln(z, &["convert", "ctx/ZImagefile"]);
    assert!(converted.status.success(), "{}", stderr(&converted));
    let dockerfile = stdout(&converted);
    assert!(
        dockerfile.starts_with("ARG GREETING=hello\nFROM scratch AS build\n"),
        "{dockerfile}"
    );

    let docker = tempfile::tempdir().unwrap();
    let d = docker.path();
    scratch_context(d);
    std::fs::remove_file(d.join("ctx/ZImagefile")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), &dockerfile).unwrap();
    let (from_dockerfile, _) = build(d, &["ctx"]);
    assert_eq!(from_yaml, from_dockerfile);

    // The same store's cache serves the Dockerfile's steps.
    std::fs::write(z.join("Dockerfile.converted"), &dockerfile).unwrap();
    let (again, progress) = build(z, &["-f", "Dockerfile.converted", "ctx"]);
    assert_eq!(again, from_yaml);
    assert!(progress.contains(" CACHED"), "{progress}");
    for line in progress.lines().filter(|l| l.contains(" DONE ")) {
        // FROM scratch has nothing to cache; every other step must hit.
        let number = line.split(' ').next().unwrap();
        let started = progress
            .lines()
            .find(|l| l.starts_with(&format!("{number} [")))
            .unwrap();
        assert!(
            started.ends_with("FROM scratch"),
            "not cached: {started}\n{progress}"
        );
    }

    let inspect = kiln(z, &["inspect", from_yaml.trim()]);
    let config = stdout(&inspect);
    assert!(config.contains("SAY=hello world"), "{config}");
    assert!(config.contains("LITERAL=$HOME"), "{config}");
}

#[test]
fn build_finds_the_zimagefile_only_when_there_is_no_dockerfile() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scratch_context(d);
    std::fs::write(d.join("ctx/Dockerfile"), "FROM scratch\nCOPY hello.txt /\n").unwrap();
    let out = kiln(d, &["build", "ctx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has both a Dockerfile and a ZImagefile: pass -f"),
        "{}",
        stderr(&out)
    );
    // -f chooses either one; any *.yaml is a ZImagefile.
    let (dockerfile_id, _) = build(d, &["-f", "ctx/Dockerfile", "ctx"]);
    let (zimage_id, _) = build(d, &["-f", "ctx/ZImagefile", "ctx"]);
    assert_ne!(dockerfile_id, zimage_id);
    std::fs::copy(d.join("ctx/ZImagefile"), d.join("app.yaml")).unwrap();
    let (yaml_id, _) = build(d, &["-f", "app.yaml", "ctx"]);
    assert_eq!(yaml_id, zimage_id);
}

#[test]
fn zimagefile_errors_point_at_the_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(
        d.join("ctx/ZImagefile"),
        "version: \"1\"\nstages:\n  app:\n    base: scratch\n    steps:\n      - workdir: /a\n      - copy: a\n        to: /b\n      - {copy: a, run: b}\n",
    )
    .unwrap();
    let out = kiln(d, &["build", "ctx"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: ctx/ZImagefile:9:19: stage 'app', step 3: a step needs exactly one of run, copy, add, env, workdir, user\n   |\n 9 |       - {copy: a, run: b}\n   |                   ^\n"
    );
    let out = kiln(d, &["convert", "ctx/ZImagefile"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: ctx/ZImagefile:9:19: stage 'app', step 3:"));
    assert!(stdout(&out).is_empty());

    // An error the build finds in the translation (a missing source)
    // is shown at the step of the YAML too.
    std::fs::write(
        d.join("ctx/ZImagefile"),
        "version: \"1\"\nstages:\n  app:\n    base: scratch\n    steps:\n      - copy: missing.txt\n        to: /\n",
    )
    .unwrap();
    let out = kiln(d, &["build", "ctx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: ctx/ZImagefile:6:9: stage 'app', step 1: COPY failed: "),
        "{err}"
    );
    assert!(err.contains(" 6 |       - copy: missing.txt\n"), "{err}");

    let out = kiln(d, &["convert", "nope.yaml"]);
    assert!(
        stderr(&out).contains("cannot read ZImagefile nope.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn convert_and_check_read_the_zimagefile_of_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ZImagefile"),
        "version: \"1\"\nbase: scratch\nsteps:\n  - copy: a\n    to: /a\ncmd: /a\n",
    )
    .unwrap();
    let out = kiln(d, &["convert"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "FROM scratch\nCOPY [\"a\", \"/a\"]\nCMD /a\n");
    // `kiln check` finds it too, and prints the plan of its translation.
    let out = kiln(d, &["check", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("[1/2] COPY a /a\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_steps_build_the_same_image_as_their_dockerfile() {
    let yaml = r#"version: "1"
base: bb
steps:
  - run: [mkdir -p /out, "echo $GREETING > /out/greeting"]
    env: {GREETING: "it's here"}
    cache: [{target: /var/cache/zimage, id: zimage-test, sharing: locked}]
  - run: |
      test -z "$GREETING"
      grep -qx "it's here" /out/greeting
      echo done > /out/script
cmd: [cat, /out/greeting]
"#;
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    let zimage = tempfile::tempdir().unwrap();
    let z = zimage.path();
    std::fs::create_dir(z.join("ctx")).unwrap();
    std::fs::write(z.join("ctx/ZImagefile"), yaml).unwrap();
    let (from_yaml, _) = build(z, &["--build-context", &bb, "ctx"]);

    let converted = kiln(z, &["convert", "ctx/ZImagefile"]);
    assert!(converted.status.success(), "{}", stderr(&converted));
    let docker = tempfile::tempdir().unwrap();
    let d = docker.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), stdout(&converted)).unwrap();
    let (from_dockerfile, _) = build(d, &["--build-context", &bb, "ctx"]);
    assert_eq!(from_yaml, from_dockerfile);

    // A failing command is reported at its step of the YAML.
    std::fs::write(
        z.join("ctx/ZImagefile"),
        "version: \"1\"\nstages:\n  app:\n    base: bb\n    steps:\n      - run: 'true'\n      - run: exit 3\n",
    )
    .unwrap();
    let out = kiln(z, &["build", "--build-context", &bb, "ctx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: ctx/ZImagefile:7:9: stage 'app', step 2: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
}

#[test]
fn os_windows_builds_a_windows_amd64_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/a.txt"), "a\n").unwrap();
    std::fs::write(
        d.join("ctx/ZImagefile"),
        "version: \"1\"\nbase: scratch\nos: windows\nsteps:\n  - copy: a.txt\n    to: /a.txt\ncmd: [cmd, /c, type, a.txt]\n",
    )
    .unwrap();
    let (id, _) = build(d, &["ctx"]);
    let inspect = stdout(&kiln(d, &["inspect", id.trim()]));
    assert!(
        inspect.contains("\"Platform\": \"windows/amd64\""),
        "{inspect}"
    );
}

#[test]
fn build_bases_are_built_first_and_used_as_the_stages_bases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |p: &str, text: &str| {
        let path = d.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "base/Dockerfile",
        "FROM bb\nRUN echo default > /stage.txt\n",
    );
    write(
        "base/Dockerfile.alt",
        "FROM bb AS builder\nRUN echo builder > /stage.txt\nFROM bb AS runtime\nARG V=1\nRUN echo runtime-$V > /stage.txt\n",
    );
    // A ZImagefile base with a `build:` base of its own.
    write(
        "nested/ZImagefile",
        "version: '1'\nbuild: ../base\nsteps:\n  - run: cp /stage.txt /nested.txt\n",
    );
    write(
        "app/ZImagefile",
        "version: '1'\n\
         stages:\n\
         \x20 one:\n\
         \x20   build:\n\
         \x20     context: ../base\n\
         \x20     file: Dockerfile.alt\n\
         \x20     target: runtime\n\
         \x20     args: {V: '7'}\n\
         \x20 two:\n\
         \x20   build: ../nested\n\
         \x20 app:\n\
         \x20   base: scratch\n\
         \x20   steps:\n\
         \x20     - copy: /stage.txt\n\
         \x20       from: one\n\
         \x20       to: /one.txt\n\
         \x20     - copy: /nested.txt\n\
         \x20       from: two\n\
         \x20       to: /two.txt\n",
    );
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    let out = kiln(
        d,
        &[
            "build",
            "--build-context",
            &bb,
            "-o",
            "type=local,dest=out",
            "app",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |p: &str| std::fs::read_to_string(d.join("out").join(p)).unwrap();
    assert_eq!(read("one.txt"), "runtime-7\n");
    assert_eq!(read("two.txt"), "default\n");

    // A directory that is not there, and a base that fails: errors name
    // the ZImagefile or the base's own Dockerfile line.
    write("missing/ZImagefile", "version: '1'\nbuild: ../nowhere\n");
    let out = kiln(d, &["build", "missing"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    write("broken/Dockerfile", "FROM bb\nRUN exit 3\n");
    write("uses-broken/ZImagefile", "version: '1'\nbuild: ../broken\n");
    let out = kiln(d, &["build", "--build-context", &bb, "uses-broken"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("broken/Dockerfile:2"),
        "{}",
        stderr(&out)
    );
}
