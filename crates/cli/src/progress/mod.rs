//! How `kiln build` shows its progress on standard error, one display per
//! `--progress` mode: BuildKit's plain lines (`plain`), a live terminal
//! view (`tty`), and one JSON object per build event (`rawjson`, whose
//! schema is `docs/events.md`).
//!
//! Events arrive on the threads of the stages that send them (see
//! `kiln_backend::events`), so each display keeps its state behind a lock.

mod plain;
mod rawjson;
mod tty;

use crate::build_file::BuildFile;
use kiln_backend::BuiltImage;
use kiln_backend::{BuildEvent, EventSink};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// A `--progress` mode, with `auto` resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// BuildKit's `--progress=plain` lines.
    Plain,
    /// A live view redrawn in place.
    Tty,
    /// One JSON object per event.
    RawJson,
}

impl Mode {
    /// Reads `--progress`: `auto` is `tty` when standard error is a
    /// terminal that can move its cursor, and `plain` otherwise, as buildx
    /// decides.
    pub fn parse(flag: &str) -> anyhow::Result<Mode> {
        Ok(match flag {
            "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "rawjson" => Mode::RawJson,
            "auto" => {
                let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
                if std::io::stderr().is_terminal() && !dumb {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            other => anyhow::bail!("--progress={other}: expected auto, plain, tty or rawjson"),
        })
    }
}

/// The display of one build.
pub struct Display {
    kind: Kind,
}

enum Kind {
    Plain(plain::Plain),
    Tty(tty::Tty),
    RawJson(rawjson::RawJson),
}

impl Display {
    /// A display for `mode`; `file` leads warnings about a ZImagefile's
    /// translation back to the YAML.
    pub fn new(mode: Mode, file: BuildFile) -> Arc<Display> {
        let kind = match mode {
            Mode::Plain => Kind::Plain(plain::Plain::new(file)),
            Mode::Tty => Kind::Tty(tty::Tty::new(file, "Building")),
            Mode::RawJson => Kind::RawJson(rawjson::RawJson::new(file)),
        };
        Arc::new(Display { kind })
    }

    /// A display for `mode` of a push alone (`kiln push`): the same steps
    /// as a build's push, the terminal view headed `Pushing`.
    pub fn for_push(mode: Mode) -> Arc<Display> {
        // A push has no build file; warnings about one never come.
        let file = BuildFile {
            name: String::new(),
            bytes: Vec::new(),
            converted: None,
        };
        let kind = match mode {
            Mode::Plain => Kind::Plain(plain::Plain::new(file)),
            Mode::Tty => Kind::Tty(tty::Tty::new(file, "Pushing")),
            Mode::RawJson => Kind::RawJson(rawjson::RawJson::new(file)),
        };
        Arc::new(Display { kind })
    }

    /// The sink a build sends its events to, to be shown here.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let display = self.clone();
        EventSink::callback(move |e| display.show(e))
    }

    fn show(&self, event: BuildEvent) {
        match &self.kind {
            Kind::Plain(d) => d.show(event),
            Kind::Tty(d) => d.show(event),
            Kind::RawJson(d) => d.show(event),
        }
    }

    /// Ends the display once the build returned: the terminal view draws
    /// its last frame, prints the summary of `built` (none when the build
    /// failed) and gives the terminal back as it found it; the plain lines
    /// mark a step still running as failed.
    pub fn finish(&self, built: Option<&BuiltImage>) {
        match &self.kind {
            Kind::Tty(d) => d.finish(built),
            Kind::Plain(d) => d.finish(),
            Kind::RawJson(_) => {}
        }
    }

    /// Readies the display for the process exiting on `signal` from inside
    /// the handler, which a second Ctrl-C does (when `interrupted` is
    /// already set): the terminal view shows the cursor again first.
    /// Install before the handler that exits, as handlers run in the order
    /// they were installed.
    pub fn before_exit_on(&self, signal: i32, interrupted: Arc<AtomicBool>) -> std::io::Result<()> {
        match &self.kind {
            Kind::Tty(_) => tty::restore_terminal_on_exit(signal, interrupted),
            Kind::Plain(_) | Kind::RawJson(_) => Ok(()),
        }
    }
}

/// A stage of the build: its index, and its platform in a `--platform
/// a,b` build (whose platforms repeat the stage indexes).
type StageKey = (Option<String>, usize);

/// A step that started: BuildKit's number for it (`#3`), when, and its
/// title (`[build 2/4] COPY hello.sh ./`).
#[derive(Clone)]
struct Step {
    n: usize,
    started: Instant,
    title: String,
}

/// What the plain and terminal displays both track: the stages' labels
/// and the steps running, numbered as BuildKit numbers them.
#[derive(Default)]
struct Steps {
    named: bool,
    next: usize,
    stages: HashMap<StageKey, (String, usize)>,
    running: HashMap<(StageKey, usize), Step>,
    /// Transfers under way (pulls and pushes), by platform and what
    /// moves: steps of their own, as BuildKit shows pulls and pushes.
    transfers: HashMap<(Option<String>, String), Step>,
    /// Each step's first report of the layer it writes, and when it came:
    /// the start of the layer's speed.
    layers: HashMap<(StageKey, usize), (Instant, u64)>,
}

impl Steps {
    fn build_started(&mut self, stages: usize) {
        // BuildKit names stages in the step titles only when there are several.
        self.named = stages > 1;
    }

