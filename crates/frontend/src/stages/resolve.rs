//! The resolver: global ARGs, stage bases, dependencies, pruning and the
//! per-stage expansion of each step.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::env::EnvList;
use super::{Base, BuildPlan, Dependency, Platform, ResolveOptions, Stage, Step};
use crate::instructions::{self, closest, ArgDecl, Command, Instruction, Problem};
use crate::shell::{Lexer, ShellError, ShellErrorKind};
use crate::{Ast, Error, ErrorKind};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The most bytes the expanded words of one Dockerfile may add up to.
/// Each word is capped at [`crate::shell::MAX_WORD_LEN`]; this cap stops
/// thousands of lines that each repeat one large variable, which would
/// otherwise hold gigabytes (every step keeps its values). Real Dockerfiles
/// expand to kilobytes.
pub const MAX_EXPANDED_TOTAL: usize = 64 << 20;

const PROXY_ARGS: [&str; 5] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

/// A FROM and the commands under it.
pub(super) struct RawStage {
    pub(super) from: Command,
    image: String,
    pub(super) name: Option<String>,
    platform: Option<String>,
    commands: Vec<Command>,
}

/// Resolves `ast` into the stages that building `opts.target` runs.
pub fn resolve(ast: &Ast, opts: &ResolveOptions) -> Result<BuildPlan, Error> {
    let r = Resolver {
        ast,
        opts,
        lexer: Lexer::new(ast.escape),
        expanded: Cell::new(0),
        names: OnceCell::new(),
    };
    r.run()
}

pub(super) struct Resolver<'a> {
    ast: &'a Ast,
    pub(super) opts: &'a ResolveOptions,
    pub(super) lexer: Lexer,
    /// Bytes expanded so far, against [`MAX_EXPANDED_TOTAL`].
    expanded: Cell<usize>,
    /// The indexes of the stages of each name, in file order (a name may
    /// be used twice: BuildKit only lints it); a map so that thousands of
    /// stages do not compare every pair.
    names: OnceCell<HashMap<String, Vec<usize>>>,
}

