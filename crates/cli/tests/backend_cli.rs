//! Build backends through the built `kiln`, with Debian's real buildah:
//! corpus cases built with `--backend native` and `--backend buildah`
//! give the same file trees and config fields, up to buildah's known
//! differences ([`BUILDAH_DIFFERENCES`]); `kiln backends`; selection by
//! flag and by `KILN_BACKEND`; the refusals of backends kiln does not
//! implement; a failing RUN under buildah; and tag, push and manifest
//! lists through buildah against a local registry, read back with skopeo.

// The corpus harness; corpus.rs uses the rest of it.
#[allow(dead_code)]
mod corpus_support;

use corpus_support::case::{self, Case, Prepared};
use corpus_support::{config, drop_buildah_stubs, start_base, tools, tree, Base};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Where an image built by the buildah backend may differ from the native
/// backend's, and why; the same list is in the README.
const BUILDAH_DIFFERENCES: &[(&str, &str)] = &[
    (
        "empty /etc/hostname, /etc/hosts, /etc/resolv.conf, /run, /run/secrets after RUN",
        "buildah leaves its RUN mount points behind; BuildKit and kiln remove them",
    ),
    (
        "the case's expect.json paths and config",
        "where BuildKit (which kiln follows) and buildah differ in meaning, the corpus lists it per case",
    ),
    (
        "config Healthcheck, OnBuild and Shell",
        "buildah's OCI format has no fields for them and drops them with a warning; \
         --format docker keeps them",
    ),
    (
        "layers: the base's, then one for all of the build's steps",
        "buildah runs without --layers, with which buildah 1.28 loses the directories \
         WORKDIR makes; kiln makes a layer per COPY, ADD and RUN (not compared: trees are)",
    ),
    (
        "the io.buildah.version label",
        "buildah stamps every image it makes",
    ),
    (
        "RUN --network=host runs without --allow network.host (behaviour, not compared)",
        "buildah has no entitlements",
    ),
];

/// Quick cases that need only the busybox base: COPY trees and modes,
/// stages, ENV, ARG, LABEL, WORKDIR and RUN.
const CASES: &[&str] = &[
    "copy-dir-tree",
    "copy-from-stage",
    "env",
    "arg",
    "label",
    "workdir",
    "from-stage",
    "run-basic",
];

/// The config fields buildah's OCI format cannot hold.
const OCI_DROPPED: &[&str] = &["Healthcheck", "OnBuild", "Shell"];

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("KILN_BACKEND").env_remove("SOURCE_DATE_EPOCH");
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("running kiln")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "{c:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kiln build` of a prepared case with `backend` (a flag, or
/// `KILN_BACKEND` when `by_env`), into an OCI layout.
fn build_case(
    c: &Case,
    p: &Prepared,
    base: &Base,
    store: &Path,
    backend: &str,
    by_env: bool,
    layout: &Path,
) -> Result<(), String> {
    let mut cmd = kiln();
    cmd.arg("build")
        .arg("-f")
        .arg(&p.dockerfile)
        .args(["-t", "img"]);
    if by_env {
        cmd.env("KILN_BACKEND", backend);
    } else {
        cmd.args(["--backend", backend]);
    }
    cmd.arg("--build-arg")
        .arg(format!("BASE={}", base.reference));
    for (k, v) in &c.expect.build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    if let Some(t) = &c.expect.target {
        cmd.args(["--target", t]);
    }
    cmd.arg("--output")
        .arg(format!("type=oci,dest={}", layout.display()))
        .arg(&p.context)
        .env("KILN_ROOT", store)
        .env("KILN_INSECURE_REGISTRIES", base.registry.host());
    let out = run(&mut cmd);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "kiln build --backend {backend} failed:\n{}",
            text(&out)
        ))
    }
}

struct Image {
    tree: tree::Tree,
    config: std::collections::BTreeMap<String, Value>,
}

fn read_image(layout: &Path, bundle: &Path) -> Result<Image, String> {
    let rootfs = tools::umoci_unpack(layout, bundle)?;
    let config = tools::image_config(layout)?;
    Ok(Image {
        tree: tree::scan(&rootfs)?,
        config: config::normalize(&config["config"]),
    })
}

/// The buildah backend's image with [`BUILDAH_DIFFERENCES`] applied: what
/// the native backend must have built.
fn expected_from_buildah(c: &Case, p: &Prepared, mut image: Image, native: &Image) -> Image {
    drop_buildah_stubs(&mut image.tree, &p.dockerfile);
    for (path, node) in &c.expect.paths {
        match node {
            None => {
                image.tree.remove(path);
            }
            Some(v) => {
                image
                    .tree
                    .insert(path.clone(), tree::Node::from_json(path, v).unwrap());
            }
        }
    }
    config::apply_overrides(&mut image.config, &c.expect.config);
    for field in OCI_DROPPED {
        assert!(
            !image.config.contains_key(*field),
            "buildah's OCI image kept {field}; drop it from the known differences"
        );
        if let Some(v) = native.config.get(*field) {
            image.config.insert(field.to_string(), v.clone());
        }
    }
    image
}

