//! Typed instructions: every instruction and flag, and the errors BuildKit
//! gives for the same mistakes, with line, column and help.

use std::time::Duration;

use kiln_frontend::instructions::{
    self, ArgDecl, CommandLine, HealthcheckInstruction, Instruction, Network, Security, Source,
};
use kiln_frontend::{parse, Error};

fn commands(src: &str) -> Vec<instructions::Command> {
    let ast = parse("Dockerfile", src.as_bytes()).expect("parses");
    instructions::parse(&ast).unwrap_or_else(|e| panic!("{e}"))
}

fn one(src: &str) -> Instruction {
    commands(&format!("FROM scratch\n{src}\n"))
        .remove(1)
        .instruction
}

fn error(src: &str) -> Error {
    let ast = parse("Dockerfile", src.as_bytes()).expect("parses");
    instructions::parse(&ast).expect_err("must fail")
}

#[test]
fn from_with_platform_and_name() {
    let Instruction::From(f) = commands("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n")
        .remove(0)
        .instruction
    else {
        panic!()
    };
    assert_eq!(f.image, "golang:1.22");
    assert_eq!(f.name.as_deref(), Some("build"));
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
}

#[test]
fn run_flags_and_forms() {
    let Instruction::Run(r) = one(
        "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok --network=none --security=insecure make",
    ) else {
        panic!()
    };
    assert_eq!(r.command, CommandLine::Shell("make".into()));
    assert_eq!(
        r.mounts,
        [
            "type=cache,target=/root/.cache,sharing=locked",
            "type=secret,id=tok"
        ]
    );
    assert_eq!(r.network, Network::None);
    assert_eq!(r.security, Security::Insecure);
    let Instruction::Run(r) = one("RUN [\"echo\", \"a b\"]") else {
        panic!()
    };
    assert_eq!(
        r.command,
        CommandLine::Exec(vec!["echo".into(), "a b".into()])
    );
    assert_eq!(r.network, Network::Default);
    assert_eq!(r.security, Security::Sandbox);
}

#[test]
fn run_heredoc_is_kept_raw_and_chomped() {
    let Instruction::Run(r) = one("RUN <<-EOF\n\techo $HOME\nEOF") else {
        panic!()
    };
    assert_eq!(r.command, CommandLine::Shell("<<-EOF".into()));
    assert_eq!(r.heredocs.len(), 1);
    assert_eq!(r.heredocs[0].name, "EOF");
    assert_eq!(r.heredocs[0].content, "\techo $HOME\n");
    assert_eq!(r.heredocs[0].body(), "echo $HOME\n");
    assert!(r.heredocs[0].expand);
}

#[test]
fn copy_and_add_flags() {
    let Instruction::Copy(c) = one(
        "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/",
    ) else {
        panic!()
    };
    assert_eq!(
        c.sources,
        [Source::Path("a".into()), Source::Path("b".into())]
    );
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(c.excludes, ["*.md", "tmp"]);
    let sum = format!("sha256:{}", "ab".repeat(32));
    let Instruction::Add(a) = one(&format!(
        "ADD --checksum={sum} --keep-git-dir --unpack=false [\"https://x/y.tgz\", \"/z\"]"
    )) else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some(sum.as_str()));
    assert!(a.keep_git_dir && a.json_form);
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.sources, [Source::Path("https://x/y.tgz".into())]);
}

#[test]
fn copy_heredoc_source() {
    let Instruction::Copy(c) = one("COPY <<EOF /etc/motd\nhello $USER\nEOF") else {
        panic!()
    };
    let [Source::Heredoc(h)] = c.sources.as_slice() else {
        panic!("{:?}", c.sources)
    };
    assert_eq!(
        (h.name.as_str(), h.content.as_str()),
        ("EOF", "hello $USER\n")
    );
    assert_eq!(c.dest, "/etc/motd");
}

#[test]
fn env_arg_label() {
    let Instruction::Env(e) = one("ENV A=1 B=\"two words\"") else {
        panic!()
    };
    assert_eq!(
        e.pairs,
        [
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into())
        ]
    );
    let Instruction::Env(e) = one("ENV LEGACY some value") else {
        panic!()
    };
    assert_eq!(e.pairs, [("LEGACY".into(), "some value".into())]);
    let Instruction::Arg(a) = one("ARG A B=2 C=") else {
        panic!()
    };
    assert_eq!(
        a.args,
        [
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some(String::new())
            },
        ]
    );
    let Instruction::Label(l) = one("LABEL org.opencontainers.image.title=kiln") else {
        panic!()
    };
    assert_eq!(
        l.pairs,
        [("org.opencontainers.image.title".into(), "kiln".into())]
    );
}

