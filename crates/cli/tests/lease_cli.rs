//! Leases through the binary, with real processes and real kills: `kiln
//! prune` running beside builds leaves their work alone, and whatever
//! SIGKILLed builds leave (temporary files, RUN containers, overlay
//! mounts) is gone after the next kiln command of any kind, which counts it.

use kiln_testsupport::base_images;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .unwrap()
}

fn kiln_ok(dir: &Path, args: &[&str]) -> String {
    let out = kiln(dir, args);
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn bb_context() -> String {
    format!("bb=oci-layout://{}:latest", base_images().busybox.display())
}

/// Starts `kiln build` of `dockerfile` (its context is `ctx/`, shared by
/// every build in `dir`) with its progress on a pipe.
fn spawn_build(dir: &Path, name: &str, dockerfile: &str, args: &[&str]) -> Child {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    let file = dir.join(format!("{name}.Dockerfile"));
    std::fs::write(&file, dockerfile).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "-f", file.to_str().unwrap(), "-t", name])
        .args(["--build-context", &bb_context()])
        .args(args)
        .arg("ctx")
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads `child`'s progress until a line ends with `marker`; the rest of
/// its output is drained on a thread (a full pipe would stall it) and
/// returned by the handle.
fn wait_for_line(child: &mut Child, marker: &str) -> std::thread::JoinHandle<Vec<String>> {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.ends_with(marker) {
            return std::thread::spawn(move || {
                seen.extend(lines.map_while(Result::ok));
                seen
            });
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    panic!("never saw {marker:?} ({status}): {seen:#?}");
}

fn finish(mut child: Child, rest: std::thread::JoinHandle<Vec<String>>) {
    let status = child.wait().unwrap();
    let lines = rest.join().unwrap();
    assert!(status.success(), "{status}: {lines:#?}");
}

#[test]
fn prune_during_a_build_leaves_its_work_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A build before it, so the base image's blobs are in the store and
    // the next build writes nothing to the store before its RUN.
    let warm = spawn_build(d, "warm", "FROM bb\nRUN true\n", &[]);
    let out = warm.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut build = spawn_build(
        d,
        "slow",
        "FROM bb\nRUN echo started && sleep 3 && echo done > /done\nCOPY ctx.txt /\n",
        &[],
    );
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/ctx.txt"), "context\n").unwrap();
    let rest = wait_for_line(&mut build, " started");
    let du = kiln_ok(d, &["du"]);
    assert!(
        du.contains(" in the temporary files of 1 running kiln processes"),
        "{du}"
    );
    assert!(!du.contains("In flight: 0B"), "{du}");
    // The RUN is running on the scratch directory, snapshot and base blobs
    // a prune would otherwise take.
    kiln_ok(d, &["prune", "-f", "--all"]);
    kiln_ok(d, &["prune", "-f"]);
    finish(build, rest);
    assert!(kiln_ok(d, &["images"]).contains("slow "));

    // The image a build stands on, removed and pruned while it runs, stays
    // until the build is done.
    let mut build = spawn_build(d, "onwarm", "FROM warm\nRUN echo started && sleep 2\n", &[]);
    let rest = wait_for_line(&mut build, " started");
    kiln_ok(d, &["rm", "warm"]);
    kiln_ok(d, &["prune", "-f", "--all"]);
    finish(build, rest);
    assert!(kiln_ok(d, &["images"]).contains("onwarm "));
    let out = kiln(d, &["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Three builds at once, each with steps of its own, and prunes between.
    let builds: Vec<(Child, _)> = (0..3)
        .map(|i| {
            let mut child = spawn_build(
                d,
                &format!("b{i}"),
                &format!(
                    "FROM bb\nRUN echo {i} > /first\nRUN echo started && sleep 3\n\
                     RUN echo {i} > /last\nCOPY ctx.txt /\n"
                ),
                &[],
            );
            let rest = wait_for_line(&mut child, " started");
            kiln_ok(d, &["prune", "-f", "--all"]);
            (child, rest)
        })
        .collect();
    kiln_ok(d, &["prune", "-f", "--all"]);
    for (child, rest) in builds {
        finish(child, rest);
    }
    let images = kiln_ok(d, &["images"]);
    for i in 0..3 {
        assert!(images.contains(&format!("b{i} ")), "{images}");
    }
    let out = kiln(d, &["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes of the files under `path`.
fn tree_bytes(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .unwrap()
            .map(|e| tree_bytes(&e.unwrap().path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn entries(path: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(path)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
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

/// The containers the runtime knows under the store.
fn containers(store: &Path) -> String {
    let out = Command::new("runc")
        .args(["--root"])
        .arg(store.join("runtime/runc"))
        .args(["list", "--quiet"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a build whose RUN is `script`, and returns once the script has
/// printed "started".
fn start_run(d: &Path, name: &str, script: &str) -> Child {
    let mut child = spawn_build(d, name, &format!("FROM bb\nRUN {script}\n"), &[]);
    // Dropping the handle leaves the thread draining the pipe.
    drop(wait_for_line(&mut child, " started"));
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Kills a build with SIGKILL in the middle of its RUN (`marker` runs in
/// it) and returns once it is dead.
fn kill_during_run(d: &Path, name: &str, marker: &str) {
    let child = start_run(d, name, &format!("echo started && {marker}"));
    // "started" is printed just before the marker begins.
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_running(marker) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_running(marker), 1);
    kill(child);
}

/// Kills a build with SIGKILL while its COPY of `big.bin` is being written
/// to the store; returns the bytes it had in its temporary files then.
fn kill_during_copy(d: &Path, name: &str) -> u64 {
    let tmp = d.join("store/tmp");
    let before: Vec<PathBuf> = entries(&tmp);
    let mut child = spawn_build(d, name, "FROM bb\nCOPY big.bin /\n", &["--no-cache"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let bytes = loop {
        let bytes: u64 = entries(&tmp)
            .iter()
            .filter(|p| !before.contains(p))
            .map(|p| tree_bytes(p))
            .sum();
        if bytes > 4 << 20 {
            break bytes;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended before its COPY was under way"
        );
        assert!(Instant::now() < deadline, "the COPY never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    bytes
}

/// 64 MiB that do not compress, so writing the layer takes a while.
fn write_big_file(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..64 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
}

/// Waits (generously) for the process running `marker` to be gone.
fn wait_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_running(marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_running(marker), 0, "{marker} still runs");
}

/// After the kills, nothing of the killed builds is left: no process of
/// theirs, container, mount, snapshot or temporary file, and the store is
/// consistent.
fn assert_nothing_left(d: &Path, markers: &[String]) {
    let store = d.join("store");
    for m in markers {
        wait_gone(m);
    }
    assert_eq!(containers(&store), "");
    assert_eq!(mounts_under(&store), Vec::<String>::new());
    assert_eq!(
        entries(&store.join("snapshots/active")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(entries(&store.join("tmp")), Vec::<PathBuf>::new());
    assert_eq!(entries(&store.join("leases")), Vec::<PathBuf>::new());
    let out = kiln(d, &["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn what_killed_builds_leave_is_counted_and_reclaimed_by_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    write_big_file(&d.join("ctx/big.bin"));
    let tag = std::process::id() % 10_000;
    let markers: Vec<String> = (0..3).map(|i| format!("sleep 3{tag}{i}")).collect();

    // Each build reclaims what the one killed before it left.
    for (i, marker) in markers.iter().enumerate() {
        kill_during_run(d, &format!("run{i}"), marker);
        kill_during_copy(d, &format!("copy{i}"));
        assert_eq!(processes_running(marker), 0, "{marker} still runs");
    }
    assert!(!entries(&d.join("store/tmp")).is_empty());

    // Two killed at once, so that one command finds both: one in its COPY,
    // one in a RUN that has written 8 MiB.
    let writer_marker = format!("sleep 3{tag}8");
    let writer = start_run(
        d,
        "writer",
        &format!("head -c 8388608 /dev/zero > /big && echo started && {writer_marker}"),
    );
    let copied = kill_during_copy(d, "copy-last");
    kill(writer);

    let du = kiln_ok(d, &["du"]);
    let line = du
        .lines()
        .find(|l| l.starts_with("Reclaimed just now: "))
        .unwrap_or_else(|| panic!("{du}"));
    let bytes: u64 = line
        .split_once('(')
        .and_then(|(_, r)| r.split_once(" bytes)"))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        bytes >= copied + (8 << 20),
        "{line}: the COPY had {copied}, the RUN 8 MiB"
    );
    assert!(
        line.contains(" left by 2 killed kiln processes ("),
        "{line}"
    );
    assert!(
        du.contains("In flight: 0B in the temporary files of 0 running kiln processes"),
        "{du}"
    );
    assert_nothing_left(d, &[markers, vec![writer_marker]].concat());

    // The container dies with its build, before any other kiln runs; its
    // mount and snapshot go with the next command, whatever it is.
    let marker = format!("sleep 3{tag}9");
    kill_during_run(d, "again", &marker);
    wait_gone(&marker);
    assert_eq!(containers(&d.join("store")), "");
    assert_eq!(mounts_under(&d.join("store")).len(), 1);
    kiln_ok(d, &["images"]);
    assert_nothing_left(d, &[marker]);
}

/// This store's secret directories on `/dev/shm` (the store is a digest of
/// its root in their names; another store's are not counted).
fn secret_dirs() -> Vec<PathBuf> {
    entries(Path::new("/dev/shm"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kiln-secret-"))
        })
        .collect()
}

#[test]
fn a_killed_builds_secret_files_are_removed_by_the_next_command() {
    // The attack's class: a SIGKILLed `RUN --mount=type=secret` left the
    // secret in shared memory for good.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret.txt"), "s3cret-value").unwrap();
    let before = secret_dirs();
    let marker = format!("sleep 3{}", std::process::id() % 1000 + 1000);
    let mut child = spawn_build(
        d,
        "withsecret",
        &format!("FROM bb\nRUN --mount=type=secret,id=s echo started && {marker}\n"),
        &[
            "--secret",
            &format!("id=s,src={}", d.join("secret.txt").display()),
        ],
    );
    drop(wait_for_line(&mut child, " started"));
    let during: Vec<PathBuf> = secret_dirs()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(during.len(), 1, "{during:?}");
    kill(child);
    wait_gone(&marker);
    assert!(
        during[0].exists(),
        "the killed build's secret is still there before"
    );
    kiln_ok(d, &["images"]);
    assert!(
        !during[0].exists(),
        "{} was not removed",
        during[0].display()
    );
}
