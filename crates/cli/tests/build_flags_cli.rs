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
    let (code, out, err) = kiln(dir.path(), &["build", "-q", "-t", "quiet:1", "ctx"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    assert_eq!(out.lines().count(), 1);
    // The id docker, buildx and podman print: the config's digest, the one
    // `kiln images`/`inspect` show, and a name for the image in commands.
    let (code, inspect, err) = kiln(dir.path(), &["inspect", "quiet:1"]);
    assert_eq!(code, 0, "{err}");
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(inspect[0]["ConfigDigest"], id);
    let (code, by_id, err) = kiln(dir.path(), &["inspect", id]);
    assert_eq!(code, 0, "{err}");
    let by_id: serde_json::Value = serde_json::from_str(&by_id).unwrap();
    assert_eq!(by_id[0]["Digest"], inspect[0]["Digest"]);
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
        &["--attest=type=provenance,disabled=true"],
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
            "--sbom=true",
            "NotSupported: --sbom=true: kiln does not produce attestations yet",
        ),
        (
            "--attest=type=sbom",
            "NotSupported: --attest type=sbom: kiln does not produce attestations yet",
        ),
        (
            "--builder=mybuilder",
            "NotSupported: --builder mybuilder: kiln has no buildx builder instances",
        ),
        (
            "--cgroup-parent=/kiln",
            "NotSupported: --cgroup-parent /kiln: kiln does not place RUN containers",
        ),
        (
            "--provenance=mode=max",
            "NotSupported: --provenance=mode=max: kiln does not produce attestations yet",
        ),
        (
            "--progress=fancy",
            "--progress=fancy: expected auto, plain, tty or rawjson",
        ),
        (
            "--memory=1g",
            "NotSupported: --memory 1g: kiln does not limit the resources of RUN containers yet",
        ),
        (
            "--cpuset-cpus=0",
            "NotSupported: --cpuset-cpus 0: kiln does not limit the resources of RUN containers yet",
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
    // The manifest's digest (`-q` prints the config's, which the media
    // types do not change).
    let manifest = |name: &str| {
        let (_, inspect, _) = kiln(d, &["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        v[0]["Digest"].as_str().unwrap().to_string()
    };
    let (code, _, err) = kiln(
        d,
        &[
            "build",
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
    let v = &v[0];
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
    let (code, _, err) = kiln(
        d,
        &[
            "build",
            "--source-date-epoch",
            "1700000000",
            "-o",
            "type=image,oci-mediatypes=false",
            "-t",
            "fmt:buildx",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(manifest("fmt:docker"), manifest("fmt:buildx"));
    // OCI stays the default, and zstd has no Docker media type.
    let (code, _, err) = kiln(
        d,
        &[
            "build",
            "--source-date-epoch",
            "1700000000",
            "-t",
            "fmt:oci",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_ne!(manifest("fmt:docker"), manifest("fmt:oci"));
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

fn kiln_env(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// `-o -` is buildx's `type=tar,dest=-`: the final file system as a tar on
/// standard output, and nothing else there; `dest=-` does the same for the
/// other file outputs.
#[test]
fn output_dash_writes_a_tar_on_standard_output() {
    let dir = context();
    let d = dir.path();
    for flags in [
        &["-o", "-"][..],
        &["--output", "-"],
        &["-o", "type=local,dest=-"],
    ] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push("ctx");
        let out = kiln_env(d, &[], &args);
        assert!(
            out.status.success(),
            "{flags:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tar_names(&out.stdout), ["a.txt"], "{flags:?}");
        let mut content = String::new();
        let mut archive = tar::Archive::new(&out.stdout[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        assert_eq!(content, "a\n");
    }
    // An OCI layout and a docker-archive, both as tars; -q prints no id
    // into the archive.
    let out = kiln_env(d, &[], &["build", "-q", "-o", "type=oci,dest=-", "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = tar_names(&out.stdout);
    assert!(names.contains(&"oci-layout".to_string()), "{names:?}");
    assert!(names.contains(&"index.json".to_string()), "{names:?}");
    let out = kiln_env(
        d,
        &[],
        &["build", "-o", "type=docker,dest=-", "-t", "x:1", "ctx"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tar_names(&out.stdout).contains(&"manifest.json".to_string()));
    // Two outputs cannot share standard output.
    let out = kiln_env(
        d,
        &[],
        &["build", "-o", "-", "-o", "type=oci,dest=-", "ctx"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only one output can go to standard output")
    );
}

/// A terminal on standard output is refused, as buildx does, before
/// anything is built.
#[test]
fn output_dash_refuses_a_terminal() {
    let dir = context();
    let d = dir.path();
    // A pseudo-terminal as standard output.
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "-o", "-", "ctx"])
        .current_dir(d)
        .env("KILN_ROOT", d.join("store"))
        .env("HOME", d)
        .stdout(slave)
        .output()
        .unwrap();
    drop(master);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to write a tar archive to a terminal"),
        "{err}"
    );
    assert!(!d.join("-").exists());
}

/// Podman with its own storage under `dir` (so a test neither sees nor
/// leaves images in the host's), and docker pointed at no daemon, so
/// `--load` picks podman: the environment for kiln and for the checks.
fn podman_env(dir: &Path) -> Vec<(String, String)> {
    let storage = dir.join("storage.conf");
    std::fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("podman-root").display(),
            dir.join("podman-run").display()
        ),
    )
    .unwrap();
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, "[engine]\nevents_logger = \"none\"\n").unwrap();
    vec![
        (
            "CONTAINERS_STORAGE_CONF".into(),
            storage.display().to_string(),
        ),
        ("CONTAINERS_CONF".into(), conf.display().to_string()),
        (
            "DOCKER_HOST".into(),
            format!("unix://{}/no-docker.sock", dir.display()),
        ),
    ]
}

fn podman(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// `--load` streams a docker-archive into `podman load` when no docker
/// daemon answers: podman then has the image under its tag and runs it.
#[test]
fn load_puts_the_image_into_podman() {
    let dir = context();
    let d = dir.path();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM bb\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n",
    )
    .unwrap();
    let env = podman_env(d);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bb = format!(
        "bb=oci-layout://{}:latest",
        kiln_testsupport::base_images().busybox.display()
    );
    let out = kiln_env(
        d,
        &envs,
        &[
            "build",
            "-q",
            "--load",
            "--build-context",
            &bb,
            "-t",
            "loaded:1",
            "ctx",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Loaded image: docker.io/library/loaded:1"),
        "{err}"
    );
    // -q still prints the id alone; kiln's store has the image too.
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let (code, images, _) = kiln(d, &["images"]);
    assert_eq!(code, 0);
    assert!(images.contains("loaded"), "{images}");

    let inspect = podman(&env, &["image", "inspect", "loaded:1"]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["cat", "/a.txt"]));
    // runc (crun fails on this cgroup v1 host), and limits below the host's
    // hard ones: podman's defaults are above them and root here cannot
    // raise its own.
    let run = podman(
        &env,
        &[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=512:512",
            "loaded:1",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.stdout, b"a\n");

    // type=docker without a dest is buildx's way of saying --load.
    let out = kiln_env(
        d,
        &envs,
        &[
            "build",
            "-o",
            "type=docker",
            "--build-context",
            &bb,
            "-t",
            "loaded:2",
            "ctx",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(podman(&env, &["image", "exists", "loaded:2"])
        .status
        .success());
}

/// With neither a docker daemon nor podman, `--load` says so before
/// anything is built.
#[test]
fn load_without_docker_or_podman_is_a_clear_error() {
    let dir = context();
    let d = dir.path();
    let empty = d.join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = kiln_env(
        d,
        &[("PATH", empty.to_str().unwrap())],
        &["build", "--load", "ctx"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--load: no docker daemon answers (`docker info` fails) and podman is not installed"
        ),
        "{err}"
    );
    assert!(!err.contains("#1"), "nothing is built: {err}");
}

/// The classic builder's flags that buildx keeps hidden: a script written
/// for `docker build --rm --force-rm …` runs; `--isolation` and
/// `--security-opt` are ignored with buildx's warning; boolean flags take
/// `=true`/`=false` as Go's flag parser does.
#[test]
fn docker_builds_legacy_flags_and_boolean_values_are_accepted() {
    let dir = context();
    for args in [
        &[
            "--rm",
            "--force-rm",
            "--compress",
            "--disable-content-trust=true",
        ][..],
        &[
            "--rm=false",
            "--no-cache=true",
            "--push=false",
            "--load=false",
        ],
    ] {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.push("ctx");
        let (code, _, err) = kiln(dir.path(), &all);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("warning"), "{args:?}: {err}");
    }
    let (code, _, err) = kiln(
        dir.path(),
        &[
            "build",
            "--isolation=default",
            "--security-opt",
            "seccomp=unconfined",
            "ctx",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: --isolation is deprecated with BuildKit; kiln ignores it"),
        "{err}"
    );
    assert!(
        err.contains("warning: --security-opt is deprecated"),
        "{err}"
    );
}

#[test]
fn outputs_buildx_refuses_are_refused_before_building() {
    let dir = context();
    let d = dir.path();
    std::fs::write(d.join("a-file"), "x").unwrap();
    std::fs::create_dir(d.join("a-dir")).unwrap();
    for (args, want) in [
        (
            &["-o", "type=local,dest=a-file"][..],
            "destination directory a-file is a file",
        ),
        (
            &["-o", "type=tar,dest=a-dir"],
            "destination file a-dir is a directory",
        ),
        (
            &["-o", "type=local,dest=out", "--iidfile", "iid"],
            "local and tar exporters are incompatible with image ID file",
        ),
    ] {
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push("ctx");
        let (code, _, err) = kiln(d, &all);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("COPY a.txt"), "built first: {err}");
    }
    assert!(!d.join("out").exists() && !d.join("iid").exists());
    assert_eq!(std::fs::read_to_string(d.join("a-file")).unwrap(), "x");
}

#[test]
fn a_build_context_name_that_is_no_image_name_is_refused() {
    // buildx parses the name as an image name; `Alpine` would never be used.
    let dir = context();
    let (code, _, err) = kiln(
        dir.path(),
        &[
            "build",
            "--build-context",
            "Alpine=docker-image://alpine",
            "ctx",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid context name Alpine"), "{err}");
    assert!(err.contains("must be lowercase"), "{err}");
}
