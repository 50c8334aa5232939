//! The typed ZImagefile, read from the YAML tree with every rule of the
//! format checked and each mistake reported at its line and column.

use super::yaml::{located, Node, Pos, Value};
use crate::instructions::{check_signal, closest, parse_chmod, parse_duration, parse_port};
use crate::{Error, ErrorKind};

/// Keys of image metadata, allowed at the top and in each stage.
const META_KEYS: [&str; 10] = [
    "env",
    "workdir",
    "expose",
    "cmd",
    "entrypoint",
    "user",
    "labels",
    "volumes",
    "healthcheck",
    "stopsignal",
];
/// Keys of the top level besides the metadata.
const TOP_KEYS: [&str; 9] = [
    "version", "runtime", "base", "build", "stages", "steps", "args", "platform", "os",
];
/// Keys of a stage besides the metadata.
const STAGE_KEYS: [&str; 6] = ["base", "runtime", "build", "steps", "platform", "os"];
/// The keys that say what a step does; a step has exactly one.
const STEP_ACTIONS: [&str; 6] = ["run", "copy", "add", "env", "workdir", "user"];
/// Keys a step may have besides its action.
const STEP_EXTRAS: [&str; 6] = ["cache", "to", "from", "owner", "chmod", "env"];
/// Keys of a `cache:` entry.
const CACHE_KEYS: [&str; 4] = ["target", "id", "sharing", "readonly"];
/// Keys of `healthcheck:`.
const HEALTH_KEYS: [&str; 6] = [
    "test",
    "interval",
    "timeout",
    "start_period",
    "start_interval",
    "retries",
];

/// A ZImagefile, checked.
#[derive(Debug)]
pub(crate) struct ZImagefile {
    /// `args:` in file order: name, default, where.
    pub args: Vec<(String, Option<String>, Pos)>,
    /// The stages in order; the last is the image. A `base:` file has one,
    /// unnamed.
    pub stages: Vec<Stage>,
}

/// One stage: a base, steps, and the image metadata it ends with.
#[derive(Debug)]
pub(crate) struct Stage {
    pub name: Option<String>,
    pub base: String,
    pub base_pos: Pos,
    /// `build:` instead of `base:`: the directory to build first; `base`
    /// is then the name of the build context the result is given as.
    pub build: Option<super::BaseBuild>,
    pub platform: Option<String>,
    pub steps: Vec<Step>,
    pub meta: Vec<Meta>,
    /// "stage 'app'" or empty, the prefix of this stage's errors.
    pub context: String,
}

/// One step, with the position of its first key.
#[derive(Debug)]
pub(crate) struct Step {
    pub action: Action,
    pub pos: Pos,
    /// "stage 'app', step 3" or "step 3".
    pub context: String,
}

/// What a step does.
#[derive(Debug)]
pub(crate) enum Action {
    Run(Run),
    Copy(Copy),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
}

/// A `run:` step.
#[derive(Debug)]
pub(crate) struct Run {
    /// The commands of a list, or the one string.
    pub commands: Vec<String>,
    /// The step's own environment (`env:` beside `run:`).
    pub env: Vec<(String, String)>,
    pub cache: Vec<Cache>,
}

/// A `cache:` entry: a cache mount of the RUN.
#[derive(Debug)]
pub(crate) struct Cache {
    pub target: String,
    pub id: Option<String>,
    pub sharing: Option<String>,
    pub readonly: bool,
}

/// A `copy:` or `add:` step.
#[derive(Debug)]
pub(crate) struct Copy {
    pub add: bool,
    pub sources: Vec<String>,
    pub to: String,
    pub from: Option<String>,
    pub owner: Option<String>,
    pub chmod: Option<String>,
}

/// Image metadata, each with the position of its key.
#[derive(Debug)]
pub(crate) struct Meta {
    pub item: MetaItem,
    pub pos: Pos,
}

