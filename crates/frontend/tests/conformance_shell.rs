//! BuildKit's own expansion tables, run against `kiln_frontend::shell`.
//!
//! The data is read directly from the shared conformance folder (see its
//! README, sections 4 to 6). Every table runs all its cases, prints
//! "<table>: N passed, M failed" with the failing inputs, and fails if any
//! case failed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use kiln_frontend::shell::{pattern, CaseInsensitive, Env, Lexer};
use serde_json::Value;

/// The BuildKit conformance data, relative to this crate's manifest.
const DATA: &str = "../../../shared/conformance/buildkit";

fn read(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(DATA)
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "conformance data {} is missing or unreadable ({e}); it must exist, these tests never skip",
            path.display()
        )
    })
}

fn expansion_json() -> Value {
    serde_json::from_str(&read("extracted/expansion.json")).expect("expansion.json is valid JSON")
}

/// Lines split on `\n`, each with one trailing `\r` removed, as Go's line
/// scanner yields them.
fn lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// Collects the outcome of every case of one table.
struct Table {
    name: &'static str,
    passed: usize,
    failures: Vec<String>,
}

impl Table {
    fn new(name: &'static str) -> Table {
        Table {
            name,
            passed: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, describe: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(describe());
        }
    }

    fn finish(self) -> usize {
        println!(
            "{}: {} passed, {} failed",
            self.name,
            self.passed,
            self.failures.len()
        );
        for failure in &self.failures {
            println!("  FAIL {failure}");
        }
        assert!(
            self.failures.is_empty(),
            "{}: {} case(s) failed:\n{}",
            self.name,
            self.failures.len(),
            self.failures.join("\n")
        );
        self.passed
    }
}

fn env_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .expect("env is an object")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("env values are strings").to_string(),
            )
        })
        .collect()
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("a list of names")
        .iter()
        .map(|v| v.as_str().expect("names are strings").to_string())
        .collect()
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case {case} has no string field {key:?}"))
}

/// One `envVarTest` case: platform, input, expected (`None` = error).
struct EnvVarCase {
    platform: char,
    input: String,
    expected: Option<String>,
}

fn env_var_cases() -> Vec<EnvVarCase> {
    let text = read("shell/envVarTest");
    let mut cases = Vec::new();
    for line in lines(&text) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "malformed envVarTest line {line:?}");
        let platform = match fields[0] {
            "A" => 'A',
            "U" => 'U',
            "W" => 'W',
            other => panic!("unknown platform {other:?} in envVarTest line {line:?}"),
        };
        cases.push(EnvVarCase {
            platform,
            input: fields[1].to_string(),
            expected: (fields[2] != "error").then(|| fields[2].to_string()),
        });
    }
    cases
}

fn run_env_var_pass(name: &'static str, platform: char, env: &dyn Env) -> usize {
    let lexer = Lexer::new('\\');
    let mut table = Table::new(name);
    for case in env_var_cases()
        .iter()
        .filter(|c| c.platform == 'A' || c.platform == platform)
    {
        let got = lexer.process_word(&case.input, env);
        let ok = match (&case.expected, &got) {
            (Some(want), Ok(have)) => want == have,
            (None, Err(_)) => true,
            _ => false,
        };
        table.check(ok, || {
            format!(
                "{:?}: expected {}, got {:?}",
                case.input,
                case.expected
                    .as_deref()
                    .map_or("an error".to_string(), |e| format!("{e:?}")),
                got.map_err(|e| e.to_string())
            )
        });
    }
    table.finish()
}

fn env_var_test_env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn env_var_test_counts() {
    let cases = env_var_cases();
    let count = |p: char| cases.iter().filter(|c| c.platform == p).count();
    assert_eq!(
        (cases.len(), count('A'), count('U'), count('W')),
        (230, 226, 2, 2)
    );
}

#[test]
fn env_var_test_unix() {
    let passed = run_env_var_pass(
        "envVarTest (unix, case-sensitive)",
        'U',
        &env_var_test_env(),
    );
    assert_eq!(passed, 228);
}

#[test]
fn env_var_test_windows() {
    let env = CaseInsensitive(env_var_test_env());
    let passed = run_env_var_pass("envVarTest (windows, case-insensitive)", 'W', &env);
    assert_eq!(passed, 228);
}

