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

/// The manifest the registry at `host` has under `name`, and its digest.
fn registry_manifest(host: &str, name: &str) -> (Value, String) {
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{name}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{raw:?}");
    let digest = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&raw.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(digest.stdout).unwrap();
    (
        serde_json::from_slice(&raw.stdout).unwrap(),
        format!("sha256:{}", hex.split(' ').next().unwrap()),
    )
}

/// The blobs a manifest names, config first: digest and size.
fn blobs(manifest: &Value) -> Vec<(String, u64)> {
    std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `kiln args…` in `d` with the registry `host` insecure.
fn kiln_with_registry(d: &Path, host: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(d)
        .env("KILN_ROOT", d.join("store"))
        .env("HOME", d)
        .env("KILN_INSECURE_REGISTRIES", host)
        .output()
        .unwrap()
}

/// Checks the plain lines of the push to `reference` of the blobs
/// `expected` (digest, size, and the word for what happened to each):
/// a step titled `pushing REFERENCE`, a line as each blob starts and one
/// as it ends, then `pushing REFERENCE: done DIGEST` and `DONE`.
fn assert_plain_push(err: &str, reference: &str, expected: &[(String, u64, &str)], digest: &str) {
    let title = format!("pushing {reference}");
    let start = err
        .lines()
        .find(|l| l.starts_with('#') && l.split_once(' ').unwrap().1 == title)
        .unwrap_or_else(|| panic!("no step {title:?}: {err}"));
    let n = start.split(' ').next().unwrap();
    // `#7 0.012 rest`: the step's lines after its title, without times.
    let lines: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{n} ")))
        .skip(1)
        .map(|l| {
            if l.starts_with("DONE ") {
                return "DONE";
            }
            let (time, rest) = l.split_once(' ').unwrap();
            assert!(time.parse::<f64>().is_ok(), "{l}");
            rest
        })
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    for (blob, size, how) in expected {
        let size = indicatif::HumanBytes(*size);
        if *how == "pushed" {
            wanted.push(format!("pushing {blob} {size}"));
        }
        wanted.push(format!("{how} {blob} {size}"));
    }
    // Blobs go at once: each one's lines in order, any order between them.
    let mut got: Vec<&str> = lines[..lines.len() - 2].to_vec();
    for blob in expected {
        let of_blob: Vec<&&str> = got.iter().filter(|l| l.contains(&blob.0)).collect();
        let want: Vec<&String> = wanted.iter().filter(|l| l.contains(&blob.0)).collect();
        assert_eq!(
            of_blob.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            want.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            "{err}"
        );
    }
    got.retain(|l| !expected.iter().any(|b| l.contains(&b.0)));
    assert!(got.is_empty(), "lines of no blob: {got:?}\n{err}");
    assert_eq!(
        lines[lines.len() - 2..],
        [format!("{title}: done {digest}").as_str(), "DONE"],
        "{err}"
    );
}

#[test]
fn a_push_is_a_step_of_its_own_with_a_line_per_blob_and_a_done_line() {
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM scratch\nCOPY a.txt /\nCOPY b.bin /\n");
    std::fs::write(d.join("ctx/b.bin"), kiln_testsupport::noise(2 << 20)).unwrap();
    let reference = format!("{host}/app:1");
    let out = kiln_with_registry(
        d,
        &host,
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &reference,
            "ctx",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let (manifest, digest) = registry_manifest(&host, "app:1");
    let id = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("Built {id} as {reference}\n")
    );
    let uploaded: Vec<(String, u64, &str)> = blobs(&manifest)
        .into_iter()
        .map(|(d, s)| (d, s, "pushed"))
        .collect();
    assert_eq!(uploaded.len(), 3);
    assert_plain_push(&err, &reference, &uploaded, &digest);
    // The big COPY's step says how big its layer came out, once; the
    // small one's says nothing.
    let copy = err
        .lines()
        .find(|l| l.ends_with(" [3/3] COPY b.bin /"))
        .unwrap_or_else(|| panic!("{err}"));
    let n = copy.split(' ').next().unwrap();
    let layer: Vec<&str> = err.lines().filter(|l| l.contains(" layer ")).collect();
    assert_eq!(layer.len(), 1, "{err}");
    let written = format!(" layer {} written", indicatif::HumanBytes(uploaded[2].1));
    let (before, after) = layer[0]
        .split_once(&written)
        .unwrap_or_else(|| panic!("{err}"));
    let (step, time) = before.split_once(' ').unwrap();
    assert_eq!(step, n, "{err}");
    assert!(time.parse::<f64>().is_ok(), "{err}");
    // The speed, once the layer took long enough to measure.
    assert!(
        after.is_empty() || (after.starts_with(", ") && after.ends_with("/s")),
        "{err}"
    );

    // `kiln push` shows the same step: to the same repository, every blob
    // is there already.
    let again = format!("{host}/app:2");
    let out = kiln_with_registry(d, &host, &["push", "--progress=plain", &reference, &again]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("Pushed {again}\nDigest: {digest}\n")
    );
    let existing: Vec<(String, u64, &str)> = blobs(&manifest)
        .into_iter()
        .map(|(d, s)| (d, s, "exists"))
        .collect();
    assert_plain_push(
        &String::from_utf8(out.stderr).unwrap(),
        &again,
        &existing,
        &digest,
    );

    // -q shows nothing.
    let out = kiln_with_registry(d, &host, &["push", "-q", &reference, &again]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    // A push that fails ends its step with ERROR, before the error.
    let closed = format!("127.0.0.1:{}/app:1", kiln_testsupport::free_port());
    let out = kiln_with_registry(d, &host, &["push", "--progress=plain", &reference, &closed]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[..2],
        [format!("#1 pushing {closed}").as_str(), "#1 ERROR"],
        "{err}"
    );
    assert!(lines[2].starts_with("error: pushing "), "{err}");
}

/// The `push_blob` objects of the push to `reference`, by digest.
fn push_blobs(events: &[Value], reference: &str) -> BTreeMap<String, Vec<Value>> {
    let mut by_blob: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["kind"] == "push_blob") {
        assert_eq!(e["reference"], reference, "{e}");
        by_blob
            .entry(e["digest"].as_str().unwrap().to_string())
            .or_default()
            .push(e.clone());
    }
    by_blob
}

/// Each blob of `expected` was uploaded: its objects start at 0, count up
/// to its size and end `uploaded`, with its size as `total` throughout.
fn assert_uploaded(by_blob: &BTreeMap<String, Vec<Value>>, expected: &[(String, u64)]) {
    assert_eq!(
        by_blob.keys().cloned().collect::<BTreeSet<_>>(),
        expected
            .iter()
            .map(|b| b.0.clone())
            .collect::<BTreeSet<_>>()
    );
    for (digest, size) in expected {
        let sent = &by_blob[digest];
        assert!(sent.iter().all(|e| e["total"] == *size), "{sent:?}");
        assert_eq!(sent[0]["current"], 0, "{sent:?}");
        assert_eq!(sent[0]["status"], "uploading", "{sent:?}");
        let last = sent.last().unwrap();
        assert_eq!(last["status"], "uploaded", "{sent:?}");
        assert_eq!(last["current"], *size, "{sent:?}");
        let currents: Vec<u64> = sent
            .iter()
            .map(|e| e["current"].as_u64().unwrap())
            .collect();
        assert!(currents.windows(2).all(|w| w[0] <= w[1]), "{currents:?}");
        assert!(
            sent[..sent.len() - 1]
                .iter()
                .all(|e| e["status"] == "uploading"),
            "{sent:?}"
        );
    }
}

#[test]
fn rawjson_reports_a_big_layer_compressed_and_each_blob_pushed_to_its_size() {
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM scratch\nCOPY a.txt /\nCOPY big.bin /\n");
    std::fs::write(d.join("ctx/big.bin"), kiln_testsupport::noise(32 << 20)).unwrap();
    let reference = format!("{host}/big:1");
    let out = kiln_with_registry(
        d,
        &host,
        &[
            "build",
            "--progress=rawjson",
            "--push",
            "-t",
            &reference,
            "ctx",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let events = events(&out.stderr);
    let (manifest, digest) = registry_manifest(&host, "big:1");
    let big_layer = manifest["layers"][1]["size"].as_u64().unwrap();
    assert!(big_layer > 32 << 20, "{manifest}");

    // The big COPY's layer reports, inside its step, up to its size (the
    // image's last layer is compressed as it is written); the small one
    // (a.txt) does not.
    let layer: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "layer_progress")
        .collect();
    assert!(
        layer.iter().all(|e| e["stage"] == 0 && e["index"] == 2),
        "{layer:?}"
    );
    let currents: Vec<u64> = layer
        .iter()
        .map(|e| e["current"].as_u64().unwrap())
        .collect();
    assert!(currents[0] >= 1 << 20, "{currents:?}");
    assert!(currents.windows(2).all(|w| w[0] <= w[1]), "{currents:?}");
    assert_eq!(*currents.last().unwrap(), big_layer);
    assert_eq!(
        layer.iter().map(|e| e["done"] == true).collect::<Vec<_>>(),
        (0..layer.len())
            .map(|i| i + 1 == layer.len())
            .collect::<Vec<_>>(),
        "only the last is done: {layer:?}"
    );
    let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    let step_started =
        position(&|e| e["kind"] == "instruction_started" && e["stage"] == 0 && e["index"] == 2);
    let step_done =
        position(&|e| e["kind"] == "instruction_complete" && e["stage"] == 0 && e["index"] == 2);
    let first_layer = position(&|e| e["kind"] == "layer_progress");
    let last_layer = events
        .iter()
        .rposition(|e| e["kind"] == "layer_progress")
        .unwrap();
    assert!(step_started < first_layer && last_layer < step_done);

    // The push: a step after the build's, each blob counted to its size,
    // then the digest the registry has, which is the image id.
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let started = position(&|e| e["kind"] == "push_started");
    let complete = position(&|e| e["kind"] == "push_complete");
    assert_eq!(events[started]["reference"], reference.as_str());
    assert!(kinds[..started].iter().all(|k| !k.starts_with("push_")));
    assert!(kinds[started + 1..complete]
        .iter()
        .all(|k| *k == "push_blob"));
    assert_eq!(
        events[complete],
        serde_json::json!({
            "v": 1,
            "kind": "push_complete",
            "time": events[complete]["time"],
            "reference": reference,
            "digest": digest,
        })
    );
    assert_eq!(kinds[complete + 1..], ["build_complete"]);
    assert_eq!(
        events[complete + 1]["image_id"],
        manifest["config"]["digest"]
    );
    assert_uploaded(&push_blobs(&events, &reference), &blobs(&manifest));

    // `kiln push` reports the same, to a repository without the blobs.
    let other = format!("{host}/other:1");
    let out = kiln_with_registry(
        d,
        &host,
        &["push", "--progress=rawjson", &reference, &other],
    );
    assert!(out.status.success(), "{out:?}");
    let pushed = self::events(&out.stderr);
    assert_eq!(pushed.first().unwrap()["kind"], "push_started");
    assert_eq!(pushed.first().unwrap()["reference"], other.as_str());
    assert_eq!(pushed.last().unwrap()["kind"], "push_complete");
    assert_eq!(pushed.last().unwrap()["digest"], digest.as_str());
    assert_uploaded(&push_blobs(&pushed, &other), &blobs(&manifest));
}

#[test]
fn the_terminal_view_shows_a_layer_and_a_push_with_their_bytes_and_speed() {
    let registry = kiln_testsupport::Registry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM scratch\nCOPY big.bin /\n");
    // Big enough that writing its tar (at disk speed: the blob is
    // compressed off the step's path) spans several frames.
    std::fs::write(d.join("ctx/big.bin"), kiln_testsupport::noise(192 << 20)).unwrap();
    let reference = format!("{host}/tty:1");
    let (code, screen) = in_terminal(
        d,
        220,
        &[("NO_COLOR", "1"), ("KILN_INSECURE_REGISTRIES", &host)],
        &["build", "--push", "-t", &reference, "ctx"],
    );
    assert_eq!(code, 0, "{screen}");
    let (_, digest) = registry_manifest(&host, "tty:1");
    // While the layer is written, its step shows the bytes so far and
    // their speed (`12.00 MiB 40.10 MiB/s`).
    assert!(
        screen.split("[+] Building").any(|frame| frame
            .lines()
            .any(|l| l.contains("[2/2] COPY big.bin /") && l.contains(" MiB/s "))),
        "{screen}"
    );
    // The push is a step of its own, kept when done with what it sent:
    // `✔ #3 pushing HOST/tty:1: done sha256:… (192.01 MiB)   DONE 1.6s`.
    let shown = strip_escapes(&screen);
    let title = format!("pushing {reference}: done {digest} (");
    let at = shown.find(&title).unwrap_or_else(|| panic!("{screen}"));
    let before = shown[..at].rsplit_once("✔ #").unwrap().1;
    assert!(
        before.trim_end().chars().all(|c| c.is_ascii_digit()),
        "{before:?}"
    );
    let after = &shown[at + title.len()..];
    let (size, rest) = after.split_once(')').unwrap();
    assert!(size.ends_with(" MiB"), "{after}");
    assert!(rest.trim_start().starts_with("DONE "), "{after}");
    assert_terminal_restored(&screen);

    // `kiln push` on a terminal: the same step under its own header; the
    // repository has every blob, so nothing is sent.
    let again = format!("{host}/tty:2");
    let (code, screen) = in_terminal(
        d,
        220,
        &[("NO_COLOR", "1"), ("KILN_INSECURE_REGISTRIES", &host)],
        &["push", &reference, &again],
    );
    assert_eq!(code, 0, "{screen}");
    let shown = strip_escapes(&screen);
    assert!(shown.contains("[+] Pushing"), "{screen}");
    assert!(
        shown.contains(&format!("pushing {again}: done {digest} (0 B)")),
        "{screen}"
    );
    assert!(
        shown.contains(&format!("Pushed {again}\r\nDigest: {digest}")),
        "{screen:?}"
    );
    assert_terminal_restored(&screen);
}
