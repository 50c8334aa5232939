//! `kiln build` as the built binary: progress, id and metadata files,
//! outputs, stdin Dockerfiles, and failures that leave the store alone.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kiln_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kiln(dir: &Path, args: &[&str]) -> Run {
    kiln_in(dir, args, None)
}

/// Progress lines with the durations blanked.
fn progress(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|l| match l.split_once(" DONE ") {
            Some((head, _)) => format!("{head} DONE"),
            None => l.to_string(),
        })
        .collect()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS build\nCOPY hello.txt /src/\n\nFROM scratch\nCOPY --from=build /src/hello.txt /\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    dir
}

#[test]
fn build_prints_progress_and_writes_id_and_metadata() {
    let dir = setup();
    let d = dir.path();
    let run = kiln(
        d,
        &[
            "build",
            "-t",
            "app:1",
            "--tag",
            "registry.example/app:2",
            "--label",
            "org.example=yes",
            "--iidfile",
            "iid",
            "--metadata-file",
            "meta.json",
            "--source-date-epoch",
            "1700000000",
            "--no-cache",
            "ctx",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        progress(&run.stderr),
        [
            "#1 [build 1/2] FROM scratch",
            "#1 DONE",
            "#2 [build 2/2] COPY hello.txt /src/",
            "#2 DONE",
            "#3 [stage-1 1/3] FROM scratch",
            "#3 DONE",
            "#4 [stage-1 2/3] COPY --from=build /src/hello.txt /",
            "#4 DONE",
            "#5 [stage-1 3/3] CMD [\"/hello\"]",
            "#5 DONE",
        ]
    );
    let id = std::fs::read_to_string(d.join("iid")).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        run.stdout,
        format!("Built {id} as app:1, registry.example/app:2\n")
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], id);
    assert_ne!(meta["containerimage.digest"], id);
    assert_eq!(
        meta["image.name"],
        "docker.io/library/app:1,registry.example/app:2"
    );
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config_digest = meta["containerimage.config.digest"].as_str().unwrap();
    let store = kiln_store::Store::open(d.join("store")).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&config_digest.parse().unwrap()).unwrap()).unwrap();
    assert_eq!(config["config"]["Labels"]["org.example"], "yes");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        store
            .resolve("app:1")
            .unwrap()
            .descriptor
            .digest
            .to_string(),
        meta["containerimage.digest"]
    );

    // Same inputs, same image.
    let again = kiln(
        d,
        &[
            "build",
            "--label",
            "org.example=yes",
            "--source-date-epoch",
            "1700000000",
            "--iidfile",
            "iid2",
            "ctx",
        ],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(d.join("iid2")).unwrap(), id);
}

#[test]
fn dockerfile_on_stdin_without_context_and_oci_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = kiln_in(
        d,
        &["build", "-o", "type=oci,dest=out", "-t", "x:1", "-"],
        Some("FROM scratch\nENV A=b\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            // The tag alone names the entry, as in BuildKit's layouts.
            &format!("oci:{}:1", d.join("out").display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=b"
        ])
    );
}

