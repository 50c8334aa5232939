//! kiln's own image (deploy/image/Dockerfile), built by kiln with
//! scripts/build-image, run under rootless podman without `--privileged`,
//! builds a Dockerfile with RUN inside; docs/deploy.md explains the flags
//! this test uses. Needs root (it runs podman as the user
//! `scripts/install-deps` creates, `kiln-podman`, with its subordinate
//! ids), podman and runc, and Debian's mirror (the image's `apt-get`).

use kiln_testsupport::{base_images, debian_image};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "kiln-podman";
const TAG: &str = "localhost/kiln:test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out));
}

/// Rootless podman as [`USER`], with its state (storage, run files, the
/// rootless pause process's pid file) under `state`, which the test
/// removes: nothing is left in the user's home.
struct Podman {
    state: PathBuf,
}

impl Podman {
    fn new(state: PathBuf) -> Podman {
        for dir in ["home", "xdg"] {
            std::fs::create_dir_all(state.join(dir)).unwrap();
        }
        sh(&["chown", "-R", &format!("{USER}:"), state.to_str().unwrap()]);
        Podman { state }
    }

    fn run(&self, args: &[&str]) -> Output {
        let s = |p: &str| self.state.join(p).to_str().unwrap().to_string();
        Command::new("runuser")
            .args(["-u", USER, "--", "env"])
            .arg(format!("HOME={}", s("home")))
            .arg(format!("XDG_RUNTIME_DIR={}", s("xdg")))
            .args(["podman", "--root", &s("storage"), "--runroot", &s("run")])
            // overlay: the kernel's, in the user namespace (no
            // fuse-overlayfs); runc: crun 1.8 refuses this cgroup v1 hybrid
            // host; cgroupfs and file events: no systemd user session.
            .args([
                "--storage-driver",
                "overlay",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Rootless podman leaves a pause process holding its user
        // namespace; this one is ours (its pid file is in our state).
        let pid_file = self.state.join("xdg/libpod/tmp/pause.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// Builds kiln's image the way a user would, with this test's kiln as
/// both the builder and the binary inside; the FROM's Debian 12 is the
/// one made on this machine (no Docker Hub here).
fn build_image(dir: &Path, archive: &Path) {
    let debian = format!(
        "debian:bookworm-slim=oci-layout://{}:latest",
        debian_image().layout.display()
    );
    let out = Command::new(repo().join("scripts/build-image"))
        .args(["--progress=plain", "--build-context", &debian, "-t", TAG])
        .arg("-o")
        .arg(format!("type=docker,dest={}", archive.display()))
        .env("KILN_BIN", env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env_remove("KILN_USERNS")
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/build-image: {}", text(&out));
}

/// The uid, gid and content of `name` in the tar at `path`.
fn tar_entry(path: &Path, name: &str) -> (u64, u64, String) {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.trim_start_matches("./") == name {
            let (uid, gid) = (entry.header().uid().unwrap(), entry.header().gid().unwrap());
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            return (uid, gid, content);
        }
    }
    panic!("no {name} in {}", path.display());
}

/// The flags docs/deploy.md gives for rootless podman. `--network none`:
/// the build inside needs no network here, and this machine closes
/// /dev/net/tun to users, which podman's own slirp4netns needs.
const FLAGS: &[&str] = &[
    "--rm",
    "--network",
    "none",
    "--security-opt",
    "seccomp=unconfined",
];

#[test]
fn kilns_image_builds_a_dockerfile_with_run_under_rootless_podman() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: running podman as another user needs root");
        return;
    }
    assert!(
        Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success(),
        "no user {USER}: run scripts/install-deps"
    );
    // Let the user reach the directory: tempdir makes it 0700.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(&["chmod", "755", d.to_str().unwrap()]);

    let work = d.join("work");
    std::fs::create_dir_all(work.join("ctx")).unwrap();
    build_image(d, &work.join("kiln.tar"));

    // What the kiln inside builds: busybox (an OCI layout in the mounted
    // directory) and a RUN whose file, owner and all, must come out.
    std::fs::write(
        work.join("ctx/Dockerfile"),
        "FROM bb\nRUN echo made by RUN > /made && chown 1234:2345 /made\n",
    )
    .unwrap();
    sh(&[
        "cp",
        "-r",
        base_images().busybox.to_str().unwrap(),
        work.join("bb").to_str().unwrap(),
    ]);
    sh(&["chown", "-R", &format!("{USER}:"), work.to_str().unwrap()]);
    // The container's kiln user (1000) writes the output; the directory
    // belongs to the container's root.
    sh(&["chmod", "777", work.to_str().unwrap()]);

    let podman = Podman::new(d.join("podman"));
    let out = podman.run(&["load", "-i", work.join("kiln.tar").to_str().unwrap()]);
    assert!(out.status.success(), "podman load: {}", text(&out));

    let volume = format!("{}:/w", work.display());
    let build = [
        "build",
        "--progress=plain",
        "--build-context",
        "bb=oci-layout:///w/bb:latest",
        "-o",
        "type=tar,dest=/w/out.tar",
        "/w/ctx",
    ];
    let run = |flags: &[&str]| {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(flags);
        args.extend(["-v", &volume, TAG]);
        args.extend(build);
        podman.run(&args)
    };

    let out = run(FLAGS);
    let said = text(&out);
    assert!(out.status.success(), "kiln in podman: {said}");
    // The image's user, not root, ran kiln.
    let (uid, gid, content) = tar_entry(&work.join("out.tar"), "made");
    assert_eq!(content, "made by RUN\n");
    assert_eq!((uid, gid), (1234, 2345), "the RUN's chown is in the image");
    // podman masks parts of /proc, so RUN shares kiln's: said, not hidden.
    assert!(
        said.contains("RUN shares kiln's process namespace"),
        "{said}"
    );

    // Each flag is needed: podman's default seccomp profile refuses the
    // RUN container's sethostname.
    std::fs::remove_file(work.join("out.tar")).unwrap();
    let out = run(&["--rm", "--network", "none"]);
    let said = text(&out);
    assert!(!out.status.success(), "built without the flags: {said}");
    assert!(
        said.contains("sethostname: operation not permitted"),
        "{said}"
    );
    assert!(!work.join("out.tar").exists());

    // With /proc unmasked as well, RUN gets its own PID namespace again.
    let mut unmasked = FLAGS.to_vec();
    unmasked.extend(["--security-opt", "unmask=ALL"]);
    let out = run(&unmasked);
    let said = text(&out);
    assert!(out.status.success(), "kiln in podman, unmasked: {said}");
    assert!(
        !said.contains("RUN shares kiln's process namespace"),
        "{said}"
    );
    assert_eq!(tar_entry(&work.join("out.tar"), "made").2, "made by RUN\n");
}
