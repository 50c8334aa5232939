//! One-line rendering of instructions, as `kiln check` prints them: the
//! keyword in upper case, the flags that differ from their defaults, then
//! the arguments.

use std::fmt::{self, Display, Formatter, Write};
use std::time::Duration;

use super::*;

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.instruction.fmt(f)
    }
}

impl Display for Instruction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = Line::default();
        match self {
            Instruction::From(i) => {
                out.word("FROM");
                out.flag("platform", i.platform.as_deref());
                out.word(&i.image);
                if let Some(name) = &i.name {
                    out.word("AS");
                    out.word(name);
                }
            }
            Instruction::Run(i) => {
                out.word("RUN");
                for m in &i.mounts {
                    out.flag("mount", Some(m));
                }
                match i.network {
                    Network::Default => {}
                    Network::None => out.flag("network", Some("none")),
                    Network::Host => out.flag("network", Some("host")),
                }
                if i.security == Security::Insecure {
                    out.flag("security", Some("insecure"));
                }
                out.command(&i.command);
            }
            Instruction::Cmd(i) => {
                out.word("CMD");
                out.command(&i.command);
            }
            Instruction::Entrypoint(i) => {
                out.word("ENTRYPOINT");
                out.command(&i.command);
            }
            Instruction::Shell(i) => {
                out.word("SHELL");
                out.command(&CommandLine::Exec(i.shell.clone()));
            }
            Instruction::Copy(i) => {
                out.word("COPY");
                out.flag("from", i.from.as_deref());
                out.flag("chown", i.chown.as_deref());
                out.flag("chmod", i.chmod.as_deref());
                out.switch("link", i.link);
                out.switch("parents", i.parents);
                for e in &i.excludes {
                    out.flag("exclude", Some(e));
                }
                out.sources(&i.sources, &i.dest);
            }
            Instruction::Add(i) => {
                out.word("ADD");
                out.flag("chown", i.chown.as_deref());
                out.flag("chmod", i.chmod.as_deref());
                out.switch("link", i.link);
                out.switch("keep-git-dir", i.keep_git_dir);
                out.flag("checksum", i.checksum.as_deref());
                if let Some(u) = i.unpack {
                    out.flag("unpack", Some(if u { "true" } else { "false" }));
                }
                for e in &i.excludes {
                    out.flag("exclude", Some(e));
                }
                out.sources(&i.sources, &i.dest);
            }
            Instruction::Env(i) => {
                out.word("ENV");
                out.pairs(&i.pairs);
            }
            Instruction::Label(i) => {
                out.word("LABEL");
                out.pairs(&i.pairs);
            }
            Instruction::Arg(i) => {
                out.word("ARG");
                for a in &i.args {
                    match &a.default {
                        Some(d) => out.word(&format!("{}={}", a.name, quote_if_needed(d))),
                        None => out.word(&a.name),
                    }
                }
            }
            Instruction::Expose(i) => {
                out.word("EXPOSE");
                i.ports.iter().for_each(|p| out.word(p));
            }
            Instruction::User(i) => {
                out.word("USER");
                out.word(&i.user);
            }
            Instruction::Workdir(i) => {
                out.word("WORKDIR");
                out.word(&i.path);
            }
            Instruction::Volume(i) => {
                out.word("VOLUME");
                i.paths.iter().for_each(|p| out.word(p));
            }
            Instruction::StopSignal(i) => {
                out.word("STOPSIGNAL");
                out.word(&i.signal);
            }
            Instruction::Healthcheck(HealthcheckInstruction::None) => out.word("HEALTHCHECK NONE"),
            Instruction::Healthcheck(HealthcheckInstruction::Check(c)) => {
                out.word("HEALTHCHECK");
                for (name, d) in [
                    ("interval", c.interval),
                    ("timeout", c.timeout),
                    ("start-period", c.start_period),
                    ("start-interval", c.start_interval),
                ] {
                    if !d.is_zero() {
                        out.flag(name, Some(&go_duration(d)));
                    }
                }
                if c.retries != 0 {
                    out.flag("retries", Some(&c.retries.to_string()));
                }
                out.word("CMD");
                out.command(&c.command);
            }
            Instruction::Onbuild(i) => {
                out.word("ONBUILD");
                out.word(&i.trigger.to_string());
            }
            Instruction::Maintainer(i) => {
                out.word("MAINTAINER");
                out.word(&i.name);
            }
        }
        f.write_str(&out.0)
    }
}

#[derive(Default)]
struct Line(String);

impl Line {
    fn word(&mut self, w: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(w);
    }

    fn flag(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.word(&format!("--{name}={v}"));
        }
    }

    fn switch(&mut self, name: &str, on: bool) {
        if on {
            self.word(&format!("--{name}"));
        }
    }

    fn command(&mut self, c: &CommandLine) {
        match c {
            CommandLine::Shell(s) if s.is_empty() => {}
            CommandLine::Shell(s) => self.word(s),
            CommandLine::Exec(v) => {
                let items: Vec<String> = v.iter().map(|s| json_string(s)).collect();
                self.word(&format!("[{}]", items.join(", ")));
            }
        }
    }

    fn sources(&mut self, sources: &[Source], dest: &str) {
        for s in sources {
            match s {
                Source::Path(p) => self.word(p),
                Source::Heredoc(h) => self.word(&format!("<<{}", h.name)),
            }
        }
        self.word(dest);
    }

    fn pairs(&mut self, pairs: &[(String, String)]) {
        for (k, v) in pairs {
            self.word(&format!("{k}={}", quote_if_needed(v)));
        }
    }
}

/// Values with blanks or quotes are shown double-quoted so the line reads
/// back unambiguously.
fn quote_if_needed(v: &str) -> String {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        json_string(v)
    } else {
        v.to_string()
    }
}

/// A JSON string literal of `s`, as Dockerfile exec forms and the
/// ZImagefile translation write them.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `time.Duration.String()` for the durations a HEALTHCHECK takes.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}us", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = (nanos % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{}s", trim_fraction(s));
    out
}

fn trim_fraction(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
