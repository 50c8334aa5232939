//! Node → typed instruction, following BuildKit's `instructions/parse.go`.

use super::flags::{Flags, Kind};
use super::values::{self, problem};
use super::*;
use crate::{Args, Ast, Error, ErrorKind, Node};

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parses every top-level node of `ast`, stopping at the first error.
pub fn parse(ast: &Ast) -> Result<Vec<Command>, Error> {
    ast.children.iter().map(|n| parse_node(ast, n)).collect()
}

/// Parses one node; errors carry the file, line and column from `ast`.
pub fn parse_node(ast: &Ast, node: &Node) -> Result<Command, Error> {
    let instruction = instruction(node).map_err(|p| {
        place(
            ast,
            node.start_line,
            node.end_line,
            ErrorKind::Instruction,
            p,
        )
    })?;
    Ok(Command {
        instruction,
        start_line: node.start_line,
        end_line: node.end_line,
        original: node.original.clone(),
    })
}

/// Places a problem in the file: on the first line of `start..=end` that
/// contains the needle, else on the first word of `start`.
pub(crate) fn place(ast: &Ast, start: usize, end: usize, kind: ErrorKind, p: Problem) -> Error {
    let line = p
        .needle
        .as_deref()
        .and_then(|n| {
            (start..=end.max(start)).find(|l| {
                ast.lines
                    .get(l.wrapping_sub(1))
                    .is_some_and(|text| text.contains(n))
            })
        })
        .unwrap_or(start);
    let mut err = ast.error_at(Error::new(kind, p.message), line, p.needle.as_deref());
    if err.column == 0 {
        if let Some(text) = ast.lines.get(line.wrapping_sub(1)) {
            err.column = text.chars().take_while(|c| c.is_whitespace()).count() + 1;
        }
    }
    match p.help {
        Some(h) => err.with_help(h),
        None => err,
    }
}

fn values_of(node: &Node) -> &[String] {
    match &node.args {
        Args::Values(v) => v,
        Args::Nested(_) => &[],
    }
}

fn instruction(node: &Node) -> Result<Instruction, Problem> {
    let args = values_of(node);
    let keyword = node.keyword.to_ascii_uppercase();
    Ok(match keyword.as_str() {
        "FROM" => Instruction::From(from(node, args)?),
        "RUN" => Instruction::Run(run(node, args)?),
        "CMD" => {
            Flags::parse("CMD", &[], &node.flags)?;
            Instruction::Cmd(CmdInstruction {
                command: command_line(node, args),
            })
        }
        "ENTRYPOINT" => {
            Flags::parse("ENTRYPOINT", &[], &node.flags)?;
            Instruction::Entrypoint(EntrypointInstruction {
                command: command_line(node, args),
            })
        }
        "SHELL" => {
            Flags::parse("SHELL", &[], &node.flags)?;
            if !node.json_form && !args.is_empty() {
                return Err(
                    Problem::new("SHELL requires the arguments to be in JSON form")
                        .help("write it as SHELL [\"executable\", \"parameters\"]"),
                );
            }
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            Instruction::Shell(ShellInstruction {
                shell: args.to_vec(),
            })
        }
        "COPY" => Instruction::Copy(copy(node, args)?),
        "ADD" => Instruction::Add(add(node, args)?),
        "ENV" | "LABEL" => {
            let command = if keyword == "ENV" { "ENV" } else { "LABEL" };
            Flags::parse(command, &[], &node.flags)?;
            let pairs = key_values(command, args)?;
            if command == "ENV" {
                Instruction::Env(EnvInstruction { pairs })
            } else {
                Instruction::Label(LabelInstruction { pairs })
            }
        }
        // BuildKit never checks ARG's flags; they are ignored.
        "ARG" => Instruction::Arg(arg(args)?),
        "EXPOSE" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            Flags::parse("EXPOSE", &[], &node.flags)?;
            // BuildKit sorts the words as written; the ports are checked
            // once expanded (quotes removed), and only in stages it builds.
            let mut ports = args.to_vec();
            ports.sort();
            Instruction::Expose(ExposeInstruction { ports })
        }
        "USER" => Instruction::User(UserInstruction {
            user: exactly_one(node, "USER", args)?,
        }),
        "WORKDIR" => Instruction::Workdir(WorkdirInstruction {
            path: exactly_one(node, "WORKDIR", args)?,
        }),
        "MAINTAINER" => Instruction::Maintainer(MaintainerInstruction {
            name: exactly_one(node, "MAINTAINER", args)?,
        }),
        "VOLUME" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            Flags::parse("VOLUME", &[], &node.flags)?;
            let paths: Vec<String> = args.iter().map(|v| v.trim().to_string()).collect();
            if paths.iter().any(|p| p.is_empty()) {
                return Err(Problem::new("VOLUME specified can not be an empty string"));
            }
            Instruction::Volume(VolumeInstruction { paths })
        }
        "STOPSIGNAL" => {
            // BuildKit never checks STOPSIGNAL's flags; they are ignored.
            if args.len() != 1 {
                return Err(exactly_one_error("STOPSIGNAL"));
            }
            // Checked once expanded, as EXPOSE's ports are.
            Instruction::StopSignal(StopSignalInstruction {
                signal: args[0].clone(),
            })
        }
        "HEALTHCHECK" => Instruction::Healthcheck(healthcheck(node, args)?),
        "ONBUILD" => Instruction::Onbuild(onbuild(node)?),
        _ => {
            let mut p = Problem::new(format!("unknown instruction: {}", node.keyword));
            if let Some(best) = closest(&node.keyword, &INSTRUCTIONS, false) {
                p = p.help(format!("did you mean {best}?"));
            }
            return Err(p);
        }
    })
}

