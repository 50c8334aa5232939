//! The terminal view (`--progress=tty`, and `auto` on a terminal): a
//! `[+] Building 3.2s (4/9)` header, under it one line per running step
//! with a spinner and its time, and under each the last lines of its
//! output. A finished step leaves the live area as a permanent line above
//! it (`✔ #3 [build 2/4] RUN make   DONE 3.4s`, or `CACHED`), so the live
//! area only ever holds what is running and never outgrows the screen.
//! The build ends with a summary.
//!
//! indicatif redraws at most [`REFRESH_HZ`] times a second, moving the
//! cursor over the previous frame and writing each frame in one flush, so
//! nothing flickers. Every line is cut to the terminal's width: a line
//! that wrapped would throw the redraw's cursor movements off.

use super::{collapse_cr, push_title, speed, warning_text, StageKey, Step, Steps};
use crate::build_file::BuildFile;
use crate::output::errln;
use console::{measure_text_width, style, truncate_str, Term};
use indicatif::{
    HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};
use kiln_backend::events::{BuildEvent, PushStatus};
use kiln_backend::BuiltImage;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of a running step's output shown under it, as BuildKit shows.
const TAIL_LINES: usize = 6;
/// Redraws per second at most.
const REFRESH_HZ: u8 = 10;
/// How often the spinners and times move.
const TICK: Duration = Duration::from_millis(100);
/// A running step's line, and the same with its output's last lines
/// (the bar's prefix, cut to the width as it is set) under it.
const RUNNING: &str = "{spin} {wide_msg} {secs}";
const RUNNING_WITH_OUTPUT: &str = "{spin} {wide_msg} {secs}\n{prefix}";
/// The same for a step moving bytes (a layer written, a push): their count
/// and speed (`{rate}`) before the time.
const MOVING: &str = "{spin} {wide_msg} {rate} {secs}";
const MOVING_WITH_OUTPUT: &str = "{spin} {wide_msg} {rate} {secs}\n{prefix}";
/// Characters of a digest's hex shown under a push, as docker shows them.
const SHORT_DIGEST: usize = 12;
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The terminal display.
pub(super) struct Tty {
    multi: MultiProgress,
    header: ProgressBar,
    /// Unbuffered, for the writes outside indicatif's frames (the cursor).
    term: Term,
    state: Mutex<State>,
    file: BuildFile,
    started: Instant,
}

#[derive(Default)]
struct State {
    steps: Steps,
    live: HashMap<(StageKey, usize), Live>,
    /// Pulls and pushes under way, by platform and what moves.
    transfers: HashMap<(Option<String>, String), Live>,
    /// Instructions of the build, of every platform.
    total: usize,
    /// Instructions finished.
    done: usize,
    /// Steps after FROM finished, and how many of them from the cache.
    steps_done: usize,
    cached: usize,
    finished: bool,
}

/// A running step's bar, which shows its output's last lines under it.
struct Live {
    step: Step,
    bar: ProgressBar,
    lines: VecDeque<String>,
    /// Bytes the step moves, once it moves some: shown with their speed.
    moving: Option<Moving>,
    /// A push's blobs being uploaded, by digest: bytes sent, and size.
    blobs: BTreeMap<String, (u64, u64)>,
    /// Bytes of a push's blobs already uploaded.
    uploaded: u64,
}

impl Live {
    fn new(step: Step, bar: ProgressBar) -> Live {
        Live {
            step,
            bar,
            lines: VecDeque::new(),
            moving: None,
            blobs: BTreeMap::new(),
            uploaded: 0,
        }
    }
}

/// A step's bytes: the text its bar shows (`12.00 MiB 30.10 MiB/s`),
/// shared with the bar's style, and where the speed is counted from.
struct Moving {
    text: Arc<Mutex<String>>,
    since: Instant,
    from: u64,
}