#[test]
fn corpus_cases_build_alike_on_native_and_buildah() {
    let base = start_base(false);
    let work = tempfile::tempdir().unwrap();
    let mut report = String::new();
    let mut failed = Vec::new();
    for (i, name) in CASES.iter().enumerate() {
        let c = case::load(&case::corpus_dir().join(name)).unwrap();
        let dir = work.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let p = case::prepare(&c, &dir.join("context"), &base.reference).unwrap();
        // One case picks buildah through the environment instead of the flag.
        let by_env = i == 0;
        let images = ["native", "buildah"].map(|backend| {
            let layout = dir.join(format!("{backend}-oci"));
            build_case(
                &c,
                &p,
                &base,
                &work.path().join(format!("{backend}-store")),
                backend,
                by_env && backend == "buildah",
                &layout,
            )
            .and_then(|()| read_image(&layout, &dir.join(format!("{backend}-bundle"))))
        });
        let [native, buildah] = images;
        let problems = match (native, buildah) {
            (Err(e), _) | (_, Err(e)) => vec![e],
            (Ok(native), Ok(buildah)) => {
                let want = expected_from_buildah(&c, &p, buildah, &native);
                let mut d = tree::diff(&want.tree, &native.tree);
                d.extend(config::diff(&want.config, &native.config));
                d
            }
        };
        if problems.is_empty() {
            report.push_str(&format!("PASS {name}\n"));
        } else {
            report.push_str(&format!("FAIL {name}\n    {}\n", problems.join("\n    ")));
            failed.push(*name);
        }
    }
    println!("{report}");
    let known: Vec<String> = BUILDAH_DIFFERENCES
        .iter()
        .map(|(what, why)| format!("  {what}: {why}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{failed:?} differ between the backends beyond the known differences:\n{}\n{report}",
        known.join("\n")
    );
}

#[test]
fn backends_lists_each_with_availability() {
    let out = ok(kiln().arg("backends"));
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
            .to_string()
    };
    assert!(line("native").contains(" yes "), "{out}");
    assert!(line("buildah").contains("yes"), "{out}");
    assert!(line("buildah").contains("buildah version 1."), "{out}");
    assert!(line("remote").contains(" no "), "{out}");
    assert!(
        line("remote").contains("no kiln daemon is configured"),
        "{out}"
    );
    assert!(line("hcs").contains("HCS needs a Windows host"), "{out}");
    assert!(line("hcs").contains("tested on Linux only"), "{out}");
    assert!(
        out.contains("Builds use native (this host's default)."),
        "{out}"
    );

    let env = ok(kiln().arg("backends").env("KILN_BACKEND", "buildah"));
    assert!(
        env.contains("Builds use buildah (from KILN_BACKEND)."),
        "{env}"
    );

    // A configured daemon is the default, and KILN_BACKEND still wins.
    let gone = tempfile::tempdir().unwrap();
    let daemon = format!("unix://{}/kiln.sock", gone.path().display());
    let remote = ok(kiln().arg("backends").env("KILN_REMOTE", &daemon));
    assert!(
        remote.contains("Builds use remote (KILN_REMOTE names a kiln daemon)."),
        "{remote}"
    );
    let native = ok(kiln()
        .arg("backends")
        .env("KILN_REMOTE", &daemon)
        .env("KILN_BACKEND", "native"));
    assert!(
        native.contains("Builds use native (from KILN_BACKEND)."),
        "{native}"
    );
    // And a build goes there: this one finds no daemon at that socket.
    std::fs::write(gone.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = run(kiln()
        .arg("build")
        .arg(gone.path())
        .env("KILN_ROOT", gone.path().join("root"))
        .env("KILN_REMOTE", &daemon));
    assert!(!out.status.success());
    assert!(text(&out).contains("kiln.sock"), "{}", text(&out));

    // Without buildah on PATH, it says so.
    let empty = tempfile::tempdir().unwrap();
    let missing = ok(kiln().arg("backends").env("PATH", empty.path()));
    let buildah = missing
        .lines()
        .find(|l| l.starts_with("buildah"))
        .unwrap()
        .to_string();
    assert!(buildah.contains(" no "), "{missing}");
    assert!(buildah.contains("buildah not found in PATH"), "{missing}");
}

#[test]
fn unimplemented_backends_refuse_with_what_is_missing() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    let store = work.path().join("store");
    for (how, backend, missing) in [
        ("flag", "remote", "no kiln daemon is configured"),
        ("flag", "hcs", "HCS needs a Windows host"),
        ("env", "remote", "no kiln daemon is configured"),
    ] {
        let mut c = kiln();
        c.arg("build").env("KILN_ROOT", &store);
        if how == "flag" {
            c.args(["--backend", backend]);
        } else {
            c.env("KILN_BACKEND", backend);
        }
        let out = run(c.arg(&ctx));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("NotSupported: backend {backend}: ")) && err.contains(missing),
            "{how} {backend}: {err}"
        );
    }
    // Refused before anything is written.
    assert!(!store.exists());
    let out = run(kiln()
        .args(["build", "--backend", "docker"])
        .arg(&ctx)
        .env("KILN_ROOT", &store));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backend: unknown backend \"docker\""));
}

