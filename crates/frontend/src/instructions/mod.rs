//! Typed Dockerfile instructions, built from the low-level [`crate::Ast`]
//! with the rules of BuildKit's Dockerfile frontend (`instructions`
//! package): every flag it accepts, the same errors for the same mistakes.
//!
//! Values that BuildKit expands later (`--chown`, paths, ENV values, mount
//! options, …) are kept here as written; [`crate::stages::resolve`] expands
//! them. Flag values that are literal (no `$`) are already checked here, so
//! `--chmod=9z` fails at parse time; ones with variables are checked after
//! expansion.
//!
//! ```
//! use kiln_frontend::instructions::{self, Instruction};
//! let ast = kiln_frontend::parse("Dockerfile", b"FROM alpine\nCOPY --link a /b\n").unwrap();
//! let commands = instructions::parse(&ast).unwrap();
//! let Instruction::Copy(copy) = &commands[1].instruction else { panic!() };
//! assert!(copy.link);
//! assert_eq!(commands[1].to_string(), "COPY --link a /b");
//! ```

mod display;
pub(crate) use display::json_string;
mod flags;
mod mount;
mod parse;
mod suggest;
mod values;

use std::time::Duration;

pub use mount::{Mount, MountType, Sharing};
pub(crate) use parse::place;
pub use parse::{parse, parse_node};
pub use values::{
    check_checksum, check_signal, parse_chmod, parse_duration, parse_port, Chmod, PortRange,
};

pub(crate) use mount::parse_mount;
pub(crate) use suggest::closest;

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The typed instruction.
    pub instruction: Instruction,
    /// First physical line (1-based).
    pub start_line: usize,
    /// Last physical line, heredoc bodies included (1-based).
    pub end_line: usize,
    /// The logical line as written, keyword included.
    pub original: String,
}

/// A Dockerfile instruction, one variant per keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM [--platform=P] image [AS name]`.
    From(FromInstruction),
    /// `RUN`.
    Run(RunInstruction),
    /// `CMD`.
    Cmd(CmdInstruction),
    /// `ENTRYPOINT`.
    Entrypoint(EntrypointInstruction),
    /// `SHELL ["exe", "arg"]`.
    Shell(ShellInstruction),
    /// `COPY`.
    Copy(CopyInstruction),
    /// `ADD`.
    Add(AddInstruction),
    /// `ENV k=v …` (or legacy `ENV k v`).
    Env(EnvInstruction),
    /// `ARG name[=default] …`.
    Arg(ArgInstruction),
    /// `LABEL k=v …`.
    Label(LabelInstruction),
    /// `EXPOSE port[/proto] …`.
    Expose(ExposeInstruction),
    /// `USER user[:group]`.
    User(UserInstruction),
    /// `WORKDIR path`.
    Workdir(WorkdirInstruction),
    /// `VOLUME path …` or JSON form.
    Volume(VolumeInstruction),
    /// `STOPSIGNAL signal`.
    StopSignal(StopSignalInstruction),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD …`.
    Healthcheck(HealthcheckInstruction),
    /// `ONBUILD <instruction>`.
    Onbuild(OnbuildInstruction),
    /// `MAINTAINER name` (deprecated, still accepted).
    Maintainer(MaintainerInstruction),
}

/// A command line: shell form (run through the image's shell) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Shell form, the text as written (the shell expands it, not kiln).
    Shell(String),
    /// Exec (JSON) form, one element per argument.
    Exec(Vec<String>),
}

/// A heredoc body attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The marker word (`EOF`); for COPY/ADD it is the file name.
    pub name: String,
    /// The body as written, every line with its `\n` (leading tabs kept
    /// even for `<<-`: see [`Heredoc::body`]).
    pub content: String,
    /// False when the marker was quoted: the body must not be expanded.
    /// Bodies are never expanded here; the engine expands them with the
    /// step's environment when this is true.
    pub expand: bool,
    /// The file descriptor before `<<` (0 when absent).
    pub file_descriptor: u32,
    /// True for `<<-`.
    pub chomp: bool,
}

impl Heredoc {
    /// The body as a file or a whole RUN script gets it: for `<<-`, every
    /// line's leading tabs removed. A RUN that hands its command line and
    /// heredocs to the shell passes [`Heredoc::content`] instead, as
    /// BuildKit does, and leaves the stripping to the shell.
    pub fn body(&self) -> std::borrow::Cow<'_, str> {
        if !self.chomp {
            return self.content.as_str().into();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect::<String>()
            .into()
    }
}

/// `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromInstruction {
    /// The base: an image reference, a stage name or `scratch`, unexpanded.
    pub image: String,
    /// The stage name after `AS`, lower-cased.
    pub name: Option<String>,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The build's default network.
    Default,
    /// No network at all.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// The default sandbox.
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstruction {
    /// What to run.
    pub command: CommandLine,
    /// Heredocs in the order of their markers.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values as written; see [`Mount`] for the parsed form
    /// (literal ones are already checked).
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: Network,
    /// `--security`.
    pub security: Security,
}

/// `CMD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdInstruction {
    /// The command; an empty shell string for a bare `CMD`.
    pub command: CommandLine,
}

