//! ZImagefile reading, checking and translation into a Dockerfile.

use kiln_frontend::zimagefile::{convert, is_zimagefile};
use kiln_frontend::ErrorKind;
use std::path::Path;

fn dockerfile(yaml: &str) -> String {
    match convert("ZImagefile", yaml.as_bytes()) {
        Ok(c) => c.dockerfile,
        Err(e) => panic!("{e}"),
    }
}

fn error(yaml: &str) -> kiln_frontend::Error {
    match convert("app/ZImagefile", yaml.as_bytes()) {
        Ok(c) => panic!("converted, expected an error:\n{}", c.dockerfile),
        Err(e) => e,
    }
}

/// `line:col: message` of an error, to compare with the YAML by eye.
fn where_what(yaml: &str) -> String {
    let e = error(yaml);
    format!("{}:{}: {}", e.line, e.column, e.message)
}

#[test]
fn base_and_steps_become_one_stage() {
    let yaml = r#"version: "1"
base: alpine:3.20
steps:
  - run: apk add --no-cache curl
  - workdir: /app
  - copy: [main.sh, "lib dir/"]
    to: ./
  - env: {MODE: prod}
  - user: nobody
"#;
    assert_eq!(
        dockerfile(yaml),
        r#"FROM alpine:3.20
RUN apk add --no-cache curl
WORKDIR /app
COPY ["main.sh", "lib dir/", "./"]
ENV MODE=prod
USER nobody
"#
    );
}

#[test]
fn the_full_example_converts_to_its_golden_dockerfile() {
    let yaml = r#"version: "1"
args:
  ALPINE: "3.20"
  FLAGS:
stages:
  build:
    base: alpine:${ALPINE}
    steps:
      - run: [apk add gcc, "echo 'hi there' > /x"]
        env: {CC: gcc, MSG: "it's $x"}
        cache:
          - /var/cache/apk
          - {target: /root/.cache, id: pip, sharing: locked, readonly: true}
      - copy: a.c
        to: /src/
        owner: "1000:1000"
        chmod: "0644"
      - run: |
          cc -o /src/app /src/a.c
          strip /src/app
  app:
    base: scratch
    steps:
      - copy: /src/app
        from: build
        to: /app
      - add: https://example.com/x.tgz
        to: /x.tgz
env: {VERSION: 1.10, PATH: "/bin:$PATH", LIT: "\\$HOME", Q: 'say "hi"'}
labels: {org.opencontainers.image.title: demo app}
cmd: [/app, --serve]
entrypoint: /bin/sh -c
expose: [80, 443/udp]
volumes: [/data]
healthcheck:
  test: [/app, --health]
  interval: 30s
  retries: 3
stopsignal: SIGTERM
user: app
workdir: /
"#;
    assert_eq!(
        dockerfile(yaml),
        r#"ARG ALPINE=3.20
ARG FLAGS
FROM alpine:${ALPINE} AS build
ARG ALPINE
ARG FLAGS
RUN --mount=type=cache,target=/var/cache/apk --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,readonly export CC='gcc' MSG='it'\''s $x' && apk add gcc && echo 'hi there' > /x
COPY --chown=1000:1000 --chmod=0644 ["a.c", "/src/"]
RUN <<'ZIMAGEFILE_EOF'
set -e
cc -o /src/app /src/a.c
strip /src/app
ZIMAGEFILE_EOF
FROM scratch AS app
ARG ALPINE
ARG FLAGS
COPY --from=build ["/src/app", "/app"]
ADD ["https://example.com/x.tgz", "/x.tgz"]
LABEL org.opencontainers.image.title="demo app"
ENV VERSION=1.10 PATH=/bin:$PATH LIT="\$HOME" Q="say \"hi\""
WORKDIR /
USER app
EXPOSE 80 443/udp
VOLUME ["/data"]
HEALTHCHECK --interval=30s --retries=3 CMD ["/app", "--health"]
STOPSIGNAL SIGTERM
ENTRYPOINT /bin/sh -c
CMD ["/app", "--serve"]
"#
    );
}