#[test]
fn failing_run_under_buildah_names_the_step() {
    let base = start_base(false);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo fine\nRUN echo about to fail; exit 3\nRUN echo never\n",
            base.reference
        ),
    )
    .unwrap();
    let out = run(kiln()
        .args(["build", "--backend", "buildah", "-t", "broken"])
        .arg(&ctx)
        .env("KILN_ROOT", work.path().join("store"))
        .env("KILN_INSECURE_REGISTRIES", base.registry.host()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // BuildKit's plain output line: `#2 0.012 fine`.
    assert!(
        err.lines()
            .any(|l| l.starts_with("#2 ") && l.ends_with(" fine")),
        "{err}"
    );
    assert!(
        err.contains("Dockerfile:3:1: step \"RUN echo about to fail; exit 3\" failed"),
        "{err}"
    );
    assert!(err.contains("exit status 3"), "{err}");
    assert!(err.contains("  about to fail"), "{err}");
    assert!(!err.contains("never"), "{err}");
}

fn skopeo_raw(reference: &str) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn digest_line(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
        .to_string()
}

#[test]
fn buildah_tags_pushes_and_assembles_manifest_lists() {
    let base = start_base(false);
    let host = base.registry.host();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY hello.txt /\nRUN cat /hello.txt\n",
            base.reference
        ),
    )
    .unwrap();
    let store = work.path().join("store");
    let kiln_at = || {
        let mut c = kiln();
        c.env("KILN_ROOT", &store)
            .env("KILN_INSECURE_REGISTRIES", &host)
            .env("KILN_BACKEND", "buildah");
        c
    };
    let built = ok(kiln_at()
        .args(["build", "-t", "app:1", "--label", "made.by=test"])
        .arg(&ctx));
    assert!(built.contains("as app:1"), "{built}");
    // The build landed in kiln's store, built by buildah.
    let inspect: Value = serde_json::from_str(&ok(kiln_at().args(["inspect", "app:1"]))).unwrap();
    let labels = &inspect[0]["Config"]["Labels"];
    assert_eq!(labels["made.by"], "test", "{inspect}");
    assert!(labels["io.buildah.version"].is_string(), "{inspect}");

    // `--push` sends the very image the build reports (`-q` prints its
    // config's digest, as buildx does).
    let id = ok(kiln_at()
        .args(["build", "-q", "--push", "-t", &format!("{host}/app:built")])
        .arg(&ctx));
    let pushed = skopeo_raw(&format!("{host}/app:built"));
    assert_eq!(pushed["config"]["digest"], id.trim());

    ok(kiln_at().args(["tag", "app:1", &format!("{host}/app:2")]));
    let images = ok(kiln_at().arg("images"));
    assert!(images.contains(&format!("{host}/app")), "{images}");

    let pushed = ok(kiln_at().args(["push", &format!("{host}/app:2")]));
    let digest = digest_line(&pushed);
    let manifest = skopeo_raw(&format!("{host}/app:2"));
    assert_eq!(manifest["schemaVersion"], 2);
    // busybox's layer, then buildah's one for the COPY and the RUN.
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    let inspected = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{host}/app:2"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inspected.stdout).trim(), digest);

    ok(kiln_at().args(["manifest", "create", "app-list"]));
    ok(kiln_at().args(["manifest", "add", "app-list", "app:1"]));
    let pushed = ok(kiln_at().args(["manifest", "push", "app-list", &format!("{host}/app:list")]));
    let index = skopeo_raw(&format!("{host}/app:list"));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["platform"]["os"], "linux", "{index}");
    // The entry's image is in the registry too.
    let entry = skopeo_raw(&format!(
        "{host}/app@{}",
        entries[0]["digest"].as_str().unwrap()
    ));
    assert_eq!(entry["layers"].as_array().unwrap().len(), 2, "{entry}");
    assert!(digest_line(&pushed).starts_with("sha256:"));
}

