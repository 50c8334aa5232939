//! Windows images built on this Linux host from a whole Dockerfile, on a
//! synthetic Windows base served by a real docker-registry
//! (`scripts/make-windows-base`), checked with independent readers:
//! Python's `tarfile` for every entry and PAX record, `skopeo inspect` for
//! what the registry holds, and kiln's import simulator.

use base64::Engine as _;
use kiln_oci::windows::check_layer;
use kiln_oci::windows::sd::{SecurityDescriptor, DIR_SDDL, FILE_SDDL};
use kiln_testsupport::{windows_base, BaseImages, Registry};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stderr: String,
}

fn kiln(home: &Path, dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("KILN_ROOT", home.join("store"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kiln build --platform PLATFORM ARGS… -o OUTPUT .` in `ctx`, which must
/// succeed.
fn build_ok(
    home: &Path,
    ctx: &Path,
    platform: &str,
    args: &[&str],
    output: &str,
    env: &[(&str, &str)],
) {
    let mut all = vec!["build", "--platform", platform];
    all.extend(args);
    all.extend(["-o", output, "."]);
    let run = kiln(home, ctx, &all, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `type=oci,dest=DIR`.
fn oci(dir: &Path) -> String {
    format!("type=oci,dest={}", dir.display())
}

/// A registry holding the synthetic base as `windows/nanoserver:ltsc2022`.
fn registry_with_base() -> (Registry, String) {
    let registry = Registry::start();
    let host = registry.host();
    BaseImages::skopeo_push(windows_base(), &host, "windows/nanoserver:ltsc2022");
    (registry, host)
}

/// A build context with `files` and a Dockerfile.
fn context(dockerfile: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, data) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    dir
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The manifest and config of the single image in an OCI layout.
fn image(layout: &Path) -> (Value, Value) {
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    (manifest, config)
}

/// One tar entry as Python's `tarfile` reads it.
#[derive(Debug, PartialEq)]
struct Entry {
    name: String,
    kind: String,
    data: String,
    pax: Vec<(String, String)>,
}

/// Every entry of a (gzip) layer blob, read by Python's `tarfile`, which
/// reports PAX records in file order.
fn entries(blob: &Path) -> Vec<Entry> {
    let script = r#"
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        data = t.extractfile(m).read().decode('latin-1') if m.isfile() else ''
        out.append({'name': m.name, 'kind': m.type.decode(),
                    'data': data, 'pax': list(m.pax_headers.items())})
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(blob)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.into_iter()
        .map(|e| Entry {
            name: e["name"].as_str().unwrap().into(),
            kind: e["kind"].as_str().unwrap().into(),
            data: e["data"].as_str().unwrap().into(),
            pax: e["pax"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| {
                    (
                        kv[0].as_str().unwrap().to_string(),
                        kv[1].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn pax<'a>(e: &'a Entry, key: &str) -> Option<&'a str> {
    e.pax
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn sd_base64(sddl: &str) -> String {
    let sd = SecurityDescriptor::parse_sddl(sddl).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sd.to_bytes())
}

/// The base layer's entry `name` for os.version `version`.
fn base_entry(version: &str, name: &str) -> Entry {
    let layout = windows_base();
    let index = json(&layout.join("index.json"));
    let list = json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let entry = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["os.version"] == version)
        .unwrap();
    let manifest = json(&blob(layout, entry["digest"].as_str().unwrap()));
    let layer = blob(layout, manifest["layers"][0]["digest"].as_str().unwrap());
    entries(&layer)
        .into_iter()
        .find(|e| e.name == name)
        .unwrap()
}

const EPOCH: &str = "1700000000";

#[test]
fn the_issues_dockerfile_builds_pushes_and_matches_the_design() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {host}/windows/nanoserver:ltsc2022\n\
         COPY app.exe C:/app/\n\
         ENV APP_MODE=prod\n\
         WORKDIR C:/app\n\
         USER ContainerUser\n\
         ENTRYPOINT [\"C:\\\\app\\\\app.exe\"]\n"
    );
    let ctx = context(&dockerfile, &[("app.exe", b"MZ app\n")]);
    let out = ctx.path().join("out");
    let tag = format!("{host}/app:win");
    let run = kiln(
        home.path(),
        ctx.path(),
        &[
            "build",
            "--platform",
            "windows/amd64:10.0.20348",
            "-t",
            &tag,
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "-o",
            "type=image,push=true",
            ".",
        ],
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);

    let (manifest, config) = image(&out);
    // The greatest UBR of build 20348, its version and platform carried.
    assert_eq!(config["os"], "windows");
    assert_eq!(config["os.version"], "10.0.20348.2340");
    assert_eq!(config["architecture"], "amd64");
    let c = &config["config"];
    assert_eq!(c["User"], "ContainerUser");
    assert_eq!(
        c["Env"],
        serde_json::json!(["APP_MODE=prod"]),
        "no PATH added"
    );
    assert_eq!(c["WorkingDir"], "C:\\app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["C:\\app\\app.exe"]));
    let history: Vec<(String, bool)> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap().to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(history.len(), 6, "{history:?}");
    assert_eq!(
        history[1],
        ("COPY app.exe C:/app/ # buildkit".into(), false)
    );
    assert!(history[2].1 && history[4].1 && history[5].1, "{history:?}");
    assert_eq!(history[3], ("WORKDIR C:\\app".into(), false));

    // The base layer is passed through untouched.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let base = base_entry("10.0.20348.2340", "Files/Windows/kiln-version.txt");
    assert_eq!(base.data, "10.0.20348.2340\r\n");
    let base_manifest_layer = {
        let layout = windows_base();
        let idx = json(&layout.join("index.json"));
        let list = json(&blob(
            layout,
            idx["manifests"][0]["digest"].as_str().unwrap(),
        ));
        let m = json(&blob(
            layout,
            list["manifests"][2]["digest"].as_str().unwrap(),
        ));
        m["layers"][0].clone()
    };
    assert_eq!(layers[0]["digest"], base_manifest_layer["digest"]);

    // The COPY layer, entry by entry.
    let copy_blob = blob(&out, layers[1]["digest"].as_str().unwrap());
    check_layer(std::fs::File::open(&copy_blob).unwrap()).expect("hcsshim would import it");
    let copy = entries(&copy_blob);
    let names: Vec<&str> = copy.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Files", "Files/app", "Files/app/app.exe", "Hives"]);
    let exe = &copy[2];
    assert_eq!((exe.kind.as_str(), exe.data.as_str()), ("0", "MZ app\n"));
    assert_eq!(pax(exe, "MSWINDOWS.fileattr"), Some("32"));
    assert_eq!(
        pax(exe, "MSWINDOWS.rawsd"),
        Some(sd_base64(FILE_SDDL).as_str())
    );
    let app = &copy[1];
    assert_eq!(pax(app, "MSWINDOWS.fileattr"), Some("16"));
    assert_eq!(
        pax(app, "MSWINDOWS.rawsd"),
        Some(sd_base64(DIR_SDDL).as_str())
    );
    // Whole seconds: the mtime is the header's, the others PAX records.
    assert_eq!(
        pax(app, "atime"),
        Some(EPOCH),
        "a new directory gets the epoch"
    );
    assert_eq!(pax(app, "LIBARCHIVE.creationtime"), Some(EPOCH));
    for root in [&copy[0], &copy[3]] {
        assert_eq!(pax(root, "MSWINDOWS.fileattr"), Some("16"));
        assert_eq!(
            pax(root, "MSWINDOWS.rawsd"),
            None,
            "roots carry no descriptor"
        );
    }

    // WORKDIR over the directory COPY made: an empty Windows layer (the
    // two roots), as BuildKit writes an empty one on Linux.
    let wd_blob = blob(&out, layers[2]["digest"].as_str().unwrap());
    check_layer(std::fs::File::open(&wd_blob).unwrap()).unwrap();
    let names: Vec<String> = entries(&wd_blob).into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["Files", "Hives"]);

    // The registry holds the same image.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{tag}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let pushed: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(pushed["layers"], manifest["layers"]);
    let cfg = Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{tag}"))
        .output()
        .unwrap();
    let pushed_config: Value = serde_json::from_slice(&cfg.stdout).unwrap();
    assert_eq!(pushed_config["os.version"], "10.0.20348.2340");

    // The same inputs again, with no cache: the same image.
    let again = ctx.path().join("again");
    build_ok(
        home.path(),
        ctx.path(),
        "windows/amd64:10.0.20348",
        &["--no-cache"],
        &oci(&again),
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    );
    assert_eq!(image(&again).0, manifest, "reproducible");
}

#[test]
fn existing_directories_keep_the_bases_spelling_and_records() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    // As Windows Dockerfiles do, so that `C:\` ending a line does not
    // continue it.
    let dockerfile = format!(
        "# escape=`\n\
         FROM {host}/windows/nanoserver:ltsc2022\n\
         COPY x.txt C:\\WINDOWS\\temp\\\n\
         WORKDIR /windows/system32/CONFIG\n\
         COPY x.txt y.txt\n\
         WORKDIR C:sub\n"
    );
    let ctx = context(&dockerfile, &[("x.txt", b"x")]);
    let out = ctx.path().join("out");
    build_ok(
        home.path(),
        ctx.path(),
        "windows/amd64:10.0.20348.987",
        &[],
        &oci(&out),
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    );
    let (manifest, config) = image(&out);
    assert_eq!(config["os.version"], "10.0.20348.987");
    assert_eq!(
        config["config"]["WorkingDir"],
        "C:\\windows\\system32\\CONFIG\\sub"
    );
    // `C:sub` is relative, as docker on Windows reads it; the base's User
    // is kept.
    assert_eq!(config["config"]["User"], "ContainerUser");
    let layers = manifest["layers"].as_array().unwrap();

    let copy = entries(&blob(&out, layers[1]["digest"].as_str().unwrap()));
    let names: Vec<&str> = copy.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/Windows",
            "Files/Windows/Temp",
            "Files/Windows/Temp/x.txt",
            "Hives"
        ]
    );
    // Byte for byte what the base has: descriptor, attributes 0x2010,
    // creation time and nanosecond times.
    let base_windows = base_entry("10.0.20348.987", "Files/Windows");
    let mut want = base_windows.pax.clone();
    let mut got = copy[1].pax.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(pax(&copy[1], "mtime"), Some("1600000000.123456789"));

    // WORKDIR creates nothing (CONFIG exists as config); the last COPY
    // writes into it in the base's spelling.
    let last = entries(&blob(&out, layers[3]["digest"].as_str().unwrap()));
    let names: Vec<&str> = last.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/Windows",
            "Files/Windows/System32",
            "Files/Windows/System32/config",
            "Files/Windows/System32/config/y.txt",
            "Hives"
        ]
    );
    let sub = entries(&blob(&out, layers[4]["digest"].as_str().unwrap()));
    assert_eq!(
        sub.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        [
            "Files",
            "Files/Windows",
            "Files/Windows/System32",
            "Files/Windows/System32/config",
            "Files/Windows/System32/config/sub",
            "Hives"
        ]
    );
    // The base is Python's tar (directories named `Files/`), not ours.
    for layer in &layers[1..] {
        check_layer(std::fs::File::open(blob(&out, layer["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    }
}

#[test]
fn windows_mistakes_get_clear_errors_and_warnings() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    let from = format!("FROM {host}/windows/nanoserver:ltsc2022\n");
    let build = |dockerfile: &str, platform: &str| {
        let ctx = context(dockerfile, &[("x.txt", b"x")]);
        let out = ctx.path().join("out");
        let run = kiln(
            home.path(),
            ctx.path(),
            &[
                "build",
                "--platform",
                platform,
                "-o",
                &format!("type=oci,dest={}", out.display()),
                ".",
            ],
            &[],
        );
        (run, out, ctx)
    };
    let pinned = "windows/amd64:10.0.20348";

    // Several builds match and none was asked for: list them.
    let (run, _, _) = build(&format!("{from}COPY x.txt C:/\n"), "windows/amd64");
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("matches several Windows builds (10.0.17763, 10.0.20348)"),
        "{}",
        run.stderr
    );

    // Another drive, UNC, --chown, --chmod, RUN.
    for (line, needle) in [
        ("COPY x.txt D:/x\n", "not on the system drive"),
        (
            "COPY x.txt \\\\\\\\srv\\\\share\\\\x\n",
            "UNC paths are not supported",
        ),
        (
            "COPY --chown=ContainerUser x.txt C:/x\n",
            "NotSupported: --chown",
        ),
        ("COPY --chmod=755 x.txt C:/x\n", "NotSupported: --chmod"),
        ("WORKDIR D:/x\n", "not on the system drive"),
        ("RUN echo hi\n", "HCS backend"),
        (
            "COPY x.txt C:/Windows/System32/cmd.exe/\n",
            "not a directory",
        ),
    ] {
        let (run, _, _) = build(&format!("{from}{line}"), pinned);
        assert_ne!(run.code, 0, "{line}");
        assert!(run.stderr.contains(needle), "{line}: {}", run.stderr);
        assert!(
            run.stderr.contains("Dockerfile:2"),
            "{line}: {}",
            run.stderr
        );
    }

    // Two names NTFS holds as one.
    let ctx = context(
        &format!("{from}COPY d/ C:/d/\n"),
        &[("d/Read.me", b"1"), ("d/READ.ME", b"2")],
    );
    let run = kiln(
        home.path(),
        ctx.path(),
        &["build", "--platform", pinned, "."],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("READ.ME") && run.stderr.contains("Read.me"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Dockerfile:2"), "{}", run.stderr);

    // ENV PATH built from ${PATH}, which a Windows config lacks: warned,
    // and Path replaces PATH case-insensitively.
    let (run, out, _ctx) = build(
        &format!("{from}ENV PATH=C:\\\\app;${{PATH}}\nENV Path=C:\\\\tools\n"),
        pinned,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("ENV PATH refers to PATH"),
        "{}",
        run.stderr
    );
    let (_, config) = image(&out);
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["Path=C:\\tools"])
    );
    // A shell-form CMD runs through cmd.
    let (run, out, _ctx) = build(&format!("{from}CMD echo hi\n"), pinned);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, config) = image(&out);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cmd", "/S", "/C", "echo hi"])
    );
    assert_eq!(config["config"]["ArgsEscaped"], true);
}