fn at_least_one(command: &str) -> Problem {
    Problem::new(format!("{command} requires at least one argument"))
}

fn exactly_one_error(command: &str) -> Problem {
    Problem::new(format!("{command} requires exactly one argument"))
}

fn exactly_one(node: &Node, command: &'static str, args: &[String]) -> Result<String, Problem> {
    if args.len() != 1 {
        return Err(exactly_one_error(command));
    }
    Flags::parse(command, &[], &node.flags)?;
    Ok(args[0].clone())
}

fn command_line(node: &Node, args: &[String]) -> CommandLine {
    if node.json_form {
        CommandLine::Exec(args.to_vec())
    } else {
        CommandLine::Shell(args.join(" "))
    }
}

fn from(node: &Node, args: &[String]) -> Result<FromInstruction, Problem> {
    let name = match args {
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !valid_stage_name(&lower) {
                return Err(Problem::new(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ))
                .needle(name)
                .help("stage names start with a letter and use only a-z, 0-9, '-', '_' and '.'"));
            }
            Some(lower)
        }
        [_] => None,
        _ => {
            return Err(Problem::new("FROM requires either one or three arguments")
                .help("write it as FROM image [AS name]"))
        }
    };
    let flags = Flags::parse("FROM", &[("platform", Kind::String)], &node.flags)?;
    Ok(FromInstruction {
        image: args[0].clone(),
        name,
        platform: flags.string("platform"),
    })
}

/// BuildKit's `^[a-z][a-z0-9-_.]*$`.
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn heredocs(node: &Node) -> Vec<Heredoc> {
    node.heredocs
        .iter()
        .map(|h| Heredoc {
            name: h.name.clone(),
            content: h.content.clone(),
            expand: h.expand,
            file_descriptor: h.file_descriptor,
            chomp: h.chomp,
        })
        .collect()
}

fn run(node: &Node, args: &[String]) -> Result<RunInstruction, Problem> {
    let flags = Flags::parse(
        "RUN",
        &[
            ("mount", Kind::Strings),
            ("network", Kind::String),
            ("security", Kind::String),
        ],
        &node.flags,
    )?;
    let mounts = flags.strings("mount");
    for spec in &mounts {
        check_mount(spec)?;
    }
    let network = match flags.string("network").as_deref() {
        None | Some("default") => Network::Default,
        Some("none") => Network::None,
        Some("host") => Network::Host,
        Some(other) => {
            return Err(
                problem(format!("invalid network mode {other:?}"), "--network")
                    .help("use --network=default, --network=none or --network=host"),
            )
        }
    };
    let security = match flags.string("security").as_deref() {
        None | Some("sandbox") => Security::Sandbox,
        Some("insecure") => Security::Insecure,
        Some(other) => {
            return Err(
                problem(format!("security {other:?} is not valid"), "--security")
                    .help("use --security=sandbox or --security=insecure"),
            )
        }
    };
    Ok(RunInstruction {
        command: command_line(node, args),
        heredocs: heredocs(node),
        mounts,
        network,
        security,
    })
}