#[test]
fn native_manifest_lists_hold_the_store_images() {
    let base = start_base(false);
    let host = base.registry.host();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nENV X=1\n", base.reference),
    )
    .unwrap();
    let store = work.path().join("store");
    let kiln_at = || {
        let mut c = kiln();
        c.env("KILN_ROOT", &store)
            .env("KILN_INSECURE_REGISTRIES", &host);
        c
    };
    ok(kiln_at()
        .args([
            "build",
            "--backend",
            "native",
            "-t",
            "one",
            "--metadata-file",
        ])
        .arg(work.path().join("one.json"))
        .arg(&ctx));
    let meta: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("one.json")).unwrap()).unwrap();
    let id = meta["containerimage.digest"].as_str().unwrap();
    ok(kiln_at().args(["manifest", "create", "list"]));
    ok(kiln_at().args(["manifest", "add", "list", "one"]));
    // Adding it again replaces its entry.
    ok(kiln_at().args(["manifest", "add", "list", "one"]));
    let pushed = ok(kiln_at().args(["manifest", "push", "list", &format!("{host}/native:list")]));
    let index = skopeo_raw(&format!("{host}/native:list"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], id, "{index}");
    assert_eq!(entries[0]["platform"]["os"], "linux");
    assert!(
        pushed.contains(&format!("Pushed {host}/native:list")),
        "{pushed}"
    );
    // A list is not an image to add to a list.
    let out = run(kiln_at().args(["manifest", "add", "list", "list"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a manifest list itself"));
}

#[test]
fn an_interrupted_buildah_build_stops_buildah_and_stores_nothing() {
    let base = start_base(false);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo started; sleep 60\n", base.reference),
    )
    .unwrap();
    let store = work.path().join("store");
    let log = work.path().join("stderr");
    let mut child = kiln()
        .args(["build", "--backend", "buildah", "-t", "slow"])
        .arg(&ctx)
        .env("KILN_ROOT", &store)
        .env("KILN_INSECURE_REGISTRIES", base.registry.host())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .any(|l| l.starts_with("#2 ") && l.ends_with(" started"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("build interrupted; nothing was stored"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 30, "buildah ran on: {err}");
    let images = ok(kiln().arg("images").env("KILN_ROOT", &store));
    assert!(!images.contains("slow"), "{images}");
    // buildah removed its build container.
    let containers = Command::new("buildah")
        .arg("--root")
        .arg(store.join("buildah/storage"))
        .arg("--runroot")
        .arg(store.join("buildah/run"))
        .args(["--storage-driver", "vfs", "containers", "--quiet"])
        .output()
        .unwrap();
    assert!(containers.status.success());
    assert_eq!(String::from_utf8_lossy(&containers.stdout).trim(), "");
}

#[test]
fn a_zimagefile_builds_with_the_buildah_backend_to_the_same_files() {
    let base = start_base(false);
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("ZImagefile"),
        format!(
            "version: '1'\nbase: {}\nsteps:\n  - run: echo from-yaml > /z.txt\n  - workdir: /srv\nenv: {{MODE: yaml}}\n",
            base.reference
        ),
    )
    .unwrap();
    for backend in ["native", "buildah"] {
        let out_dir = work.path().join(backend);
        let out = run(kiln()
            .args(["build", "--backend", backend, "-o"])
            .arg(format!("type=oci,dest={}", out_dir.display()))
            .arg(&ctx)
            .env("KILN_ROOT", work.path().join("store"))
            .env("KILN_INSECURE_REGISTRIES", base.registry.host()));
        assert!(out.status.success(), "{backend}: {}", text(&out));
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("index.json")).unwrap()).unwrap();
        let blob = |d: &serde_json::Value| {
            out_dir
                .join("blobs/sha256")
                .join(d.as_str().unwrap().trim_start_matches("sha256:"))
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
                .unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&manifest["config"]["digest"])).unwrap())
                .unwrap();
        assert_eq!(config["config"]["WorkingDir"], "/srv", "{backend}");
        assert!(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "MODE=yaml"),
            "{backend}: {config}"
        );
        // The RUN's file is in the last layer that has it.
        let found = manifest["layers"].as_array().unwrap().iter().any(|l| {
            let out = std::process::Command::new("tar")
                .args(["-tzf"])
                .arg(blob(&l["digest"]))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|n| n.trim_start_matches("./") == "z.txt")
        });
        assert!(found, "{backend}: /z.txt in a layer");
    }
}