impl Tty {
    /// A view headed `[+] {doing} 1.2s (n/m)`: `Building`, `Pushing`.
    pub(super) fn new(file: BuildFile, doing: &str) -> Tty {
        // Drawn whether or not standard error is a terminal: --progress=tty
        // asks for this view by name, and `auto` picks it only on one.
        let target =
            ProgressDrawTarget::term_like_with_hz(Box::new(Term::buffered_stderr()), REFRESH_HZ);
        let multi = MultiProgress::with_draw_target(target);
        let term = Term::stderr();
        // A cursor hopping over the redrawn lines is the flicker people see.
        let _ = term.hide_cursor();
        let header = multi.add(
            ProgressBar::new_spinner()
                .with_style(style_of(&format!("[+] {doing} {{secs}} {{wide_msg}}")))
                .with_message("(0/0)"),
        );
        header.enable_steady_tick(TICK);
        Tty {
            multi,
            header,
            term,
            state: Mutex::new(State::default()),
            file,
            started: Instant::now(),
        }
    }

    pub(super) fn show(&self, event: BuildEvent) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.finished {
            return;
        }
        match event {
            BuildEvent::Platform { platform, event } => {
                self.show_one(&mut s, Some(platform), *event)
            }
            event => self.show_one(&mut s, None, event),
        }
    }

    fn show_one(&self, s: &mut State, platform: Option<String>, event: BuildEvent) {
        let key = |stage: usize| -> StageKey { (platform.clone(), stage) };
        match event {
            BuildEvent::BuildStarted {
                stages,
                instructions,
            } => {
                s.steps.build_started(stages);
                s.total += instructions;
                self.count(s);
            }
            BuildEvent::StageStarted {
                index,
                name,
                instructions,
                ..
            } => s.steps.stage_started(key(index), name, instructions),
            BuildEvent::InstructionStarted { stage, index, text } => {
                let step = s.steps.start(key(stage), index, &text);
                let bar = self.multi.add(
                    ProgressBar::new_spinner()
                        .with_style(style_of(RUNNING))
                        .with_message(format!("#{} {}", step.n, step.title)),
                );
                bar.enable_steady_tick(TICK);
                s.live.insert((key(stage), index), Live::new(step, bar));
            }
            BuildEvent::Output { stage, index, line } => {
                if let Some(live) = s.live.get_mut(&(key(stage), index)) {
                    self.output(live, &line);
                }
            }
            BuildEvent::InstructionComplete {
                stage,
                index,
                cached,
            } => {
                s.steps.finish(key(stage), index);
                s.done += 1;
                if index > 0 {
                    s.steps_done += 1;
                    s.cached += usize::from(cached);
                }
                if let Some(live) = s.live.remove(&(key(stage), index)) {
                    let status = if cached {
                        style("CACHED".to_string()).for_stderr().cyan()
                    } else {
                        let secs = live.step.started.elapsed().as_secs_f64();
                        style(format!("DONE {secs:.1}s")).for_stderr().green()
                    };
                    self.retire(
                        live,
                        &style("✔").for_stderr().green().to_string(),
                        &status.to_string(),
                    );
                }
                self.count(s);
            }
            BuildEvent::CacheMiss {
                stage,
                index,
                reason,
                expected: false,
            } => {
                if let Some(live) = s.live.get(&(key(stage), index)) {
                    let line = format!("#{} cache miss: {reason}", live.step.n);
                    let _ = self.multi.println(fit(&line, self.width()));
                }
            }
            BuildEvent::Transfer { what, bytes, done } => {
                self.transfer(s, platform, what, bytes, done)
            }
            BuildEvent::LayerProgress {
                stage,
                index,
                current,
                ..
            } => {
                if let Some(live) = s.live.get_mut(&(key(stage), index)) {
                    moved(live, current, current);
                }
            }
            BuildEvent::PushStarted { reference } => {
                let (step, new) = s.steps.transfer(platform.clone(), &push_title(&reference));
                if new {
                    let bar = self.multi.add(
                        ProgressBar::new_spinner()
                            .with_style(style_of(RUNNING))
                            .with_message(format!("#{} {}", step.n, step.title)),
                    );
                    bar.enable_steady_tick(TICK);
                    let mut live = Live::new(step, bar);
                    // The speed of a push counts from its start, which
                    // includes asking the registry what it has.
                    moved(&mut live, 0, 0);
                    s.transfers.insert((platform, push_title(&reference)), live);
                }
            }
            BuildEvent::PushBlob {
                reference,
                digest,
                current,
                total,
                status,
            } => {
                if let Some(live) = s.transfers.get_mut(&(platform, push_title(&reference))) {
                    self.push_blob(live, digest, current, total, status);
                }
            }
            BuildEvent::PushComplete { reference, digest } => {
                let title = push_title(&reference);
                s.steps.end_transfer(platform.clone(), title.clone());
                if let Some(mut live) = s.transfers.remove(&(platform, title)) {
                    let secs = live.step.started.elapsed().as_secs_f64();
                    live.step.title = format!(
                        "{}: done {digest} ({})",
                        live.step.title,
                        HumanBytes(live.uploaded)
                    );
                    let status = style(format!("DONE {secs:.1}s")).for_stderr().green();
                    self.retire(
                        live,
                        &style("✔").for_stderr().green().to_string(),
                        &status.to_string(),
                    );
                }
            }
            BuildEvent::Warning {
                file,
                line,
                message,
            } => {
                // Printed whole, where a step line is cut: a warning is
                // written once above the live area, never redrawn, so
                // wrapping cannot disturb the frame, and it must be read.
                let text = warning_text(&self.file, file, line, message);
                let _ = self
                    .multi
                    .println(style(text).for_stderr().yellow().to_string());
            }
            BuildEvent::BuildFailed { .. } => self.fail_running(s),
            BuildEvent::Platform { .. }
            | BuildEvent::CacheMiss { .. }
            | BuildEvent::StageComplete { .. }
            | BuildEvent::BuildComplete { .. } => {}
        }
    }

    fn count(&self, s: &State) {
        self.header.set_message(format!("({}/{})", s.done, s.total));
    }

    /// Shows a pull as a step of its own, with bytes and speed.
    fn transfer(
        &self,
        s: &mut State,
        platform: Option<String>,
        what: String,
        bytes: u64,
        done: bool,
    ) {
        let (step, new) = s.steps.transfer(platform.clone(), &what);
        let key = (platform.clone(), what.clone());
        if new {
            let bar = self.multi.add(
                ProgressBar::new_spinner()
                    .with_style(style_of(
                        "{spin} {wide_msg} {binary_bytes} {binary_bytes_per_sec} {secs}",
                    ))
                    .with_message(format!("#{} {}", step.n, step.title)),
            );
            bar.enable_steady_tick(TICK);
            s.transfers.insert(key.clone(), Live::new(step, bar));
        }
        if let Some(live) = s.transfers.get(&key) {
            live.bar.set_position(bytes);
        }
        if done {
            s.steps.end_transfer(platform, what);
            if let Some(mut live) = s.transfers.remove(&key) {
                let secs = live.step.started.elapsed().as_secs_f64();
                live.step.title = format!("{} ({})", live.step.title, HumanBytes(bytes));
                let status = style(format!("DONE {secs:.1}s")).for_stderr().green();
                self.retire(
                    live,
                    &style("✔").for_stderr().green().to_string(),
                    &status.to_string(),
                );
            }
        }
    }

    /// Adds `line` under its step, scrolling the step's tail. The tail is
    /// part of the step's own bar, so the step and its lines come and go
    /// in one frame.
    fn output(&self, live: &mut Live, line: &str) {
        let text: String = console::strip_ansi_codes(collapse_cr(line))
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if live.lines.len() == TAIL_LINES {
            live.lines.pop_front();
        }
        let first = live.lines.is_empty();
        live.lines.push_back(text);
        if first {
            restyle(live);
        }
        let lines: Vec<String> = live.lines.iter().cloned().collect();
        self.tail(live, &lines);
    }

    /// Shows `lines` under the step, dimmed and cut to the width.
    fn tail(&self, live: &Live, lines: &[String]) {
        let width = self.width();
        let tail: Vec<String> = lines
            .iter()
            .map(|l| fit(&format!("  {}", style(l).for_stderr().dim()), width))
            .collect();
        live.bar.set_prefix(tail.join("\n"));
    }

    /// Counts a blob of a push into its step: the step shows the bytes
    /// sent and their speed, and under it the blobs going up.
    fn push_blob(
        &self,
        live: &mut Live,
        digest: String,
        current: u64,
        total: u64,
        status: PushStatus,
    ) {
        match status {
            PushStatus::Uploading => {
                live.blobs.insert(digest, (current, total));
            }
            PushStatus::Uploaded => {
                live.blobs.remove(&digest);
                live.uploaded += total;
            }
            PushStatus::Exists | PushStatus::Mounted => {
                live.blobs.remove(&digest);
            }
        }
        let sent = live.uploaded + live.blobs.values().map(|(c, _)| c).sum::<u64>();
        moved(live, sent, 0);
        let lines: Vec<String> = live
            .blobs
            .iter()
            .take(TAIL_LINES)
            .map(|(digest, (current, total))| {
                let hex = digest.split_once(':').map_or(digest.as_str(), |(_, h)| h);
                let short = hex.get(..SHORT_DIGEST).unwrap_or(hex);
                format!("{short} {} / {}", HumanBytes(*current), HumanBytes(*total))
            })
            .collect();
        // A push's tail is its blobs going up, not output.
        let had_tail = !live.lines.is_empty();
        let has_tail = !lines.is_empty();
        live.lines = lines.into();
        if had_tail != has_tail {
            restyle(live);
        }
        let lines: Vec<String> = live.lines.iter().cloned().collect();
        self.tail(live, &lines);
    }

    /// Takes a finished step out of the live area and prints its last
    /// state above it for good.
    fn retire(&self, live: Live, mark: &str, status: &str) {
        live.bar.finish_and_clear();
        self.multi.remove(&live.bar);
        let title = format!("#{} {}", live.step.n, live.step.title);
        let _ = self
            .multi
            .println(step_line(mark, &title, status, self.width()));
    }

    fn fail_running(&self, s: &mut State) {
        let mut running: Vec<Live> = s.live.drain().map(|(_, live)| live).collect();
        running.extend(s.transfers.drain().map(|(_, live)| live));
        running.sort_by_key(|l| l.step.n);
        for live in running {
            let secs = live.step.started.elapsed().as_secs_f64();
            let status = style(format!("ERROR {secs:.1}s")).for_stderr().red();
            self.retire(
                live,
                &style("✘").for_stderr().red().to_string(),
                &status.to_string(),
            );
        }
    }

    fn width(&self) -> usize {
        usize::from(self.term.size().1)
    }

    /// Clears the live area, shows the summary of `built` and the cursor.
    pub(super) fn finish(&self, built: Option<&BuiltImage>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.finished {
            return;
        }
        self.fail_running(&mut s);
        s.finished = true;
        self.header.finish_and_clear();
        self.multi.remove(&self.header);
        let _ = self.multi.clear();
        let _ = self.term.show_cursor();
        if let Some(built) = built {
            for line in summary(built, &s, self.started.elapsed()) {
                errln!("{}", fit(&line, self.width()));
            }
        }
    }
}