    fn stage_started(&mut self, key: StageKey, name: Option<String>, instructions: usize) {
        let mut label = if self.named {
            format!("{} ", name.unwrap_or_else(|| format!("stage-{}", key.1)))
        } else {
            String::new()
        };
        // BuildKit's `[linux/arm64 build 2/3]`.
        if let Some(p) = &key.0 {
            label = format!("{p} {label}");
        }
        self.stages.insert(key, (label, instructions));
    }

    fn start(&mut self, key: StageKey, index: usize, text: &str) -> Step {
        self.next += 1;
        let (label, total) = self.stages.get(&key).cloned().unwrap_or_default();
        let step = Step {
            n: self.next,
            started: Instant::now(),
            title: format!("[{label}{}/{total}] {text}", index + 1),
        };
        self.running.insert((key, index), step.clone());
        step
    }

    fn get(&self, key: StageKey, index: usize) -> Option<&Step> {
        self.running.get(&(key, index))
    }

    fn finish(&mut self, key: StageKey, index: usize) -> Option<Step> {
        self.running.remove(&(key, index))
    }

    /// The step of a transfer, and whether this event started it.
    fn transfer(&mut self, platform: Option<String>, what: &str) -> (Step, bool) {
        let key = (platform, what.to_string());
        if let Some(step) = self.transfers.get(&key) {
            return (step.clone(), false);
        }
        self.next += 1;
        let title = match &key.0 {
            Some(p) => format!("[{p}] {what}"),
            None => what.to_string(),
        };
        let step = Step {
            n: self.next,
            started: Instant::now(),
            title,
        };
        self.transfers.insert(key, step.clone());
        (step, true)
    }

    fn end_transfer(&mut self, platform: Option<String>, what: String) {
        self.transfers.remove(&(platform, what));
    }

    /// Notes that the layer of step `index` of `key` has `current` bytes;
    /// returns its speed in bytes a second since its first report, once
    /// time has passed. `done` forgets the layer.
    fn layer_speed(
        &mut self,
        key: StageKey,
        index: usize,
        current: u64,
        done: bool,
    ) -> Option<f64> {
        let at = (key, index);
        let (since, from) = *self
            .layers
            .entry(at.clone())
            .or_insert_with(|| (Instant::now(), current));
        if done {
            self.layers.remove(&at);
        }
        speed(since, from, current)
    }
}

/// Bytes a second from `from` bytes at `since` to `current` bytes now;
/// `None` until a millisecond has passed, too soon to tell.
fn speed(since: Instant, from: u64, current: u64) -> Option<f64> {
    let secs = since.elapsed().as_secs_f64();
    (secs >= 0.001).then(|| current.saturating_sub(from) as f64 / secs)
}

/// The title of the step of a push to `reference`.
fn push_title(reference: &str) -> String {
    format!("pushing {reference}")
}

/// A warning as the user reads it: about the line of their own file (the
/// YAML of a ZImagefile, not its translation), or about the whole build.
fn warning_text(build_file: &BuildFile, file: String, line: usize, message: String) -> String {
    if line == 0 {
        return format!("warning: {message}");
    }
    let at = build_file.locate(
        kiln_frontend::Error::new(kiln_frontend::ErrorKind::Semantic, message)
            .in_file(file)
            .at(line, 0),
    );
    format!("warning: {}:{}: {}", at.file, at.line, at.message)
}

/// What a terminal shows of a line written with carriage returns (a
/// download's `10%\r20%\r30%`): the text after the last one, as BuildKit
/// shows it. A trailing `\r` (a CRLF line ending) is not a redraw.
fn collapse_cr(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    match line.rfind('\r') {
        Some(i) => &line[i + 1..],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::collapse_cr;

    #[test]
    fn carriage_returns_keep_what_a_terminal_would_show() {
        assert_eq!(collapse_cr("plain"), "plain");
        assert_eq!(collapse_cr("10%\r20%\r30% done"), "30% done");
        assert_eq!(collapse_cr("crlf\r"), "crlf");
        assert_eq!(collapse_cr("a\rb\r\r"), "b");
        assert_eq!(collapse_cr("\r"), "");
    }
}