#[test]
fn the_converted_dockerfile_resolves_to_the_plan_with_expanded_values() {
    use kiln_frontend::stages::{resolve, ResolveOptions};
    let yaml = r#"version: "1"
args: {NAME: big world}
base: scratch
steps:
  - env: {GREETING: "hello $NAME", LITERAL: "\\$NAME", BACK: 'C:\dir'}
"#;
    let c = convert("ZImagefile", yaml.as_bytes()).unwrap();
    let ast = kiln_frontend::parse("ZImagefile", c.dockerfile.as_bytes()).unwrap();
    let plan = resolve(&ast, &ResolveOptions::default()).unwrap();
    let text = plan.to_string();
    assert!(text.contains(r#"GREETING="hello big world""#), "{text}");
    assert!(text.contains("LITERAL=$NAME"), "{text}");
    assert!(text.contains(r"BACK=C:\dir"), "{text}");
}

#[test]
fn run_with_env_exports_for_that_command_only() {
    let yaml = "version: '1'\nbase: busybox\nsteps:\n  - run: echo $A > /a\n    env: {A: x y}\n  - run: 'true'\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM busybox\nRUN export A='x y' && echo $A > /a\nRUN true\n"
    );
}

#[test]
fn a_script_with_env_exports_before_its_first_line() {
    let yaml =
        "version: '1'\nbase: busybox\nsteps:\n  - run: |\n      a\n      b\n    env: {K: v}\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM busybox\nRUN <<'ZIMAGEFILE_EOF'\nset -e\nexport K='v'\na\nb\nZIMAGEFILE_EOF\n"
    );
}

#[test]
fn a_heredoc_marker_in_the_script_picks_another_marker() {
    let yaml = "version: '1'\nbase: busybox\nsteps:\n  - run: |\n      cat <<ZIMAGEFILE_EOF\n      x\n      ZIMAGEFILE_EOF\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM busybox\nRUN <<'ZIMAGEFILE_EOF_1'\nset -e\ncat <<ZIMAGEFILE_EOF\nx\nZIMAGEFILE_EOF\nZIMAGEFILE_EOF_1\n"
    );
}

#[test]
fn commands_that_look_like_exec_form_or_heredocs_run_as_scripts() {
    let yaml = "version: '1'\nbase: busybox\nsteps:\n  - run: '[ -f /x ] || touch /x'\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM busybox\nRUN <<'ZIMAGEFILE_EOF'\nset -e\n[ -f /x ] || touch /x\nZIMAGEFILE_EOF\n"
    );
}

#[test]
fn cmd_and_entrypoint_strings_are_shell_form_and_healthcheck_none() {
    let yaml = "version: '1'\nbase: a\ncmd: echo $HOME\nentrypoint: [\"/bin/sh\", \"-c\"]\nhealthcheck: none\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM a\nHEALTHCHECK NONE\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD echo $HOME\n"
    );
}

/// A pinned platform is meant, so the translation turns BuildKit's check
/// against a constant `FROM --platform` off.
#[test]
fn platform_and_os_set_from_platform() {
    assert_eq!(
        dockerfile("version: '1'\nbase: scratch\nos: windows\n"),
        "# check=skip=FromPlatformFlagConstDisallowed\nFROM --platform=windows/amd64 scratch\n"
    );
    assert_eq!(
        dockerfile("version: '1'\nbase: scratch\nplatform: linux/arm64/v8\n"),
        "# check=skip=FromPlatformFlagConstDisallowed\nFROM --platform=linux/arm64/v8 scratch\n"
    );
    assert_eq!(
        dockerfile("version: '1'\nstages:\n  a:\n    base: scratch\n    os: linux\n  b:\n    base: a\nplatform: linux/arm64\n"),
        "# check=skip=FromPlatformFlagConstDisallowed\nFROM --platform=linux scratch AS a\nFROM --platform=linux/arm64 a AS b\n"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nos: windows\nplatform: linux/amd64\n"),
        "3:1: `platform` and `os` together: give one"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nos: plan9\n"),
        "3:5: unknown os \"plan9\""
    );
}

#[test]
fn windows_stages_take_no_posix_shell_steps() {
    let e =
        error("version: '1'\nbase: a\nos: windows\nsteps:\n  - run: echo %A%\n    env: {A: b}\n");
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert_eq!((e.line, e.column), (5, 5));
    assert!(
        e.message
            .starts_with("step 1: NotSupported: `env` beside `run`"),
        "{}",
        e.message
    );
    let e = error("version: '1'\nstages:\n  w:\n    base: a\n    platform: windows/amd64\n    steps:\n      - run: |\n          a\n          b\n");
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert!(
        e.message.starts_with("stage 'w', step 1: NotSupported"),
        "{}",
        e.message
    );
    assert_eq!(
        dockerfile("version: '1'\nbase: a\nos: windows\nsteps:\n  - run: [a, b]\n"),
        "# check=skip=FromPlatformFlagConstDisallowed\nFROM --platform=windows/amd64 a\nRUN a && b\n"
    );
}