impl Drop for Tty {
    /// A display dropped without [`Tty::finish`] (a panic) still gives the
    /// cursor back.
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The lines that close a build that succeeded.
fn summary(built: &BuiltImage, s: &State, took: Duration) -> Vec<String> {
    let mark = style("✔").for_stderr().green();
    let mut lines = vec![format!(
        "{mark} Built in {:.1}s: {} steps, {} from the cache",
        took.as_secs_f64(),
        s.steps_done,
        s.cached
    )];
    lines.push(format!("  image  {}", built.image_id()));
    if !built.tags.is_empty() {
        let tags: Vec<String> = built.tags.iter().map(|t| t.familiar()).collect();
        lines.push(format!("  tags   {}", tags.join(", ")));
    }
    let layers = if built.layers == 1 { "layer" } else { "layers" };
    lines.push(format!(
        "  size   {} in {} {layers}",
        HumanBytes(built.size),
        built.layers
    ));
    lines
}

/// Shows that the step of `live` has moved `current` bytes, with their
/// speed since it first moved some (`from` bytes then).
fn moved(live: &mut Live, current: u64, from: u64) {
    if live.moving.is_none() {
        live.moving = Some(Moving {
            text: Arc::new(Mutex::new(String::new())),
            since: Instant::now(),
            from,
        });
        restyle(live);
    }
    if let Some(m) = &live.moving {
        let rate = speed(m.since, m.from, current)
            .map_or_else(String::new, |b| format!(" {}/s", HumanBytes(b as u64)));
        *m.text.lock().unwrap_or_else(|p| p.into_inner()) =
            format!("{}{rate}", HumanBytes(current));
    }
}

/// Gives the bar of `live` the template for what it shows: bytes or not,
/// lines under it or not.
fn restyle(live: &Live) {
    let tail = !live.lines.is_empty();
    let style = match &live.moving {
        None => style_of(if tail { RUNNING_WITH_OUTPUT } else { RUNNING }),
        Some(m) => {
            let text = m.text.clone();
            style_of(if tail { MOVING_WITH_OUTPUT } else { MOVING }).with_key(
                "rate",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", text.lock().unwrap_or_else(|p| p.into_inner()));
                },
            )
        }
    };
    live.bar.set_style(style);
}

