//! Dockerfiles built to exhaust memory, time or stack: they resolve in
//! bounded resources or fail at once with a located error.

use kiln_frontend::shell::MAX_WORD_LEN;
use kiln_frontend::stages::{resolve, BuildPlan, ResolveOptions, MAX_EXPANDED_TOTAL};
use kiln_frontend::{parse, Error};

fn resolve_src(src: &str) -> Result<BuildPlan, Error> {
    let ast = parse("Dockerfile", src.as_bytes()).expect("parses");
    resolve(&ast, &ResolveOptions::default())
}

#[test]
fn twenty_thousand_env_lines_resolve_with_every_step_seeing_its_env() {
    // Each step used to hold its own copy of the environment: 20,000 ENV
    // lines needed about 200 million copied variables and ran out of memory.
    let n = 20_000;
    let mut src = String::from("FROM scratch\n");
    for i in 0..n {
        src.push_str(&format!("ENV V{i}=value{i}\n"));
    }
    src.push_str("RUN true\n");
    let plan = resolve_src(&src).unwrap_or_else(|e| panic!("{e}"));
    let steps = &plan.stages[0].steps;
    assert_eq!(steps.len(), n + 1);
    let last = steps[n].env.to_vec();
    assert_eq!(last.len(), n + 1, "PATH and every V");
    assert_eq!(last[n], (format!("V{}", n - 1), format!("value{}", n - 1)));
    assert_eq!(steps[1].env.get("V0"), Some("value0"));
    assert_eq!(steps[1].env.get("V1"), None);
}

#[test]
fn redefining_a_variable_keeps_its_place_and_takes_the_new_value() {
    let plan = resolve_src("FROM scratch\nENV A=1 B=2\nENV A=3\nRUN true\n").unwrap();
    let run = &plan.stages[0].steps[2];
    let names: Vec<String> = run.env.to_vec().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["PATH", "A", "B"]);
    assert_eq!(run.env.get("A"), Some("3"));
    assert_eq!(plan.stages[0].steps[1].env.get("A"), Some("1"));
}

#[test]
fn a_self_doubling_arg_fails_at_once_naming_file_line_and_variable() {
    // Thirty doublings ask for 8 GiB; the word cap stops the 21st.
    let mut src = String::from("FROM scratch\nARG a=x\n");
    for _ in 0..30 {
        src.push_str("ARG a=$a$a\n");
    }
    let e = resolve_src(&src).expect_err("must fail");
    let shown = e.to_string();
    assert!(
        shown.contains("Dockerfile:23:7") && shown.contains("expanding $a"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("longer than {} MiB", MAX_WORD_LEN >> 20)),
        "{shown}"
    );
    assert!(shown.contains("ARG a=$a$a"), "{shown}");
}

#[test]
fn a_squaring_replacement_fails_before_building_the_result() {
    // `${a//?/$a}` replaces each of 4,000 characters with all 4,000: 16 MB.
    let src = format!(
        "FROM scratch\nENV a={}\nENV b=${{a//?/$a}}\n",
        "x".repeat(4000)
    );
    let e = resolve_src(&src).expect_err("must fail");
    let shown = e.to_string();
    assert!(
        shown.contains("Dockerfile:3:7") && shown.contains("expanding $a"),
        "{shown}"
    );
}

#[test]
fn many_lines_repeating_a_large_variable_hit_the_total_cap() {
    // Each line stays under the word cap, but every step keeps its value:
    // 200 lines of 512 KiB would hold 100 MiB.
    let mut src = String::from("FROM scratch\nARG a=x\n");
    for _ in 0..19 {
        src.push_str("ARG a=$a$a\n");
    }
    for i in 0..200 {
        src.push_str(&format!("ENV v{i}=$a\n"));
    }
    let e = resolve_src(&src).expect_err("must fail");
    let shown = e.to_string();
    let line: usize = shown
        .split("Dockerfile:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line in {shown}"));
    // The ARG lines pay about 1 MiB, so the cap is crossed after about
    // (64 MiB - 1 MiB) / 512 KiB ENV lines.
    let first_env = 22;
    let expected = first_env + (MAX_EXPANDED_TOTAL - (1 << 20)) / (512 << 10);
    assert!(line.abs_diff(expected) <= 1, "{shown}");
    assert!(shown.contains("add up to more than"), "{shown}");
}

#[test]
fn deeply_nested_defaults_fail_instead_of_overflowing_the_stack() {
    let depth = 10_000; // the deepest a 64 KiB line holds
    let word = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let e = resolve_src(&format!("FROM scratch\nENV b={word}\n")).expect_err("must fail");
    assert!(e.to_string().contains("nested too deeply"), "{e}");
}

#[test]
fn thousands_of_chained_stages_resolve() {
    let n = 5_000;
    let mut src = String::from("FROM scratch AS s0\n");
    for i in 1..=n {
        src.push_str(&format!("FROM s{} AS s{i}\nENV V{i}=x\n", i - 1));
    }
    let plan = resolve_src(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.stages.len(), n + 1);
    let last = plan.stages[n].steps[0].env.to_vec();
    assert_eq!(last.len(), n, "PATH and V1..V{{n-1}}");
}

#[test]
fn a_copy_from_chain_through_thousands_of_stages_does_not_overflow_the_stack() {
    // Stage i copies from stage i+1: the cycle check walked this chain by
    // recursion, one stack frame per stage.
    let n = 50_000;
    let mut src = String::from("FROM scratch AS s0\n");
    for i in 1..=n {
        let from = if i < n { i + 1 } else { 0 };
        src.push_str(&format!("FROM scratch AS s{i}\nCOPY --from={from} / /\n"));
    }
    let plan = resolve_src(&src).unwrap_or_else(|e| panic!("{e}"));
    let kept: Vec<usize> = plan.stages.iter().map(|s| s.index).collect();
    assert_eq!(kept, [0, n]);
}

#[test]
fn matching_a_huge_pattern_against_a_huge_value_fails_at_once() {
    // A 64 KiB literal pattern tried at each of 64 Ki positions kept the
    // matcher busy for minutes.
    let mut src = String::from("FROM scratch\nARG a=x\n");
    for _ in 0..16 {
        src.push_str("ARG a=$a$a\n");
    }
    src.push_str("ENV c=${a/$a/y}\n");
    let e = resolve_src(&src).expect_err("must fail");
    let shown = e.to_string();
    assert!(
        shown.contains("Dockerfile:19:7") && shown.contains("against $a is too costly"),
        "{shown}"
    );
    // An ordinary pattern on an ordinary value is untouched.
    let plan = resolve_src("FROM scratch\nENV p=/usr/local/bin:/usr/bin\nENV q=${p//:/-}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.stages[0].steps[1].command.to_string(),
        "ENV q=/usr/local/bin-/usr/bin"
    );
}

#[test]
fn thousands_of_nested_onbuilds_are_an_error_not_a_stack_overflow() {
    let src = format!("FROM scratch\n{}RUN x\n", "ONBUILD ".repeat(5000));
    let e = parse("Dockerfile", src.as_bytes()).expect_err("must fail");
    assert!(
        e.to_string()
            .contains("Dockerfile:2:9: ONBUILD nested more than 16 times"),
        "{e}"
    );
    // BuildKit's parser takes a few levels; the instruction layer then
    // explains that ONBUILD cannot chain.
    let ast = parse("Dockerfile", b"FROM scratch\nONBUILD ONBUILD RUN x\n").expect("parses");
    assert_eq!(
        ast.dump(),
        "(from \"scratch\")\n(onbuild (onbuild (run \"x\")))\n"
    );
}