#[test]
fn label_names_may_have_blanks_but_no_equals_sign() {
    assert_eq!(
        dockerfile("version: '1'\nbase: a\nlabels: {my key: v w}\n"),
        "FROM a\nLABEL \"my key\"=\"v w\"\n"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nlabels: {a=b: c}\n"),
        "3:10: \"a=b\" cannot be a label name: it needs one line and no `=`"
    );
}

#[test]
fn the_platform_is_given_once() {
    assert_eq!(
        where_what("version: '1'\nstages:\n  a:\n    base: b\n    os: linux\nos: windows\n"),
        "6:1: the platform is given both here and in the last stage"
    );
}

#[test]
fn scalars_keep_their_text() {
    let yaml = "version: 1\nbase: a\nlabels: {v: 1.10, yes: yes, n: 0x1F, e: ''}\n";
    assert_eq!(
        dockerfile(yaml),
        "FROM a\nLABEL v=1.10 yes=yes n=0x1F e=\"\"\n"
    );
}

#[test]
fn errors_name_the_stage_and_step_with_line_and_column() {
    let yaml = r#"version: "1"
stages:
  app:
    base: alpine
    steps:
      - run: make
      - workdir: /x
      - {copy: a, run: b}
"#;
    let e = error(yaml);
    assert_eq!(e.file, "app/ZImagefile");
    assert_eq!(
        e.to_string(),
        "app/ZImagefile:8:19: stage 'app', step 3: a step needs exactly one of run, copy, add, env, workdir, user\n   |\n 8 |       - {copy: a, run: b}\n   |                   ^"
    );
}

#[test]
fn a_step_with_no_action_is_an_error_at_the_step() {
    let yaml = "version: '1'\nbase: a\nsteps:\n  - run: x\n  - to: /y\n";
    assert_eq!(
        where_what(yaml),
        "5:5: step 2: a step needs exactly one of run, copy, add, env, workdir, user"
    );
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    let e = error("version: '1'\nbase: a\nstpes: []\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert_eq!(e.message, "unknown key `stpes` at the top level");
    assert_eq!(e.help.as_deref(), Some("did you mean `steps`?"));
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - run: x\n    cahce: /x\n"),
        "5:5: step 1: unknown key `cahce` in a step"
    );
    assert_eq!(
        where_what("version: '1'\nstages:\n  s:\n    base: a\n    args: {}\n"),
        "5:5: stage 's': unknown key `args` in a stage"
    );
    assert_eq!(
        where_what(
            "version: '1'\nbase: a\nsteps:\n  - run: x\n    cache: [{target: /c, mode: 1}]\n"
        ),
        "5:26: step 1: unknown key `mode` in a cache entry"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nhealthcheck: {test: x, every: 1s}\n"),
        "3:24: unknown key `every` in healthcheck"
    );
}

#[test]
fn exactly_one_source_of_the_image() {
    assert_eq!(
        where_what("version: '1'\nenv: {A: b}\n"),
        "1:1: a ZImagefile needs exactly one of runtime, base, build, stages"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nstages: {b: {base: c}}\n"),
        "3:1: `base` and `stages` together: a ZImagefile needs exactly one of runtime, base, build, stages"
    );
    assert_eq!(
        where_what("version: '1'\nstages: {b: {base: c}}\nsteps: []\n"),
        "3:1: `steps` beside `stages`: each stage has its own steps"
    );
}

#[test]
fn an_unknown_runtime_template_is_named_with_the_known_ones() {
    let e = error("version: '1'\nruntime: node20\n");
    assert_eq!(e.kind, ErrorKind::Semantic);
    assert_eq!((e.line, e.column), (2, 10));
    assert_eq!(e.message, "unknown runtime template \"node20\"");
    assert!(e.help.unwrap().contains("node, rust, python, go"));
}

#[test]
fn runtime_in_a_stage_is_not_supported_yet() {
    let e = error("version: '1'\nstages:\n  a:\n    runtime: node\n");
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert_eq!((e.line, e.column), (4, 5));
    assert!(
        e.message
            .starts_with("stage 'a': `runtime` in a stage: NotSupported"),
        "{}",
        e.message
    );
}

