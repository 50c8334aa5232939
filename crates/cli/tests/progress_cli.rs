//! `kiln build --progress=…` through the binary: the JSON event stream
//! against its documented schema (docs/events.md), BuildKit's plain lines
//! (timestamps, carriage returns, pulls as steps), and the terminal view
//! run in a real pseudo-terminal (util-linux `script`): steps, output,
//! stages at once, the summary, and Ctrl-C.

use kiln_testsupport::base_images;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
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

fn bb_context() -> String {
    format!("bb=oci-layout://{}:latest", base_images().busybox.display())
}

/// A context in `dir`/ctx with `dockerfile`.
fn context(dir: &Path, dockerfile: &str) {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/a.txt"), "a\n").unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
}

/// docs/events.md's kinds, each with its fields.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md"))
            .unwrap();
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(kind) = line.strip_prefix("### `") {
            let kind = kind.trim_end_matches('`').to_string();
            kinds.insert(kind.clone(), BTreeSet::new());
            current = Some(kind);
        } else if line.starts_with("## ") {
            current = None;
        } else if let (Some(kind), Some(field)) = (&current, line.strip_prefix("| `")) {
            let field = field.split('`').next().unwrap().to_string();
            kinds.get_mut(kind).unwrap().insert(field);
        }
    }
    kinds
}

/// The events of a `--progress=rawjson` build, each checked against the
/// schema: one object per line, version 1, a documented kind with exactly
/// its documented fields (and the common ones).
fn events(stderr: &[u8]) -> Vec<Value> {
    let documented = documented();
    let text = String::from_utf8(stderr.to_vec()).unwrap();
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object: {line:?}: {e}"));
            assert_eq!(event["v"], 1, "{line}");
            assert!(event["time"].is_f64() || event["time"].is_u64(), "{line}");
            let kind = event["kind"].as_str().unwrap();
            let fields: BTreeSet<String> = event
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !["v", "kind", "time", "platform"].contains(&k.as_str()))
                .cloned()
                .collect();
            assert_eq!(
                Some(&fields),
                documented.get(kind),
                "{line}: kind or fields not as docs/events.md says"
            );
            event
        })
        .collect()
}

/// `kind` and, for the events of a step, `stage/index`.
fn summary(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["kind"].as_str().unwrap();
            match (kind, &e["index"]) {
                ("output", _) => format!("output {}", e["line"].as_str().unwrap()),
                ("instruction_complete", i) => {
                    format!("{kind} {}/{i} cached={}", e["stage"], e["cached"])
                }
                (_, Value::Null) => kind.to_string(),
                (_, i) => format!("{kind} {}/{i}", e["stage"]),
            }
        })
        .filter(|s| !s.starts_with("cache_miss"))
        .collect()
}

#[test]
fn rawjson_is_the_documented_event_stream_of_a_real_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM bb\nCOPY a.txt /\nRUN echo out-of-run\n");
    let args = [
        "build",
        "--progress=rawjson",
        "--build-context",
        &bb_context(),
        "--iidfile",
        "iid",
        "ctx",
    ];
    let first = kiln(d, &args);
    assert!(first.status.success(), "{first:?}");
    let expected = [
        "build_started",
        "stage_started",
        "instruction_started 0/0",
        "instruction_complete 0/0 cached=false",
        "instruction_started 0/1",
        "instruction_complete 0/1 cached=false",
        "instruction_started 0/2",
        "output out-of-run",
        "instruction_complete 0/2 cached=false",
        "stage_complete",
        "build_complete",
    ];
    let stream = events(&first.stderr);
    assert_eq!(summary(&stream), expected);
    let id = std::fs::read_to_string(d.join("iid")).unwrap();
    assert_eq!(stream.last().unwrap()["image_id"], id.as_str());
    // The first build of a step misses the cache as expected.
    assert!(stream
        .iter()
        .any(|e| e["kind"] == "cache_miss" && e["expected"] == true));

    let again = kiln(d, &args);
    assert!(again.status.success(), "{again:?}");
    let cached: Vec<String> = summary(&events(&again.stderr))
        .into_iter()
        .filter(|s| {
            s.starts_with("instruction_complete 0/1") || s.starts_with("instruction_complete 0/2")
        })
        .collect();
    assert_eq!(
        cached,
        [
            "instruction_complete 0/1 cached=true",
            "instruction_complete 0/2 cached=true"
        ]
    );
}

