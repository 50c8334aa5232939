//! The Dockerfile a checked ZImagefile stands for, each line remembering
//! the YAML position and the stage and step it came from.

use super::model::{Action, Cache, CommandLine, Copy, Meta, MetaItem, Run, Stage, ZImagefile};
use super::yaml::Pos;
use crate::instructions::json_string;

/// Where a line of the generated Dockerfile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub pos: Pos,
    /// "stage 'app', step 3", "step 2", "stage 'app'" or empty.
    pub context: String,
}

/// Dockerfile text being written, one origin per line.
#[derive(Default)]
pub(crate) struct Output {
    pub text: String,
    pub origins: Vec<Origin>,
}

impl Output {
    fn push(&mut self, instruction: &str, pos: Pos, context: &str) {
        for line in instruction.split('\n') {
            self.text.push_str(line);
            self.text.push('\n');
            self.origins.push(Origin {
                pos,
                context: context.to_string(),
            });
        }
    }
}

/// Writes the Dockerfile of `file`.
pub(crate) fn dockerfile(file: &ZImagefile) -> Output {
    let mut out = Output::default();
    // `platform:` pins a stage on purpose; BuildKit's check against a
    // constant `FROM --platform` is off for the Dockerfile it becomes.
    let pinned = file
        .stages
        .iter()
        .find(|s| s.platform.as_deref().is_some_and(|p| !p.contains('$')));
    if let Some(stage) = pinned {
        out.push(
            "# check=skip=FromPlatformFlagConstDisallowed",
            stage.base_pos,
            &stage.context,
        );
    }
    for (name, default, pos) in &file.args {
        out.push(&arg(name, default.as_deref()), *pos, "");
    }
    for stage in &file.stages {
        write_stage(&mut out, stage, file);
    }
    out
}

fn arg(name: &str, default: Option<&str>) -> String {
    match default {
        Some(value) => format!("ARG {name}={}", word(value)),
        None => format!("ARG {name}"),
    }
}

fn write_stage(out: &mut Output, stage: &Stage, file: &ZImagefile) {
    let mut from = String::from("FROM ");
    if let Some(platform) = &stage.platform {
        from.push_str(&format!("--platform={platform} "));
    }
    from.push_str(&word(&stage.base));
    if let Some(name) = &stage.name {
        from.push_str(&format!(" AS {name}"));
    }
    out.push(&from, stage.base_pos, &stage.context);
    // Global ARGs reach FROM only; declared again, the steps see them too,
    // which is what `args:` at the top of a ZImagefile promises.
    for (name, _, pos) in &file.args {
        out.push(&arg(name, None), *pos, &stage.context);
    }
    for step in &stage.steps {
        let text = match &step.action {
            Action::Run(run) => run_instruction(run),
            Action::Copy(copy) => copy_instruction(copy),
            Action::Env(pairs) => format!("ENV {}", assignments(pairs)),
            Action::Workdir(dir) => format!("WORKDIR {}", word(dir)),
            Action::User(user) => format!("USER {}", word(user)),
        };
        out.push(&text, step.pos, &step.context);
    }
    for meta in metadata_order(&stage.meta) {
        out.push(&meta_instruction(&meta.item), meta.pos, &stage.context);
    }
}

/// Metadata in a fixed order, whatever the order of the keys: ENTRYPOINT
/// before CMD, because ENTRYPOINT clears a CMD set before it in the stage.
fn metadata_order(meta: &[Meta]) -> Vec<&Meta> {
    let rank = |m: &Meta| match m.item {
        MetaItem::Labels(_) => 0,
        MetaItem::Env(_) => 1,
        MetaItem::Workdir(_) => 2,
        MetaItem::User(_) => 3,
        MetaItem::Expose(_) => 4,
        MetaItem::Volumes(_) => 5,
        MetaItem::Healthcheck(_) => 6,
        MetaItem::StopSignal(_) => 7,
        MetaItem::Entrypoint(_) => 8,
        MetaItem::Cmd(_) => 9,
    };
    let mut sorted: Vec<&Meta> = meta.iter().collect();
    sorted.sort_by_key(|m| rank(m));
    sorted
}