#[test]
fn linux_and_windows_build_into_one_index() {
    let (_registry, host) = registry_with_base();
    BaseImages::skopeo_push(&kiln_testsupport::base_images().busybox, &host, "busybox:1");
    let home = tempfile::tempdir().unwrap();
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let dockerfile = format!(
        "FROM {host}/busybox:1 AS linux-base\n\
         FROM {host}/windows/nanoserver:ltsc2022 AS windows-base\n\
         FROM ${{TARGETOS}}-base\n\
         COPY x.txt /app/\n"
    );
    let ctx = context(&dockerfile, &[("x.txt", b"x")]);
    let out = ctx.path().join("out");
    build_ok(
        home.path(),
        ctx.path(),
        &format!("linux/{arch},windows/amd64:10.0.20348"),
        &[],
        &oci(&out),
        &[],
    );
    let index = json(&out.join("index.json"));
    let top = json(&blob(
        &out,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let platforms: Vec<Value> = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].clone())
        .collect();
    assert_eq!(platforms[0]["os"], "linux");
    assert_eq!(
        platforms[1],
        serde_json::json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2340"})
    );
    let windows = json(&blob(&out, top["manifests"][1]["digest"].as_str().unwrap()));
    let layer = windows["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let names: Vec<String> = entries(&blob(&out, layer["digest"].as_str().unwrap()))
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["Files", "Files/app", "Files/app/x.txt", "Hives"]);
    let linux = json(&blob(&out, top["manifests"][0]["digest"].as_str().unwrap()));
    let layer = linux["layers"].as_array().unwrap().last().unwrap().clone();
    let names: Vec<String> = entries(&blob(&out, layer["digest"].as_str().unwrap()))
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["app", "app/x.txt"]);
}

