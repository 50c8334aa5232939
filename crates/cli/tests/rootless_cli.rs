//! Rootless builds: a user the test creates, with subordinate id ranges,
//! builds RUN steps in a user namespace (kernel overlayfs with userxattr)
//! and gets the image root gets; a user without ranges gets a clear error.
//! Needs root to create the users (CI runs as root).

use kiln_testsupport::base_images;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

const WITH_RANGES: &str = "kiln-rootless";
const WITHOUT_RANGES: &str = "kiln-noranges";

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn subuid_start(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|rest| rest.split(':').next())
        .and_then(|start| start.parse().ok())
        .expect("the user's range in /etc/subuid")
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Creates the two users once: one with ranges, one (a system user)
/// without.
fn users() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if !Command::new("id")
            .arg(WITH_RANGES)
            .output()
            .unwrap()
            .status
            .success()
        {
            sh(&["useradd", "--create-home", WITH_RANGES]);
        }
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        if !subuid
            .lines()
            .any(|l| l.starts_with(&format!("{WITH_RANGES}:")))
        {
            sh(&[
                "usermod",
                "--add-subuids",
                "400000-465535",
                "--add-subgids",
                "400000-465535",
                WITH_RANGES,
            ]);
        }
        if !Command::new("id")
            .arg(WITHOUT_RANGES)
            .output()
            .unwrap()
            .status
            .success()
        {
            sh(&["useradd", "--system", "--no-create-home", WITHOUT_RANGES]);
        }
    });
}

const DOCKERFILE: &str = "FROM bb\n\
    RUN mkdir -p /data && echo a > /data/a && chown 1234:2345 /data/a && rm -rf /bin/vi \
        && echo s > /s && chmod 4755 /s && ln /s /s2 && rm -rf /tmp && mkdir -m 1777 /tmp\n\
    COPY --chown=42:43 f.txt /f.txt\n\
    RUN stat -c '%u:%g %a' /f.txt /data/a > /owners\n";

/// A build directory with the context and the busybox base, owned by
/// `user` (or root).
fn workdir(user: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(d.join("ctx/f.txt"), "f\n").unwrap();
    sh(&[
        "cp",
        "-r",
        base_images().busybox.to_str().unwrap(),
        d.join("bb").to_str().unwrap(),
    ]);
    if let Some(user) = user {
        sh(&["chown", "-R", &format!("{user}:"), d.to_str().unwrap()]);
    }
    dir
}

fn build(dir: &Path, user: Option<&str>) -> Output {
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let bb = format!("bb=oci-layout://{}:latest", dir.join("bb").display());
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", kiln]);
            c
        }
        None => Command::new(kiln),
    };
    cmd.args([
        "build",
        "--no-cache",
        "--source-date-epoch",
        "1700000000",
        "--build-context",
        &bb,
        "--iidfile",
        "iid",
        "ctx",
    ])
    .current_dir(dir)
    // Kernel overlayfs (with userxattr in the user namespace), or fail.
    .env("KILN_SNAPSHOTTER", "overlay")
    .env("KILN_ROOT", dir.join("store"))
    .env("HOME", dir)
    .env_remove("KILN_USERNS")
    .output()
    .unwrap()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_user_with_subordinate_ids_builds_what_root_builds() {
    if !is_root() {
        eprintln!("skipping: creating the test users needs root");
        return;
    }
    users();
    let root_dir = workdir(None);
    let out = build(root_dir.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user_dir = workdir(Some(WITH_RANGES));
    let out = build(user_dir.path(), Some(WITH_RANGES));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let read = |d: &Path| std::fs::read_to_string(d.join("iid")).unwrap();
    // Owners (1234:2345, 42:43), setuid, hard links and whiteouts all came
    // out as root's build has them: the same image, digest for digest.
    assert_eq!(read(user_dir.path()), read(root_dir.path()));
    // On disk the store is the user's, not root's.
    let meta = std::fs::metadata(user_dir.path().join("store/content/index.json")).unwrap();
    assert_eq!(meta.uid(), uid_of(WITH_RANGES));
    // The layers unpacked for RUN carry the mapped owner of 1234.
    let layers = user_dir.path().join("store/snapshots/layers");
    let mapped = std::fs::read_dir(&layers)
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.unwrap().path().join("data/a")).ok())
        .next()
        .expect("the first RUN's layer is unpacked for the second RUN");
    // uid 0 in the namespace is the user; 1.. are its range.
    assert_eq!(mapped.uid(), subuid_start(WITH_RANGES) + 1233);
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_to_do() {
    if !is_root() {
        eprintln!("skipping: creating the test users needs root");
        return;
    }
    users();
    let dir = workdir(Some(WITHOUT_RANGES));
    let out = build(dir.path(), Some(WITHOUT_RANGES));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ctx/Dockerfile:2:1: RUN needs root: run kiln as root, or give your user subordinate id ranges for a rootless build"),
        "{stderr}"
    );
    assert!(stderr.contains("usermod --add-subuids"), "{stderr}");
}
