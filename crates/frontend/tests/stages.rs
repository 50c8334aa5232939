//! ARG/ENV scoping, expansion, stage dependencies, pruning and the
//! `kiln check` rendering, against BuildKit's behaviour.

use std::collections::BTreeMap;

use kiln_frontend::stages::{resolve, Base, BuildPlan, Dependency, Platform, ResolveOptions};
use kiln_frontend::{parse, Error};

fn opts() -> ResolveOptions {
    ResolveOptions {
        target_platform: Platform::parse("linux/arm64").unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
        ..ResolveOptions::default()
    }
}

fn with_args(args: &[(&str, &str)]) -> ResolveOptions {
    let mut o = opts();
    o.build_args = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

fn plan_with(src: &str, o: &ResolveOptions) -> BuildPlan {
    let ast = parse("Dockerfile", src.as_bytes()).expect("parses");
    resolve(&ast, o).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(src: &str) -> String {
    plan_with(src, &opts()).to_string()
}

fn fail(src: &str, o: &ResolveOptions) -> Error {
    let ast = parse("Dockerfile", src.as_bytes()).expect("parses");
    resolve(&ast, o).expect_err("must fail")
}

#[test]
fn global_arg_is_for_from_only_unless_redeclared() {
    let src =
        "ARG VERSION=1.0\nFROM alpine:$VERSION\nENV A=$VERSION\nARG VERSION\nENV B=$VERSION\n";
    assert_eq!(
        plan(src),
        "stage 0 from image alpine:1.0 (linux/arm64)\n  [1/3] ENV A=\"\"\n  [2/3] ARG VERSION=1.0\n  [3/3] ENV B=1.0\n"
    );
}

#[test]
fn build_args_override_declared_args_only() {
    let src = "ARG VERSION=1.0\nFROM alpine:$VERSION\nARG VERSION\nARG LOCAL=default\nENV V=$VERSION L=$LOCAL U=$UNDECLARED\n";
    let o = with_args(&[("VERSION", "2.0"), ("LOCAL", "cli"), ("UNDECLARED", "x")]);
    assert_eq!(
        plan_with(src, &o).to_string(),
        "stage 0 from image alpine:2.0 (linux/arm64)\n  [1/3] ARG VERSION=2.0\n  [2/3] ARG LOCAL=cli\n  [3/3] ENV V=2.0 L=cli U=\"\"\n"
    );
}

#[test]
fn env_overrides_arg_and_arg_defaults_expand() {
    let src = "FROM scratch\nARG X=arg\nENV X=env\nARG X\nARG Y=${X}-y\nRUN echo $X $Y\n";
    let p = plan_with(src, &opts());
    let run = &p.stages[0].steps[4];
    assert_eq!(run.command.to_string(), "RUN echo $X $Y");
    let env: BTreeMap<_, _> = run.env.to_vec().into_iter().collect();
    assert_eq!(env["X"], "env");
    assert_eq!(env["Y"], "env-y");
    assert_eq!(
        run.env
            .to_vec()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        ["PATH", "X", "Y"]
    );
}

#[test]
fn one_env_instruction_expands_every_value_with_the_environment_before_it() {
    // The Dockerfile reference's example, and the held-out case that
    // differed from BuildKit: `ENV A=1 C=${A}x` gives C=x.
    let src = "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV A=1 C=${A}x\nRUN true\n";
    let p = plan_with(src, &opts());
    let env: BTreeMap<_, _> = p.stages[0].steps[3].env.to_vec().into_iter().collect();
    assert_eq!(env["abc"], "bye");
    assert_eq!(env["def"], "hello");
    assert_eq!(env["A"], "1");
    assert_eq!(env["C"], "x");
}

#[test]
fn proxy_args_go_to_run_without_declaration_but_are_not_expanded() {
    let src = "FROM scratch\nENV P=$HTTP_PROXY\nARG no_proxy\nENV N=$no_proxy\n";
    let o = with_args(&[
        ("HTTP_PROXY", "http://p:3128"),
        ("no_proxy", "localhost"),
        ("OTHER", "1"),
    ]);
    let p = plan_with(src, &o);
    assert_eq!(
        p.proxy_env,
        [
            ("HTTP_PROXY".to_string(), "http://p:3128".to_string()),
            ("no_proxy".into(), "localhost".into())
        ]
    );
    assert_eq!(
        p.to_string(),
        "stage 0 from scratch (linux/arm64)\n  [1/3] ENV P=\"\"\n  [2/3] ARG no_proxy=localhost\n  [3/3] ENV N=localhost\n"
    );
}

#[test]
fn platform_args_need_declaration_in_a_stage() {
    let src = "FROM --platform=$BUILDPLATFORM golang AS build\nENV A=$TARGETARCH\nARG TARGETARCH TARGETPLATFORM BUILDOS TARGETSTAGE\nENV B=$TARGETARCH C=$TARGETPLATFORM D=$BUILDOS E=$TARGETSTAGE\n";
    assert_eq!(
        plan(src),
        "stage 0 \"build\" from image golang (linux/amd64)\n  [1/3] ENV A=\"\"\n  [2/3] ARG TARGETARCH=arm64 TARGETPLATFORM=linux/arm64 BUILDOS=linux TARGETSTAGE=build\n  [3/3] ENV B=arm64 C=linux/arm64 D=linux E=build\n"
    );
    let o = with_args(&[("TARGETARCH", "riscv64")]);
    assert_eq!(
        plan_with("FROM scratch\nARG TARGETARCH\n", &o).to_string(),
        "stage 0 from scratch (linux/arm64)\n  [1/1] ARG TARGETARCH=riscv64\n"
    );
}

#[test]
fn args_do_not_leak_between_siblings_but_children_inherit() {
    let src = concat!(
        "FROM alpine AS a\nARG X=1\nENV E=a\n",
        "FROM alpine AS b\nENV Y=$X F=$E\n",
        "FROM a AS c\nENV Z=$X G=$E\n",
        "FROM scratch\nCOPY --from=b /y /y\nCOPY --from=c /z /z\n",
    );
    assert_eq!(
        plan(src),
        concat!(
            "stage 0 \"a\" from image alpine (linux/arm64)\n  [1/2] ARG X=1\n  [2/2] ENV E=a\n",
            "stage 1 \"b\" from image alpine (linux/arm64)\n  [1/1] ENV Y=\"\" F=\"\"\n",
            "stage 2 \"c\" from stage 0 \"a\" (linux/arm64)\n  [1/1] ENV Z=1 G=a\n",
            "stage 3 from scratch (linux/arm64)\n  [1/2] COPY --from=b /y /y\n  [2/2] COPY --from=c /z /z\n",
        )
    );
}

#[test]
fn expansion_applies_only_where_buildkit_expands() {
    let src = concat!(
        "ARG IMG=alpine\n",
        "FROM $IMG\n",
        "ARG U=app DIR=/srv PORTS=\"80 443/udp\" SIG=TERM\n",
        "COPY --chown=$U:$U --chmod=755 src/$U /$DIR/\n",
        "ADD --chown=${U} a.tgz $DIR\n",
        "WORKDIR $DIR\n",
        "USER $U\n",
        "LABEL owner=$U\n",
        "EXPOSE $PORTS 8080\n",
        "VOLUME $DIR/data\n",
        "STOPSIGNAL SIG$SIG\n",
        "RUN --mount=type=cache,target=/srv/cache,rw echo $U\n",
        "CMD echo $U\n",
        "HEALTHCHECK CMD test $U\n",
        "ONBUILD RUN echo $U\n",
        "COPY <<EOF /motd\nhi $U\nEOF\n",
    );
    let p = plan_with(src, &opts());
    assert_eq!(
        p.to_string(),
        concat!(
            "stage 0 from image alpine (linux/arm64)\n",
            "  [ 1/14] ARG U=app DIR=/srv PORTS=\"80 443/udp\" SIG=TERM\n",
            "  [ 2/14] COPY --chown=app:app --chmod=755 src/app //srv/\n",
            "  [ 3/14] ADD --chown=app a.tgz /srv\n",
            "  [ 4/14] WORKDIR /srv\n",
            "  [ 5/14] USER app\n",
            "  [ 6/14] LABEL owner=app\n",
            "  [ 7/14] EXPOSE 80 443/udp 8080\n",
            "  [ 8/14] VOLUME /srv/data\n",
            "  [ 9/14] STOPSIGNAL SIGTERM\n",
            "  [10/14] RUN --mount=type=cache,target=/srv/cache,rw echo $U\n",
            "  [11/14] CMD echo $U\n",
            "  [12/14] HEALTHCHECK CMD test $U\n",
            "  [13/14] ONBUILD RUN echo $U\n",
            "  [14/14] COPY <<EOF /motd\n",
        )
    );
    let run = &p.stages[0].steps[9];
    assert_eq!(run.mounts[0].target, "/srv/cache");
    assert_eq!(run.mounts[0].to_string(), "type=cache,target=/srv/cache,rw");
    let kiln_frontend::instructions::Instruction::Copy(c) =
        &p.stages[0].steps[13].command.instruction
    else {
        panic!()
    };
    let kiln_frontend::instructions::Source::Heredoc(h) = &c.sources[0] else {
        panic!()
    };
    assert_eq!(h.content, "hi $U\n");
}

#[test]
fn pruning_and_dependency_order() {
    let src = concat!(
        "FROM alpine AS base\n",
        "FROM base AS build\nRUN make\n",
        "FROM alpine AS unused\nRUN sleep 1\n",
        "FROM golang AS tools\n",
        "FROM scratch\n",
        "COPY --from=build /out /out\n",
        "COPY --from=1 /x /x\n",
        "RUN --mount=type=bind,from=tools,target=/t true\n",
        "COPY --from=nginx:latest /etc/nginx /etc/nginx\n",
    );
    let p = plan_with(src, &opts());
    let indexes: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(indexes, [0, 1, 3, 4]);
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[3].base, Base::Scratch);
    assert_eq!(
        p.stages[3].dependencies,
        [
            Dependency::Stage(1),
            Dependency::Stage(3),
            Dependency::Image("nginx:latest".into())
        ]
    );
    let mut o = opts();
    o.target = Some("BUILD".into());
    let p = plan_with(src, &o);
    assert_eq!(
        p.to_string(),
        "stage 0 \"base\" from image alpine (linux/arm64)\nstage 1 \"build\" from stage 0 \"base\" (linux/arm64)\n  [1/1] RUN make\n"
    );
}

#[test]
fn a_stage_name_given_twice_resolves_as_in_buildkit() {
    // BuildKit only lints a duplicate name: a FROM finds the last stage of
    // the name above it; --from, --mount from and --target the last in the file.
    let src = concat!(
        "FROM alpine AS a\n",
        "FROM a AS b\n",
        "FROM busybox AS a\n",
        "FROM scratch AS final\n",
        "COPY --from=a /x /x\n",
        "COPY --from=b /y /y\n",
        "RUN --mount=from=a,target=/m true\n",
    );
    let p = plan_with(src, &opts());
    let indexes: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(
        p.stages[3].dependencies,
        [Dependency::Stage(1), Dependency::Stage(2)]
    );
    let mut o = opts();
    o.target = Some("a".into());
    let p = plan_with(src, &o);
    let indexes: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(indexes, [2]);
    // The last `a` is below this COPY: BuildKit's "defined before" error.
    let err = fail(
        "FROM alpine AS a\nFROM alpine AS b\nCOPY --from=a /x /x\nFROM alpine AS a\n",
        &{
            let mut o = opts();
            o.target = Some("b".into());
            o
        },
    );
    assert_eq!(
        err.message,
        "cannot copy from stage \"a\", it needs to be defined before current stage \"b\""
    );
}

#[test]
fn onbuild_triggers_run_in_child_stages() {
    let src = "FROM alpine AS base\nONBUILD COPY --from=assets /a /a\nFROM alpine AS assets\nFROM base\nRUN true\n";
    let p = plan_with(src, &opts());
    assert_eq!(
        p.to_string(),
        concat!(
            "stage 0 \"base\" from image alpine (linux/arm64)\n  [1/1] ONBUILD COPY --from=assets /a /a\n",
            "stage 1 \"assets\" from image alpine (linux/arm64)\n",
            "stage 2 from stage 0 \"base\" (linux/arm64)\n",
            "  [1/2] COPY --from=assets /a /a (ONBUILD trigger of stage 0 \"base\")\n",
            "  [2/2] RUN true\n",
        )
    );
    assert_eq!(p.stages[2].steps[0].command.start_line, 4);
}

#[test]
fn stage_errors() {
    let o = opts();
    let err = fail("FROM alpine AS build\nFROM alpine\n", &{
        let mut o = opts();
        o.target = Some("biuld".into());
        o
    });
    assert_eq!(err.message, "target stage \"biuld\" could not be found");
    assert_eq!(err.help.as_deref(), Some("did you mean build?"));

    let err = fail(
        "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n",
        &{
            let mut o = opts();
            o.target = Some("a".into());
            o
        },
    );
    assert_eq!(
        err.message,
        "cannot copy from stage \"b\", it needs to be defined before current stage \"a\""
    );
    assert_eq!((err.line, err.column), (2, 6));

    let err = fail(
        "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nCOPY --from=a /y /y\n",
        &o,
    );
    assert_eq!(err.message, "circular dependency detected on stage: a");
    assert_eq!(err.line, 1);

    let err = fail("FROM alpine\nCOPY --from=7 /x /x\n", &o);
    assert_eq!(err.message, "invalid stage index 7");
    assert_eq!(err.line, 2);

    let err = fail("ARG A\n", &o);
    assert_eq!(err.message, "dockerfile contains no stages to build");

    let err = fail("RUN true\nFROM alpine\n", &o);
    assert_eq!(
        (err.message.as_str(), err.line),
        ("no build stage in current context", 1)
    );

    let err = fail("FROM $NOPE\n", &o);
    assert_eq!(err.message, "base name ($NOPE) should not be blank");
    assert_eq!((err.line, err.column), (1, 6));

    let err = fail("FROM --platform=linux/ alpine\n", &o);
    assert_eq!(
        err.message,
        "failed to parse platform linux/: invalid platform \"linux/\": expected os/arch[/variant], like linux/amd64"
    );

    let err = fail("FROM alpine\nARG M=99\nCOPY --chmod=$M a b\n", &o);
    assert_eq!(
        err.message,
        "invalid chmod parameter: 99. it should be octal string and between 0 and 07777"
    );
    assert_eq!((err.line, err.column), (3, 6));

    let err = fail(
        "FROM alpine\nARG T=volume\nRUN --mount=type=$T,target=/x true\n",
        &o,
    );
    assert_eq!(
        (err.message.as_str(), err.line),
        ("unsupported mount type \"volume\"", 3)
    );

    let err = fail("FROM alpine\nENV A=${B:?required}\n", &o);
    assert_eq!(err.line, 2);
    assert!(err.message.contains("required"), "{}", err.message);
}

#[test]
fn expanded_values_are_checked_after_expansion_in_built_stages_only() {
    // BuildKit checks EXPOSE ports, STOPSIGNAL, --chmod and --checksum when
    // it dispatches a stage: after expansion (so quotes are fine), and not
    // in a stage the target does not need.
    let o = opts();
    let cases: &[(&str, &str, usize, usize)] = &[
        ("COPY --chmod=9z a b", "invalid chmod parameter: 9z. it should be octal string and between 0 and 07777, or a symbolic mode like u+x", 2, 6),
        ("EXPOSE 80/http", "invalid protocol \"http\" in EXPOSE 80/http: use tcp, udp or sctp", 2, 8),
        ("EXPOSE 99999", "invalid port \"99999\" in EXPOSE 99999: a port is a number from 0 to 65535", 2, 8),
        ("ADD --checksum=md5:00 a b", "invalid checksum digest \"md5:00\": the algorithm must be sha256, sha384 or sha512", 2, 5),
        ("STOPSIGNAL SIGNOPE", "invalid signal: SIGNOPE", 2, 12),
    ];
    for (body, message, line, column) in cases {
        let err = fail(&format!("FROM alpine\n{body}\n"), &o);
        assert_eq!(
            (err.message.as_str(), err.line, err.column),
            (*message, *line, *column),
            "{body}"
        );
        plan(&format!("FROM alpine AS unused\n{body}\nFROM alpine\n"));
    }
    let p = plan_with(
        "FROM alpine\nEXPOSE \"80\" '53/udp'\nSTOPSIGNAL \"SIGINT\"\nCOPY --chmod=\"755\" a b\n",
        &o,
    );
    let steps: Vec<String> = p.stages[0]
        .steps
        .iter()
        .map(|s| s.command.to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "EXPOSE 80 53/udp",
            "STOPSIGNAL SIGINT",
            "COPY --chmod=755 a b"
        ]
    );
}

#[test]
fn base_image_env_is_used_when_known() {
    let mut o = opts();
    o.image_env.insert(
        "golang".into(),
        vec![
            ("PATH".into(), "/go/bin:/usr/bin".into()),
            ("GOPATH".into(), "/go".into()),
        ],
    );
    assert_eq!(
        plan_with("FROM golang\nENV PATH=$PATH:/x G=$GOPATH\n", &o).to_string(),
        "stage 0 from image golang (linux/arm64)\n  [1/1] ENV PATH=/go/bin:/usr/bin:/x G=/go\n"
    );
    assert_eq!(
        plan_with("FROM alpine\nENV PATH=$PATH:/x\n", &o).to_string(),
        "stage 0 from image alpine (linux/arm64)\n  [1/1] ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/x\n"
    );
}