/// `ENTRYPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrypointInstruction {
    /// The entrypoint; `ENTRYPOINT []` clears it.
    pub command: CommandLine,
}

/// `SHELL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellInstruction {
    /// The shell and its arguments, at least one element.
    pub shell: Vec<String>,
}

/// A COPY or ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path (or URL, for ADD), unexpanded.
    Path(String),
    /// An inline file from a heredoc, named after its marker.
    Heredoc(Heredoc),
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstruction {
    /// Sources in order.
    pub sources: Vec<Source>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from`: a stage name, a stage index or an image. Never expanded.
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded (checked with [`parse_chmod`] when literal).
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns, in order.
    pub excludes: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// True when written in JSON form.
    pub json_form: bool,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddInstruction {
    /// Sources in order (paths, URLs, git references or heredocs).
    pub sources: Vec<Source>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns, in order.
    pub excludes: Vec<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`, unexpanded.
    pub checksum: Option<String>,
    /// `--unpack`: `None` when absent (archives from the context are
    /// unpacked, remote ones are not).
    pub unpack: Option<bool>,
    /// True when written in JSON form.
    pub json_form: bool,
}

/// `ENV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvInstruction {
    /// `(name, value)` pairs in order, values raw (quotes kept) until expanded.
    pub pairs: Vec<(String, String)>,
}

/// One `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default after `=`, raw until expanded.
    pub default: Option<String>,
}

/// `ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgInstruction {
    /// The declarations in order.
    pub args: Vec<ArgDecl>,
}

/// `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelInstruction {
    /// `(key, value)` pairs in order, raw until expanded.
    pub pairs: Vec<(String, String)>,
}

/// `EXPOSE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposeInstruction {
    /// The port words, sorted as BuildKit sorts them, unexpanded. Use
    /// [`parse_port`] on each after expansion.
    pub ports: Vec<String>,
}

/// `USER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInstruction {
    /// `user[:group]`, unexpanded.
    pub user: String,
}

/// `WORKDIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdirInstruction {
    /// The path, unexpanded; relative paths are relative to the previous
    /// working directory.
    pub path: String,
}

/// `VOLUME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInstruction {
    /// Mount points, unexpanded.
    pub paths: Vec<String>,
}

/// `STOPSIGNAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSignalInstruction {
    /// The signal, unexpanded (checked with [`check_signal`] when literal).
    pub signal: String,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthcheckInstruction {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [flags] CMD …`.
    Check(HealthCheck),
}

/// The check of `HEALTHCHECK CMD`. A zero duration or count means "not set"
/// (the runtime default applies), as in the image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The command (shell form becomes `CMD-SHELL` in the image config).
    pub command: CommandLine,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries`.
    pub retries: u32,
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnbuildInstruction {
    /// The trigger text stored in the image config (BuildKit's
    /// `Expression`: the line without `ONBUILD`, heredoc bodies appended).
    pub expression: String,
    /// The trigger, parsed. BuildKit parses it only when a child image
    /// runs it; kiln parses it now so mistakes show at once (a divergence:
    /// `ONBUILD FOO` is accepted by BuildKit until triggered).
    pub trigger: Box<Instruction>,
}

/// `MAINTAINER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintainerInstruction {
    /// The author text.
    pub name: String,
}

/// An error found while reading one instruction, before it is placed in
/// the file: a message, an optional hint and the text to put the caret on.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    pub(crate) needle: Option<String>,
}

impl Problem {
    pub(crate) fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            help: None,
            needle: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn needle(mut self, needle: &str) -> Problem {
        self.needle = Some(needle.to_string());
        self
    }
}
