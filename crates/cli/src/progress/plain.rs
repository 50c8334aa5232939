//! BuildKit's `--progress=plain` lines: `#3 [build 2/4] COPY hello.sh ./`,
//! the step's output as `#3 0.512 text` (seconds since the step started),
//! then `#3 DONE 0.1s` or `#3 CACHED`.

use super::{collapse_cr, push_title, warning_text, StageKey, Steps};
use crate::build_file::BuildFile;
use crate::output::errln;
use indicatif::HumanBytes;
use kiln_backend::events::{BuildEvent, PushStatus};
use std::sync::Mutex;
use std::time::Duration;

/// The plain display.
pub(super) struct Plain {
    steps: Mutex<Steps>,
    file: BuildFile,
}

impl Plain {
    pub(super) fn new(file: BuildFile) -> Plain {
        Plain {
            steps: Mutex::new(Steps::default()),
            file,
        }
    }

    pub(super) fn show(&self, event: BuildEvent) {
        let mut s = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            BuildEvent::Platform { platform, event } => {
                self.show_one(&mut s, Some(platform), *event)
            }
            event => self.show_one(&mut s, None, event),
        }
    }

    fn show_one(&self, s: &mut Steps, platform: Option<String>, event: BuildEvent) {
        let key = |stage: usize| -> StageKey { (platform.clone(), stage) };
        match event {
            BuildEvent::BuildStarted { stages, .. } => s.build_started(stages),
            BuildEvent::StageStarted {
                index,
                name,
                instructions,
                ..
            } => s.stage_started(key(index), name, instructions),
            BuildEvent::InstructionStarted { stage, index, text } => {
                let step = s.start(key(stage), index, &text);
                errln!("#{} {}", step.n, step.title);
            }
            BuildEvent::Output { stage, index, line } => {
                if let Some(step) = s.get(key(stage), index) {
                    errln!(
                        "#{} {} {}",
                        step.n,
                        timestamp(step.started.elapsed()),
                        collapse_cr(&line)
                    );
                }
            }
            BuildEvent::InstructionComplete {
                stage,
                index,
                cached,
            } => {
                if let Some(step) = s.finish(key(stage), index) {
                    if cached {
                        errln!("#{} CACHED", step.n);
                    } else {
                        errln!(
                            "#{} DONE {:.1}s",
                            step.n,
                            step.started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            BuildEvent::CacheMiss {
                stage,
                index,
                reason,
                expected: false,
            } => {
                if let Some(step) = s.get(key(stage), index) {
                    errln!("#{} cache miss: {reason}", step.n);
                }
            }
            BuildEvent::Transfer { what, bytes, done } => {
                let (step, new) = s.transfer(platform.clone(), &what);
                if new {
                    errln!("#{} {}", step.n, step.title);
                }
                if done {
                    let took = step.started.elapsed();
                    errln!(
                        "#{} {} {} received",
                        step.n,
                        timestamp(took),
                        HumanBytes(bytes)
                    );
                    errln!("#{} DONE {:.1}s", step.n, took.as_secs_f64());
                    s.end_transfer(platform, what);
                }
            }
            BuildEvent::LayerProgress {
                stage,
                index,
                current,
                done,
            } => {
                // One line when the layer is written: the plain view prints
                // what happened, not a running count.
                let speed = s.layer_speed(key(stage), index, current, done);
                if let (true, Some(step)) = (done, s.get(key(stage), index)) {
                    let speed =
                        speed.map_or_else(String::new, |b| format!(", {}/s", HumanBytes(b as u64)));
                    errln!(
                        "#{} {} layer {} written{speed}",
                        step.n,
                        timestamp(step.started.elapsed()),
                        HumanBytes(current)
                    );
                }
            }
            BuildEvent::PushStarted { reference } => {
                let (step, new) = s.transfer(platform, &push_title(&reference));
                if new {
                    errln!("#{} {}", step.n, step.title);
                }
            }
            BuildEvent::PushBlob {
                reference,
                digest,
                current,
                total,
                status,
            } => {
                let (step, _) = s.transfer(platform, &push_title(&reference));
                // A blob's first and last events; the counts between them
                // are for views that redraw.
                let what = match status {
                    PushStatus::Uploading if current == 0 => "pushing",
                    PushStatus::Uploading => return,
                    PushStatus::Uploaded => "pushed",
                    PushStatus::Exists => "exists",
                    PushStatus::Mounted => "mounted",
                };
                errln!(
                    "#{} {} {what} {digest} {}",
                    step.n,
                    timestamp(step.started.elapsed()),
                    HumanBytes(total)
                );
            }
            BuildEvent::PushComplete { reference, digest } => {
                let title = push_title(&reference);
                let (step, _) = s.transfer(platform.clone(), &title);
                let took = step.started.elapsed();
                errln!("#{} {} {title}: done {digest}", step.n, timestamp(took));
                errln!("#{} DONE {:.1}s", step.n, took.as_secs_f64());
                s.end_transfer(platform, title);
            }
            BuildEvent::Warning {
                file,
                line,
                message,
            } => errln!("{}", warning_text(&self.file, file, line, message)),
            BuildEvent::BuildFailed { .. } => fail_running(s),
            // Platform events come wrapped once; one inside another is not
            // something the engine sends.
            BuildEvent::Platform { .. }
            | BuildEvent::CacheMiss { .. }
            | BuildEvent::StageComplete { .. }
            | BuildEvent::BuildComplete { .. } => {}
        }
    }
}

impl Plain {
    /// Ends the display: a step still running failed with the command (a
    /// `kiln push` that failed, which sends no `BuildFailed`).
    pub(super) fn finish(&self) {
        fail_running(&mut self.steps.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Marks every running step `ERROR`, once: they are forgotten.
fn fail_running(s: &mut Steps) {
    let mut running: Vec<_> = s.running.values().chain(s.transfers.values()).collect();
    running.sort_by_key(|step| step.n);
    for step in running {
        errln!("#{} ERROR", step.n);
    }
    s.running.clear();
    s.transfers.clear();
}

/// BuildKit's time of an output line: three decimals under 10 s, two
/// under 100 s, one beyond, so the column stays about as wide.
fn timestamp(since_start: Duration) -> String {
    let secs = since_start.as_secs_f64();
    let decimals = if secs < 10.0 {
        3
    } else if secs < 100.0 {
        2
    } else {
        1
    };
    format!("{secs:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use std::time::Duration;

    #[test]
    fn output_times_are_printed_with_buildkits_precision() {
        assert_eq!(timestamp(Duration::from_millis(512)), "0.512");
        assert_eq!(timestamp(Duration::from_millis(12_346)), "12.35");
        assert_eq!(timestamp(Duration::from_millis(123_456)), "123.5");
    }
}
