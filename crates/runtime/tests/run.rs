//! Real containers through the runtime found on this host, on a rootfs of
//! Debian's static busybox.
#![cfg(unix)]

use kiln_runtime::{ContainerSpec, Error, MountSpec, Network, Runtime, Stream};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A rootfs with busybox and its applets, a bundle directory and a state
/// root, all in one tempdir.
struct Fixture {
    dir: tempfile::TempDir,
    runtime: Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    // runc makes the mount points of /dev, /proc and /sys itself when they
    // are missing; an image's rootfs normally has them.
    for dir in ["etc", "dev", "proc", "sys"] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (apt-get install busybox-static)");
    for applet in [
        "sh", "echo", "cat", "ls", "id", "sleep", "pwd", "touch", "nc", "hostname", "test", "ip",
        "awk", "unshare", "grep",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let runtime = Runtime::detect(None, &dir.path().join("state"))
        .unwrap()
        .runtime;
    Fixture { dir, runtime }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn spec(&self, script: &str) -> ContainerSpec {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        ContainerSpec::new(
            format!("kiln-test-{}-{n}", std::process::id()),
            self.dir.path().join(format!("bundle-{n}")),
            self.rootfs(),
            ["/bin/sh", "-c", script],
        )
    }

    /// Runs `spec` and returns its exit code and output lines.
    fn run(&self, spec: &ContainerSpec) -> (i32, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        let outcome = self
            .runtime
            .run(spec, &AtomicBool::new(false), &mut |s, l| {
                lines.push((s, l.to_string()))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        (outcome.status.code, lines)
    }
}

fn stdout(lines: &[(Stream, String)]) -> Vec<&str> {
    lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect()
}

/// Every path under `root` with its type, for before/after comparisons.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            out.push(format!(
                "{} {}",
                e.path().strip_prefix(root).unwrap().display(),
                if ft.is_dir() { "dir" } else { "other" }
            ));
            if ft.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn detection_uses_a_runtime_that_works_and_says_why_others_did_not() {
    let dir = tempfile::tempdir().unwrap();
    let detection = Runtime::detect(None, dir.path()).unwrap();
    // crun 1.8 fails on cgroup v1 hybrid hosts; whichever is chosen ran a
    // probe container.
    for skipped in &detection.skipped {
        assert!(!skipped.reason.is_empty(), "{skipped}");
    }
    let again = Runtime::detect(None, dir.path()).unwrap();
    assert_eq!(again.runtime.kind(), detection.runtime.kind());
    // A runtime asked for is used or fails: no fallback to another.
    let Err(err) = Runtime::detect(Some("/no/such/runtime"), dir.path()) else {
        panic!("a missing runtime that was asked for is an error");
    };
    let text = err.to_string();
    assert!(
        text.starts_with("no working OCI runtime found: /no/such/runtime: "),
        "{text}"
    );
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn exit_codes_and_both_streams_line_by_line() {
    let f = fixture();
    let (code, lines) = f.run(&f.spec("echo one; echo two >&2; printf 'no newline'; exit 3"));
    assert_eq!(code, 3);
    assert_eq!(stdout(&lines), ["one", "no newline"]);
    assert!(lines.contains(&(Stream::Stderr, "two".to_string())));
}

#[test]
fn user_groups_env_cwd_and_hostname() {
    let f = fixture();
    fs::create_dir(f.rootfs().join("work")).unwrap();
    let mut spec = f.spec("id -u; id -g; id -G; pwd; echo $A; hostname");
    spec.uid = 1000;
    spec.gid = 1001;
    spec.additional_gids = vec![1001, 2000];
    spec.cwd = "/work".into();
    spec.env.push("A=from-env".into());
    spec.hostname = "buildkitsandbox".into();
    let (code, lines) = f.run(&spec);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        stdout(&lines),
        [
            "1000",
            "1001",
            "1001 2000",
            "/work",
            "from-env",
            "buildkitsandbox"
        ]
    );
}

/// Docker's default seccomp profile, as BuildKit gives its steps: a step cannot make a user
/// namespace (where it would hold every capability) nor mount anything, while what builds do
/// still works.
#[test]
fn steps_run_under_dockers_seccomp_profile() {
    let f = fixture();
    let (code, lines) = f.run(&f.spec(
        "grep '^Seccomp:' /proc/self/status; \
         unshare -U true 2>/dev/null && echo unshare-allowed || echo unshare-refused; \
         unshare -m true 2>/dev/null && echo mountns-allowed || echo mountns-refused; \
         echo x > /tmp-file && cat /tmp-file",
    ));
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        stdout(&lines),
        ["Seccomp:\t2", "unshare-refused", "mountns-refused", "x"]
    );
}

