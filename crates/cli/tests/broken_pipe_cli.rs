//! kiln writing into a pipe whose reader has gone (`kiln images | head -1`,
//! `kiln build 2>&1 | head`): no panic and no error message, queries end
//! as usual, and a build still stores and tags its image.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run left: its exit code and the stream that stayed open.
struct Run {
    code: Option<i32>,
    open_stream: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Closed {
    Stdout,
    Stderr,
    Both,
}

impl Closed {
    fn name(self) -> &'static str {
        match self {
            Closed::Stdout => "stdout",
            Closed::Stderr => "stderr",
            Closed::Both => "stdout and stderr",
        }
    }
}

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE, as after `head` exits.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

fn kiln_closed(dir: &Path, closed: Closed, args: &[&str]) -> Run {
    let stream = |is_closed: bool| {
        if is_closed {
            closed_pipe()
        } else {
            Stdio::piped()
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(stream(closed != Closed::Stderr))
        .stderr(stream(closed != Closed::Stdout))
        .spawn()
        .expect("run kiln");
    let open: Option<Box<dyn Read + Send>> = match closed {
        Closed::Stdout => child.stderr.take().map(|s| Box::new(s) as _),
        Closed::Stderr => child.stdout.take().map(|s| Box::new(s) as _),
        Closed::Both => None,
    };
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut open) = open {
            open.read_to_string(&mut text).unwrap();
        }
        text
    });
    // Before the fix a build whose progress pipe closed hung for good.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("kiln {} hung with {} closed", args.join(" "), closed.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        open_stream: reader.join().unwrap(),
    }
}

fn kiln(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .expect("run kiln");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A context whose Dockerfile builds without a registry, and which
/// prints a few progress lines and a warning.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS build\nCOPY hello.txt /src/\nFROM scratch\nCOPY --from=build /src/hello.txt /\nENV A=1\nLABEL x=y\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    dir
}

fn assert_quiet(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, Some(code), "{what}: {}", run.open_stream);
    assert!(
        !run.open_stream.contains("panicked") && !run.open_stream.contains("Broken pipe"),
        "{what}: {}",
        run.open_stream
    );
}

#[test]
fn query_commands_stop_quietly_when_stdout_is_closed() {
    let dir = setup();
    let d = dir.path();
    let (code, text) = kiln(d, &["build", "-t", "app:1", "ctx"]);
    assert_eq!(code, 0, "{text}");
    let commands: [&[&str]; 7] = [
        &["images"],
        &["images", "--format", "json"],
        &["inspect", "app:1"],
        &["du"],
        &["check", "ctx"],
        &["parse", "--dump", "ctx/Dockerfile"],
        &["--help"],
    ];
    for args in commands {
        let run = kiln_closed(d, Closed::Stdout, args);
        assert_quiet(&run, 0, &args.join(" "));
        assert_eq!(run.open_stream, "", "{}", args.join(" "));
    }
}

#[test]
fn a_failing_command_with_stderr_closed_exits_1_without_panicking() {
    let dir = setup();
    let run = kiln_closed(dir.path(), Closed::Stderr, &["inspect", "missing:1"]);
    assert_quiet(&run, 1, "inspect missing:1");
    let run = kiln_closed(dir.path(), Closed::Both, &["inspect", "missing:1"]);
    assert_quiet(&run, 1, "inspect missing:1");
}

#[test]
fn a_build_whose_progress_pipe_is_closed_still_stores_and_tags_its_image() {
    let dir = setup();
    let d = dir.path();
    let run = kiln_closed(d, Closed::Stderr, &["build", "-t", "app:1", "ctx"]);
    assert_quiet(&run, 0, "build, stderr closed");
    assert!(
        run.open_stream.starts_with("Built sha256:"),
        "{}",
        run.open_stream
    );
    assert!(
        run.open_stream.ends_with(" as app:1\n"),
        "{}",
        run.open_stream
    );

    // `kiln build 2>&1 | head`: both streams go when the reader does.
    let run = kiln_closed(
        d,
        Closed::Both,
        &["build", "-t", "app:2", "--no-cache", "ctx"],
    );
    assert_quiet(&run, 0, "build, both closed");

    let (code, images) = kiln(d, &["images"]);
    assert_eq!(code, 0, "{images}");
    let tags: Vec<Vec<&str>> = images
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert!(tags.contains(&vec!["app", "1"]), "{images}");
    assert!(tags.contains(&vec!["app", "2"]), "{images}");
    let (code, inspect) = kiln(d, &["inspect", "app:2"]);
    assert_eq!(code, 0, "{inspect}");
    assert!(inspect.contains("\"/hello\""), "{inspect}");
}

#[test]
fn a_full_disk_under_stdout_is_an_error_not_a_panic() {
    // Unlike a reader that left, lost output must not pass for success.
    let dir = setup();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check", "ctx"])
        .current_dir(dir.path())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "error: cannot write to standard output: No space left on device (os error 28)\n"
    );
}