#[test]
fn expose_user_workdir_volume_stopsignal_maintainer() {
    let Instruction::Expose(e) = one("EXPOSE 8080 53/udp 8000-8010/tcp") else {
        panic!()
    };
    assert_eq!(e.ports, ["53/udp", "8000-8010/tcp", "8080"]);
    let ranges: Vec<String> = e
        .ports
        .iter()
        .map(|p| instructions::parse_port(p).unwrap().to_string())
        .collect();
    assert_eq!(ranges, ["53/udp", "8000-8010/tcp", "8080/tcp"]);
    let Instruction::User(u) = one("USER app:app") else {
        panic!()
    };
    assert_eq!(u.user, "app:app");
    let Instruction::Workdir(w) = one("WORKDIR /app") else {
        panic!()
    };
    assert_eq!(w.path, "/app");
    let Instruction::Volume(v) = one("VOLUME /a /b") else {
        panic!()
    };
    assert_eq!(v.paths, ["/a", "/b"]);
    let Instruction::Volume(v) = one("VOLUME [\"/data\"]") else {
        panic!()
    };
    assert_eq!(v.paths, ["/data"]);
    let Instruction::StopSignal(s) = one("STOPSIGNAL SIGQUIT") else {
        panic!()
    };
    assert_eq!(s.signal, "SIGQUIT");
    let Instruction::Maintainer(m) = one("MAINTAINER Jane <j@x>") else {
        panic!()
    };
    assert_eq!(m.name, "Jane <j@x>");
}

#[test]
fn cmd_entrypoint_shell() {
    assert!(
        matches!(one("CMD [\"a\"]"), Instruction::Cmd(c) if c.command == CommandLine::Exec(vec!["a".into()]))
    );
    assert!(
        matches!(one("ENTRYPOINT run me"), Instruction::Entrypoint(c) if c.command == CommandLine::Shell("run me".into()))
    );
    assert!(
        matches!(one("SHELL [\"pwsh\", \"-c\"]"), Instruction::Shell(s) if s.shell == ["pwsh", "-c"])
    );
}

#[test]
fn healthcheck_forms() {
    let Instruction::Healthcheck(HealthcheckInstruction::Check(h)) = one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD curl -f http://x/",
    ) else {
        panic!()
    };
    assert_eq!(h.interval, Duration::from_secs(30));
    assert_eq!(h.timeout, Duration::from_secs(90));
    assert_eq!(h.start_period, Duration::from_millis(500));
    assert_eq!(h.start_interval, Duration::from_secs(2));
    assert_eq!(h.retries, 3);
    assert_eq!(h.command, CommandLine::Shell("curl -f http://x/".into()));
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Instruction::Healthcheck(HealthcheckInstruction::None)
    );
}

#[test]
fn onbuild_wraps_its_trigger() {
    let Instruction::Onbuild(o) = one("ONBUILD COPY --from=x a b") else {
        panic!()
    };
    assert_eq!(o.expression, "COPY --from=x a b");
    assert!(matches!(*o.trigger, Instruction::Copy(ref c) if c.from.as_deref() == Some("x")));
}

#[test]
fn spans_and_original_text() {
    let cmds = commands("FROM scratch\n\nRUN a \\\n  b\nCOPY x y\n");
    assert_eq!((cmds[1].start_line, cmds[1].end_line), (3, 4));
    assert_eq!(cmds[1].original, "RUN a   b");
    assert_eq!((cmds[2].start_line, cmds[2].end_line), (5, 5));
}

#[test]
fn display_reads_back() {
    let cmds = commands(concat!(
        "FROM --platform=linux/arm64 alpine AS b\n",
        "RUN --network=host --mount=type=cache,target=/c [\"make\", \"all\"]\n",
        "COPY --chown=app:app --link src/ /app/\n",
        "ENV A=\"x y\" B=1\n",
        "HEALTHCHECK --interval=1m30s --retries=2 CMD true\n",
        "ONBUILD RUN echo hi\n",
    ));
    let lines: Vec<String> = cmds.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        lines,
        [
            "FROM --platform=linux/arm64 alpine AS b",
            "RUN --mount=type=cache,target=/c --network=host [\"make\", \"all\"]",
            "COPY --chown=app:app --link src/ /app/",
            "ENV A=\"\\\"x y\\\"\" B=1",
            "HEALTHCHECK --interval=1m30s --retries=2 CMD true",
            "ONBUILD RUN echo hi",
        ]
    );
}

#[test]
fn unknown_flag_points_at_it_with_suggestion() {
    let err = error("FROM scratch\nRUN --mout=type=cache,target=/x true\n");
    assert_eq!(
        err.to_string(),
        "Dockerfile:2:5: unknown flag --mout for RUN\n   |\n 2 | RUN --mout=type=cache,target=/x true\n   |     ^\n  help: did you mean --mount?"
    );
}

