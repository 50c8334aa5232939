//! `--progress=rawjson`: each build event as one line of JSON on standard
//! error, in the versioned schema `docs/events.md` documents.

use crate::build_file::BuildFile;
use crate::output::errln;
use kiln_backend::BuildEvent;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The schema's version, the `v` of every object: raised when a field
/// changes meaning or goes away, not when one is added.
const VERSION: u64 = 1;

/// The JSON display.
pub(super) struct RawJson {
    started: Instant,
    file: BuildFile,
}

impl RawJson {
    pub(super) fn new(file: BuildFile) -> RawJson {
        RawJson {
            started: Instant::now(),
            file,
        }
    }

    pub(super) fn show(&self, event: BuildEvent) {
        let time = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        errln!("{}", object(event, time, &self.file));
    }
}

/// The event's object: `v`, `kind`, `time`, the event's own fields, and
/// `platform` for an event of one platform of a multi-platform build.
fn object(event: BuildEvent, time: f64, build_file: &BuildFile) -> Value {
    let (platform, event) = match event {
        BuildEvent::Platform { platform, event } => (Some(platform), *event),
        event => (None, event),
    };
    let (kind, fields) = fields(event, build_file);
    let mut out = Map::new();
    out.insert("v".into(), VERSION.into());
    out.insert("kind".into(), kind.into());
    out.insert("time".into(), time.into());
    if let Some(p) = platform {
        out.insert("platform".into(), p.into());
    }
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// An event's kind and its own fields. Stage indexes are `stage` in every
/// kind, where the engine's stage events call them `index`.
fn fields(event: BuildEvent, build_file: &BuildFile) -> (&'static str, Value) {
    match event {
        BuildEvent::BuildStarted {
            stages,
            instructions,
        } => (
            "build_started",
            json!({ "stages": stages, "instructions": instructions }),
        ),
        BuildEvent::StageStarted {
            index,
            name,
            base,
            instructions,
        } => (
            "stage_started",
            json!({ "stage": index, "name": name, "base": base, "instructions": instructions }),
        ),
        BuildEvent::InstructionStarted { stage, index, text } => (
            "instruction_started",
            json!({ "stage": stage, "index": index, "text": text }),
        ),
        BuildEvent::Output { stage, index, line } => (
            "output",
            json!({ "stage": stage, "index": index, "line": line }),
        ),
        BuildEvent::InstructionComplete {
            stage,
            index,
            cached,
        } => (
            "instruction_complete",
            json!({ "stage": stage, "index": index, "cached": cached }),
        ),
        BuildEvent::CacheMiss {
            stage,
            index,
            reason,
            expected,
        } => (
            "cache_miss",
            json!({ "stage": stage, "index": index, "reason": reason, "expected": expected }),
        ),
        BuildEvent::Transfer { what, bytes, done } => (
            "transfer",
            json!({ "what": what, "bytes": bytes, "done": done }),
        ),
        BuildEvent::LayerProgress {
            stage,
            index,
            current,
            done,
        } => (
            "layer_progress",
            json!({ "stage": stage, "index": index, "current": current, "done": done }),
        ),
        BuildEvent::PushStarted { reference } => {
            ("push_started", json!({ "reference": reference }))
        }
        BuildEvent::PushBlob {
            reference,
            digest,
            current,
            total,
            status,
        } => (
            "push_blob",
            json!({
                "reference": reference,
                "digest": digest,
                "current": current,
                "total": total,
                "status": status.as_str(),
            }),
        ),
        BuildEvent::PushComplete { reference, digest } => (
            "push_complete",
            json!({ "reference": reference, "digest": digest }),
        ),
        BuildEvent::StageComplete { index } => ("stage_complete", json!({ "stage": index })),
        BuildEvent::BuildComplete { image_id } => {
            ("build_complete", json!({ "image_id": image_id }))
        }
        BuildEvent::Warning {
            file,
            line,
            message,
        } => {
            // The line of the user's own file: a ZImagefile's YAML, not
            // the Dockerfile it was translated to.
            let (file, line, message) = if line == 0 {
                (file, line, message)
            } else {
                let at = build_file.locate(
                    kiln_frontend::Error::new(kiln_frontend::ErrorKind::Semantic, message)
                        .in_file(file)
                        .at(line, 0),
                );
                (at.file, at.line, at.message)
            };
            (
                "warning",
                json!({ "file": file, "line": line, "message": message }),
            )
        }
        BuildEvent::BuildFailed { error } => ("build_failed", json!({ "error": error })),
        // The engine wraps an event in one platform only; a second
        // wrapping says nothing more than the first.
        BuildEvent::Platform { event, .. } => fields(*event, build_file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_backend::events::PushStatus;
    use std::collections::{BTreeMap, BTreeSet};

    /// One event of every kind.
    fn samples() -> Vec<BuildEvent> {
        let all = vec![
            BuildEvent::BuildStarted {
                stages: 2,
                instructions: 5,
            },
            BuildEvent::StageStarted {
                index: 0,
                name: Some("build".into()),
                base: "busybox".into(),
                instructions: 3,
            },
            BuildEvent::InstructionStarted {
                stage: 0,
                index: 1,
                text: "RUN make".into(),
            },
            BuildEvent::Output {
                stage: 0,
                index: 1,
                line: "cc -o app app.c".into(),
            },
            BuildEvent::InstructionComplete {
                stage: 0,
                index: 1,
                cached: false,
            },
            BuildEvent::CacheMiss {
                stage: 0,
                index: 1,
                reason: "--no-cache".into(),
                expected: true,
            },
            BuildEvent::Transfer {
                what: "pull docker.io/library/busybox:latest".into(),
                bytes: 1024,
                done: false,
            },
            BuildEvent::LayerProgress {
                stage: 0,
                index: 2,
                current: 2 << 20,
                done: false,
            },
            BuildEvent::PushStarted {
                reference: "localhost:5000/app:1".into(),
            },
            BuildEvent::PushBlob {
                reference: "localhost:5000/app:1".into(),
                digest: "sha256:00".into(),
                current: 512,
                total: 1024,
                status: PushStatus::Uploading,
            },
            BuildEvent::PushComplete {
                reference: "localhost:5000/app:1".into(),
                digest: "sha256:01".into(),
            },
            BuildEvent::StageComplete { index: 0 },
            BuildEvent::BuildComplete {
                image_id: "sha256:00".into(),
            },
            BuildEvent::Warning {
                file: "Dockerfile".into(),
                line: 2,
                message: "empty continuation line".into(),
            },
            BuildEvent::BuildFailed {
                error: "exit code: 1".into(),
            },
        ];
        for event in &all {
            // A new kind of event stops the build here until it has a
            // sample above, so the check against the document covers it.
            match event {
                BuildEvent::BuildStarted { .. }
                | BuildEvent::StageStarted { .. }
                | BuildEvent::InstructionStarted { .. }
                | BuildEvent::Output { .. }
                | BuildEvent::InstructionComplete { .. }
                | BuildEvent::CacheMiss { .. }
                | BuildEvent::Transfer { .. }
                | BuildEvent::LayerProgress { .. }
                | BuildEvent::PushStarted { .. }
                | BuildEvent::PushBlob { .. }
                | BuildEvent::PushComplete { .. }
                | BuildEvent::StageComplete { .. }
                | BuildEvent::BuildComplete { .. }
                | BuildEvent::Warning { .. }
                | BuildEvent::BuildFailed { .. }
                | BuildEvent::Platform { .. } => {}
            }
        }
        all
    }

    fn build_file() -> BuildFile {
        BuildFile {
            name: "Dockerfile".into(),
            bytes: Vec::new(),
            converted: None,
        }
    }

    /// docs/events.md's kinds and each one's fields, from its `### \`kind\``
    /// headings and the `| \`field\` |` rows of their tables.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc = include_str!("../../../../docs/events.md");
        let mut kinds = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in doc.lines() {
            if let Some(kind) = line.strip_prefix("### `") {
                let kind = kind.trim_end_matches('`').to_string();
                kinds.insert(kind.clone(), BTreeSet::new());
                current = Some(kind);
            } else if line.starts_with("## ") {
                current = None;
            } else if let (Some(kind), Some(field)) = (&current, line.strip_prefix("| `")) {
                let field = field.split('`').next().unwrap_or_default().to_string();
                kinds
                    .get_mut(kind)
                    .map(|f: &mut BTreeSet<String>| f.insert(field));
            }
        }
        kinds
    }

    #[test]
    fn every_kind_of_event_is_documented_with_exactly_its_fields() {
        let documented = documented();
        let mut seen = BTreeSet::new();
        for event in samples() {
            let object = object(event, 0.25, &build_file());
            let kind = object["kind"].as_str().unwrap().to_string();
            let fields: BTreeSet<String> = object
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !["v", "kind", "time"].contains(&k.as_str()))
                .cloned()
                .collect();
            let Some(doc_fields) = documented.get(&kind) else {
                panic!("{kind} is not in docs/events.md");
            };
            assert_eq!(
                &fields, doc_fields,
                "{kind}'s fields against docs/events.md"
            );
            seen.insert(kind);
        }
        let documented: BTreeSet<String> = documented.into_keys().collect();
        assert_eq!(
            seen, documented,
            "docs/events.md documents kinds kiln does not send"
        );
    }

    #[test]
    fn events_of_one_platform_carry_it_beside_their_own_fields() {
        let event = BuildEvent::Platform {
            platform: "linux/arm64".into(),
            event: Box::new(BuildEvent::StageComplete { index: 1 }),
        };
        assert_eq!(
            object(event, 1.5, &build_file()),
            json!({ "v": 1, "kind": "stage_complete", "time": 1.5, "platform": "linux/arm64", "stage": 1 })
        );
    }
}
