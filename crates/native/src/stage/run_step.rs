//! RUN, as BuildKit runs it: the command (shell-wrapped for the shell
//! form, heredocs as BuildKit turns them into commands), the step's
//! environment (base ENV, ARGs, ENVs, proxy variables), USER resolved in
//! the image, WORKDIR, `--mount`s and `--network`, executed by the OCI
//! runtime on a writable snapshot of the stage's layers. The new layer is
//! what the snapshot gained; the history text is BuildKit's, build args
//! included as `|N k=v …`.

#[cfg(unix)]
mod linux;
mod windows;

use super::{StageContext, State, StepAt};
use crate::run;
use kiln_backend::BuildError;
use kiln_frontend::instructions::{CommandLine, RunInstruction};
use kiln_frontend::stages::Step;
use kiln_frontend::ErrorKind;
use std::collections::VecDeque;

/// How many of a failed step's last output lines its error shows.
const TAIL_LINES: usize = 10;

impl State {
    pub(super) fn run(&mut self, at: &StepAt, instr: &RunInstruction) -> Result<(), BuildError> {
        let StepAt { ctx, stage, .. } = *at;
        // The programs a RUN starts are the image's, whatever platform the
        // stage was planned for: a Windows base (`FROM <windows image>`
        // without --platform plans linux) needs a Windows host, and a base
        // of another architecture than asked for (used as it is, with a
        // warning) runs as what it is, as under BuildKit, not through an
        // emulator for the platform asked for.
        let mut platform = stage.platform.clone();
        if self.is_windows() {
            platform.os = "windows".into();
        }
        let config = self.builder.config();
        if let Some(arch) = config.architecture().filter(|a| !a.is_empty()) {
            if arch != platform.architecture {
                platform.architecture = arch.to_string();
                platform.variant = config.variant().map(str::to_string);
            }
        }
        if let Some(exec) = ctx
            .windows
            .filter(|_| run::windows::WindowsExec::supports(&platform))
        {
            return self.windows_run(at, instr, exec);
        }
        #[cfg(unix)]
        return self.linux_run(at, instr, &platform);
        #[cfg(not(unix))]
        {
            let u = run::foreign_os(&platform.os);
            Err(not_supported(
                ctx,
                at.step.command.start_line,
                &u.message,
                &u.help,
            ))
        }
    }

    /// The process's arguments, the arguments and shell-form flag the
    /// history records, and a script file to mount, with BuildKit's
    /// heredoc rules: a RUN that is one heredoc whose body starts with
    /// `#!` runs that body as the file `/dev/pipes/NAME` (so its
    /// interpreter line counts; not for Windows images, as in BuildKit);
    /// one other heredoc gives its body to the shell; otherwise the command
    /// line and every body go to the shell, which reads the heredocs itself.
    fn command(&self, instr: &RunInstruction) -> (Vec<String>, Vec<String>, bool, Option<Script>) {
        let mut script = None;
        let (args, shell_form) = match &instr.command {
            CommandLine::Exec(v) => (v.clone(), false),
            CommandLine::Shell(s) => {
                let text = match instr.heredocs.as_slice() {
                    [] => s.clone(),
                    [only]
                        if is_heredoc_marker(s)
                            && only.body().starts_with("#!")
                            && self.builder.config().os() != Some("windows") =>
                    {
                        script = Some((only.name.clone(), only.body().into_owned()));
                        format!("/dev/pipes/{}", only.name)
                    }
                    [only] if is_heredoc_marker(s) => only.body().into_owned(),
                    docs => {
                        let mut full = s.clone();
                        for d in docs {
                            full.push('\n');
                            full.push_str(&d.content);
                            full.push_str(&d.name);
                        }
                        full
                    }
                };
                (vec![text], true)
            }
        };
        let wrapped = self.builder.with_shell(&args, shell_form);
        (wrapped, args, shell_form, script)
    }

    /// Records a RUN's layer with its history text: the command (`args`,
    /// `shell_form`) and the stage's declared ARGs with their values at
    /// `step`, as BuildKit lists them (an ARG with no value as `NAME=`).
    /// Both executors end a RUN here.
    fn record_run(
        &mut self,
        step: &Step,
        args: &[String],
        shell_form: bool,
        diff_id: kiln_oci::Digest,
    ) {
        let values: Vec<(&str, &str)> = self
            .args
            .iter()
            .map(|name| (name.as_str(), step.env.get(name).unwrap_or_default()))
            .collect();
        let created_by = self.builder.run_created_by(args, shell_form, &values);
        self.builder.add_layer(diff_id, &created_by);
    }
}

/// A heredoc run as a file: its name and body.
type Script = (String, String);

/// A `<<EOF` (or `<<-EOF`, quoted or not) that is the whole command.
fn is_heredoc_marker(command: &str) -> bool {
    let rest = command.trim();
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let word = rest.trim_matches(|c| c == '"' || c == '\'');
    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn not_supported(ctx: &StageContext, line: usize, message: &str, help: &str) -> BuildError {
    let mut err = kiln_frontend::Error::new(ErrorKind::NotSupported, message);
    err.help = Some(help.into());
    ctx.ast.error_at(err, line, Some("RUN")).into()
}

/// A RUN whose process exited with `code`: BuildKit's wording, with the
/// last lines of its output (`tail`) as the help, for either executor.
fn process_failed(command: &str, code: i64, tail: &VecDeque<String>) -> kiln_frontend::Error {
    let mut err = kiln_frontend::Error::new(
        ErrorKind::Io,
        format!("process \"{command}\" did not complete successfully: exit code: {code}"),
    );
    if !tail.is_empty() {
        err.help = Some(format!(
            "its last output lines:\n{}",
            tail.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    err
}
