//! kiln.exe on a Windows host. `scripts/test` runs this as a Windows
//! program under wine, which has no HCS (neither `vmcompute.dll` nor
//! `computecore.dll`): what needs no container builds, and RUN says why it
//! cannot run and where it can.
#![cfg(windows)]

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

/// Runs kiln.exe in `dir` with its store under `dir`.
fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("root"))
        .env_remove("KILN_BACKEND")
        .env_remove("KILN_REMOTE")
        .output()
        .expect("starting kiln.exe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A tar's entries by name: mode and content.
type Files = HashMap<String, (u32, Vec<u8>)>;

/// Every entry of a tar, by name.
fn tar_files(bytes: &[u8]) -> Files {
    let mut out = HashMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, (mode, data));
    }
    out
}

/// A context directory holding `files` (name, content).
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

/// `kiln build ARGS .` in `dir`, which must fail with exit code 1; its
/// standard error.
fn failed_build(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push(".");
    let out = kiln(dir, &all);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The config and the (uncompressed) layers of the one image in the OCI
/// layout tar `path`.
fn image(path: &Path) -> (serde_json::Value, Vec<Files>) {
    let layout = tar_files(&std::fs::read(path).unwrap());
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        layout[&format!("blobs/sha256/{hex}")].1.clone()
    };
    let index = json(&layout["index.json"].1);
    let manifest = json(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&blob(l["digest"].as_str().unwrap())[..])
                .read_to_end(&mut tar)
                .unwrap();
            tar_files(&tar)
        })
        .collect();
    (config, layers)
}

#[test]
fn backends_say_what_runs_on_a_windows_host_without_hcs() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(dir.path(), &["backends"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"))
            .to_string()
    };
    let native = row("native");
    assert!(
        native.contains(" yes ") && native.contains("without RUN"),
        "{native}"
    );
    let hcs = row("hcs");
    assert!(
        hcs.contains(" no ") && hcs.contains("vmcompute.dll is not on this host"),
        "{hcs}"
    );
    assert!(
        stdout.contains("Builds use hcs (this host's default)."),
        "{stdout}"
    );
}

#[test]
fn a_build_without_run_makes_a_windows_image_by_default() {
    let dir = context(&[
        ("hello.txt", "hi\n"),
        (
            "Dockerfile",
            "FROM scratch\nCOPY hello.txt /app/\nENV A=b\n",
        ),
    ]);
    let out = kiln(
        dir.path(),
        &["build", "-t", "hello:1", "-o", "type=oci,dest=out.tar", "."],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (config, layers) = image(&dir.path().join("out.tar"));
    assert_eq!(config["os"], "windows");
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(layers.len(), 1);
    // A Windows layer: the files under Files/, the registry under Hives/.
    assert_eq!(layers[0]["Files/app/hello.txt"].1, b"hi\n");
}

#[test]
fn a_linux_image_built_on_windows_has_buildkits_modes_for_a_windows_context() {
    let dir = context(&[
        ("run.sh", "echo hi\n"),
        ("ro.txt", "fixed\n"),
        (
            "Dockerfile",
            "FROM scratch\nCOPY run.sh ro.txt /\nCOPY <<EOF /etc/conf\nx\nEOF\n",
        ),
    ]);
    let mut readonly = std::fs::metadata(dir.path().join("ro.txt"))
        .unwrap()
        .permissions();
    readonly.set_readonly(true);
    std::fs::set_permissions(dir.path().join("ro.txt"), readonly).unwrap();
    let out = kiln(
        dir.path(),
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            "type=oci,dest=out.tar",
            ".",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (config, layers) = image(&dir.path().join("out.tar"));
    assert_eq!(config["os"], "linux");
    // fsutil's rule on Windows: x for everyone, within 0755; read-only
    // files lose their w bits. A heredoc keeps BuildKit's 0644.
    assert_eq!(layers[0]["run.sh"].0 & 0o7777, 0o755);
    assert_eq!(layers[0]["ro.txt"].0 & 0o7777, 0o555);
    assert_eq!(layers[1]["etc/conf"], (0o644, b"x\n".to_vec()));
}

#[test]
fn run_in_a_linux_image_says_it_needs_a_linux_host() {
    let dir = context(&[("Dockerfile", "FROM scratch\nENV A=b\nRUN echo hi\n")]);
    let stderr = failed_build(dir.path(), &["--platform", "linux/amd64"]);
    assert!(
        stderr.contains(
            "Dockerfile:3:1: RUN in a linux image needs a linux host: a windows host cannot run its programs"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("remote kiln daemon"), "{stderr}");
}

#[test]
fn run_in_a_windows_image_says_hcs_is_missing() {
    let dir = context(&[
        ("hello.txt", "hi\n"),
        (
            "Dockerfile",
            "FROM scratch\nCOPY hello.txt /\nRUN echo hi\n",
        ),
    ]);
    let stderr = failed_build(dir.path(), &[]);
    assert!(stderr.contains("Dockerfile:3"), "{stderr}");
    assert!(
        stderr.contains("vmcompute.dll is not on this host")
            && stderr.contains("Containers feature"),
        "{stderr}"
    );
    // Nothing of the failed import is left in the store's layer directory.
    let layers = dir.path().join("root").join("hcs").join("layers");
    let left = std::fs::read_dir(&layers).map_or(0, |d| d.count());
    assert_eq!(left, 0, "{}", layers.display());
}