#[test]
fn rawjson_reports_a_failed_build_last() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM bb\nRUN echo about-to-fail && exit 3\n");
    let out = kiln(
        d,
        &[
            "build",
            "--progress=rawjson",
            "--build-context",
            &bb_context(),
            "ctx",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    // The error after the stream is kiln's usual last line, not an event.
    let stderr = String::from_utf8(out.stderr).unwrap();
    let at = stderr.find("\nerror: ").expect("kiln's error") + 1;
    let (stream, error) = stderr.split_at(at);
    assert!(error.contains("exit code: 3"), "{error}");
    let stream = events(stream.as_bytes());
    let last = stream.last().unwrap();
    assert_eq!(last["kind"], "build_failed");
    assert!(
        last["error"].as_str().unwrap().contains("exit code: 3"),
        "{last}"
    );
    assert!(summary(&stream).contains(&"output about-to-fail".to_string()));
}

#[test]
fn plain_output_lines_carry_their_time_and_show_what_a_terminal_would() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(
        d,
        "FROM bb\nRUN printf 'ten\\rfifty\\rhundred done\\n' && echo crlf-ended | sed 's/$/\\r/'\n",
    );
    let out = kiln(
        d,
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &bb_context(),
            "ctx",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let output: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("#2 ") && !l.contains("[2/2]") && !l.contains("DONE"))
        .collect();
    assert_eq!(output.len(), 2, "{err}");
    for (line, text) in output.iter().zip(["hundred done", "crlf-ended"]) {
        // `#2 0.512 text`: seconds since the step started, three decimals.
        let rest = line.strip_prefix("#2 ").unwrap();
        let (time, shown) = rest.split_once(' ').unwrap();
        let (secs, decimals) = time.split_once('.').unwrap();
        assert!(secs.parse::<u32>().is_ok() && decimals.len() == 3, "{line}");
        assert_eq!(shown, text, "{line:?}");
    }
    assert!(!err.contains('\r'), "{err:?}");
}

/// `kiln args…` in a pseudo-terminal `cols` wide: what the terminal was
/// sent (standard output and error together), and the exit code.
fn in_terminal(d: &Path, cols: u16, envs: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let out = terminal_command(d, cols, envs, args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn terminal_command(d: &Path, cols: u16, envs: &[(&str, &str)], args: &[&str]) -> Command {
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let mut cmd = Command::new("script");
    cmd.args([
        "-qfec",
        &format!(
            "stty cols {cols} rows 40; exec '{kiln}' {}",
            quoted.join(" ")
        ),
        "/dev/null",
    ])
    .current_dir(d)
    .env("KILN_ROOT", d.join("store"))
    .env("HOME", d)
    .env("TERM", "xterm")
    .env("COLUMNS", cols.to_string())
    .env_remove("NO_COLOR")
    .envs(envs.iter().copied())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// The terminal is left as found: every hidden cursor shown again, and
/// nothing that moves the cursor or clears after that.
fn assert_terminal_restored(screen: &str) {
    let hidden = screen
        .rfind("\x1b[?25l")
        .expect("the cursor is hidden while drawing");
    let shown = screen
        .rfind("\x1b[?25h")
        .expect("the cursor is shown again");
    assert!(shown > hidden, "{screen:?}");
    assert_eq!(
        screen.matches("\x1b[?25l").count(),
        1,
        "hidden once: {screen:?}"
    );
    let after = &screen[shown..];
    for moving in ["\x1b[1A", "\x1b[2K", "\x1b[1B"] {
        assert!(!after.contains(moving), "{after:?}");
    }
}

#[test]
fn the_terminal_view_shows_steps_their_output_the_cache_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An instruction far wider than the terminal: cut, never wrapped.
    let long = format!(
        "RUN echo {} && echo out-of-run && true WRAPPED-END",
        "x".repeat(80)
    );
    context(d, &format!("FROM bb\nCOPY a.txt /\n{long}\n"));
    let args = [
        "build",
        "--build-context",
        &bb_context(),
        "-t",
        "tty-test",
        "ctx",
    ];
    // `auto`, the default, on a terminal.
    let (code, screen) = in_terminal(d, 60, &[], &args);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("[+] Building"), "{screen}");
    assert!(screen.contains("[2/3] COPY a.txt /"), "{screen}");
    assert!(screen.contains("DONE"), "{screen}");
    assert!(screen.contains("out-of-run"), "the RUN's output: {screen}");
    assert!(
        SPINNER.iter().any(|s| screen.contains(s)),
        "a spinner: {screen}"
    );
    assert!(screen.contains("Built in"), "the summary: {screen}");
    assert!(screen.contains("tags   tty-test:latest"), "{screen}");
    assert!(screen.contains("size   "), "{screen}");
    assert!(screen.contains("2 steps, 0 from the cache"), "{screen}");
    assert!(screen.contains("\x1b[3"), "colours: {screen:?}");
    assert!(!screen.contains("WRAPPED-END"), "{screen}");
    assert_terminal_restored(&screen);
    // The summary, written after the live view, fits too (the result on
    // standard output, `Built sha256:… as …`, is for scripts and whole).
    let summary = &screen[screen.rfind("\x1b[?25h").unwrap()..];
    for line in summary
        .split("\r\n")
        .filter(|l| !l.starts_with("Built sha256:"))
    {
        assert!(strip_escapes(line).chars().count() <= 60, "{line:?}");
    }

    // Forced by name, and again: every step from the cache, no colours.
    let mut forced = vec!["build", "--progress=tty"];
    forced.extend_from_slice(&args[1..]);
    let (code, screen) = in_terminal(d, 60, &[("NO_COLOR", "1")], &forced);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("CACHED"), "{screen}");
    assert!(screen.contains("2 steps, 2 from the cache"), "{screen}");
    assert!(!screen.contains("\x1b[3"), "NO_COLOR: {screen:?}");
    assert_terminal_restored(&screen);
}