/// Checks a `--mount` value at parse time as far as BuildKit does, and
/// fully when it holds no variable.
fn check_mount(spec: &str) -> Result<(), Problem> {
    let needle = "--mount";
    let from_has_var = spec.split(',').any(|f| {
        f.split_once('=').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("from") && v.find('$').is_some_and(|i| i + 1 < v.len())
        })
    });
    if from_has_var {
        return Err(problem(
            "'from' doesn't support variable expansion, define alias stage instead".into(),
            needle,
        ));
    }
    if !spec.contains('$') {
        parse_mount(spec, &|v| Ok(v.to_string())).map_err(|m| problem(m, needle))?;
    }
    Ok(())
}

fn sources(node: &Node, command: &str, args: &[String]) -> Result<(Vec<Source>, String), Problem> {
    if args.len() < 2 {
        return Err(Problem::new(format!(
            "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    }
    let (srcs, dest) = args.split_at(args.len() - 1);
    if heredoc_marker(&dest[0]).is_some() {
        return Err(Problem::new(format!(
            "{command} cannot accept a heredoc as a destination"
        )));
    }
    let docs = heredocs(node);
    let sources = srcs
        .iter()
        .map(|src| match heredoc_marker(src) {
            Some(name) => Source::Heredoc(docs.iter().find(|h| h.name == name).cloned().unwrap_or(
                Heredoc {
                    name,
                    content: String::new(),
                    expand: true,
                    file_descriptor: 0,
                    chomp: false,
                },
            )),
            None => Source::Path(src.clone()),
        })
        .collect();
    Ok((sources, dest[0].clone()))
}

/// The heredoc name if `word` is a marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`).
fn heredoc_marker(word: &str) -> Option<String> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    Some(rest.chars().filter(|c| *c != '"' && *c != '\'').collect())
}

fn copy(node: &Node, args: &[String]) -> Result<CopyInstruction, Problem> {
    let (sources, dest) = sources(node, "COPY", args)?;
    let flags = Flags::parse(
        "COPY",
        &[
            ("chown", Kind::String),
            ("from", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("exclude", Kind::Strings),
            ("parents", Kind::Bool),
        ],
        &node.flags,
    )?;
    // `--from=` with no value is a COPY from the context, as in BuildKit.
    let from = flags.string("from").filter(|f| !f.is_empty());
    if from.as_deref().is_some_and(|f| f.contains('$')) {
        return Err(problem(
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".into(),
            "--from",
        ));
    }
    // Checked once expanded, in the stages that are built.
    let chmod = flags.string("chmod");
    Ok(CopyInstruction {
        sources,
        dest,
        from,
        chown: flags.string("chown"),
        chmod,
        link: flags.bool("link"),
        excludes: flags.strings("exclude"),
        parents: flags.bool("parents"),
        json_form: node.json_form,
    })
}

fn add(node: &Node, args: &[String]) -> Result<AddInstruction, Problem> {
    let (sources, dest) = sources(node, "ADD", args)?;
    let flags = Flags::parse(
        "ADD",
        &[
            ("chown", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("exclude", Kind::Strings),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::String),
            ("unpack", Kind::Bool),
        ],
        &node.flags,
    )?;
    // Both checked once expanded, in the stages that are built.
    let chmod = flags.string("chmod");
    let checksum = flags.string("checksum");
    Ok(AddInstruction {
        sources,
        dest,
        chown: flags.string("chown"),
        chmod,
        link: flags.bool("link"),
        excludes: flags.strings("exclude"),
        keep_git_dir: flags.bool("keep-git-dir"),
        checksum,
        unpack: flags.bool_opt("unpack"),
        json_form: node.json_form,
    })
}

/// ENV/LABEL nodes come as (name, value, marker) triples.
fn key_values(command: &str, args: &[String]) -> Result<Vec<(String, String)>, Problem> {
    if args.is_empty() {
        return Err(at_least_one(command));
    }
    if !args.len().is_multiple_of(3) {
        return Err(Problem::new(format!(
            "Bad input to {command}, too many arguments"
        )));
    }
    args.chunks(3)
        .map(|t| {
            if t[0].is_empty() {
                Err(Problem::new(format!("{command} names can not be blank")))
            } else {
                Ok((t[0].clone(), t[1].clone()))
            }
        })
        .collect()
}

fn arg(args: &[String]) -> Result<ArgInstruction, Problem> {
    if args.is_empty() {
        return Err(at_least_one("ARG"));
    }
    let args = args
        .iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(Problem::new("ARG names can not be blank")),
            Some((name, value)) => Ok(ArgDecl {
                name: name.to_string(),
                default: Some(value.to_string()),
            }),
            None => Ok(ArgDecl {
                name: word.clone(),
                default: None,
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(ArgInstruction { args })
}

fn healthcheck(node: &Node, args: &[String]) -> Result<HealthcheckInstruction, Problem> {
    let Some(kind) = args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let rest = &args[1..];
    let kind = kind.to_ascii_uppercase();
    if kind == "NONE" {
        // BuildKit does not read the flags of HEALTHCHECK NONE.
        if !rest.is_empty() {
            return Err(Problem::new("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(HealthcheckInstruction::None);
    }
    let flags = Flags::parse(
        "HEALTHCHECK",
        &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
        &node.flags,
    )?;
    if kind != "CMD" {
        return Err(
            Problem::new(format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)"))
                .needle(&args[0])
                .help("write HEALTHCHECK CMD <command> or HEALTHCHECK NONE"),
        );
    }
    if rest.is_empty() {
        return Err(Problem::new("Missing command after HEALTHCHECK CMD"));
    }
    let duration = |name: &str| -> Result<Duration, Problem> {
        let Some(v) = flags.string(name) else {
            return Ok(Duration::ZERO);
        };
        let d = values::parse_duration(&v)
            .map_err(|m| problem(format!("--{name}: {m}"), &format!("--{name}")))?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(problem(
                format!("Interval {name:?} cannot be less than 1ms"),
                &format!("--{name}"),
            ));
        }
        Ok(d)
    };
    let retries = match flags.string("retries") {
        None => 0,
        Some(v) => match v.parse::<i32>() {
            Ok(n) if n < 0 => {
                return Err(problem(
                    format!("--retries cannot be negative ({n})"),
                    "--retries",
                ))
            }
            Ok(n) => n as u32,
            Err(_) => {
                return Err(problem(
                    format!("invalid --retries value {v:?}: it must be a whole number"),
                    "--retries",
                ))
            }
        },
    };
    Ok(HealthcheckInstruction::Check(HealthCheck {
        command: command_line(node, rest),
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    }))
}

fn onbuild(node: &Node) -> Result<OnbuildInstruction, Problem> {
    let Args::Nested(inner) = &node.args else {
        return Err(at_least_one("ONBUILD"));
    };
    Flags::parse("ONBUILD", &[], &node.flags)?;
    let trigger = inner.keyword.to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(
                Problem::new("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
                    .needle(&inner.keyword),
            )
        }
        "MAINTAINER" | "FROM" => {
            return Err(
                Problem::new(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                    .needle(&inner.keyword),
            )
        }
        _ => {}
    }
    // The parser hangs a trigger's heredocs on the ONBUILD line's node.
    let mut inner = inner.as_ref().clone();
    inner.heredocs = node.heredocs.clone();
    let instruction = instruction(&inner)?;
    let mut expression = strip_onbuild(&node.original).to_string();
    for h in &node.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(OnbuildInstruction {
        expression,
        trigger: Box::new(instruction),
    })
}

/// BuildKit's `(?i)^\s*ONBUILD\s*` removal.
fn strip_onbuild(original: &str) -> &str {
    let t = original.trim_start();
    if t.len() >= 7 && t[..7].eq_ignore_ascii_case("onbuild") {
        t[7..].trim_start()
    } else {
        t
    }
}
