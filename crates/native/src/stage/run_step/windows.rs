//! RUN in a Windows stage, on the HCS backend's [`WindowsExec`]: the
//! command as one Windows command line (the shell form `cmd /S /C <text>`
//! with the text passed through as moby does for `ArgsEscaped`), the
//! step's environment, WORKDIR as `C:\…` and USER by name; the layer is
//! the scratch diff the host exports, and the history is the Linux RUN's.
//!
//! `--mount`, `--network` other than the default, and
//! `--security=insecure` answer NotSupported: HCS containers get none of
//! them from kiln yet, and a step silently run without them would build
//! something else.

use super::{not_supported, TAIL_LINES};
use crate::hcs::ProcessSpec;
use crate::run;
use crate::run::windows::WindowsExec;
use crate::stage::{State, StepAt};
use kiln_backend::events::BuildEvent;
use kiln_backend::BuildError;
use kiln_frontend::instructions::{Network, RunInstruction, Security};
use kiln_frontend::ErrorKind;
use std::collections::VecDeque;

impl State {
    /// Runs `instr` of a Windows stage on `exec`.
    pub(in crate::stage) fn windows_run(
        &mut self,
        at: &StepAt,
        instr: &RunInstruction,
        exec: &WindowsExec,
    ) -> Result<(), BuildError> {
        let StepAt {
            ctx,
            stage,
            step,
            index,
            cancel,
            ..
        } = *at;
        let line = step.command.start_line;
        let fail = |m: String| ctx.error_at(line, ErrorKind::Io, m, None);
        let refuse = |what: &str| {
            not_supported(
                ctx,
                line,
                &format!("RUN {what} in a Windows image is not supported by the HCS backend"),
                "drop the flag; the HCS backend runs the step with the compute system's \
                 default network and no extra mounts",
            )
        };
        if !step.mounts.is_empty() {
            return Err(refuse("--mount"));
        }
        match instr.network {
            Network::Default => {}
            Network::None => return Err(refuse("--network=none")),
            Network::Host => return Err(refuse("--network=host")),
        }
        if instr.security == Security::Insecure {
            return Err(refuse("--security=insecure"));
        }
        let (argv, history_args, shell_form, _) = self.command(instr);
        let process = ProcessSpec {
            command_line: command_line(&argv, shell_form),
            env: windows_env(
                step.env
                    .to_vec()
                    .into_iter()
                    .chain(ctx.plan.proxy_env.clone()),
            ),
            // HCS starts a process with an empty directory in
            // C:\Windows\System32; an image without WORKDIR means the root.
            working_dir: match self.builder.config().working_dir() {
                "" => "C:\\".to_string(),
                dir => dir.to_string(),
            },
            user: self.builder.config().user().to_string(),
        };

        let layers = run::layers(&self.layers, self.builder.config()).map_err(fail)?;
        let root = exec.prepare(ctx.store, &layers).map_err(fail)?;
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let code = root.run(&process, cancel.flag(), &mut |text: &str| {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text.to_string());
            ctx.events.send(BuildEvent::Output {
                stage: stage.index,
                index,
                line: text.to_string(),
            });
        });
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let code = code.map_err(|e| fail(format!("RUN {}: {e}", process.command_line)))?;
        if code != 0 {
            let err = super::process_failed(&process.command_line, code.into(), &tail);
            return Err(ctx.ast.error_at(err, line, Some("RUN")).into());
        }
        let layer = root
            .layer(ctx.store, ctx.compression, ctx.epoch)
            .map_err(fail)?;
        self.put_layer(&layer);
        self.record_run(step, &history_args, shell_form, layer.diff_id);
        Ok(())
    }
}

/// The one string Windows passes a process. The shell form's text goes
/// through as written after the escaped shell (`cmd /S /C echo "a b"`),
/// as moby does for `ArgsEscaped`: cmd.exe parses its own line and would
/// see escaping as part of the command. Exec-form arguments are escaped
/// as Go's `syscall.EscapeArg` does, the rule moby and hcsshim use.
fn command_line(argv: &[String], shell_form: bool) -> String {
    let (escaped, raw) = match (shell_form, argv.split_last()) {
        (true, Some((text, shell))) => (shell, Some(text)),
        _ => (argv, None),
    };
    let mut parts: Vec<String> = escaped.iter().map(|a| escape_arg(a)).collect();
    parts.extend(raw.cloned());
    parts.join(" ")
}

/// Go's `syscall.EscapeArg`: quoted when empty or holding a space, tab or
/// quote; backslashes doubled only before a quote or the closing quote.
fn escape_arg(arg: &str) -> String {
    if arg.is_empty() {
        return "\"\"".into();
    }
    if !arg.contains([' ', '\t', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut slashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(slashes + 1));
                slashes = 0;
            }
            _ => slashes = 0,
        }
        out.push(c);
    }
    out.push_str(&"\\".repeat(slashes));
    out.push('"');
    out
}

/// The step's variables as `NAME=value`, later ones winning, names
/// compared as Windows compares them (without case). No default PATH:
/// a Windows container's PATH comes from its registry.
fn windows_env(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in vars {
        match out.iter_mut().find(|(ok, _)| ok.eq_ignore_ascii_case(&k)) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_follow_moby() {
        let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&v(&["cmd", "/S", "/C", "echo \"a b\" > x"]), true),
            "cmd /S /C echo \"a b\" > x"
        );
        assert_eq!(
            command_line(&v(&["C:\\Program Files\\x.exe", "", "a\"b", "c\\"]), false),
            "\"C:\\Program Files\\x.exe\" \"\" \"a\\\"b\" c\\"
        );
        assert_eq!(escape_arg("a b\\"), "\"a b\\\\\"");
        assert_eq!(escape_arg("a\\\\\"b"), "\"a\\\\\\\\\\\"b\"");
    }

    #[test]
    fn env_names_compare_without_case() {
        let env = windows_env(
            [("Path", "a"), ("FOO", "1"), ("PATH", "b")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(env, ["Path=b", "FOO=1"]);
    }
}