/// One metadata key's value.
#[derive(Debug)]
pub(crate) enum MetaItem {
    Labels(Vec<(String, String)>),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volumes(Vec<String>),
    /// `None` for `healthcheck: none`.
    Healthcheck(Option<Health>),
    StopSignal(String),
    Entrypoint(CommandLine),
    Cmd(CommandLine),
}

/// A command given as a string (shell form) or a list (exec form).
#[derive(Debug)]
pub(crate) enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

/// `healthcheck:` with a test.
#[derive(Debug)]
pub(crate) struct Health {
    pub test: CommandLine,
    /// `(flag, value)`: `("interval", "30s")`, `("retries", "3")`.
    pub options: Vec<(&'static str, String)>,
}

/// Reads nodes of one file into the typed form.
pub(crate) struct Reader<'a> {
    pub file: &'a str,
    pub lines: &'a [String],
}

type Entries<'n> = &'n [(String, Pos, Node)];

impl Reader<'_> {
    fn error(&self, pos: Pos, message: impl Into<String>) -> Error {
        located(
            self.file,
            self.lines,
            ErrorKind::Semantic,
            message.into(),
            pos,
        )
    }

    fn in_context(&self, context: &str, pos: Pos, message: impl Into<String>) -> Error {
        let message = message.into();
        if context.is_empty() {
            self.error(pos, message)
        } else {
            self.error(pos, format!("{context}: {message}"))
        }
    }

    /// Reads the whole file.
    pub fn file(&self, root: &Node) -> Result<ZImagefile, Error> {
        let entries = self.map(root, "", "the ZImagefile")?;
        let allowed: Vec<&str> = TOP_KEYS.iter().chain(&META_KEYS).copied().collect();
        self.known_keys(entries, &allowed, "", "at the top level")?;
        match get(entries, "version") {
            None => {
                return Err(self
                    .error(root.pos, "missing `version`")
                    .with_help("start the file with `version: \"1\"`"))
            }
            Some((_, node)) => {
                let version = self.text(node, "", "version")?;
                if version != "1" {
                    return Err(self
                        .error(node.pos, format!("unsupported version {version:?}"))
                        .with_help("this kiln reads version \"1\""));
                }
            }
        }
        let mut args = match get(entries, "args") {
            Some((_, node)) => self.args(node)?,
            None => Vec::new(),
        };
        let sources: Vec<&(String, Pos, Node)> = entries
            .iter()
            .filter(|(k, _, _)| ["runtime", "base", "build", "stages"].contains(&k.as_str()))
            .collect();
        let (key, _, node) = match sources.as_slice() {
            [one] => *one,
            [] => {
                return Err(self
                    .error(root.pos, "a ZImagefile needs exactly one of runtime, base, build, stages")
                    .with_help("add `base: IMAGE` and `steps:`"))
            }
            [first, second, ..] => {
                return Err(self.error(
                    second.1,
                    format!(
                        "`{}` and `{}` together: a ZImagefile needs exactly one of runtime, base, build, stages",
                        first.0, second.0
                    ),
                ))
            }
        };
        let mut stages = match key.as_str() {
            "stages" => {
                if let Some((pos, _)) = get(entries, "steps") {
                    return Err(self
                        .error(pos, "`steps` beside `stages`: each stage has its own steps")
                        .with_help("move the steps into the stage they belong to"));
                }
                let list = self.map(node, "", "stages")?;
                if list.is_empty() {
                    return Err(self.error(node.pos, "`stages` is empty"));
                }
                let mut stages = Vec::new();
                for (name, name_pos, stage) in list {
                    check_stage_name(name).map_err(|m| self.error(*name_pos, m))?;
                    stages.push(self.stage(name, stage)?);
                }
                stages
            }
            "runtime" => {
                let mut stages = self.runtime(node, &mut args)?;
                if let (Some((_, list)), Some(last)) = (get(entries, "steps"), stages.last_mut()) {
                    last.steps.extend(self.steps(list, "")?);
                }
                stages
            }
            _ => vec![self.stage_body(None, root, entries, String::new())?],
        };
        let (platform, platform_pos) = self.platform(entries, "")?;
        if let Some(last) = stages.last_mut() {
            if platform.is_some() {
                if last.platform.is_some() {
                    return Err(self.error(
                        platform_pos,
                        "the platform is given both here and in the last stage",
                    ));
                }
                last.platform = platform;
            }
            // A `base:` file's stage read the top level's metadata already.
            if key == "stages" || key == "runtime" {
                let own = self.meta(entries, "")?;
                // The file's value of a single-valued key replaces a
                // runtime template's, rather than following it as a second
                // CMD. (A `stages` file's last stage keeps its own: both
                // are the file's, as a Dockerfile would have them.)
                let single = |m: &MetaItem| {
                    !matches!(
                        m,
                        MetaItem::Env(_)
                            | MetaItem::Labels(_)
                            | MetaItem::Expose(_)
                            | MetaItem::Volumes(_)
                    )
                };
                last.meta.retain(|t| {
                    key != "runtime"
                        || !own.iter().any(|o| {
                            single(&o.item)
                                && std::mem::discriminant(&o.item)
                                    == std::mem::discriminant(&t.item)
                        })
                });
                last.meta.extend(own);
            }
        }
        for stage in &stages {
            self.posix_shell(stage)?;
        }
        Ok(ZImagefile { args, stages })
    }

    /// A step environment and a script are written for a POSIX shell,
    /// which a Windows stage's RUN (cmd) is not.
    fn posix_shell(&self, stage: &Stage) -> Result<(), Error> {
        if !stage
            .platform
            .as_deref()
            .is_some_and(|p| p.starts_with("windows"))
        {
            return Ok(());
        }
        for step in &stage.steps {
            let Action::Run(run) = &step.action else {
                continue;
            };
            let script = run.commands.iter().any(|c| c.trim().contains('\n'));
            if script || !run.env.is_empty() {
                let mut err = self
                    .in_context(
                        &step.context,
                        step.pos,
                        "NotSupported: `env` beside `run`, and a multi-line script, need a POSIX shell; a Windows stage runs cmd",
                    )
                    .with_help("use a list of one-line commands, and `env` as a step of its own");
                err.kind = ErrorKind::NotSupported;
                return Err(err);
            }
        }
        Ok(())
    }

    fn not_supported(&self, key: &str, pos: Pos, context: &str) -> Result<(), Error> {
        let (message, help) = match key {
            "runtime" => (
                "`runtime` in a stage: NotSupported: a runtime template is a whole build of several stages",
                "put `runtime:` at the top level, or run `kiln init --format zimagefile` and edit its stages",
            ),
            _ => return Ok(()),
        };
        let mut err = self.in_context(context, pos, message).with_help(help);
        err.kind = ErrorKind::NotSupported;
        Err(err)
    }

    /// The stages of `runtime: NAME`: the template's with its default
    /// hints, each position moved to the `runtime:` value (the template's
    /// own lines are not in this file) and each context naming the
    /// template. The template's image `args` come first, and an `args:`
    /// entry of the file with the same name replaces its default.
    fn runtime(
        &self,
        node: &Node,
        args: &mut Vec<(String, Option<String>, Pos)>,
    ) -> Result<Vec<Stage>, Error> {
        let name = self.text(node, "", "runtime")?;
        let Some(template) = crate::templates::find(&name) else {
            let unknown = crate::templates::unknown(&name);
            let mut err = self.error(node.pos, unknown.message);
            err.help = unknown.help;
            return Err(err);
        };
        let yaml = template.zimagefile(&crate::templates::Hints::default());
        let file = format!("runtime template {name:?}");
        let lines: Vec<String> = yaml.lines().map(str::to_string).collect();
        let root = super::yaml::load(&file, &yaml, &lines)?;
        let expanded = Reader {
            file: &file,
            lines: &lines,
        }
        .file(&root)?;
        let prefix = format!("runtime '{name}'");
        let within = |context: &str| {
            if context.is_empty() {
                prefix.clone()
            } else {
                format!("{prefix}, {context}")
            }
        };
        let mut stages = expanded.stages;
        for stage in &mut stages {
            stage.base_pos = node.pos;
            stage.context = within(&stage.context);
            for step in &mut stage.steps {
                step.pos = node.pos;
                step.context = within(&step.context);
            }
            for meta in &mut stage.meta {
                meta.pos = node.pos;
            }
        }
        let mut merged = Vec::new();
        for (arg, default, _) in expanded.args {
            match args.iter().position(|(n, _, _)| *n == arg) {
                Some(i) => merged.push(args.remove(i)),
                None => merged.push((arg, default, node.pos)),
            }
        }
        merged.append(args);
        *args = merged;
        Ok(stages)
    }

    fn stage(&self, name: &str, node: &Node) -> Result<Stage, Error> {
        let context = format!("stage '{name}'");
        let entries = self.map(node, &context, "a stage")?;
        let allowed: Vec<&str> = STAGE_KEYS.iter().chain(&META_KEYS).copied().collect();
        self.known_keys(entries, &allowed, &context, "in a stage")?;
        if let Some((pos, _)) = get(entries, "runtime") {
            self.not_supported("runtime", pos, &context)?;
        }
        let mut stage = self.stage_body(Some(name), node, entries, context.clone())?;
        let (platform, _) = self.platform(entries, &context)?;
        stage.platform = platform;
        Ok(stage)
    }

    /// The base, steps and metadata of a stage, or of a `base:` file.
    fn stage_body(
        &self,
        name: Option<&str>,
        node: &Node,
        entries: Entries,
        context: String,
    ) -> Result<Stage, Error> {
        let (base, base_pos, build) = match (get(entries, "base"), get(entries, "build")) {
            (Some(_), Some((pos, _))) => {
                return Err(self.in_context(
                    &context,
                    pos,
                    "`base` and `build` together: a stage is built on one of them",
                ))
            }
            (Some((_, base_node)), None) => {
                (self.text(base_node, &context, "base")?, base_node.pos, None)
            }
            (None, Some((_, build_node))) => {
                let build = self.build(build_node, &context)?;
                (String::new(), build_node.pos, Some(build))
            }
            (None, None) => {
                return Err(self.in_context(
                    &context,
                    node.pos,
                    "a stage needs `base:` or `build:`",
                ))
            }
        };
        let steps = match get(entries, "steps") {
            Some((_, list)) => self.steps(list, &context)?,
            None => Vec::new(),
        };
        let meta = self.meta(entries, &context)?;
        Ok(Stage {
            name: name.map(str::to_string),
            base,
            base_pos,
            build,
            platform: None,
            steps,
            meta,
            context,
        })
    }

    /// `platform:` or `os:` (not both), as a `--platform` value.
    fn platform(&self, entries: Entries, context: &str) -> Result<(Option<String>, Pos), Error> {
        match (get(entries, "platform"), get(entries, "os")) {
            (Some(_), Some((pos, _))) => {
                Err(self.in_context(context, pos, "`platform` and `os` together: give one"))
            }
            (Some((pos, node)), None) => Ok((Some(self.text(node, context, "platform")?), pos)),
            (None, Some((pos, node))) => {
                let os = self.text(node, context, "os")?;
                match os.as_str() {
                    "windows" => Ok((Some("windows/amd64".to_string()), pos)),
                    "linux" => Ok((Some("linux".to_string()), pos)),
                    _ => Err(self
                        .in_context(context, node.pos, format!("unknown os {os:?}"))
                        .with_help("use linux or windows, or `platform: OS/ARCH`")),
                }
            }
            (None, None) => Ok((None, Pos::default())),
        }
    }

    fn args(&self, node: &Node) -> Result<Vec<(String, Option<String>, Pos)>, Error> {
        let mut out = Vec::new();
        for (name, pos, value) in self.map(node, "", "args")? {
            check_name(name, "an arg").map_err(|m| self.error(*pos, m))?;
            let default = match &value.value {
                Value::Null => None,
                _ => Some(self.text(value, "", &format!("args.{name}"))?),
            };
            out.push((name.clone(), default, *pos));
        }
        Ok(out)
    }

    /// `build: DIR`, or `build: {context: DIR, file: F, args: {K: V},
    /// target: T}`: a directory (relative to the build context) to build
    /// first, with its own Dockerfile or ZImagefile.
    fn build(&self, node: &Node, context: &str) -> Result<super::BaseBuild, Error> {
        let mut build = super::BaseBuild {
            name: String::new(),
            context: String::new(),
            file: None,
            args: Vec::new(),
            target: None,
        };
        if let Value::Text(_) = &node.value {
            build.context = self.line(node, context, "build")?;
        } else {
            let entries = self.map(node, context, "build")?;
            self.known_keys(
                entries,
                &["context", "file", "args", "target"],
                context,
                "in `build`",
            )?;
            let Some((_, dir)) = get(entries, "context") else {
                return Err(self.in_context(
                    context,
                    node.pos,
                    "`build` needs `context:` (a directory)",
                ));
            };
            build.context = self.line(dir, context, "build.context")?;
            if let Some((_, f)) = get(entries, "file") {
                build.file = Some(self.line(f, context, "build.file")?);
            }
            if let Some((_, t)) = get(entries, "target") {
                build.target = Some(self.line(t, context, "build.target")?);
            }
            if let Some((_, a)) = get(entries, "args") {
                build.args = self.pairs(a, context, "build.args", false)?;
            }
        }
        if build.context.is_empty() {
            return Err(self.in_context(context, node.pos, "`build` names no directory"));
        }
        Ok(build)
    }

    fn meta(&self, entries: Entries, context: &str) -> Result<Vec<Meta>, Error> {
        let mut out = Vec::new();
        for (key, pos, node) in entries {
            let item = match key.as_str() {
                "env" => MetaItem::Env(self.pairs(node, context, "env", true)?),
                "labels" => MetaItem::Labels(self.pairs(node, context, "labels", false)?),
                "workdir" => MetaItem::Workdir(self.line(node, context, "workdir")?),
                "user" => MetaItem::User(self.line(node, context, "user")?),
                "stopsignal" => {
                    let signal = self.line(node, context, "stopsignal")?;
                    self.check(&signal, node.pos, context, check_signal)?;
                    MetaItem::StopSignal(signal)
                }
                "expose" => {
                    let ports = self.words(node, context, "expose")?;
                    for (port, pos) in ports.iter().zip(item_positions(node)) {
                        self.check(port, pos, context, |p| parse_port(p).map(drop))?;
                    }
                    MetaItem::Expose(ports)
                }
                "volumes" => MetaItem::Volumes(self.words(node, context, "volumes")?),
                "cmd" => MetaItem::Cmd(self.command(node, context, "cmd")?),
                "entrypoint" => MetaItem::Entrypoint(self.command(node, context, "entrypoint")?),
                "healthcheck" => MetaItem::Healthcheck(self.health(node, context)?),
                _ => continue,
            };
            out.push(Meta { item, pos: *pos });
        }
        Ok(out)
    }

    fn health(&self, node: &Node, context: &str) -> Result<Option<Health>, Error> {
        if let Value::Text(t) = &node.value {
            if t == "none" {
                return Ok(None);
            }
        }
        let entries = self.map(node, context, "healthcheck (or `none`)")?;
        self.known_keys(entries, &HEALTH_KEYS, context, "in healthcheck")?;
        let Some((_, test)) = get(entries, "test") else {
            return Err(self.in_context(context, node.pos, "healthcheck needs `test:`"));
        };
        let test = self.command(test, context, "healthcheck.test")?;
        let mut options = Vec::new();
        for (key, flag) in [
            ("interval", "interval"),
            ("timeout", "timeout"),
            ("start_period", "start-period"),
            ("start_interval", "start-interval"),
            ("retries", "retries"),
        ] {
            if let Some((_, value)) = get(entries, key) {
                let text = self.text(value, context, &format!("healthcheck.{key}"))?;
                self.flag_value(&text, value.pos, context, &format!("healthcheck.{key}"))?;
                if key == "retries" {
                    self.check(&text, value.pos, context, |t| {
                        t.parse::<u32>()
                            .map(drop)
                            .map_err(|_| format!("`retries` must be a whole number, not {t:?}"))
                    })?;
                } else {
                    self.check(&text, value.pos, context, |t| parse_duration(t).map(drop))?;
                }
                options.push((flag, text));
            }
        }
        Ok(Some(Health { test, options }))
    }

    fn steps(&self, node: &Node, context: &str) -> Result<Vec<Step>, Error> {
        let Value::Seq(items) = &node.value else {
            return Err(self.in_context(
                context,
                node.pos,
                format!("`steps` must be a list, found {}", node.kind()),
            ));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ctx = if context.is_empty() {
                format!("step {}", i + 1)
            } else {
                format!("{context}, step {}", i + 1)
            };
            out.push(self.step(item, ctx)?);
        }
        Ok(out)
    }

    fn step(&self, node: &Node, context: String) -> Result<Step, Error> {
        let entries = self.map(node, &context, "a step")?;
        let allowed: Vec<&str> = STEP_ACTIONS.iter().chain(&STEP_EXTRAS).copied().collect();
        self.known_keys(entries, &allowed, &context, "in a step")?;
        // `env` is an action alone and the step's environment beside `run`.
        let actions: Vec<&(String, Pos, Node)> = entries
            .iter()
            .filter(|(k, _, _)| STEP_ACTIONS.contains(&k.as_str()))
            .filter(|(k, _, _)| k != "env" || get(entries, "run").is_none())
            .collect();
        let exactly_one = "a step needs exactly one of run, copy, add, env, workdir, user";
        let (action, _, value) = match actions.as_slice() {
            [one] => *one,
            [] => return Err(self.in_context(&context, node.pos, exactly_one)),
            [_, second, ..] => return Err(self.in_context(&context, second.1, exactly_one)),
        };
        let only = |keys: &[&str]| -> Result<(), Error> {
            for (key, pos, _) in entries {
                if key != action
                    && STEP_EXTRAS.contains(&key.as_str())
                    && !keys.contains(&key.as_str())
                {
                    return Err(self.in_context(
                        &context,
                        *pos,
                        format!("`{key}` does not go with `{action}`"),
                    ));
                }
            }
            Ok(())
        };
        let action = match action.as_str() {
            "run" => {
                only(&["cache", "env"])?;
                let commands = match &value.value {
                    Value::Seq(items) => {
                        let mut commands = Vec::new();
                        for item in items {
                            let c = self.text(item, &context, "run")?;
                            if c.trim().contains('\n') {
                                return Err(self
                                    .in_context(
                                        &context,
                                        item.pos,
                                        "a command of a `run` list must be one line",
                                    )
                                    .with_help("write a script as one block string: `run: |`"));
                            }
                            commands.push(c);
                        }
                        commands
                    }
                    _ => vec![self.text(value, &context, "run")?],
                };
                if commands.iter().all(|c| c.trim().is_empty()) {
                    return Err(self.in_context(&context, value.pos, "`run` has no command"));
                }
                let env = match get(entries, "env") {
                    Some((_, env)) => {
                        let pairs = self.pairs(env, &context, "env", true)?;
                        for (name, _) in &pairs {
                            if !is_shell_name(name) {
                                return Err(self.in_context(
                                    &context,
                                    env.pos,
                                    format!("{name:?} cannot be a shell variable (letters, digits and _, not first a digit)"),
                                ));
                            }
                        }
                        pairs
                    }
                    None => Vec::new(),
                };
                let cache = match get(entries, "cache") {
                    Some((_, list)) => self.caches(list, &context)?,
                    None => Vec::new(),
                };
                Action::Run(Run {
                    commands,
                    env,
                    cache,
                })
            }
            "copy" | "add" => {
                only(&["to", "from", "owner", "chmod"])?;
                let sources = self.words(value, &context, action)?;
                if sources.is_empty() {
                    return Err(self.in_context(
                        &context,
                        value.pos,
                        format!("`{action}` names no source"),
                    ));
                }
                let Some((_, to)) = get(entries, "to") else {
                    return Err(self
                        .in_context(&context, node.pos, format!("`{action}` needs `to:`"))
                        .with_help("add `to: DEST`, the path in the image"));
                };
                let optional = |key: &str| -> Result<Option<String>, Error> {
                    get(entries, key)
                        .map(|(_, n)| {
                            let text = self.text(n, &context, key)?;
                            self.flag_value(&text, n.pos, &context, key)?;
                            Ok(text)
                        })
                        .transpose()
                };
                let chmod = optional("chmod")?;
                if let (Some(mode), Some((_, n))) = (&chmod, get(entries, "chmod")) {
                    self.check(mode, n.pos, &context, |m| parse_chmod(m).map(drop))?;
                }
                Action::Copy(Copy {
                    add: action == "add",
                    sources,
                    to: self.line(to, &context, "to")?,
                    from: optional("from")?,
                    owner: optional("owner")?,
                    chmod,
                })
            }
            "env" => {
                only(&[])?;
                Action::Env(self.pairs(value, &context, "env", true)?)
            }
            "workdir" => {
                only(&[])?;
                Action::Workdir(self.line(value, &context, "workdir")?)
            }
            _ => {
                only(&[])?;
                Action::User(self.line(value, &context, "user")?)
            }
        };
        Ok(Step {
            action,
            pos: node.pos,
            context,
        })
    }

    fn caches(&self, node: &Node, context: &str) -> Result<Vec<Cache>, Error> {
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            let cache = match &item.value {
                Value::Text(target) => Cache {
                    target: target.clone(),
                    id: None,
                    sharing: None,
                    readonly: false,
                },
                _ => {
                    let entries = self.map(item, context, "a cache entry (a path or a mapping)")?;
                    self.known_keys(entries, &CACHE_KEYS, context, "in a cache entry")?;
                    let Some((_, target)) = get(entries, "target") else {
                        return Err(self.in_context(
                            context,
                            item.pos,
                            "a cache entry needs `target:`",
                        ));
                    };
                    let text = |key: &str| {
                        get(entries, key)
                            .map(|(_, n)| self.text(n, context, &format!("cache.{key}")))
                            .transpose()
                    };
                    let sharing = text("sharing")?;
                    if let (Some(s), Some((_, n))) = (&sharing, get(entries, "sharing")) {
                        if !["shared", "private", "locked"].contains(&s.as_str()) {
                            return Err(self
                                .in_context(context, n.pos, format!("unknown cache sharing {s:?}"))
                                .with_help("use shared, private or locked"));
                        }
                    }
                    let readonly = match get(entries, "readonly") {
                        None => false,
                        Some((_, n)) => match self.text(n, context, "cache.readonly")?.as_str() {
                            "true" | "True" | "TRUE" => true,
                            "false" | "False" | "FALSE" => false,
                            other => {
                                return Err(self.in_context(
                                    context,
                                    n.pos,
                                    format!("`readonly` is true or false, not {other:?}"),
                                ))
                            }
                        },
                    };
                    Cache {
                        target: self.text(target, context, "cache.target")?,
                        id: text("id")?,
                        sharing,
                        readonly,
                    }
                }
            };
            for value in [Some(&cache.target), cache.id.as_ref()]
                .into_iter()
                .flatten()
            {
                if value.is_empty() || value.contains([',', '"', '\'']) {
                    return Err(self.in_context(
                        context,
                        item.pos,
                        format!("cache value {value:?} is empty or holds a comma or a quote"),
                    ));
                }
                self.flag_value(value, item.pos, context, "cache")?;
            }
            out.push(cache);
        }
        Ok(out)
    }

    /// A string or a list of strings.
    fn words(&self, node: &Node, context: &str, what: &str) -> Result<Vec<String>, Error> {
        match &node.value {
            Value::Seq(items) => items.iter().map(|i| self.line(i, context, what)).collect(),
            _ => Ok(vec![self.line(node, context, what)?]),
        }
    }

    fn command(&self, node: &Node, context: &str, what: &str) -> Result<CommandLine, Error> {
        match &node.value {
            Value::Seq(items) => Ok(CommandLine::Exec(
                items
                    .iter()
                    .map(|i| self.text(i, context, what))
                    .collect::<Result<_, _>>()?,
            )),
            _ => Ok(CommandLine::Shell(self.line(node, context, what)?)),
        }
    }

    /// A mapping of names to values (`env`, `labels`); null is "".
    fn pairs(
        &self,
        node: &Node,
        context: &str,
        what: &str,
        env: bool,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        for (name, pos, value) in self.map(node, context, what)? {
            if env {
                check_name(name, "a variable").map_err(|m| self.in_context(context, *pos, m))?;
            } else if name.is_empty() || name.contains(['\n', '=']) {
                return Err(self.in_context(
                    context,
                    *pos,
                    format!("{name:?} cannot be a label name: it needs one line and no `=`"),
                ));
            }
            let text = match &value.value {
                Value::Null => String::new(),
                _ => self.line(value, context, &format!("{what}.{name}"))?,
            };
            out.push((name.clone(), text));
        }
        Ok(out)
    }

    fn map<'n>(&self, node: &'n Node, context: &str, what: &str) -> Result<Entries<'n>, Error> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(self.in_context(
                context,
                node.pos,
                format!("{what} must be a mapping, found {}", node.kind()),
            )),
        }
    }

    fn text(&self, node: &Node, context: &str, what: &str) -> Result<String, Error> {
        match &node.value {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(self.in_context(
                context,
                node.pos,
                format!("`{what}` must be a string, found {}", node.kind()),
            )),
        }
    }

    /// A string that must fit on one Dockerfile line.
    fn line(&self, node: &Node, context: &str, what: &str) -> Result<String, Error> {
        let text = self.text(node, context, what)?;
        if text.contains(['\n', '\r']) {
            return Err(self.in_context(context, node.pos, format!("`{what}` must be one line")));
        }
        Ok(text)
    }

    /// Checks a value the Dockerfile would check, here so that the caret
    /// is on the value; one with `$` is checked after expansion, by the build.
    fn check(
        &self,
        value: &str,
        pos: Pos,
        context: &str,
        rule: impl Fn(&str) -> Result<(), String>,
    ) -> Result<(), Error> {
        if value.contains('$') {
            return Ok(());
        }
        rule(value).map_err(|m| self.in_context(context, pos, m))
    }

    /// Flag values are words of the Dockerfile line: no blanks.
    fn flag_value(&self, text: &str, pos: Pos, context: &str, what: &str) -> Result<(), Error> {
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(self.in_context(
                context,
                pos,
                format!("`{what}` must be one word, without blanks"),
            ));
        }
        Ok(())
    }

    fn known_keys(
        &self,
        entries: Entries,
        allowed: &[&str],
        context: &str,
        place: &str,
    ) -> Result<(), Error> {
        for (key, pos, _) in entries {
            if !allowed.contains(&key.as_str()) {
                let mut err =
                    self.in_context(context, *pos, format!("unknown key `{key}` {place}"));
                if let Some(near) = closest(key, allowed, true) {
                    err = err.with_help(format!("did you mean `{near}`?"));
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Where each item of a list starts, or the node itself for one value.
fn item_positions(node: &Node) -> Vec<Pos> {
    match &node.value {
        Value::Seq(items) => items.iter().map(|i| i.pos).collect(),
        _ => vec![node.pos],
    }
}

fn get<'n>(entries: Entries<'n>, key: &str) -> Option<(Pos, &'n Node)> {
    entries
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, pos, node)| (*pos, node))
}

fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// ENV and ARG names: a word without `=`.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(|c: char| c == '=' || c.is_whitespace()) {
        return Err(format!("{name:?} cannot be the name of {what}"));
    }
    Ok(())
}

/// BuildKit's rule for `AS name`.
fn check_stage_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid stage name {name:?}: a lower-case letter, then lower-case letters, digits, '-', '_' or '.'"
        ))
    }
}
