//! `kiln init` and `kiln templates` through the binary: every template's
//! output passes `kiln check` without warnings, in both formats; init
//! refuses to overwrite; `runtime:` in a ZImagefile is the template's
//! Dockerfile. Two templates build for real on bases made here: python,
//! on Debian 12 with Debian's python3 (from the Debian mirror of this
//! machine's APT sources), and then runs; nanoserver on the synthetic
//! Windows base. The others' bases (node, bun, deno, rust, golang, the
//! .NET SDK) come from Docker Hub, gcr.io or mcr.microsoft.com, which the
//! tests cannot reach, and Debian's packages of those toolchains are not
//! what the templates' `node`, `cargo` or `go` images hold (users, paths,
//! versions), so they are checked with `kiln check` only.

use kiln_testsupport::{debian_image, windows_base, BaseImages, Registry};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const TEMPLATES: [&str; 8] = [
    "deno",
    "bun",
    "node",
    "rust",
    "python",
    "go",
    "dotnet",
    "nanoserver",
];

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

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = kiln(dir, args);
    assert!(
        out.status.success(),
        "kiln {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_template_passes_check_without_warnings_in_both_formats() {
    let home = tempfile::tempdir().unwrap();
    for name in TEMPLATES {
        for format in ["dockerfile", "zimagefile"] {
            let dir = home.path().join(format!("{name}-{format}"));
            std::fs::create_dir(&dir).unwrap();
            let d = dir.to_str().unwrap();
            ok(
                home.path(),
                &["init", "--runtime", name, "--format", format, d],
            );
            let file = if format == "dockerfile" {
                "Dockerfile"
            } else {
                "ZImagefile"
            };
            assert!(dir.join(file).is_file(), "{name}: no {file}");
            let out = ok(home.path(), &["check", d]);
            let err = text(&out.stderr);
            assert!(!err.contains("warning"), "{name} {format}: {err}");
            let stages = if name == "nanoserver" {
                "stage 0"
            } else {
                "stage 1"
            };
            assert!(text(&out.stdout).contains(stages), "{name} {format}");
        }
    }
}

