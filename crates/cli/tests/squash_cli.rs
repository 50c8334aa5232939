//! `kiln build --squash` (podman's flag): the layers the build adds on its
//! base image become one, with the base's deletions as whiteouts, and the
//! image's files are those of the unsquashed build.

use kiln_testsupport::base_images;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn kiln(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &Value) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
}

/// Every file under `dir`, with its contents for regular files.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
                out.push((rel, "dir".into()));
            } else if ft.is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(e.path()).unwrap().display()),
                ));
            } else {
                out.push((rel, std::fs::read_to_string(e.path()).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn squash_makes_the_new_layers_one_with_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM bb\nRUN mkdir /a && echo 1 > /a/f && rm /bin/ls\nRUN echo 2 > /a/g && rm /a/f\nCOPY x /x\n",
    )
    .unwrap();
    std::fs::write(d.join("ctx/x"), "x\n").unwrap();
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    for (out, squash) in [("plain", false), ("squashed", true)] {
        let mut args = vec!["build", "--build-context", &bb];
        if squash {
            args.push("--squash");
        }
        let oci = format!("type=oci,dest={out}");
        let local = format!("type=local,dest={out}-fs");
        kiln(d, &[&args[..], &["-o", &oci, "ctx"]].concat());
        kiln(
            d,
            &[&args[..], &["--no-cache", "-o", &local, "ctx"]].concat(),
        );
    }
    assert_eq!(tree(&d.join("plain-fs")), tree(&d.join("squashed-fs")));

    let layout = d.join("squashed");
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, &index["manifests"][0]["digest"]));
    let config = json(&blob(&layout, &manifest["config"]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "the base's one and the squashed one");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let history = config["history"].as_array().unwrap();
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .count();
    assert_eq!(non_empty, 2, "{history:?}");
    assert_eq!(history.last().unwrap()["created_by"], "kiln build --squash");

    let script =
        "import sys, tarfile\nprint('\\n'.join(m.name for m in tarfile.open(sys.argv[1])))";
    let names = Command::new("python3")
        .args(["-c", script])
        .arg(blob(&layout, &layers[1]["digest"]))
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&names.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for want in ["a/g", "bin/.wh.ls", "x"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "a/f"),
        "made and deleted: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "bin/busybox"),
        "the base's: {names:?}"
    );
}
