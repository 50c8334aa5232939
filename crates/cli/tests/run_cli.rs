//! RUN through the binary: the copy snapshotter (forced with
//! `KILN_SNAPSHOTTER=copy`) gives the same image as overlayfs, and a build
//! killed with SIGKILL in the middle of a RUN leaves nothing the next build
//! does not clean up.

use kiln_testsupport::base_images;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn bb_context() -> String {
    format!("bb=oci-layout://{}:latest", base_images().busybox.display())
}

fn image_id(dir: &Path, envs: &[(&str, &str)], dockerfile: &str) -> String {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
    let out = kiln(
        dir,
        envs,
        &[
            "build",
            "--no-cache",
            "--source-date-epoch",
            "1700000000",
            "--build-context",
            &bb_context(),
            "--iidfile",
            "iid",
            "ctx",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("iid")).unwrap()
}

/// Deletions (whiteouts), a directory replaced (opaque), hard links, a
/// setuid file, a symlink and a FIFO.
const CHANGES: &str = "FROM bb\n\
    RUN mkdir -p /a/keep /a/gone /opaque/old && echo x > /a/gone/f && echo y > /opaque/old/f\n\
    RUN rm -rf /a/gone /bin/vi && rm -rf /opaque && mkdir -p /opaque/new && echo z > /opaque/new/f \
        && echo h > /h1 && ln /h1 /h2 && echo s > /suid && chmod 4755 /suid \
        && ln -s /h1 /link && mkfifo /fifo\n";

#[test]
fn the_copy_snapshotter_gives_the_image_overlayfs_gives() {
    let overlay = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let a = image_id(overlay.path(), &[("KILN_SNAPSHOTTER", "overlay")], CHANGES);
    let b = image_id(copy.path(), &[("KILN_SNAPSHOTTER", "copy")], CHANGES);
    assert_eq!(a, b);
    // The copy driver never mounts: it keeps merged trees as directories.
    let active = copy.path().join("store/snapshots/active");
    let left = std::fs::read_dir(&active).map_or(0, |d| d.count());
    assert_eq!(left, 0, "snapshots left in {}", active.display());
    // The variable is read, not ignored.
    let bad = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bad.path().join("ctx")).unwrap();
    std::fs::write(bad.path().join("ctx/Dockerfile"), "FROM bb\nRUN true\n").unwrap();
    let out = kiln(
        bad.path(),
        &[("KILN_SNAPSHOTTER", "zfs")],
        &["build", "--build-context", &bb_context(), "ctx"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KILN_SNAPSHOTTER=\"zfs\" is not a snapshotter; use overlay or copy"),
        "{stderr}"
    );
}

fn mounts_under(root: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(root.to_str().unwrap()))
        .map(str::to_string)
        .collect()
}

fn processes_running(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c)
                .replace('\0', " ")
                .contains(marker)
        })
        .count()
}