#[test]
fn workdir_creates_directories_and_a_windows_stage_copies_into_linux() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "# escape=`\n\
         FROM {host}/windows/nanoserver:ltsc2022 AS win\n\
         WORKDIR C:\\data\\logs\n\
         COPY x.txt .\n\
         FROM --platform=linux/amd64 scratch\n\
         COPY --from=win /windows/KILN-VERSION.txt /data/logs/x.txt /out/\n\
         COPY --from=win /Windows/System32/ /sys32/\n"
    );
    let ctx = context(&dockerfile, &[("x.txt", b"x")]);
    let win = ctx.path().join("win");
    build_ok(
        home.path(),
        ctx.path(),
        "windows/amd64:10.0.20348",
        &["--target", "win"],
        &oci(&win),
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    );
    let (manifest, config) = image(&win);
    assert_eq!(config["config"]["WorkingDir"], "C:\\data\\logs");
    let layers = manifest["layers"].as_array().unwrap();
    let workdir = entries(&blob(&win, layers[1]["digest"].as_str().unwrap()));
    let names: Vec<&str> = workdir.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Files", "Files/data", "Files/data/logs", "Hives"]);
    for dir in &workdir[1..3] {
        assert_eq!(dir.kind, "5");
        assert_eq!(pax(dir, "MSWINDOWS.fileattr"), Some("16"));
        assert_eq!(
            pax(dir, "MSWINDOWS.rawsd"),
            Some(sd_base64(DIR_SDDL).as_str())
        );
        assert_eq!(pax(dir, "atime"), Some(EPOCH));
    }
    let copy = entries(&blob(&win, layers[2]["digest"].as_str().unwrap()));
    let names: Vec<&str> = copy.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/data",
            "Files/data/logs",
            "Files/data/logs/x.txt",
            "Hives"
        ]
    );
    assert_eq!(
        copy[1].pax, workdir[1].pax,
        "replayed from the WORKDIR layer"
    );

    // The Windows stage's C: seen from a Linux stage: Files/ stripped,
    // names found whatever their case, no hives, no alternate streams.
    let out = ctx.path().join("linux");
    build_ok(
        home.path(),
        ctx.path(),
        "windows/amd64:10.0.20348",
        &[],
        &format!("type=local,dest={}", out.display()),
        &[],
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("out/kiln-version.txt"), "10.0.20348.2340\r\n");
    assert_eq!(read("out/x.txt"), "x");
    let mut sys32: Vec<String> = walk(&out.join("sys32"));
    sys32.sort();
    assert_eq!(
        sys32,
        [
            "cmd.exe",
            "config",
            "config/DEFAULT",
            "config/SAM",
            "config/SECURITY",
            "config/SOFTWARE",
            "config/SYSTEM"
        ]
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|c| format!("{name}/{c}")));
        }
        out.push(name);
    }
    out
}