#[test]
fn failures_name_the_line_and_leave_the_store_alone() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(kiln(d, &["build", "-t", "keep:1", "ctx"]).code, 0);
    let images = kiln(d, &["images"]).stdout;
    for (dockerfile, want) in [
        (
            "FROM scratch\nRUN --security=insecure true\n",
            "error: <stdin>:2:1: RUN --security=insecure is not supported by kiln's native backend\n",
        ),
        (
            "FROM scratch\nCOPY nope.txt /\n",
            "error: <stdin>:2: COPY failed: ",
        ),
        (
            "FROM scratch\nCOPY --from=nope /a /a\n",
            "error: <stdin>:2:13: COPY --from=nope: no stage or image is named \"nope\"\n",
        ),
    ] {
        let run = kiln_in(
            d,
            &["build", "-t", "bad:1", "-f", "-", "ctx"],
            Some(dockerfile),
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        let last_error = run
            .stderr
            .find("error: ")
            .map(|i| &run.stderr[i..])
            .unwrap_or("");
        assert!(
            last_error.starts_with(want),
            "got:\n{}\nwant:\n{want}",
            run.stderr
        );
        assert_eq!(kiln(d, &["images"]).stdout, images);
        let fsck = kiln(d, &["fsck"]);
        assert_eq!(fsck.code, 0, "{}", fsck.stdout);
    }
    let run = kiln(
        d,
        &["build", "--platform", "linux/amd64,linux/amd64", "ctx"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: --platform linux/amd64,linux/amd64: linux/amd64 is given twice\n"
    );
}

/// `skopeo ARGS` run in `dir`, its JSON output parsed; panics with its
/// error when it fails.
fn skopeo_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn several_platforms_build_an_index() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM scratch\nARG TARGETPLATFORM\nCOPY hello.txt /\nLABEL built.for=$TARGETPLATFORM\n",
    )
    .unwrap();
    let run = kiln(
        d,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "-t",
            "multi:1",
            "--iidfile",
            "iid",
            "-o",
            "type=image",
            "-o",
            "type=oci,dest=oci-out",
            "-o",
            "type=local,dest=rootfs",
            "ctx",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each platform's steps say which platform they are for, as BuildKit's do.
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            run.stderr
                .contains(&format!(" [{p} 3/4] COPY hello.txt /\n")),
            "{}",
            run.stderr
        );
    }
    let iid = std::fs::read_to_string(d.join("iid")).unwrap();
    let inspect: serde_json::Value =
        serde_json::from_str(&kiln(d, &["inspect", "multi:1"]).stdout).unwrap();
    let inspect = &inspect[0];
    assert_eq!(inspect["Digest"], iid.as_str());
    assert_eq!(
        inspect["MediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    // skopeo reads the layout: an index of two manifests with platforms,
    // each config for its platform.
    let index = skopeo_json(d, &["inspect", "--raw", "oci:oci-out"]);
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let v = p["variant"]
                .as_str()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            format!(
                "{}/{}{v}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for (arch, label) in [("amd64", "linux/amd64"), ("arm64", "linux/arm64")] {
        let config = skopeo_json(
            d,
            &[
                "inspect",
                "--config",
                "--override-arch",
                arch,
                "oci:oci-out",
            ],
        );
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["config"]["Labels"]["built.for"], label);
    }
    for dir in ["linux_amd64", "linux_arm64"] {
        let hello = std::fs::read_to_string(d.join("rootfs").join(dir).join("hello.txt")).unwrap();
        assert_eq!(hello, "hello\n");
    }
    let run = kiln(
        d,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=docker,dest=x.tar",
            "ctx",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "--platform linux/amd64,linux/arm64: a docker-archive holds one platform's image; use type=oci or type=local, or build one platform"
        ),
        "{}",
        run.stderr
    );
    assert!(!d.join("x.tar").exists());

    // Pushed, the registry holds the index and both manifests.
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    let pushed = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
        ])
        .arg(format!("{host}/multi:1"))
        .arg("ctx")
        .current_dir(d)
        .env("KILN_ROOT", d.join("store"))
        .env("HOME", d)
        .env("KILN_INSECURE_REGISTRIES", &host)
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let remote = skopeo_json(
        d,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/multi:1"),
        ],
    );
    assert_eq!(remote, index);
}

#[test]
fn dockerfile_warnings_are_shown_before_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let run = kiln_in(
        dir.path(),
        &["build", "-t", "w:1", "-"],
        Some("# syntax=example.com/frontend:1\nFROM scratch\nENV A=1 \\\n\n  B=2\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "warning: <stdin>:1: # syntax=example.com/frontend:1 is ignored: kiln reads Dockerfiles with its own BuildKit-compatible front end and cannot run front-end images",
            "warning: <stdin>:5: Empty continuation line found in: ENV A=1   B=2",
            "Empty continuation lines will become errors in a future release",
        ][..],
        "{}",
        run.stderr
    );
}