/// A template with kiln's own keys: `{spin}`, a spinner turning with the
/// bar's time, and `{secs}`, that time as BuildKit writes it (`3.4s`).
fn style_of(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "spin",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let frame = (state.elapsed().as_millis() / TICK.as_millis()) as usize;
                let _ = write!(
                    w,
                    "{}",
                    style(SPINNER[frame % SPINNER.len()]).for_stderr().cyan()
                );
            },
        )
        .with_key(
            "secs",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
            },
        )
}

/// `mark title … status`, with `status` against the right edge and the
/// title cut to make room.
fn step_line(mark: &str, title: &str, status: &str, width: usize) -> String {
    let fixed = measure_text_width(mark) + 2 + measure_text_width(status);
    let room = width.saturating_sub(fixed);
    let title = truncate_str(title, room, "…");
    let pad = room.saturating_sub(measure_text_width(&title));
    fit(&format!("{mark} {title}{:pad$} {status}", ""), width)
}

/// `line` cut to `width` columns (escape sequences take none).
fn fit(line: &str, width: usize) -> String {
    truncate_str(line, width, "…").into_owned()
}

/// Makes the handler of `signal` show the cursor again and end the line
/// before a second signal (`interrupted` already set) exits the process
/// from inside the handler, where the display can no longer clean up.
pub(super) fn restore_terminal_on_exit(
    signal: i32,
    interrupted: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let action = move || {
        if interrupted.load(Ordering::SeqCst) {
            write_from_handler(b"\n\x1b[?25h");
        }
    };
    // SAFETY: the action only loads an atomic and writes, as
    // `write_from_handler` may inside a signal handler.
    unsafe { signal_hook::low_level::register(signal, action) }.map(drop)
}

/// Writes to standard error from a signal handler: write(2) itself, no
/// allocation and no lock, as async-signal safety asks.
#[cfg(unix)]
fn write_from_handler(bytes: &[u8]) {
    let _ = rustix::io::write(rustix::stdio::stderr(), bytes);
}

/// Windows runs a console's Ctrl-C handler on a thread of its own, where
/// taking `std`'s standard error lock is allowed.
#[cfg(windows)]
fn write_from_handler(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_keep_their_status_and_fit_the_width() {
        let line = step_line(
            "✔",
            "#12 [build 3/9] RUN make -j8 all install",
            "DONE 12.5s",
            30,
        );
        assert_eq!(measure_text_width(&line), 30);
        assert!(line.starts_with("✔ #12 [build"), "{line}");
        assert!(line.ends_with("… DONE 12.5s"), "{line}");
        let short = step_line("✔", "#1 [1/2] FROM scratch", "CACHED", 40);
        assert_eq!(measure_text_width(&short), 40);
        assert!(short.starts_with("✔ #1 [1/2] FROM scratch  "), "{short}");
        assert!(short.ends_with("  CACHED"), "{short}");
        assert!(measure_text_width(&step_line("✔", "title", "CACHED", 4)) <= 4);
    }
}