/// The synthetic base with its layer made foreign, as old MCR images are:
/// an OCI layout (Docker media types, as MCR serves them) whose layer is
/// `…foreign.diff.tar.gzip` with `urls`, its bytes not in the layout.
/// Returns the layout, the foreign descriptor as written, and the bytes.
fn foreign_windows_base(dir: &Path, urls: &[String]) -> (PathBuf, Value, Vec<u8>) {
    let src = windows_base();
    let idx = json(&src.join("index.json"));
    let list = json(&blob(src, idx["manifests"][0]["digest"].as_str().unwrap()));
    let m = json(&blob(src, list["manifests"][2]["digest"].as_str().unwrap()));
    let layer = &m["layers"][0];
    let bytes = std::fs::read(blob(src, layer["digest"].as_str().unwrap())).unwrap();
    let config = std::fs::read(blob(src, m["config"]["digest"].as_str().unwrap())).unwrap();

    let layout = dir.join("foreign-base");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        let d = kiln_oci::Digest::of(data);
        std::fs::write(layout.join("blobs/sha256").join(d.hex()), data).unwrap();
        (d.to_string(), data.len())
    };
    let (config_digest, config_size) = put(&config);
    let foreign = serde_json::json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "size": bytes.len(),
        "digest": layer["digest"],
        "urls": urls,
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": config_size, "digest": config_digest},
        "layers": [foreign],
    })
    .to_string();
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "ltsc2022"}}]})
        .to_string(),
    )
    .unwrap();
    (layout, foreign, bytes)
}

