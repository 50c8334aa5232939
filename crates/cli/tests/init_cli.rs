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

#[test]
fn the_python_template_builds_and_runs_on_debians_python() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // python:3.11-slim made here: Debian 12 with its python3 3.11.
    std::fs::create_dir(h.join("base")).unwrap();
    std::fs::write(
        h.join("base/Dockerfile"),
        "FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 && rm -rf /var/lib/apt/lists/*\n",
    )
    .unwrap();
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
            "python:3.11-slim",
            "base",
        ],
    );
    let project = h.join("project");
    std::fs::create_dir_all(project.join("app")).unwrap();
    std::fs::write(project.join(".python-version"), "3.11.2\n").unwrap();
    std::fs::write(project.join("requirements.txt"), "# none\n").unwrap();
    std::fs::write(
        project.join("app/__main__.py"),
        "import getpass\nprint('hello from', getpass.getuser())\n",
    )
    .unwrap();
    ok(h, &["init", "project"]);
    // The Dockerfile as init wrote it: its FROM python:3.11-slim is the
    // image above, found in the store.
    ok(h, &["build", "-t", "local/pyapp", "project"]);
    std::fs::create_dir(h.join("run")).unwrap();
    std::fs::write(
        h.join("run/Dockerfile"),
        "FROM local/pyapp\nRUN python -m app\n",
    )
    .unwrap();
    let out = ok(h, &["build", "--progress", "plain", "run"]);
    let err = text(&out.stderr);
    assert!(err.contains("hello from app"), "{err}");
}

#[test]
fn the_go_template_builds_and_runs_on_debians_go() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // golang:1.19 made here: Debian 12 with its golang-go (1.19); the
    // distroless runtime stood in by busybox, which runs a static binary
    // as well.
    std::fs::create_dir(h.join("base")).unwrap();
    std::fs::write(
        h.join("base/Dockerfile"),
        "FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends golang-go && rm -rf /var/lib/apt/lists/*\n",
    )
    .unwrap();
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
            "golang:1.19",
            "base",
        ],
    );
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
    let project = h.join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("go.mod"),
        "module example.com/app\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        project.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(\"hello from go as\", os.Getuid()) }\n",
    )
    .unwrap();
    ok(h, &["init", "project"]);
    let dockerfile = std::fs::read_to_string(project.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("golang:1.19"), "{dockerfile}");
    ok(
        h,
        &[
            "build",
            "--build-arg",
            "RUNTIME_IMAGE=local/static:nonroot",
            "-t",
            "local/goapp",
            "project",
        ],
    );
    std::fs::create_dir(h.join("run")).unwrap();
    std::fs::write(
        h.join("run/Dockerfile"),
        "FROM local/goapp\nRUN [\"/app\"]\n",
    )
    .unwrap();
    let out = ok(h, &["build", "--progress", "plain", "run"]);
    let err = text(&out.stderr);
    assert!(err.contains("hello from go as 65532"), "{err}");
}

#[test]
fn the_rust_template_builds_and_runs_on_debians_rust() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // rust:1.63-slim made here: Debian 12 with its rustc and cargo (1.63);
    // debian:bookworm-slim is the Debian image itself.
    std::fs::create_dir(h.join("base")).unwrap();
    std::fs::write(
        h.join("base/Dockerfile"),
        "FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends cargo && rm -rf /var/lib/apt/lists/*\n",
    )
    .unwrap();
    std::fs::create_dir(h.join("slim")).unwrap();
    std::fs::write(h.join("slim/Dockerfile"), "FROM debian\n").unwrap();
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
            "rust:1.63-slim",
            "base",
        ],
    );
    ok(
        h,
        &[
            "build",
            "--build-context",
            &debian,
            "-t",
            "debian:bookworm-slim",
            "slim",
        ],
    );
    let project = h.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.63\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() { println!(\"hello from rust\"); }\n",
    )
    .unwrap();
    ok(h, &["init", "project"]);
    ok(h, &["build", "-t", "local/rsapp", "project"]);
    std::fs::create_dir(h.join("run")).unwrap();
    std::fs::write(
        h.join("run/Dockerfile"),
        "FROM local/rsapp\nRUN app && id -un\n",
    )
    .unwrap();
    let out = ok(h, &["build", "--progress", "plain", "run"]);
    let err = text(&out.stderr);
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
    // node:18-bookworm-slim made here: Debian 12 with its nodejs (18) and
    // npm, and the `node` user the official image has.
    std::fs::create_dir(h.join("base")).unwrap();
    std::fs::write(
        h.join("base/Dockerfile"),
        "FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/* && useradd --create-home node\n",
    )
    .unwrap();
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
            "node:18-bookworm-slim",
            "base",
        ],
    );
    let project = h.join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join(".nvmrc"), "18\n").unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"app","version":"1.0.0","scripts":{"start":"node index.js"}}"#,
    )
    .unwrap();
    std::fs::write(
        project.join("index.js"),
        "console.log('hello from node as', require('os').userInfo().username);\n",
    )
    .unwrap();
    ok(h, &["init", "project"]);
    ok(h, &["build", "-t", "local/nodeapp", "project"]);
    std::fs::create_dir(h.join("run")).unwrap();
    std::fs::write(
        h.join("run/Dockerfile"),
        "FROM local/nodeapp\nRUN npm start\n",
    )
    .unwrap();
    let out = ok(h, &["build", "--progress", "plain", "run"]);
    let err = text(&out.stderr);
    assert!(err.contains("hello from node as node"), "{err}");
}