#[test]
fn words_test() {
    let text = read("shell/wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut table = Table::new("wordsTest");
    for line in lines(&text) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            // Only leading spaces go: trailing spaces are part of the value.
            let (name, value) = rest
                .trim_start_matches(' ')
                .split_once('=')
                .unwrap_or_else(|| panic!("malformed ENV line {line:?}"));
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 2, "malformed wordsTest line {line:?}");
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        let got = lexer.process_words(input, &env);
        let ok = match (expected.as_slice(), &got) {
            (["error"], Err(_)) => true,
            (_, Ok(words)) => words == &expected,
            _ => false,
        };
        table.check(ok, || {
            format!("{input:?}: expected {expected:?}, got {got:?}")
        });
    }
    assert_eq!(table.finish(), 24);
}

#[test]
fn expansion_process_word_with_matches() {
    let data = expansion_json();
    let lexer = Lexer::new('\\');
    let mut table = Table::new("expansion.json process_word_with_matches");
    for case in data["process_word_with_matches"]
        .as_array()
        .expect("a list")
    {
        let input = str_field(case, "input");
        let env = env_of(&case["env"]);
        let got = lexer.process_word_with_matches(input, &env);
        if case["not_guaranteed"].as_bool() == Some(true) {
            // Upstream only requires that odd input does not crash.
            table.check(true, String::new);
            continue;
        }
        let ok = if case["error"].as_bool() == Some(true) {
            got.is_err()
        } else {
            match &got {
                Ok(e) => {
                    e.value == str_field(case, "expected")
                        && e.matched == string_set(&case["matched"])
                        && e.unmatched == string_set(&case["unmatched"])
                }
                Err(_) => false,
            }
        };
        table.check(ok, || {
            format!("{input:?} with {env:?}: case {case}, got {got:?}")
        });
    }
    assert_eq!(table.finish(), 47);
}

#[test]
fn expansion_platform_release_name() {
    let data = expansion_json();
    let lexer = Lexer::new('\\');
    let mut table = Table::new("expansion.json platform_release_name");
    for case in data["platform_release_name"].as_array().expect("a list") {
        let input = str_field(case, "input");
        let env = env_of(&case["env"]);
        let got = lexer.process_word(input, &env);
        let ok = got.as_deref() == Ok(str_field(case, "expected"));
        table.check(ok, || format!("{input:?} with {env:?}: got {got:?}"));
    }
    assert_eq!(table.finish(), 3);
}

#[test]
fn expansion_mandatory_vars() {
    let data = expansion_json();
    let lexer = Lexer::new('\\');
    let mut table = Table::new("expansion.json mandatory_vars");
    for case in data["mandatory_vars"].as_array().expect("a list") {
        let input = str_field(case, "input");
        let env = env_of(&case["env"]);
        let got = lexer.process_word(input, &env);
        let ok = match (case["error_contains"].as_str(), &got) {
            (Some(needle), Err(e)) => e.to_string().contains(needle),
            (None, Ok(value)) => value == str_field(case, "expected"),
            _ => false,
        };
        table.check(ok, || {
            format!("{input:?} with {env:?}: case {case}, got {got:?}")
        });
    }
    assert_eq!(table.finish(), 6);
}

/// kiln matches patterns directly instead of translating them to regular
/// expressions, so only the accept/reject decision is compared: the
/// `invalid` patterns must be rejected by every operation, the `valid` ones
/// accepted.
#[test]
fn expansion_pattern_validity() {
    let data = expansion_json();
    let mut table = Table::new("expansion.json pattern_to_regex (validity)");
    let patterns = &data["pattern_to_regex"];
    let attempts = |p: &str| {
        [
            pattern::trim_prefix("value", p, false).is_ok(),
            pattern::trim_prefix("value", p, true).is_ok(),
            pattern::trim_suffix("value", p, false).is_ok(),
            pattern::replace_first("value", p, "x").is_ok(),
            pattern::replace_all("value", p, "x").is_ok(),
        ]
    };
    for p in patterns["invalid"].as_array().expect("a list") {
        let p = p.as_str().expect("patterns are strings");
        let accepted = attempts(p);
        table.check(accepted.iter().all(|ok| !ok), || {
            format!("{p:?} must be rejected; accepted by [prefix, prefix-longest, suffix, replace, replace-all] = {accepted:?}")
        });
    }
    for p in patterns["valid"].as_object().expect("a map").keys() {
        let accepted = attempts(p);
        table.check(accepted.iter().all(|ok| *ok), || {
            format!("{p:?} must be accepted; got {accepted:?}")
        });
    }
    assert_eq!(table.finish(), 7);
}
