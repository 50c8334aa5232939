//! `kiln check` and `kiln parse`, run as a user runs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kiln(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_the_resolved_example_with_unused_stages_pruned() {
    let ctx = repo().join("examples/hello");
    let out = kiln(
        &["check", "--platform", "linux/arm64", ctx.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
stage 0 \"build\" from scratch (linux/arm64)
  [1/2] WORKDIR /src
  [2/2] COPY hello.sh greeting.txt ./
stage 2 from scratch (linux/arm64)
  [1/8] LABEL org.opencontainers.image.title=\"kiln hello\"
  [2/8] ENV APP_HOME=/app
  [3/8] WORKDIR /app
  [4/8] COPY --from=build --chmod=0755 /src/hello.sh /src/greeting.txt ./
  [5/8] USER 1000:1000
  [6/8] EXPOSE 8080/tcp
  [7/8] ENTRYPOINT [\"/app/hello.sh\"]
  [8/8] CMD [\"world\"]
"
    );
}

#[test]
fn check_applies_build_args_and_target() {
    let dockerfile =
        "ARG BASE=alpine\nFROM $BASE AS one\nARG V=default\nENV X=$V\nFROM one AS two\nLABEL x=y\n";
    let out = kiln(
        &[
            "check",
            "-f",
            "-",
            "--build-arg",
            "BASE=debian:12",
            "--build-arg",
            "V=given",
            "--target",
            "one",
            "--platform",
            "linux/amd64",
            ".",
        ],
        Some(dockerfile),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "stage 0 \"one\" from image debian:12 (linux/amd64)\n  [1/2] ARG V=given\n  [2/2] ENV X=given\n"
    );
}

#[test]
fn unknown_flag_names_file_line_column_and_suggests_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox\nRUN --mout=type=cache,target=/root/.cache true\n",
    )
    .unwrap();
    let out = kiln(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let file = dir.path().join("Dockerfile");
    assert_eq!(
        err,
        format!(
            "error: {}:2:5: unknown flag --mout for RUN\n   |\n 2 | RUN --mout=type=cache,target=/root/.cache true\n   |     ^\n  help: did you mean --mount?\n",
            file.display()
        )
    );
}

#[test]
fn unknown_instruction_and_unknown_target_are_errors() {
    let out = kiln(&["check", "-f", "-", "."], Some("FROM a\nRUNN echo\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("<stdin>:2:1: unknown instruction: RUNN"),
        "{err}"
    );
    assert!(err.contains("did you mean RUN?"), "{err}");

    let out = kiln(
        &["check", "-f", "-", "--target", "biuld", "."],
        Some("FROM a AS build\nFROM b\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("target stage \"biuld\" could not be found"),
        "{err}"
    );
    assert!(err.contains("build"), "{err}");
}

#[test]
fn missing_dockerfile_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: cannot read Dockerfile {}: No such file or directory",
            dir.path().join("Dockerfile").display()
        )),
        "{err}"
    );
}

#[test]
fn bad_dockerignore_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "ok\n[unterminated\n").unwrap();
    let out = kiln(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(".dockerignore:2"), "{err}");
}