#[test]
fn init_detects_writes_and_refuses_to_overwrite() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("api");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"api\"\nrequires-python = \">=3.11\"\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let out = ok(home.path(), &["init", d]);
    let err = text(&out.stderr);
    assert!(
        err.contains("template python (found pyproject.toml)"),
        "{err}"
    );
    assert!(
        err.contains("version 3.11 from pyproject.toml requires-python"),
        "{err}"
    );
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.starts_with("ARG PYTHON_IMAGE=python:3.11-slim\n"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("CMD [\"python\", \"-m\", \"api\"]"));
    assert!(std::fs::read_to_string(dir.join(".dockerignore"))
        .unwrap()
        .contains("__pycache__"));

    // A second init, in either format, refuses; --force replaces.
    std::fs::write(dir.join("Dockerfile"), "FROM mine\n").unwrap();
    for format in ["dockerfile", "zimagefile"] {
        let out = kiln(home.path(), &["init", "--format", format, d]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("Dockerfile exists; pass --force"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
        "FROM mine\n"
    );
    ok(home.path(), &["init", "--force", d]);
    assert_eq!(
        std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
        dockerfile
    );

    // No project files, and an unknown template, are errors that say what to do.
    let empty = home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = kiln(home.path(), &["init", empty.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("pass --runtime NAME"));
    let out = kiln(
        home.path(),
        &["init", "--runtime", "cobol", empty.to_str().unwrap()],
    );
    assert!(text(&out.stderr).contains("unknown runtime template \"cobol\""));
    assert!(!empty.join("Dockerfile").exists());
}

#[test]
fn templates_lists_every_template_with_its_bases() {
    let home = tempfile::tempdir().unwrap();
    let out = text(&ok(home.path(), &["templates"]).stdout);
    for name in TEMPLATES {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}: {out}");
    }
    assert!(out.contains("node:20-bookworm-slim"), "{out}");
    assert!(out.contains("golang:1.22"), "{out}");
}

#[test]
fn runtime_in_a_zimagefile_converts_to_the_templates_dockerfile() {
    let home = tempfile::tempdir().unwrap();
    for name in TEMPLATES {
        let dir = home.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        ok(
            home.path(),
            &["init", "--runtime", name, dir.to_str().unwrap()],
        );
        let zimagefile = home.path().join(format!("{name}.yaml"));
        std::fs::write(&zimagefile, format!("version: \"1\"\nruntime: {name}\n")).unwrap();
        let converted = ok(home.path(), &["convert", zimagefile.to_str().unwrap()]);
        assert_eq!(
            text(&converted.stdout),
            std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
            "{name}"
        );
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_nanoserver_template_builds_on_a_local_base() {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(windows_base(), &host, "windows/nanoserver:ltsc2022");
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("tool");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("tool.exe"), b"MZ tool\n").unwrap();
    let d = dir.to_str().unwrap();
    ok(home.path(), &["init", d]);
    let out = home.path().join("out");
    ok(
        home.path(),
        &[
            "build",
            "--build-arg",
            &format!("NANOSERVER_IMAGE={host}/windows/nanoserver:ltsc2022"),
            "-o",
            &format!("type=oci,dest={}", out.display()),
            d,
        ],
    );
    let blob = |digest: &Value| {
        out.join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = json(&out.join("index.json"));
    let manifest = json(&blob(&index["manifests"][0]["digest"]));
    let config = json(&blob(&manifest["config"]["digest"]));
    assert_eq!(config["os"], "windows");
    assert_eq!(config["config"]["User"], "ContainerUser");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["C:/app/tool.exe"])
    );
    // The base layer and the program's layer.
    assert!(manifest["layers"].as_array().unwrap().len() >= 2);
}

/// Tags in `h`'s store, as `tag`, Debian 12 with `packages` (if any)
/// installed from Debian's own archive and `extra` run after: a stand-in
/// for an official language image the tests cannot pull.
fn debian_with(h: &Path, tag: &str, packages: &str, extra: &str) {
    let dir = h.join(format!("base-{}", tag.replace([':', '/'], "-")));
    std::fs::create_dir(&dir).unwrap();
    let dockerfile = if packages.is_empty() {
        "FROM debian\n".to_string()
    } else {
        format!("FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*{extra}\n")
    };
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let debian = format!(
        "debian=oci-layout://{}:latest",
        debian_image().layout.display()
    );
    ok(
        h,
        &[
            "build",
            "--build-context",
            &debian,
            "-t",
            tag,
            dir.to_str().unwrap(),
        ],
    );
}

/// Writes `files` into `h/project`, runs `kiln init` there and builds the
/// Dockerfile it wrote (with `args`) as `local/app`; returns the text of
/// that Dockerfile.
fn init_and_build(h: &Path, files: &[(&str, &str)], args: &[&str]) -> String {
    let project = h.join("project");
    for (name, text) in files {
        let path = project.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    ok(h, &["init", "project"]);
    let mut build = vec!["build"];
    build.extend_from_slice(args);
    build.extend(["-t", "local/app", "project"]);
    ok(h, &build);
    std::fs::read_to_string(project.join("Dockerfile")).unwrap()
}

/// The progress of a RUN of `command` on `local/app`: what it printed.
fn run_on_app(h: &Path, command: &str) -> String {
    std::fs::create_dir_all(h.join("run")).unwrap();
    std::fs::write(
        h.join("run/Dockerfile"),
        format!("FROM local/app\nRUN {command}\n"),
    )
    .unwrap();
    text(&ok(h, &["build", "--progress", "plain", "--no-cache", "run"]).stderr)
}

#[test]
fn the_python_template_builds_and_runs_on_debians_python() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    debian_with(
        h,
        "python:3.11-slim",
        "python3 python3-venv python-is-python3",
        "",
    );
    let dockerfile = init_and_build(
        h,
        &[
            (".python-version", "3.11.2\n"),
            ("requirements.txt", "# none\n"),
            (
                "app/__main__.py",
                "import getpass\nprint('hello from', getpass.getuser())\n",
            ),
        ],
        &[],
    );
    assert!(dockerfile.contains("python:3.11-slim"), "{dockerfile}");
    let err = run_on_app(h, "python -m app");
    assert!(err.contains("hello from app"), "{err}");
}

#[test]
fn the_go_template_builds_and_runs_on_debians_go() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Busybox stands in for distroless: both run a static binary.
    debian_with(h, "golang:1.19", "golang-go", "");
    std::fs::create_dir(h.join("static")).unwrap();
    std::fs::write(h.join("static/Dockerfile"), "FROM bb\n").unwrap();
    let bb = format!(
        "bb=oci-layout://{}:latest",
        kiln_testsupport::base_images().busybox.display()
    );
    ok(
        h,
        &[
            "build",
            "--build-context",
            &bb,
            "-t",
            "local/static:nonroot",
            "static",
        ],
    );
    let dockerfile = init_and_build(
        h,
        &[
            ("go.mod", "module example.com/app\n\ngo 1.19\n"),
            (
                "main.go",
                "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(\"hello from go as\", os.Getuid()) }\n",
            ),
        ],
        &["--build-arg", "RUNTIME_IMAGE=local/static:nonroot"],
    );
    assert!(dockerfile.contains("golang:1.19"), "{dockerfile}");
    let err = run_on_app(h, "[\"/app\"]");
    assert!(err.contains("hello from go as 65532"), "{err}");
}

#[test]
fn the_rust_template_builds_and_runs_on_debians_rust() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // The Debian image itself is the runtime's debian:bookworm-slim.
    debian_with(h, "rust:1.63-slim", "cargo", "");
    debian_with(h, "debian:bookworm-slim", "", "");
    let dockerfile = init_and_build(
        h,
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            ),
            ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.63\"\n"),
            (
                "src/main.rs",
                "fn main() { println!(\"hello from rust\"); }\n",
            ),
        ],
        &[],
    );
    assert!(dockerfile.contains("rust:1.63-slim"), "{dockerfile}");
    let err = run_on_app(h, "app && id -un");
    assert!(err.contains("hello from rust"), "{err}");
    assert!(
        err.lines().any(|l| l.ends_with(" app")),
        "runs as app: {err}"
    );
}

#[test]
fn the_node_template_builds_and_runs_on_debians_node() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // With the `node` user the official image has.
    debian_with(
        h,
        "node:18-bookworm-slim",
        "nodejs npm",
        " && useradd --create-home node",
    );
    let dockerfile = init_and_build(
        h,
        &[
            (".nvmrc", "18\n"),
            (
                "package.json",
                r#"{"name":"app","version":"1.0.0","scripts":{"start":"node index.js"}}"#,
            ),
            (
                "index.js",
                "console.log('hello from node as', require('os').userInfo().username);\n",
            ),
        ],
        &[],
    );
    assert!(dockerfile.contains("node:18-bookworm-slim"), "{dockerfile}");
    let err = run_on_app(h, "npm start");
    assert!(err.contains("hello from node as node"), "{err}");
}