#[test]
fn mounts_and_stubs_leave_the_rootfs_as_it_was() {
    let f = fixture();
    let ro = f.dir.path().join("ro");
    let rw = f.dir.path().join("rw");
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&rw).unwrap();
    fs::write(ro.join("in.txt"), "read me").unwrap();
    let before = listing(&f.rootfs());
    let mut spec = f.spec(
        "cat /mnt/ro/in.txt; echo; ! touch /mnt/ro/x 2>/dev/null && echo ro-ok; echo w > /deep/rw/out; \
         echo t > /tmpfs/a/t && echo tmpfs-ok; cat /etc/hosts",
    );
    spec.mounts = vec![
        MountSpec::Bind {
            source: ro.clone(),
            target: "/mnt/ro".into(),
            readonly: true,
        },
        MountSpec::Bind {
            source: rw.clone(),
            target: "/deep/rw".into(),
            readonly: false,
        },
        MountSpec::Tmpfs {
            target: "/tmpfs/a".into(),
            size: Some(1 << 20),
            mode: None,
        },
    ];
    spec.hosts = Some("127.0.0.1\tlocalhost test\n".into());
    let (code, lines) = f.run(&spec);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        stdout(&lines),
        ["read me", "ro-ok", "tmpfs-ok", "127.0.0.1\tlocalhost test"]
    );
    assert_eq!(fs::read_to_string(rw.join("out")).unwrap(), "w\n");
    assert_eq!(listing(&f.rootfs()), before, "stubs were left behind");
}

#[test]
fn a_symlinked_mount_target_stays_inside_the_rootfs() {
    let f = fixture();
    let outside = f.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, f.rootfs().join("escape")).unwrap();
    let src = f.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut spec = f.spec("ls /escape/m >/dev/null && echo ok");
    spec.mounts = vec![MountSpec::Bind {
        source: src,
        target: "/escape/m".into(),
        readonly: true,
    }];
    let (code, lines) = f.run(&spec);
    assert_eq!(code, 0, "{lines:?}");
    // The link's absolute target was taken inside the rootfs.
    assert!(fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn network_none_has_only_loopback() {
    let f = fixture();
    let (code, lines) = f.run(&f.spec("ls /sys/class/net"));
    assert_eq!(code, 0);
    assert_eq!(stdout(&lines), ["lo"]);
}

#[test]
fn a_private_network_reaches_the_host() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(b"pong\n").unwrap();
        buf
    });
    // The gateway is only known once the namespace exists, so the script
    // reads it from the routing table.
    let mut spec = f.spec(&format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); echo ping | nc -w 5 $gw {port}"
    ));
    spec.network = Network::Private;
    let mut lines = Vec::new();
    let outcome = f
        .runtime
        .run(&spec, &AtomicBool::new(false), &mut |s, l| {
            lines.push((s, l.to_string()))
        })
        .unwrap();
    assert_eq!(
        outcome.warning, None,
        "pasta or slirp4netns must be installed"
    );
    assert!(outcome.host_address.is_some());
    assert_eq!(outcome.status.code, 0, "{lines:?}");
    assert_eq!(stdout(&lines), ["pong"]);
    assert_eq!(&served.join().unwrap(), b"ping\n");
}

#[test]
fn cancelling_kills_the_container() {
    let f = fixture();
    let spec = f.spec("sleep 100");
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let err = f.runtime.run(&spec, &cancel, &mut |_, _| {}).unwrap_err();
    setter.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(f.runtime.cleanup_stale("kiln-test-", &|_| false).is_empty());
}

#[test]
fn a_missing_program_is_a_runtime_error_naming_it() {
    let f = fixture();
    let mut spec = f.spec("");
    spec.args = vec!["/no/such/program".into()];
    let err = f
        .runtime
        .run(&spec, &AtomicBool::new(false), &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(&err, Error::Runtime { message, .. } if message.contains("/no/such/program")),
        "{err}"
    );
}

#[test]
fn containers_of_dead_owners_are_cleaned_up() {
    let f = fixture();
    // A pid that was used and is free again.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let mut spec = f.spec("echo up; sleep 100");
    spec.id = format!("kiln-stale-{dead}-0");
    let runtime = f.runtime.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let (up, is_up) = std::sync::mpsc::channel();
    let running = {
        let (spec, cancel) = (spec.clone(), cancel.clone());
        std::thread::spawn(move || {
            runtime.run(&spec, &cancel, &mut |_, _| {
                let _ = up.send(());
            })
        })
    };
    // Wait until its process runs (a container still being created is
    // no stale one: removing it then fails its `runc run` instead of
    // killing it), then clean up as any new kiln command would: from the
    // state root alone, with no runtime detected.
    is_up.recv_timeout(Duration::from_secs(30)).unwrap();
    let mut removed = Vec::new();
    let live = |owner: &str| owner != dead.to_string();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        removed = Runtime::cleanup_stale_under(&f.dir.path().join("state"), "kiln-stale-", &live);
        if !removed.is_empty() {
            break;
        }
    }
    assert_eq!(removed, [spec.id.clone()]);
    // A killed probe's work directory goes with its container; a live
    // prober's stays.
    let state = f.dir.path().join("state");
    let dead_probe = state.join(format!("probe-dir-{dead}-x"));
    let live_probe = state.join(format!("probe-dir-{}-y", std::process::id()));
    fs::create_dir_all(dead_probe.join("rootfs")).unwrap();
    fs::create_dir_all(&live_probe).unwrap();
    Runtime::cleanup_stale_under(&state, "kiln-stale-", &live);
    assert!(!dead_probe.exists() && live_probe.exists());
    // The container was killed under the run, which sees SIGKILL's code.
    let outcome = running.join().unwrap().unwrap();
    assert_eq!(outcome.status.code, 137);
}