#[test]
fn build_bases_become_build_contexts_the_froms_name() {
    let c = convert(
        "ZImagefile",
        b"version: '1'\nstages:\n  a:\n    build: ./base\n  b:\n    build:\n      context: other\n      file: Dockerfile.alt\n      target: runtime\n      args: {V: '2'}\n    steps:\n      - copy: /x\n        from: a\n        to: /y\n",
    )
    .unwrap();
    assert_eq!(
        c.dockerfile,
        "FROM zimagefile/build-1 AS a\nFROM zimagefile/build-2 AS b\nCOPY --from=a [\"/x\", \"/y\"]\n"
    );
    assert_eq!(c.builds.len(), 2);
    assert_eq!(c.builds[0].context, "./base");
    assert_eq!(c.builds[1].file.as_deref(), Some("Dockerfile.alt"));
    assert_eq!(c.builds[1].target.as_deref(), Some("runtime"));
    assert_eq!(c.builds[1].args, [("V".to_string(), "2".to_string())]);
    let top = convert("ZImagefile", b"version: '1'\nbuild: ./base\n").unwrap();
    assert_eq!(top.dockerfile, "FROM zimagefile/build-1\n");

    assert_eq!(
        where_what("version: '1'\nbase: a\nbuild: b\n"),
        "3:1: `base` and `build` together: a ZImagefile needs exactly one of runtime, base, build, stages"
    );
    assert_eq!(
        where_what("version: '1'\nstages:\n  a:\n    base: x\n    build: y\n"),
        "5:5: stage 'a': `base` and `build` together: a stage is built on one of them"
    );
    assert_eq!(
        where_what("version: '1'\nbuild: {file: F}\n"),
        "2:8: `build` needs `context:` (a directory)"
    );
    assert!(where_what("version: '1'\nbuild: {context: d, tag: x}\n").contains("tag"));
}

#[test]
fn version_is_required_and_must_be_1() {
    assert_eq!(where_what("base: a\n"), "1:1: missing `version`");
    assert_eq!(
        where_what("version: '2'\nbase: a\n"),
        "1:10: unsupported version \"2\""
    );
}

#[test]
fn step_keys_must_go_with_their_action() {
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - copy: a\n    to: /b\n    cache: /c\n"),
        "6:5: step 1: `cache` does not go with `copy`"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - workdir: /a\n    env: {A: b}\n"),
        "5:5: step 1: a step needs exactly one of run, copy, add, env, workdir, user"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - copy: a\n"),
        "4:5: step 1: `copy` needs `to:`"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - run: x\n    to: /b\n"),
        "5:5: step 1: `to` does not go with `run`"
    );
}

#[test]
fn values_are_checked_where_they_are_written() {
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - copy: a\n    to: /b\n    chmod: 9z\n"),
        "6:12: step 1: invalid chmod parameter: 9z. it should be octal string and between 0 and 07777, or a symbolic mode like u+x"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nexpose: [80, http]\n"),
        "3:14: invalid port \"http\" in EXPOSE http: a port is a number from 0 to 65535"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nhealthcheck:\n  test: x\n  interval: 3zz\n"),
        "5:13: invalid duration \"3zz\": unknown unit \"zz\" (use ns, us, ms, s, m or h)"
    );
    assert_eq!(
        where_what(
            "version: '1'\nbase: a\nsteps:\n  - run: x\n    cache: [{target: /c, sharing: all}]\n"
        ),
        "5:35: step 1: unknown cache sharing \"all\""
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - run: x\n    env: {1A: b}\n"),
        "5:10: step 1: \"1A\" cannot be a shell variable (letters, digits and _, not first a digit)"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - copy: a\n    to: /b\n    owner: a b\n"),
        "6:12: step 1: `owner` must be one word, without blanks"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps:\n  - run: [a, \"b\\nc\"]\n"),
        "4:14: step 1: a command of a `run` list must be one line"
    );
    assert_eq!(
        where_what("version: '1'\nstages:\n  App:\n    base: a\n"),
        "3:3: invalid stage name \"App\": a lower-case letter, then lower-case letters, digits, '-', '_' or '.'"
    );
    assert_eq!(
        where_what("version: '1'\nbase: a\nsteps: {run: x}\n"),
        "3:8: `steps` must be a list, found a mapping"
    );
}