fn meta_instruction(item: &MetaItem) -> String {
    match item {
        MetaItem::Labels(pairs) => format!("LABEL {}", assignments(pairs)),
        MetaItem::Env(pairs) => format!("ENV {}", assignments(pairs)),
        MetaItem::Workdir(dir) => format!("WORKDIR {}", word(dir)),
        MetaItem::User(user) => format!("USER {}", word(user)),
        MetaItem::Expose(ports) => {
            let words: Vec<String> = ports.iter().map(|p| word(p)).collect();
            format!("EXPOSE {}", words.join(" "))
        }
        MetaItem::Volumes(paths) => format!("VOLUME {}", json_words(paths)),
        MetaItem::Healthcheck(None) => "HEALTHCHECK NONE".to_string(),
        MetaItem::Healthcheck(Some(health)) => {
            let mut text = String::from("HEALTHCHECK ");
            for (flag, value) in &health.options {
                text.push_str(&format!("--{flag}={value} "));
            }
            text.push_str("CMD ");
            text.push_str(&command_line(&health.test));
            text
        }
        MetaItem::StopSignal(signal) => format!("STOPSIGNAL {}", word(signal)),
        MetaItem::Entrypoint(cmd) => format!("ENTRYPOINT {}", command_line(cmd)),
        MetaItem::Cmd(cmd) => format!("CMD {}", command_line(cmd)),
    }
}

/// Exec form as JSON, passed to the program as written; shell form as is.
fn command_line(cmd: &CommandLine) -> String {
    match cmd {
        CommandLine::Shell(text) => text.clone(),
        CommandLine::Exec(args) => json_array(args.iter().cloned()),
    }
}

fn run_instruction(run: &Run) -> String {
    let mut text = String::from("RUN ");
    for cache in &run.cache {
        text.push_str(&cache_mount(cache));
        text.push(' ');
    }
    let export = (!run.env.is_empty()).then(|| {
        let assigned: Vec<String> = run
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        format!("export {}", assigned.join(" "))
    });
    let single = run.commands.len() == 1 && !run.commands[0].trim().contains('\n');
    let commands: Vec<&str> = run
        .commands
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if single || run.commands.len() > 1 {
        let mut line = commands.join(" && ");
        if let Some(export) = &export {
            line = format!("{export} && {line}");
        }
        // `[` would start exec form and `<<` a heredoc on a RUN line.
        if !line.starts_with('[') && !line.contains("<<") {
            text.push_str(&line);
            return text;
        }
        return heredoc(text, &format!("set -e\n{line}"));
    }
    // A block string is a script; it stops at the first failing command,
    // as a list of commands does.
    let mut script = String::from("set -e\n");
    if let Some(export) = &export {
        script.push_str(export);
        script.push('\n');
    }
    script.push_str(commands[0]);
    heredoc(text, &script)
}

/// `RUN <<'EOF'` with the script as its body; quoted, so the Dockerfile
/// expands nothing in it and the shell sees the text as written.
fn heredoc(mut text: String, script: &str) -> String {
    let mut marker = String::from("ZIMAGEFILE_EOF");
    let mut n = 0;
    while script.lines().any(|l| l == marker) {
        n += 1;
        marker = format!("ZIMAGEFILE_EOF_{n}");
    }
    text.push_str(&format!("<<'{marker}'\n{script}\n{marker}"));
    text
}

fn cache_mount(cache: &Cache) -> String {
    let mut text = format!("--mount=type=cache,target={}", cache.target);
    if let Some(id) = &cache.id {
        text.push_str(&format!(",id={id}"));
    }
    if let Some(sharing) = &cache.sharing {
        text.push_str(&format!(",sharing={sharing}"));
    }
    if cache.readonly {
        text.push_str(",readonly");
    }
    text
}

fn copy_instruction(copy: &Copy) -> String {
    let mut text = String::from(if copy.add { "ADD " } else { "COPY " });
    for (flag, value) in [
        ("from", &copy.from),
        ("chown", &copy.owner),
        ("chmod", &copy.chmod),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("--{flag}={value} "));
        }
    }
    let mut words = copy.sources.clone();
    words.push(copy.to.clone());
    text.push_str(&json_words(&words));
    text
}

/// `K=V …` for ENV and LABEL.
fn assignments(pairs: &[(String, String)]) -> String {
    let words: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", word(k), word(v)))
        .collect();
    words.join(" ")
}

/// A value as one Dockerfile word: bare when that reads the same,
/// otherwise double-quoted. `$` expands as in a Dockerfile, `\$` is a
/// literal `$`, and every other backslash is literal.
fn word(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:@+,%${}=~".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        return value.to_string();
    }
    let mut out = String::from("\"");
    out.push_str(&escape_backslashes(value).replace('"', "\\\""));
    out.push('"');
    out
}

/// Doubles each backslash not before `$`, so the Dockerfile's word
/// expansion gives back the backslash and `\$` stays the escape it is.
fn escape_backslashes(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '\\' && chars.peek() != Some(&'$') {
            out.push('\\');
        }
    }
    out
}

/// Words that the Dockerfile expands, as a JSON array (COPY, VOLUME).
fn json_words(words: &[String]) -> String {
    json_array(words.iter().map(|w| escape_backslashes(w)))
}

fn json_array(items: impl Iterator<Item = String>) -> String {
    let quoted: Vec<String> = items.map(|s| json_string(&s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A POSIX shell single-quoted word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
