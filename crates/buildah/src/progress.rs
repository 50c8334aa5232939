//! buildah's output as kiln's build events.
//!
//! `buildah bud` prints `STEP n/m: TEXT` (prefixed `[s/t] ` in a
//! multi-stage build) on standard output as each step starts, then the
//! step's own output; warnings and the final `Error: …` go to standard
//! error as logrus lines. Steps never come from a cache: kiln runs buildah
//! without `--layers`. Steps are matched to the Dockerfile's lines through kiln's own
//! parse of it, so a failing step is reported at its line as a native
//! build's is.

use kiln_backend::{BuildEvent, EventSink};
use kiln_frontend::{Ast, Error as DockerfileError, ErrorKind};

/// How many of a failing step's last output lines the error shows.
const TAIL: usize = 10;

/// One stage's instructions, FROM first: their first lines.
#[derive(Debug, Default)]
struct Stage {
    lines: Vec<usize>,
}

/// Turns buildah's lines into events, and its failure into kiln's error.
pub(super) struct Tracker<'a> {
    ast: &'a Ast,
    stages: Vec<Stage>,
    events: &'a EventSink,
    /// The step running: (stage, index, text).
    current: Option<(usize, usize, String)>,
    /// Output lines of the current step, the last [`TAIL`] of them.
    tail: Vec<String>,
    /// `Error: …` lines buildah printed.
    errors: Vec<String>,
}