#[test]
fn a_windows_base_with_a_foreign_layer_builds_by_default_or_kept() {
    use kiln_testsupport::{FileServer, RegistryOptions};
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // The registry allows URLs on 127.0.0.1 (the harness's default), so
    // the base can be stored with its foreign layer.
    let registry = Registry::start();
    let stock = Registry::start_with(RegistryOptions {
        refuse_foreign_urls: true,
        ..RegistryOptions::default()
    });
    let (_, _, bytes) = foreign_windows_base(h, &[]);
    let server = FileServer::start(vec![("/layer.tar.gz".into(), bytes)]);
    let url = server.url("/layer.tar.gz");
    let server_host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (layout, foreign, _) = foreign_windows_base(h, std::slice::from_ref(&url));
    let insecure: Vec<String> = [registry.host(), stock.host(), server_host]
        .into_iter()
        .flat_map(|host| ["--insecure-registry".to_string(), host])
        .collect();
    let flags: Vec<&str> = insecure.iter().map(String::as_str).collect();
    let base = format!("{}/windows/nanoserver:ltsc2022", registry.host());
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(&flags)
            .chain(tail)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kiln(h, h, &args, &[])
    };
    let copied = run(with(
        &["copy", "--keep-foreign-layers"],
        &[
            &format!("oci:{}:ltsc2022", layout.display()),
            &format!("docker://{base}"),
        ],
    ));
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    assert!(server.requests().is_empty());

    let ctx = context(
        &format!("FROM {base}\nCOPY app.exe C:/app/\n"),
        &[("app.exe", b"MZ")],
    );
    let dir = ctx.path().to_str().unwrap();

    // Kept: the descriptor passes through, fetched once because COPY reads
    // the base's C: (to spell and replay what exists), never uploaded.
    let kept = format!("{}/app:kept", registry.host());
    let built = run(with(
        &[
            "build",
            "--keep-foreign-layers",
            "--format",
            "docker",
            "--platform",
            "windows/amd64",
            "--push",
            "-t",
            &kept,
        ],
        &[dir],
    ));
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert_eq!(server.requests().len(), 1);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{kept}"))
        .output()
        .unwrap();
    let pushed: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(pushed["layers"][0], foreign);
    assert_eq!(
        pushed["layers"][1]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );

    // By default: an ordinary layer a stock registry takes, the bytes
    // uploaded, the diff_ids unchanged.
    let app = format!("{}/app:1", stock.host());
    let built = run(with(
        &["build", "--platform", "windows/amd64", "--push", "-t", &app],
        &[dir],
    ));
    assert_eq!(built.code, 0, "{}", built.stderr);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{app}"))
        .output()
        .unwrap();
    let pushed: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(pushed["layers"][0]["digest"], foreign["digest"]);
    assert_eq!(
        pushed["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(pushed["layers"][0].get("urls").is_none());
    let pulled = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{app}"))
        .arg(format!("oci:{}/check:1", h.display()))
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "the registry holds every blob: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );

    // A foreign layer pointing nowhere: the error names it and the URL.
    let nowhere_dir = h.join("nowhere");
    std::fs::create_dir(&nowhere_dir).unwrap();
    let dead = "http://127.0.0.1:9/layer.tar.gz".to_string();
    let (layout, _, _) = foreign_windows_base(&nowhere_dir, std::slice::from_ref(&dead));
    let gone = format!("{}/windows/gone:ltsc2022", registry.host());
    let copied = run(with(
        &["copy", "--keep-foreign-layers"],
        &[
            &format!("oci:{}:ltsc2022", layout.display()),
            &format!("docker://{gone}"),
        ],
    ));
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    let home2 = tempfile::tempdir().unwrap();
    let ctx = context(
        &format!("FROM {gone}\nCOPY app.exe C:/app/\n"),
        &[("app.exe", b"MZ")],
    );
    let mut args = vec!["build", "--platform", "windows/amd64"];
    args.extend(&flags);
    args.push(ctx.path().to_str().unwrap());
    let failed = kiln(home2.path(), ctx.path(), &args, &[]);
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains(foreign["digest"].as_str().unwrap()),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains(&dead), "{}", failed.stderr);
}