/// A build in `d` whose RUN prints "started" then sleeps under `marker`
/// (a command line no other process has), returned once the RUN has
/// started, with the rest of its progress lines.
fn build_until_started(
    d: &Path,
    marker: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        format!("FROM bb\nRUN echo started && {marker}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "-t",
            "never",
            "--build-context",
            &bb_context(),
            "ctx",
        ])
        .current_dir(d)
        .env("KILN_ROOT", d.join("store"))
        .env("HOME", d)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.ends_with(" started") {
            return (child, lines);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the RUN never started: {seen:#?}");
}

#[test]
fn a_build_killed_during_run_is_cleaned_up_by_the_next_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker = format!("sleep 3{}", std::process::id() % 10_000);
    let (mut child, _lines) = build_until_started(d, &marker);
    let store = d.join("store");
    assert!(
        !mounts_under(&store).is_empty(),
        "the RUN's overlay is mounted"
    );
    // "started" is printed just before the sleep begins.
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_running(&marker) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_running(&marker), 1);
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();

    // The next build, of anything, removes what the killed one left: its
    // container (and the sleep in it), its mount and its snapshot.
    std::fs::write(d.join("ctx/Dockerfile"), "FROM bb\nRUN true\n").unwrap();
    let out = kiln(d, &[], &["build", "--build-context", &bb_context(), "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_running(&marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_running(&marker),
        0,
        "the killed build's RUN still runs"
    );
    assert_eq!(mounts_under(&store), Vec::<String>::new());
    let active = std::fs::read_dir(store.join("snapshots/active"))
        .unwrap()
        .count();
    assert_eq!(active, 0);
    let fsck = kiln(d, &[], &["fsck"]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[test]
fn a_runtime_asked_for_is_used_or_the_build_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), "FROM bb\nRUN true\n").unwrap();
    let out = kiln(
        d,
        &[],
        &[
            "build",
            "--runtime",
            "/nonexistent/runtime",
            "--build-context",
            &bb_context(),
            "ctx",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "ctx/Dockerfile:2: no working OCI runtime found: /nonexistent/runtime: /nonexistent/runtime not found on PATH"
        ),
        "{stderr}"
    );
    let out = kiln(
        d,
        &[],
        &[
            "build",
            "--runtime",
            "runc",
            "--build-context",
            &bb_context(),
            "ctx",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigint_during_run_stops_the_container_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker = format!("sleep 4{}", std::process::id() % 10_000);
    let (mut child, lines) = build_until_started(d, &marker);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:#?}");
    // The container is gone at once, not at the next build.
    assert_eq!(processes_running(&marker), 0);
    let store = d.join("store");
    assert_eq!(mounts_under(&store), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(store.join("snapshots/active"))
            .unwrap()
            .count(),
        0
    );
    let images = kiln(d, &[], &["images"]);
    assert!(!String::from_utf8_lossy(&images.stdout).contains("never"));
}

#[test]
fn entitlements_are_granted_with_allow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(
        d.join("ctx/Dockerfile"),
        "FROM bb\nRUN --network=host test -e /sys/class/net/lo\n",
    )
    .unwrap();
    let build = |allow: &[&str]| {
        let mut args = vec!["build", "--build-context"];
        let bb = bb_context();
        args.push(&bb);
        args.extend_from_slice(allow);
        args.push("ctx");
        let out = kiln(d, &[], &args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = build(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("needs the network.host entitlement"),
        "{stderr}"
    );
    let (code, stderr) = build(&["--allow", "network.host"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = build(&["--allow", "security.insecure"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: --allow security.insecure: NotSupported: kiln does not run privileged build steps\n"
    );
    let (code, stderr) = build(&["--allow", "network.hots"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: --allow network.hots: unknown entitlement; kiln knows network.host\n"
    );
}

/// `--root` (and `KILN_ROOT`) may be relative: a RUN step's rootfs, which
/// runc reads from inside the step's bundle directory, must still name the
/// snapshot (it named `bundle/rel/root/snapshots/…` once: "invalid rootfs").
#[test]
fn a_relative_store_root_builds_run_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), "FROM bb\nRUN echo ran > /ran\n").unwrap();
    let bb = bb_context();
    for (flag, root) in [(true, "rel/flag-root"), (false, "rel/env-root")] {
        let out_dir = format!("type=local,dest=out-{flag}");
        let mut args = vec!["build", "--build-context", &bb, "-o", &out_dir];
        if flag {
            args.extend(["--root", root]);
        }
        args.push("ctx");
        let out = kiln(
            d,
            &[("KILN_ROOT", if flag { "unused-root" } else { root })],
            &args,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(d.join(root).join("content/index.json").is_file());
        assert_eq!(
            std::fs::read_to_string(d.join(format!("out-{flag}/ran"))).unwrap(),
            "ran\n"
        );
    }
}

/// A RUN reads USER's ids and groups from its mounted root, not from an
/// index of the image's layers: a cold build whose first step is a RUN
/// reads no layer blob beyond unpacking it (once). Shown by damaging every
/// layer blob after the first build unpacked them: the next RUN on them
/// still finds its user, group and supplementary group.
#[test]
fn run_reads_its_user_database_from_its_root_not_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bb = bb_context();
    let users = "FROM bb\nRUN echo 'app:x:1234:99::/:/bin/sh' >> /etc/passwd \
        && printf 'app:x:99:\\nextra:x:77:app\\n' >> /etc/group\n";
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), users).unwrap();
    let out = kiln(d, &[], &["build", "--build-context", &bb, "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let blobs = d.join("store/content/blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if !bytes.starts_with(b"{") {
            let mut perms = std::fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
            std::fs::set_permissions(&path, perms).unwrap();
            std::fs::write(&path, vec![0u8; bytes.len()]).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(d.join("store/layer-headers"));
    std::fs::write(
        d.join("ctx/Dockerfile"),
        format!(
            "{users}USER app\nRUN test \"$(id -u):$(id -g)\" = 1234:99 && id -G | grep -qw 77\n"
        ),
    )
    .unwrap();
    let out = kiln(d, &[], &["build", "--build-context", &bb, "ctx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