#[test]
fn errors_the_dockerfile_finds_point_at_the_step() {
    // A stop signal with a variable is checked once expanded; a bad
    // literal one is checked here, and the Dockerfile check backs it up.
    assert_eq!(
        where_what("version: '1'\nstages:\n  s:\n    base: a\n    stopsignal: SIGNOPE\n"),
        "5:17: stage 's': invalid signal: SIGNOPE"
    );
}

#[test]
fn yaml_errors_and_duplicate_keys_are_positioned() {
    let e = error("version: '1'\nbase: a\nbase: b\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("duplicated key"), "{}", e.message);
    let e = error("version: '1'\nbase: a\nsteps: [\n  - run: x\n");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    assert!(e.line >= 3, "{e}");
    assert_eq!(
        where_what("version: '1'\nbase: a\nlabels:\n  1: a\n  '1': b\n"),
        "5:3: duplicated key \"1\""
    );
    assert_eq!(
        where_what("[a, b]\n"),
        "1:1: the ZImagefile must be a mapping, found a list"
    );
}

#[test]
fn locate_moves_build_errors_to_the_yaml() {
    let yaml = "version: '1'\nstages:\n  app:\n    base: busybox\n    steps:\n      - run: 'true'\n      - run: exit 3\n";
    let c = convert("ZImagefile", yaml.as_bytes()).unwrap();
    let line = c
        .dockerfile
        .lines()
        .position(|l| l == "RUN exit 3")
        .unwrap()
        + 1;
    let e = kiln_frontend::Error::new(ErrorKind::Semantic, "process exited with 3")
        .in_file("ZImagefile (as a Dockerfile)")
        .at(line, 1);
    let e = c.locate(e);
    assert_eq!(
        e.to_string(),
        "ZImagefile:7:9: stage 'app', step 2: process exited with 3\n   |\n 7 |       - run: exit 3\n   |         ^"
    );
}

#[test]
fn zimagefile_names() {
    assert!(is_zimagefile(Path::new("ctx/ZImagefile")));
    assert!(is_zimagefile(Path::new("app.yaml")));
    assert!(is_zimagefile(Path::new("x/app.yml")));
    assert!(!is_zimagefile(Path::new("Dockerfile")));
    assert!(!is_zimagefile(Path::new("zimagefile.txt")));
}

/// The example of docs/zimagefile.md converts to the Dockerfile shown there.
#[test]
fn the_documented_example_converts_as_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/zimagefile.md"
    ))
    .unwrap();
    let block = |fence: &str| {
        let start = doc.find(fence).unwrap() + fence.len();
        doc[start..][..doc[start..].find("```").unwrap()].to_string()
    };
    assert_eq!(dockerfile(&block("```yaml\n")), block("```dockerfile\n"));
}

/// Mutated ZImagefiles either convert or fail with an error; none panics,
/// and each translation parses as a Dockerfile. Deterministic (xorshift),
/// so a failure reproduces.
#[test]
fn mutated_zimagefiles_never_panic() {
    const TOKENS: &[&str] = &[
        "\n",
        "  ",
        "- ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        "'",
        "\"",
        "\\",
        "$",
        "${A}",
        "<<EOF\n",
        "&a ",
        "*a",
        "!!str ",
        "---\n",
        "|\n",
        "~",
        "run: ",
        "env: {A: b}",
        "cache: /c",
        "copy: a\n    to: b",
        "\t",
        "#",
        "é",
        "\0",
        "os: windows\n",
    ];
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/zimagefile.md"
    ))
    .unwrap();
    let start = seed.find("```yaml\n").unwrap() + 8;
    let seed = &seed[start..][..seed[start..].find("```").unwrap()];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    };
    for _ in 0..3000 {
        let mut text: Vec<char> = seed.chars().collect();
        for _ in 0..1 + next(4) {
            let at = next(text.len() + 1);
            match next(3) {
                0 => {
                    let end = (at + next(12)).min(text.len());
                    text.drain(at..end);
                }
                _ => {
                    let token = TOKENS[next(TOKENS.len())];
                    text.splice(at..at, token.chars());
                }
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(c) = convert("ZImagefile", text.as_bytes()) {
            kiln_frontend::parse("ZImagefile", c.dockerfile.as_bytes())
                .unwrap_or_else(|e| panic!("{text}\n---\n{}\n{e}", c.dockerfile));
        }
    }
}