#[test]
fn unknown_instruction_with_suggestion() {
    let err = error("FROM scratch\n  RUNN echo\n");
    assert_eq!(err.message, "unknown instruction: RUNN");
    assert_eq!((err.line, err.column), (2, 3));
    assert_eq!(err.help.as_deref(), Some("did you mean RUN?"));
    let err = error("FROM scratch\nFROBNICATE x\n");
    assert_eq!(err.help, None);
}

/// (Dockerfile body after FROM, message, line, column)
#[test]
fn flag_and_value_errors() {
    let cases: &[(&str, &str, usize, usize)] = &[
        ("RUN --network=bridge true", "invalid network mode \"bridge\"", 2, 5),
        ("RUN --security=root true", "security \"root\" is not valid", 2, 5),
        ("RUN --mount=type=volume,target=/x true", "unsupported mount type \"volume\"", 2, 5),
        ("RUN --mount=type=cach,target=/x true", "unsupported mount type \"cach\" (did you mean cache?)", 2, 5),
        ("RUN --mount=type=bind,mode=0755,target=/x true", "mode not allowed for \"bind\" type mounts", 2, 5),
        ("RUN --mount=type=cache,target=/x,colour=red true", "unexpected key 'colour' in 'colour=red'", 2, 5),
        ("RUN --mount=type=cache,target=/x,sharing=all true", "unsupported sharing value \"all\" (use shared, private or locked)", 2, 5),
        ("RUN --mount=type=secret true", "invalid secret mount. one of source, target required", 2, 5),
        ("RUN --mount=type=bind,required true", "unexpected key 'required' for mount type 'bind'", 2, 5),
        ("RUN --mount=type=tmpfs,target=/t,size=big true", "invalid value for size: big", 2, 5),
        ("RUN --mount=from=$X,target=/x true", "'from' doesn't support variable expansion, define alias stage instead", 2, 5),
        ("HEALTHCHECK --interval=10 CMD true", "--interval: invalid duration \"10\": missing unit (ns, us, ms, s, m or h)", 2, 13),
        ("HEALTHCHECK --timeout=1us CMD true", "Interval \"timeout\" cannot be less than 1ms", 2, 13),
        ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)", 2, 13),
        ("HEALTHCHECK CONNECT x", "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)", 2, 13),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD", 2, 1),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments", 2, 1),
        ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form", 2, 1),
        ("SHELL []", "SHELL requires at least one argument", 2, 1),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", 2, 1),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger", 2, 9),
        ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger", 2, 9),
        ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined", 2, 1),
        ("COPY --from=$STAGE a b", "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround", 2, 6),
        ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe", 2, 6),
        ("COPY --chown a b", "missing a value on flag --chown for COPY", 2, 6),
        ("COPY --chown=a --chown=b a b", "duplicate flag --chown for COPY", 2, 6),
        ("COPY --keep-git-dir a b", "unknown flag --keep-git-dir for COPY", 2, 6),
        ("ENV --x=1 A=1", "unknown flag --x for ENV", 2, 5),
        ("USER", "USER requires exactly one argument", 2, 1),
        ("WORKDIR", "WORKDIR requires exactly one argument", 2, 1),
        ("ARG =x", "ARG names can not be blank", 2, 1),
        ("EXPOSE", "EXPOSE requires at least one argument", 2, 1),
        ("VOLUME [\"\"]", "VOLUME specified can not be an empty string", 2, 1),
    ];
    for (body, message, line, column) in cases {
        let err = error(&format!("FROM scratch\n{body}\n"));
        assert_eq!(
            (err.message.as_str(), err.line, err.column),
            (*message, *line, *column),
            "{body}"
        );
        assert_eq!(err.file, "Dockerfile");
    }
}

#[test]
fn from_errors() {
    let err = error("FROM alpine AS 1st\n");
    assert_eq!(
        err.message,
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!((err.line, err.column), (1, 16));
    assert_eq!(
        error("FROM a b\n").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        error("FROM --platfrom=x a\n").help.as_deref(),
        Some("did you mean --platform?")
    );
}

#[test]
fn flag_on_a_continuation_line_is_found() {
    let err = error("FROM scratch\nCOPY --link \\\n  --chmood=zz a b\n");
    assert_eq!((err.line, err.column), (3, 3));
}

#[test]
fn buildkit_ignores_flags_on_arg_and_stopsignal() {
    assert!(matches!(one("ARG --whatever X"), Instruction::Arg(_)));
    assert!(matches!(
        one("STOPSIGNAL --x 9"),
        Instruction::StopSignal(_)
    ));
}

#[test]
fn variables_defer_value_checks() {
    assert!(matches!(
        one("COPY --chmod=$MODE a b"),
        Instruction::Copy(_)
    ));
    assert!(matches!(one("EXPOSE $PORT"), Instruction::Expose(_)));
    assert!(matches!(
        one("RUN --mount=type=$T,target=/x true"),
        Instruction::Run(_)
    ));
}