#[test]
fn parse_dump_matches_buildkit_byte_for_byte() {
    let case = repo().join("../shared/conformance/buildkit/parser/testfiles/health");
    assert!(
        case.is_dir(),
        "conformance data missing at {}",
        case.display()
    );
    let out = kiln(
        &["parse", "--dump", case.join("Dockerfile").to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(case.join("result")).unwrap());
}

#[test]
fn parse_error_exits_non_zero_with_location() {
    let out = kiln(
        &["parse", "--dump", "-"],
        Some("FROM a\nCMD [ \"echo\", [ \"nested\" ] ]\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("<stdin>:2") && err.contains("arrays must be comprised of strings only"),
        "{err}"
    );
}

#[test]
fn foreign_syntax_directive_is_reported_and_ignored() {
    let out = kiln(
        &["check", "-f", "-", "."],
        Some("# syntax=example.com/custom/frontend:2\nFROM scratch\nLABEL a=b\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "warning: <stdin>:1: # syntax=example.com/custom/frontend:2 is ignored: kiln reads Dockerfiles with its own BuildKit-compatible front end and cannot run front-end images\n"
    );
    let out = kiln(
        &["check", "-f", "-", "."],
        Some("# syntax=docker/dockerfile:1\nFROM scratch\n"),
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}

/// Runs `kiln ARGS` with its address space capped at `mib` MiB, so a
/// front end that needs more fails instead of swapping the machine.
fn kiln_limited(mib: u64, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn check_resolves_twenty_thousand_env_lines_in_bounded_memory() {
    // Each step used to copy the whole environment: 5,000 ENV lines took
    // 1.4 GB and 20,000 ran out of memory.
    let n = 20_000;
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 1..=n {
        dockerfile.push_str(&format!("ENV V{i}=value{i}\n"));
    }
    let ctx = tempfile::tempdir().unwrap();
    let out = kiln_limited(
        512,
        &["check", "-f", "-", ctx.path().to_str().unwrap()],
        &dockerfile,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), n + 1);
    assert!(stdout.ends_with(&format!("  [{n}/{n}] ENV V{n}=value{n}\n")));
}

#[test]
fn check_refuses_a_self_doubling_arg_with_its_location() {
    let mut dockerfile = String::from("FROM scratch\nARG a=x\n");
    for _ in 0..30 {
        dockerfile.push_str("ARG a=$a$a\n");
    }
    let ctx = tempfile::tempdir().unwrap();
    let out = kiln_limited(
        512,
        &["check", "-f", "-", ctx.path().to_str().unwrap()],
        &dockerfile,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>:23:7: failed to process \"$a$a\": expanding $a makes the word longer than 1 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains(" 23 | ARG a=$a$a"), "{stderr}");
}

#[test]
fn call_check_runs_buildkits_checks_without_building() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("Dockerfile"),
        "FROM busybox as Builder\nWORKDIR app\nCMD echo hi\n",
    )
    .unwrap();
    let ctx = d.to_str().unwrap();
    for flags in [&["--call", "check"][..], &["--check"][..]] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(ctx);
        let out = kiln(&args, None);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("Check complete, 4 warnings have been found!\n"),
            "{stdout}"
        );
        for block in [
            "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n'as' and 'FROM' keywords' casing do not match\n",
            "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\nStage name 'Builder' should be lowercase\n",
            "WARNING: WorkdirRelativePath - https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/\nRelative workdir \"app\" can have unexpected results if the base image changes\n",
            "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\nJSON arguments recommended for CMD to prevent unintended behavior related to OS signals\n",
            "   3 | >>> CMD echo hi\n",
        ] {
            assert!(stdout.contains(block), "{block}\n---\n{stdout}");
        }
    }
    // Nothing was pulled or stored: busybox is not even reachable here.
    assert!(!d.join("store").exists());

    // A clean file: exit 0.
    std::fs::write(
        d.join("Dockerfile"),
        "FROM busybox AS builder\nCMD [\"sh\"]\n",
    )
    .unwrap();
    let out = kiln(&["build", "--call", "check", ctx], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "Check complete, no warnings found.\n");
    let out = kiln(&["build", "--call", "outline", ctx], None);
    assert!(text(&out.stderr).contains("NotSupported: --call outline"));

    // kiln check shows them as warnings; `# check=error=true` fails it and
    // the build, and `skip=` turns rules off.
    std::fs::write(
        d.join("Dockerfile"),
        "# check=error=true;skip=JSONArgsRecommended\nFROM scratch\nCMD echo hi\nWORKDIR rel\n",
    )
    .unwrap();
    let out = kiln(&["check", ctx], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("WorkdirRelativePath"), "{err}");
    assert!(!err.contains("JSONArgsRecommended"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", ctx])
        .env("KILN_ROOT", d.join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("`# check=error=true`"),
        "{}",
        text(&out.stderr)
    );
}