impl<'a> Tracker<'a> {
    /// A tracker for a build of `ast`, sending to `events`.
    pub(super) fn new(ast: &'a Ast, events: &'a EventSink) -> Tracker<'a> {
        let mut stages: Vec<Stage> = Vec::new();
        for node in &ast.children {
            if node.keyword.eq_ignore_ascii_case("from") {
                stages.push(Stage::default());
            }
            // ARGs before the first FROM belong to no stage, as buildah
            // counts them.
            if let Some(stage) = stages.last_mut() {
                stage.lines.push(node.start_line);
            }
        }
        Tracker {
            ast,
            stages,
            events,
            current: None,
            tail: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// `BuildStarted`, from the Dockerfile's stages and instructions.
    pub(super) fn start(&self) {
        self.events.send(BuildEvent::BuildStarted {
            stages: self.stages.len(),
            instructions: self.stages.iter().map(|s| s.lines.len()).sum(),
        });
    }

    /// One line buildah printed (`stderr` says on which stream).
    pub(super) fn line(&mut self, line: &str, stderr: bool) {
        let line = line.trim_end_matches('\r');
        if !stderr {
            if let Some((stage, stages, index, total, text)) = parse_step(line) {
                self.step(stage, stages, index, total, text);
                return;
            }
            // What buildah prints after the last step: the commit, the
            // image id and the tags, none of them a step's output.
            if is_epilogue(line) {
                return;
            }
        }
        if let Some(message) = line.strip_prefix("Error: ") {
            self.errors.push(message.to_string());
            return;
        }
        if let Some(message) = warning(line) {
            self.events.send(BuildEvent::Warning {
                file: self.ast.file.clone(),
                line: 0,
                message,
            });
            return;
        }
        if let Some((stage, index, _)) = &self.current {
            if self.tail.len() == TAIL {
                self.tail.remove(0);
            }
            self.tail.push(line.to_string());
            self.events.send(BuildEvent::Output {
                stage: *stage,
                index: *index,
                line: line.to_string(),
            });
        }
    }

    fn step(&mut self, stage: usize, stages: usize, index: usize, total: usize, text: String) {
        let previous_stage = self.current.as_ref().map(|c| c.0);
        self.complete_step();
        if previous_stage != Some(stage) {
            if let Some(prev) = previous_stage {
                self.events.send(BuildEvent::StageComplete { index: prev });
            }
            let (base, name) = from_parts(&text);
            self.events.send(BuildEvent::StageStarted {
                index: stage,
                name: name.or_else(|| (stages > 1).then(|| format!("stage-{stage}"))),
                base,
                instructions: total,
            });
        }
        self.events.send(BuildEvent::InstructionStarted {
            stage,
            index,
            text: text.clone(),
        });
        self.current = Some((stage, index, text));
        self.tail.clear();
    }

    fn complete_step(&mut self) {
        if let Some((stage, index, _)) = self.current.take() {
            self.events.send(BuildEvent::InstructionComplete {
                stage,
                index,
                cached: false,
            });
        }
    }

    /// The build succeeded: the last step and stage are complete.
    pub(super) fn finish(&mut self) {
        let stage = self.current.as_ref().map(|c| c.0);
        self.complete_step();
        if let Some(index) = stage {
            self.events.send(BuildEvent::StageComplete { index });
        }
    }

    /// The error of a build buildah ended with `status`: at the failing
    /// step's line when a step was running, with buildah's own message and
    /// the step's last output lines.
    pub(super) fn failure(&self, status: &str) -> DockerfileError {
        let why = match self.errors.last() {
            Some(e) => format!("buildah: {e}"),
            None => format!("buildah failed ({status})"),
        };
        let Some((stage, index, text)) = &self.current else {
            return DockerfileError::new(ErrorKind::Io, why).in_file(self.ast.file.clone());
        };
        let mut err = DockerfileError::new(ErrorKind::Io, format!("step {text:?} failed: {why}"));
        if !self.tail.is_empty() {
            err.help = Some(format!(
                "its last output lines:\n{}",
                self.tail
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        let line = self
            .stages
            .get(*stage)
            .and_then(|s| s.lines.get(*index))
            .copied()
            .unwrap_or(0);
        let keyword = text.split_whitespace().next();
        self.ast.error_at(err, line, keyword)
    }
}

/// `[s/t] STEP n/m: TEXT` → (stage index, stages, step index, steps in
/// the stage, TEXT); indexes from 0.
fn parse_step(line: &str) -> Option<(usize, usize, usize, usize, String)> {
    let (stage, stages, rest) = match line.strip_prefix('[') {
        Some(rest) => {
            let (pair, rest) = rest.split_once("] ")?;
            let (s, t) = pair.split_once('/')?;
            (s.parse::<usize>().ok()?, t.parse().ok()?, rest)
        }
        None => (1, 1, line),
    };
    let rest = rest.strip_prefix("STEP ")?;
    let (pair, text) = rest.split_once(": ")?;
    let (n, m) = pair.split_once('/')?;
    let (n, m) = (n.parse::<usize>().ok()?, m.parse().ok()?);
    Some((
        stage.checked_sub(1)?,
        stages,
        n.checked_sub(1)?,
        m,
        text.to_string(),
    ))
}

fn is_epilogue(line: &str) -> bool {
    let bare = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r),
        None => line,
    };
    bare.starts_with("COMMIT")
        || bare.starts_with("--> ")
        || bare.starts_with("Successfully tagged ")
        || (bare.len() == 64 && bare.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The message of a logrus warning line, in either of its formats
/// (`time="…" level=warning msg="…"` or `WARN[0000] …`).
fn warning(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("WARN[") {
        return rest.split_once("] ").map(|(_, m)| m.trim().to_string());
    }
    if !line.contains("level=warning") {
        return None;
    }
    let msg = line.split_once("msg=\"")?.1;
    let msg = msg.strip_suffix('"').unwrap_or(msg);
    Some(msg.replace("\\\"", "\""))
}

/// A FROM step's base and stage name: `FROM img AS build` → (`img`,
/// `build`).
fn from_parts(text: &str) -> (String, Option<String>) {
    let words: Vec<&str> = text
        .split_whitespace()
        .skip(1)
        .filter(|w| !w.starts_with("--"))
        .collect();
    let base = words.first().map_or_else(String::new, |w| w.to_string());
    let name = match words.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
        _ => None,
    };
    (base, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(dockerfile: &str, stdout: &[&str]) -> Vec<BuildEvent> {
        let ast = kiln_frontend::parse("Dockerfile", dockerfile.as_bytes()).unwrap();
        let (sink, rx) = EventSink::channel();
        let mut t = Tracker::new(&ast, &sink);
        for l in stdout {
            t.line(l, false);
        }
        t.finish();
        drop(sink);
        rx.into_iter().collect()
    }

    #[test]
    fn steps_become_instruction_events() {
        let events = events_of(
            "FROM busybox AS a\nRUN echo hi\nFROM busybox\nCOPY --from=a / /\n",
            &[
                "[1/2] STEP 1/2: FROM busybox AS a",
                "[1/2] STEP 2/2: RUN echo hi",
                "hi",
                "[2/2] STEP 1/2: FROM busybox",
                "[2/2] STEP 2/2: COPY --from=a / /",
                "[2/2] COMMIT img",
                "--> 1234567890a",
            ],
        );
        assert_eq!(
            events[0],
            BuildEvent::StageStarted {
                index: 0,
                name: Some("a".into()),
                base: "busybox".into(),
                instructions: 2
            }
        );
        assert!(events.contains(&BuildEvent::Output {
            stage: 0,
            index: 1,
            line: "hi".into()
        }));
        assert!(events.contains(&BuildEvent::InstructionComplete {
            stage: 0,
            index: 1,
            cached: false
        }));
        assert!(events.contains(&BuildEvent::StageComplete { index: 0 }));
        assert_eq!(events.last(), Some(&BuildEvent::StageComplete { index: 1 }));
        assert!(!events
            .iter()
            .any(|e| matches!(e, BuildEvent::Output { line, .. } if line.contains("COMMIT"))));
    }

    #[test]
    fn a_failing_step_is_reported_at_its_line() {
        let ast =
            kiln_frontend::parse("Dockerfile", b"FROM busybox\nRUN echo no; false\n").unwrap();
        let sink = EventSink::discard();
        let mut t = Tracker::new(&ast, &sink);
        t.line("STEP 1/2: FROM busybox", false);
        t.line("STEP 2/2: RUN echo no; false", false);
        t.line("no", false);
        t.line(
            "Error: building at STEP \"RUN echo no; false\": while running runtime: exit status 1",
            true,
        );
        let err = t.failure("exit status: 1");
        assert_eq!(err.line, 2);
        assert!(
            err.message.contains("RUN echo no; false"),
            "{}",
            err.message
        );
        assert!(err.message.contains("exit status 1"), "{}", err.message);
        assert_eq!(err.help.as_deref(), Some("its last output lines:\n  no"));
    }

    #[test]
    fn warnings_in_both_logrus_formats() {
        assert_eq!(
            warning(
                "time=\"2026-01-01T00:00:00Z\" level=warning msg=\"HEALTHCHECK is not supported\""
            ),
            Some("HEALTHCHECK is not supported".into())
        );
        assert_eq!(
            warning("WARN[0000] missing \"X\""),
            Some("missing \"X\"".into())
        );
        assert_eq!(warning("hello"), None);
    }
}