#[test]
fn windows_builds_use_the_cache_shared_caches_check_and_reparse_points() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {host}/windows/nanoserver:ltsc2022\n\
         COPY [\"x.txt\", \"C:/Documents and Settings/Public/\"]\n\
         WORKDIR C:/app\n\
         COPY x.txt .\n"
    );
    let ctx = context(&dockerfile, &[("x.txt", b"x")]);
    let cache = ctx.path().join("cache");
    let build = |home: &Path, out: &str, extra: &[&str]| {
        let mut args = vec![
            "build",
            "--progress",
            "plain",
            "--platform",
            "windows/amd64:10.0.20348",
        ];
        args.extend(extra);
        let dest = format!("type=oci,dest={}", ctx.path().join(out).display());
        args.extend(["-o", &dest, "."]);
        kiln(home, ctx.path(), &args, &[])
    };
    let cache_to = format!("type=local,dest={}", cache.display());
    let first = build(home.path(), "one", &["--cache-to", &cache_to]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let (manifest, _) = image(&ctx.path().join("one"));
    // Through the junction C:\Documents and Settings -> C:\Users.
    let layer = &manifest["layers"][1];
    let names: Vec<String> = entries(&blob(
        &ctx.path().join("one"),
        layer["digest"].as_str().unwrap(),
    ))
    .into_iter()
    .map(|e| e.name)
    .collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/Users",
            "Files/Users/Public",
            "Files/Users/Public/x.txt",
            "Hives"
        ]
    );

    // Again: every step from the cache, the same image.
    let again = build(home.path(), "two", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let cached = again
        .stderr
        .lines()
        .filter(|l| l.ends_with(" CACHED"))
        .count();
    assert_eq!(cached, 3, "{}", again.stderr);
    assert_eq!(image(&ctx.path().join("two")).0, manifest);

    // Another machine (an empty store) with --cache-from: the same.
    let other = tempfile::tempdir().unwrap();
    let cache_from = format!("type=local,src={}", cache.display());
    let shared = build(other.path(), "three", &["--cache-from", &cache_from]);
    assert_eq!(shared.code, 0, "{}", shared.stderr);
    let cached = shared
        .stderr
        .lines()
        .filter(|l| l.ends_with(" CACHED"))
        .count();
    assert_eq!(cached, 3, "{}", shared.stderr);
    assert_eq!(image(&ctx.path().join("three")).0, manifest);

    // kiln check reads it like any Dockerfile.
    let check = kiln(home.path(), ctx.path(), &["check", "."], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
}

#[test]
fn context_symlinks_become_windows_links_to_files_or_directories() {
    let (_registry, host) = registry_with_base();
    let home = tempfile::tempdir().unwrap();
    let ctx = context(
        &format!("FROM {host}/windows/nanoserver:ltsc2022\nCOPY d/ C:/links/\n"),
        &[("x.txt", b"x"), ("d/own/y.txt", b"y")],
    );
    let d = ctx.path().join("d");
    std::os::unix::fs::symlink("/Windows/System32", d.join("sys")).unwrap();
    std::os::unix::fs::symlink("own", d.join("mine")).unwrap();
    std::os::unix::fs::symlink("own/y.txt", d.join("file")).unwrap();
    let out = ctx.path().join("out");
    build_ok(
        home.path(),
        ctx.path(),
        "windows/amd64:10.0.20348",
        &[],
        &oci(&out),
        &[],
    );
    let (manifest, _) = image(&out);
    let layer = blob(&out, manifest["layers"][1]["digest"].as_str().unwrap());
    check_layer(std::fs::File::open(&layer).unwrap()).unwrap();
    let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        if m.issym():
            print(m.name, m.linkname, m.pax_headers.get('MSWINDOWS.fileattr'))
"#;
    let links = Command::new("python3")
        .args(["-c", script])
        .arg(&layer)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&links.stdout),
        "Files/links/file own\\y.txt 1056\n\
         Files/links/mine own 1040\n\
         Files/links/sys C:\\Windows\\System32 1040\n"
    );
}