impl Resolver<'_> {
    pub(super) fn error(&self, kind: ErrorKind, cmd: &Command, p: Problem) -> Error {
        instructions::place(self.ast, cmd.start_line, cmd.end_line, kind, p)
    }

    pub(super) fn expand(&self, cmd: &Command, word: &str, env: &EnvList) -> Result<String, Error> {
        let value = self
            .lexer
            .process_word(word, env)
            .map_err(|e| self.shell_error(cmd, &e))?;
        self.spend(value.len())
            .map_err(|m| self.error(ErrorKind::Expansion, cmd, Problem::new(m)))?;
        Ok(value)
    }

    /// Places an expansion error in the file, with the caret on the
    /// variable when one is to blame.
    pub(super) fn shell_error(&self, cmd: &Command, e: &ShellError) -> Error {
        let mut problem = Problem::new(e.to_string());
        if let ShellErrorKind::TooLong { name, .. } | ShellErrorKind::PatternTooCostly { name } =
            &e.kind
        {
            problem = problem.help(e.help().unwrap_or_default());
            let braced = e.word[e.offset..].starts_with("${");
            problem = problem.needle(&if braced {
                format!("${{{name}")
            } else {
                format!("${name}")
            });
        }
        self.error(ErrorKind::Expansion, cmd, problem)
    }

    /// Counts `len` more expanded bytes; the message says why that is too
    /// many.
    pub(super) fn spend(&self, len: usize) -> Result<(), String> {
        let total = self.expanded.get().saturating_add(len);
        self.expanded.set(total);
        if total > MAX_EXPANDED_TOTAL {
            return Err(format!(
                "the expanded words of this Dockerfile add up to more than {} MiB, kiln's limit; \
                 pass large data in a file instead of repeating a large variable",
                MAX_EXPANDED_TOTAL >> 20
            ));
        }
        Ok(())
    }

    /// The index of the stage named `name` (lower case), if any: the last
    /// one of that name, as `--from` and `--target` find it in BuildKit.
    pub(super) fn stage_named(&self, name: &str) -> Option<usize> {
        self.names.get().and_then(|n| n.get(name)?.last()).copied()
    }

    /// The last stage named `name` (lower case) above the stage `index`:
    /// what a FROM names, as BuildKit resolves it while adding stages.
    fn stage_named_before(&self, name: &str, index: usize) -> Option<usize> {
        let all = self.names.get().and_then(|n| n.get(name))?;
        all.iter().rev().copied().find(|&j| j < index)
    }

    fn run(&self) -> Result<BuildPlan, Error> {
        let (meta, raw) = self.split()?;
        self.index_names(&raw);
        let target_name = match &self.opts.target {
            Some(t) => t.clone(),
            None => raw.last().and_then(|s| s.name.clone()).unwrap_or_default(),
        };
        let globals = self.global_args(&meta, &target_name)?;

        let mut stages = Vec::with_capacity(raw.len());
        for (i, rs) in raw.iter().enumerate() {
            stages.push(self.stage_header(i, rs, &globals)?);
        }
        let deps = self.dependencies(&raw, &stages)?;
        for (stage, d) in stages.iter_mut().zip(&deps) {
            stage.dependencies = d.iter().cloned().collect();
        }
        self.check_cycles(&raw, &stages)?;

        let target = match &self.opts.target {
            None => raw.len() - 1,
            // Found by name even when a build context replaces the stage
            // for the others.
            Some(t) => raw
                .iter()
                .rposition(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> = raw.iter().filter_map(|s| s.name.as_deref()).collect();
                    let mut e = Error::new(
                        ErrorKind::Semantic,
                        format!("target stage {t:?} could not be found"),
                    )
                    .in_file(self.ast.file.clone());
                    e.help = Some(match closest(t, &names, true) {
                        Some(best) => format!("did you mean {best}?"),
                        None if names.is_empty() => {
                            "no stage is named; add AS <name> to a FROM".into()
                        }
                        None => format!("the stages are named {}", names.join(", ")),
                    });
                    e
                })?,
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if needed.insert(i) {
                todo.extend(stages[i].dependencies.iter().filter_map(|d| match d {
                    Dependency::Stage(j) => Some(*j),
                    Dependency::Image(_) => None,
                }));
            }
        }

        // A stage's final environment waits for the stages built FROM it;
        // the last of them takes it instead of a copy, so a chain of
        // thousands of stages copies nothing.
        let mut children: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in &needed {
            if let Base::Stage(b) = stages[i].base {
                *children.entry(b).or_default() += 1;
            }
        }
        let mut finals: BTreeMap<usize, EnvList> = BTreeMap::new();
        let mut platforms: BTreeMap<usize, Platform> = BTreeMap::new();
        let mut planned = Vec::new();
        for i in needed {
            let mut stage = stages[i].clone();
            let base_env = match stage.base {
                Base::Stage(b) => {
                    let left = children.get_mut(&b).expect("counted above");
                    *left -= 1;
                    Some(if *left == 0 {
                        finals.remove(&b).unwrap_or_default()
                    } else {
                        finals.get(&b).cloned().unwrap_or_default()
                    })
                }
                _ => None,
            };
            let env = self.dispatch(i, &raw, &mut stage, &globals, base_env)?;
            if let Base::Stage(b) = stage.base {
                if let Some(p) = platforms.get(&b) {
                    stage.platform = p.clone();
                }
            }
            if children.contains_key(&i) {
                finals.insert(i, env);
            }
            platforms.insert(i, stage.platform.clone());
            planned.push(stage);
        }
        let mut proxy_env: Vec<(String, String)> = self
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        proxy_env.sort();
        Ok(BuildPlan {
            stages: planned,
            global_args: globals.into_vec(),
            proxy_env,
        })
    }

    /// Parses the instructions and groups them under their FROM; ARGs
    /// before the first FROM are returned apart.
    fn split(&self) -> Result<(Vec<Command>, Vec<RawStage>), Error> {
        let mut meta = Vec::new();
        let mut stages: Vec<RawStage> = Vec::new();
        for cmd in instructions::parse(self.ast)? {
            match (&cmd.instruction, stages.last_mut()) {
                (Instruction::From(f), _) => stages.push(RawStage {
                    image: f.image.clone(),
                    name: f.name.clone(),
                    platform: f.platform.clone(),
                    from: cmd,
                    commands: Vec::new(),
                }),
                (Instruction::Arg(_), None) => meta.push(cmd),
                (_, None) => {
                    return Err(self.error(
                        ErrorKind::Semantic,
                        &cmd,
                        Problem::new("no build stage in current context")
                            .help("only ARG may come before the first FROM"),
                    ))
                }
                (_, Some(stage)) => stage.commands.push(cmd),
            }
        }
        if stages.is_empty() {
            return Err(Error::new(
                ErrorKind::Semantic,
                "dockerfile contains no stages to build",
            )
            .in_file(self.ast.file.clone())
            .with_help("add a FROM instruction"));
        }
        Ok((meta, stages))
    }

    /// Indexes the stage names. A name given twice is no error, as in
    /// BuildKit (`kiln lint` and `--call check` warn: DuplicateStageName):
    /// a FROM finds the last stage of the name above it, `--from` and
    /// `--target` the last in the file. A stage a named build context
    /// replaces is left out: what names it finds the context.
    fn index_names(&self, raw: &[RawStage]) {
        let mut names: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in raw.iter().enumerate() {
            let Some(name) = &s.name else { continue };
            if !self.opts.named_contexts.contains(name) {
                names.entry(name.clone()).or_default().push(i);
            }
        }
        // Set once per resolver; a second call would find the same names.
        let _ = self.names.set(names);
    }

    fn global_args(&self, meta: &[Command], target: &str) -> Result<EnvList, Error> {
        let (b, t) = (&self.opts.build_platform, &self.opts.target_platform);
        let defaults = [
            ("BUILDPLATFORM", b.to_string()),
            ("BUILDOS", b.os.clone()),
            ("BUILDARCH", b.architecture.clone()),
            ("BUILDVARIANT", b.variant.clone().unwrap_or_default()),
            ("TARGETPLATFORM", t.to_string()),
            ("TARGETOS", t.os.clone()),
            ("TARGETARCH", t.architecture.clone()),
            ("TARGETVARIANT", t.variant.clone().unwrap_or_default()),
            ("TARGETSTAGE", target.to_string()),
        ];
        let mut env = EnvList::default();
        for (k, v) in defaults {
            let v = self.opts.build_args.get(k).cloned().unwrap_or(v);
            env.set(k, v);
        }
        for cmd in meta {
            let Instruction::Arg(arg) = &cmd.instruction else {
                continue;
            };
            for ArgDecl { name, default } in &arg.args {
                let value = match (self.opts.build_args.get(name), default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(self.expand(cmd, d, &env)?),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    env.set(name, v);
                }
            }
        }
        Ok(env)
    }

    /// Expands FROM with the global ARGs and finds its base.
    fn stage_header(&self, index: usize, rs: &RawStage, globals: &EnvList) -> Result<Stage, Error> {
        let image = self.expand(&rs.from, &rs.image, globals)?;
        if image.is_empty() {
            return Err(self.error(
                ErrorKind::Expansion,
                &rs.from,
                Problem::new(format!("base name ({}) should not be blank", rs.image))
                    .needle(&rs.image)
                    .help("declare the ARG before the first FROM with a default, or pass it with --build-arg"),
            ));
        }
        let platform = match &rs.platform {
            None => self.opts.target_platform.clone(),
            Some(p) => {
                let value = self.expand(&rs.from, p, globals)?;
                if value.is_empty() {
                    return Err(self.error(
                        ErrorKind::Expansion,
                        &rs.from,
                        Problem::new(format!("empty platform value from expression {p}"))
                            .needle("--platform"),
                    ));
                }
                Platform::parse(&value).map_err(|m| {
                    self.error(
                        ErrorKind::Instruction,
                        &rs.from,
                        Problem::new(format!("failed to parse platform {p}: {m}"))
                            .needle("--platform"),
                    )
                })?
            }
        };
        // Like BuildKit, FROM finds only stages defined above it, by the
        // exact (lower-case) name; anything else is an image.
        let base = match self.stage_named_before(&image, index) {
            Some(j) => Base::Stage(j),
            None if image == "scratch" => Base::Scratch,
            None => Base::Image(image),
        };
        Ok(Stage {
            index,
            name: rs.name.clone(),
            base,
            platform,
            line: rs.from.start_line,
            dependencies: Vec::new(),
            steps: Vec::new(),
        })
    }

    /// The commands a stage runs: its base stage's ONBUILD triggers first.
    fn commands_of(
        &self,
        index: usize,
        raw: &[RawStage],
        base: &Base,
    ) -> Vec<(Command, Option<usize>)> {
        let mut out = Vec::new();
        if let Base::Stage(b) = *base {
            for cmd in &raw[b].commands {
                if let Instruction::Onbuild(ob) = &cmd.instruction {
                    out.push((
                        Command {
                            instruction: (*ob.trigger).clone(),
                            start_line: raw[index].from.start_line,
                            end_line: raw[index].from.end_line,
                            original: ob.expression.clone(),
                        },
                        Some(b),
                    ));
                }
            }
        }
        out.extend(raw[index].commands.iter().cloned().map(|c| (c, None)));
        out
    }

    fn dependencies(
        &self,
        raw: &[RawStage],
        stages: &[Stage],
    ) -> Result<Vec<BTreeSet<Dependency>>, Error> {
        let by_name = |name: &str| self.stage_named(&name.to_lowercase());
        let mut all = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            let mut deps = BTreeSet::new();
            if let Base::Stage(b) = stage.base {
                deps.insert(Dependency::Stage(b));
            }
            for (cmd, _) in self.commands_of(i, raw, &stage.base) {
                match &cmd.instruction {
                    Instruction::Copy(c) => {
                        let Some(from) = &c.from else { continue };
                        let dep = match go_atoi(from) {
                            Some(n) if n < 0 || n as usize >= raw.len() => {
                                return Err(self.error(
                                    ErrorKind::Semantic,
                                    &cmd,
                                    Problem::new(format!("invalid stage index {n}"))
                                        .needle("--from")
                                        .help(format!(
                                            "stage indexes run from 0 to {}",
                                            raw.len() - 1
                                        )),
                                ))
                            }
                            Some(n) => Dependency::Stage(n as usize),
                            None => match by_name(from) {
                                Some(j) => Dependency::Stage(j),
                                None => Dependency::Image(from.clone()),
                            },
                        };
                        deps.insert(dep);
                    }
                    Instruction::Run(r) => {
                        for spec in &r.mounts {
                            // `from` is never expanded, so the raw value
                            // decides the dependency, as in BuildKit.
                            let from = spec.split(',').find_map(|f| {
                                f.split_once('=')
                                    .filter(|(k, _)| k.eq_ignore_ascii_case("from"))
                                    .map(|(_, v)| v.trim_matches('"').to_string())
                            });
                            if let Some(from) = from.filter(|f| !f.is_empty()) {
                                deps.insert(match by_name(&from) {
                                    Some(j) => Dependency::Stage(j),
                                    None => Dependency::Image(from),
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
            all.push(deps);
        }
        Ok(all)
    }

    fn check_cycles(&self, raw: &[RawStage], stages: &[Stage]) -> Result<(), Error> {
        // 0 = unvisited, 1 = on the current path, 2 = done. The walk keeps
        // its own stack: `COPY --from` can chain thousands of stages.
        fn visit(root: usize, stages: &[Stage], state: &mut [u8]) -> Option<usize> {
            let stage_deps = |i: usize| {
                stages[i].dependencies.iter().filter_map(|d| match d {
                    Dependency::Stage(j) => Some(*j),
                    Dependency::Image(_) => None,
                })
            };
            if state[root] != 0 {
                return None;
            }
            state[root] = 1;
            let mut path = vec![(root, stage_deps(root))];
            while let Some((i, deps)) = path.last_mut() {
                let i = *i;
                match deps.next() {
                    Some(j) if state[j] == 1 => return Some(j),
                    Some(j) if state[j] == 0 => {
                        state[j] = 1;
                        path.push((j, stage_deps(j)));
                    }
                    Some(_) => {}
                    None => {
                        state[i] = 2;
                        path.pop();
                    }
                }
            }
            None
        }
        let mut state = vec![0u8; stages.len()];
        for i in 0..stages.len() {
            if let Some(c) = visit(i, stages, &mut state) {
                let name = raw[c].name.clone().unwrap_or_else(|| format!("stage-{c}"));
                return Err(self.error(
                    ErrorKind::Semantic,
                    &raw[c].from,
                    Problem::new(format!("circular dependency detected on stage: {name}"))
                        .help("a stage cannot copy from or mount a stage that depends on it"),
                ));
            }
        }
        Ok(())
    }

    /// Runs through one stage's commands, expanding each with the stage's
    /// environment; returns the final environment.
    fn dispatch(
        &self,
        index: usize,
        raw: &[RawStage],
        stage: &mut Stage,
        globals: &EnvList,
        base_env: Option<EnvList>,
    ) -> Result<EnvList, Error> {
        let mut env = match &stage.base {
            Base::Stage(_) => base_env.unwrap_or_default(),
            Base::Image(r) => {
                let mut env = EnvList::default();
                for (k, v) in self.opts.image_env.get(r).into_iter().flatten() {
                    env.set(k, v.clone());
                }
                env
            }
            Base::Scratch => EnvList::default(),
        };
        if !matches!(stage.base, Base::Stage(_))
            && env.get("PATH").is_none()
            && stage.platform.os != "windows"
        {
            env.set("PATH", DEFAULT_PATH.to_string());
        }
        let stage_label = raw[index]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"));
        for (cmd, onbuild_from) in self.commands_of(index, raw, &stage.base.clone()) {
            let before = env.snapshot();
            let mut cmd = cmd;
            let mounts = self.expand_command(&mut cmd, &mut env, globals, index, &stage_label)?;
            stage.steps.push(Step {
                command: cmd,
                env: before,
                mounts,
                onbuild_from,
            });
        }
        Ok(env)
    }
}

/// Go's `strconv.Atoi`: optional sign and decimal digits only.
pub(super) fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