/// `s` without its CSI escape sequences.
fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Ctrl-C typed `presses` times once the RUN runs: what the terminal got.
fn interrupted_in_terminal(d: &Path, presses: usize) -> (i32, String) {
    let marker = format!("sleep 5{}", std::process::id() % 10_000);
    context(d, &format!("FROM bb\nRUN echo started && {marker}\n"));
    let mut child = terminal_command(
        d,
        80,
        &[],
        &["build", "--build-context", &bb_context(), "ctx"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&screen).contains("started") {
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&screen)
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            screen.extend(chunk);
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    // ^C through the terminal, as a person types it: the line discipline
    // turns it into SIGINT for the foreground process group.
    for press in 0..presses {
        if press > 0 {
            // Signals of one kind pending at once count as one: the second
            // press must come after the first was taken.
            std::thread::sleep(Duration::from_millis(10));
        }
        stdin.write_all(b"\x03").unwrap();
        stdin.flush().unwrap();
    }
    for chunk in rx.iter() {
        screen.extend(chunk);
    }
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&screen).into_owned(),
    )
}

#[test]
fn ctrl_c_in_the_terminal_view_leaves_the_terminal_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (code, screen) = interrupted_in_terminal(dir.path(), 1);
    assert_eq!(code, 130, "{screen}");
    assert!(screen.contains("ERROR"), "the running step: {screen}");
    assert!(screen.contains("error: build interrupted"), "{screen}");
    assert_terminal_restored(&screen);

    // A second Ctrl-C while the first still stops the build exits from
    // inside the signal handler; the cursor still comes back. The next
    // build cleans up what that leaves, as after a SIGKILL.
    let dir = tempfile::tempdir().unwrap();
    let (code, screen) = interrupted_in_terminal(dir.path(), 2);
    assert_eq!(code, 130, "{screen}");
    assert_terminal_restored(&screen);
}

#[test]
fn a_pulled_base_image_is_a_transfer_of_its_own_with_its_bytes() {
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    kiln_testsupport::BaseImages::skopeo_push(&base_images().busybox, &host, "busybox:1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, &format!("FROM {host}/busybox:1\nRUN true\n"));
    let build = |progress: &str, store: &str| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", progress, "ctx"])
            .current_dir(d)
            .env("KILN_ROOT", d.join(store))
            .env("HOME", d)
            .env("KILN_INSECURE_REGISTRIES", &host)
            .output()
            .unwrap()
    };
    let out = build("--progress=rawjson", "store");
    assert!(out.status.success(), "{out:?}");
    let transfers: Vec<Value> = events(&out.stderr)
        .into_iter()
        .filter(|e| e["kind"] == "transfer")
        .collect();
    let what = format!("pull {host}/busybox:1");
    assert!(
        transfers.iter().all(|t| t["what"] == what.as_str()),
        "{transfers:?}"
    );
    assert_eq!(transfers.first().unwrap()["bytes"], 0);
    let last = transfers.last().unwrap();
    assert_eq!(last["done"], true);
    assert!(last["bytes"].as_u64().unwrap() > 100_000, "{last}");
    assert_eq!(transfers.iter().filter(|t| t["done"] == true).count(), 1);

    // BuildKit's plain lines show the pull as a step; a fresh store pulls again.
    let out = build("--progress=plain", "store2");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let start = err
        .lines()
        .find(|l| l.ends_with(&format!(" {what}")))
        .unwrap_or_else(|| panic!("{err}"));
    let n = start.split(' ').next().unwrap();
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("{n} ")) && l.ends_with(" received")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with(&format!("{n} DONE "))),
        "{err}"
    );
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Whether `frame` shows a running step (a spinner before it) titled
/// `title` (`[a 2/2] RUN`).
fn running(frame: &str, title: &str) -> bool {
    SPINNER.iter().any(|f| {
        frame.split(&format!("{f} #")).skip(1).any(|rest| {
            rest.split_once(' ')
                .is_some_and(|(_, r)| r.starts_with(title))
        })
    })
}

#[test]
fn stages_that_run_at_once_are_shown_at_once_in_the_terminal_view() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(
        d,
        "FROM bb AS a\nRUN sleep 1\nFROM bb AS b\nRUN sleep 1\n\
         FROM scratch\nCOPY --from=a /bin/sh /a\nCOPY --from=b /bin/sh /b\n",
    );
    let (code, screen) = in_terminal(
        d,
        100,
        &[("NO_COLOR", "1")],
        &["build", "--build-context", &bb_context(), "ctx"],
    );
    assert_eq!(code, 0, "{screen}");
    // Each redraw starts with the header.
    assert!(
        screen
            .split("[+] Building")
            .any(|frame| running(frame, "[a 2/2] RUN sleep 1")
                && running(frame, "[b 2/2] RUN sleep 1")),
        "{screen}"
    );
    assert_terminal_restored(&screen);
}
