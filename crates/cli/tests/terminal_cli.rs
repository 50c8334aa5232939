//! `kiln build` as a person sees it: run in a real terminal emulator
//! (tmux), with the screen read back (`capture-pane`) while the build runs
//! and after it: the running step with its output under it, stages side by
//! side, the summary, and a terminal left clean after Ctrl-C.

use kiln_testsupport::base_images;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A tmux server of the test's own (its own socket) running one window of
/// `cols` × `rows`.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a new window; when it
    /// ends, the window prints `KILN-EXIT=<status>` and stays open so the
    /// screen can be read. The shell traps SIGINT (a handler, which kiln
    /// does not inherit, unlike an ignored signal) so that Ctrl-C stops
    /// kiln, not the shell waiting for it.
    fn start(dir: &Path, cols: u16, rows: u16, command: &str) -> Tmux {
        let socket = dir.join("tmux.sock");
        let script = format!("trap : INT; {command}; echo KILN-EXIT=$?; sleep 600");
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "t"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .args(["sh", "-c", &script])
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .status()
            .expect("running tmux (apt-get install tmux)");
        assert!(status.success());
        Tmux { socket }
    }

    /// Waits for kiln to end; its exit status and the screen then.
    fn finish(&self) -> (i32, String) {
        let screen = self.wait("the build to end", |s| s.contains("KILN-EXIT="));
        let code = screen
            .lines()
            .find_map(|l| l.trim().strip_prefix("KILN-EXIT="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        (code, screen)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the window shows now, a line per screen row.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until the screen satisfies `done`, returning that screen;
    /// panics with the last screen after a minute.
    fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cursor_visible(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{cursor_flag}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The shell command running kiln on `dir/ctx` with its own store.
fn kiln_build(dir: &Path, args: &str) -> String {
    format!(
        "KILN_ROOT={root} HOME={home} {kiln} build --build-context bb=oci-layout://{bb}:latest {args} {ctx}",
        root = dir.join("store").display(),
        home = dir.display(),
        kiln = env!("CARGO_BIN_EXE_kiln"),
        bb = base_images().busybox.display(),
        ctx = dir.join("ctx").display(),
    )
}

fn context(dir: &Path, dockerfile: &str) {
    std::fs::create_dir_all(dir.join("ctx")).unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
}

#[test]
fn a_build_on_screen_while_it_runs_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two stages at once, each printing and then sleeping long enough for
    // the screen to be read; an instruction far wider than the window.
    context(
        d,
        &format!(
            "FROM bb AS one\n\
             RUN echo one-says-hello && sleep 3\n\
             FROM bb AS two\n\
             RUN echo two-says-hello && sleep 3\n\
             FROM bb\n\
             COPY --from=one /bin/busybox /one\n\
             COPY --from=two /bin/busybox /two\n\
             RUN echo {} WRAPPED-END\n",
            "x".repeat(120)
        ),
    );
    let tmux = Tmux::start(d, 80, 30, &kiln_build(d, "-t screen-test"));

    // While both RUNs sleep: each is a running line with a spinner, its
    // output under it.
    let during = tmux.wait("both stages running with their output", |s| {
        s.contains("one-says-hello") && s.contains("two-says-hello")
    });
    let running: Vec<&str> = during
        .lines()
        .filter(|l| l.contains("RUN echo") && l.chars().any(|c| SPINNER.contains(&c)))
        .collect();
    assert!(running.len() >= 2, "two running steps at once:\n{during}");
    assert!(during.contains("[+] Building"), "{during}");

    let (code, after) = tmux.finish();
    assert_eq!(code, 0, "{after}");
    assert!(after.contains("Built in"), "the summary:\n{after}");
    assert!(after.contains("screen-test:latest"), "{after}");
    // Nothing left running on screen, nothing wrapped onto a second row.
    assert!(
        !after.chars().any(|c| SPINNER.contains(&c)),
        "a spinner left behind:\n{after}"
    );
    assert!(!after.contains("WRAPPED-END"), "{after}");
    assert!(after.lines().all(|l| l.chars().count() <= 80));
    assert!(tmux.cursor_visible(), "the cursor is given back");
}

#[test]
fn ctrl_c_stops_the_build_and_leaves_the_terminal_clean() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    context(d, "FROM bb\nRUN echo waiting-here && sleep 60\n");
    let tmux = Tmux::start(d, 80, 24, &kiln_build(d, ""));
    tmux.wait("the step to run", |s| s.contains("waiting-here"));
    tmux.tmux(&["send-keys", "-t", "t", "C-c"]);
    let (code, after) = tmux.finish();
    assert_eq!(code, 130, "{after}");
    assert!(after.contains("ERROR"), "{after}");
    assert!(
        !after.chars().any(|c| SPINNER.contains(&c)),
        "a spinner left behind:\n{after}"
    );
    assert!(tmux.cursor_visible(), "the cursor is given back:\n{after}");
}
