//! `docker buildx build` flags through the binary: the ones kiln
//! implements, and the ones it answers NotSupported with the reason
//! (never "unexpected argument").

use std::path::Path;
use std::process::Command;

fn kiln(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("ctx/a.txt"), "a\n").unwrap();
    std::fs::write(
        dir.path().join("ctx/Dockerfile"),
        "FROM scratch\nCOPY a.txt /\n",
    )
    .unwrap();
    dir
}

#[test]
fn quiet_prints_only_the_image_id() {
    let dir = context();
    let (code, out, err) = kiln(dir.path(), &["build", "-q", "ctx"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn every_progress_mode_and_false_attestations_are_accepted() {
    let dir = context();
    for args in [
        &["--progress=plain"][..],
        &["--progress", "auto"],
        &["--progress=tty"],
        &["--progress=rawjson"],
        &["--provenance=false", "--sbom=false", "--network=default"],
    ] {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.push("ctx");
        let (code, _, err) = kiln(dir.path(), &all);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
}

#[test]
fn flags_kiln_does_not_implement_yet_say_so_and_why() {
    let dir = context();
    for (flag, expected) in [
        (
            "--load",
            "NotSupported: --load: kiln cannot load into docker or podman yet",
        ),
        (
            "--sbom=true",
            "NotSupported: --sbom=true: kiln does not produce attestations yet",
        ),
        (
            "--provenance=mode=max",
            "NotSupported: --provenance=mode=max: kiln does not produce attestations yet",
        ),
        (
            "--network=host",
            "NotSupported: --network=host: only the default network is supported",
        ),
        (
            "--add-host=a:1.2.3.4",
            "NotSupported: --add-host: not implemented by kiln yet",
        ),
        (
            "--shm-size=1g",
            "NotSupported: --shm-size: not implemented by kiln yet",
        ),
        (
            "--progress=fancy",
            "--progress=fancy: expected auto, plain, tty or rawjson",
        ),
    ] {
        let (code, _, err) = kiln(dir.path(), &["build", flag, "ctx"]);
        assert_eq!(code, 1, "{flag}: {err}");
        assert!(err.contains(expected), "{flag}: {err}");
        assert!(!err.contains("unexpected argument"), "{flag}: {err}");
    }
}

#[test]
fn docker_media_types_with_format_docker_or_oci_mediatypes_false() {
    let dir = context();
    let d = dir.path();
    let (code, a, err) = kiln(
        d,
        &[
            "build",
            "-q",
            "--source-date-epoch",
            "1700000000",
            "--format",
            "docker",
            "-t",
            "fmt:docker",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, inspect, _) = kiln(d, &["inspect", "fmt:docker"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(
        v["MediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{inspect}"
    );
    assert_eq!(
        v["Manifest"]["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        v["Manifest"]["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // buildx's spelling gives the same image.
    let (code, b, err) = kiln(
        d,
        &[
            "build",
            "-q",
            "--source-date-epoch",
            "1700000000",
            "-o",
            "type=image,oci-mediatypes=false",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(a, b);
    // OCI stays the default, and zstd has no Docker media type.
    let (_, c, _) = kiln(
        d,
        &["build", "-q", "--source-date-epoch", "1700000000", "ctx"],
    );
    assert_ne!(a, c);
    let (code, _, err) = kiln(
        d,
        &[
            "build",
            "--format",
            "docker",
            "--compression",
            "zstd",
            "ctx",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Docker media types have no zstd layer"),
        "{err}"
    );
}
