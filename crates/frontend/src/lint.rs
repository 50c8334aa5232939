//! BuildKit's Dockerfile checks (`docker build --call check`): the rules
//! under BuildKit's names, with its messages and documentation links, run
//! over the parsed file. `# check=skip=Rule,Other` (or `skip=all`) turns
//! rules off and `# check=error=true` makes findings fail a build, as
//! BuildKit's `check` directive does.

use crate::ast::{Args, Ast, Node};
use std::collections::{BTreeMap, BTreeSet};

/// One rule broken at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// BuildKit's name of the rule (`StageNameCasing`).
    pub rule: &'static str,
    /// The 1-based line of the instruction.
    pub line: usize,
    /// What is wrong, as BuildKit says it.
    pub message: String,
}

impl Finding {
    /// The rule's page in Docker's documentation.
    pub fn url(&self) -> String {
        let mut kebab = String::new();
        for (i, c) in self.rule.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            } else {
                kebab.push(c);
            }
        }
        // BuildKit's own spelling of this one's page.
        let kebab = kebab.replace("j-s-o-n", "json");
        format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
    }
}

/// What the `# check=` directive says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckDirective {
    /// Rules not to run (`all` for every one).
    pub skip: BTreeSet<String>,
    /// Findings fail the build.
    pub error: bool,
}

impl CheckDirective {
    /// Reads `# check=skip=A,B;error=true` from the parsed directives.
    pub fn of(ast: &Ast) -> CheckDirective {
        let mut out = CheckDirective::default();
        for (name, value) in &ast.directives {
            if name != "check" {
                continue;
            }
            for part in value.split(';') {
                match part.trim().split_once('=') {
                    Some(("skip", rules)) => out.skip.extend(
                        rules
                            .split(',')
                            .map(|r| r.trim().to_string())
                            .filter(|r| !r.is_empty()),
                    ),
                    Some(("error", v)) => out.error = v.trim().eq_ignore_ascii_case("true"),
                    _ => {}
                }
            }
        }
        out
    }
}

/// The arguments BuildKit defines without an ARG.
const PREDEFINED_ARGS: [&str; 16] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "BUILDKIT_SYNTAX",
    "BUILDKIT_MULTI_PLATFORM",
];

/// Every rule kiln checks, by BuildKit's name.
pub const RULES: [&str; 14] = [
    "StageNameCasing",
    "FromAsCasing",
    "DuplicateStageName",
    "ReservedStageName",
    "JSONArgsRecommended",
    "MaintainerDeprecated",
    "ConsistentInstructionCasing",
    "UndefinedArgInFrom",
    "WorkdirRelativePath",
    "LegacyKeyValueFormat",
    "SecretsUsedInArgOrEnv",
    "RedundantTargetPlatform",
    "FromPlatformFlagConstDisallowed",
    "NoEmptyContinuation",
];

/// Runs every rule the file's `# check=skip=` leaves on; findings in line
/// order.
pub fn check(ast: &Ast) -> Vec<Finding> {
    let directive = CheckDirective::of(ast);
    let mut out = Vec::new();
    let mut add = |rule: &'static str, line: usize, message: String| {
        out.push(Finding {
            rule,
            line,
            message,
        })
    };
    casing(ast, &mut add);
    let mut global_args: BTreeSet<String> = BTreeSet::new();
    let mut seen_from = false;
    let mut stages: BTreeMap<String, usize> = BTreeMap::new();
    let mut absolute_workdir = false;
    for node in &ast.children {
        let keyword = node.keyword.to_ascii_uppercase();
        let values = values(node);
        match keyword.as_str() {
            "ARG" => {
                for v in &values {
                    let name = v.split('=').next().unwrap_or_default();
                    if !seen_from {
                        global_args.insert(name.to_string());
                    }
                    secret(&mut add, node, "ARG", name);
                }
            }
            "FROM" => {
                seen_from = true;
                absolute_workdir = false;
                from(&mut add, node, &values, &global_args, &mut stages);
            }
            "CMD" | "ENTRYPOINT" if !node.json_form && !values.is_empty() => add(
                "JSONArgsRecommended",
                node.start_line,
                format!(
                    "JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals"
                ),
            ),
            "MAINTAINER" => add(
                "MaintainerDeprecated",
                node.start_line,
                "Maintainer instruction is deprecated in favor of using label".into(),
            ),
            "WORKDIR" => {
                let path = values.first().map(String::as_str).unwrap_or_default();
                let absolute =
                    path.starts_with('/') || path.starts_with('$') || is_windows_absolute(path);
                if !absolute && !absolute_workdir {
                    add(
                        "WorkdirRelativePath",
                        node.start_line,
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base image changes"
                        ),
                    );
                }
                absolute_workdir |= absolute;
            }
            "ENV" | "LABEL" => {
                // The parser keeps `key value` as one pair with no `=`
                // in the original text after the key.
                if legacy_key_value(node) {
                    add(
                        "LegacyKeyValueFormat",
                        node.start_line,
                        format!(
                            "\"{keyword} key=value\" should be used instead of legacy \"{keyword} key value\" format"
                        ),
                    );
                }
                if keyword == "ENV" {
                    for pair in values.chunks(2) {
                        secret(&mut add, node, "ENV", &pair[0]);
                    }
                }
            }
            _ => {}
        }
    }
    for w in &ast.warnings {
        if w.message
            .to_ascii_lowercase()
            .contains("empty continuation")
        {
            add(
                "NoEmptyContinuation",
                w.line,
                "Empty continuation line".into(),
            );
        }
    }
    out.retain(|f| !directive.skip.contains(f.rule) && !directive.skip.contains("all"));
    out.sort_by_key(|f| f.line);
    out
}

fn values(node: &Node) -> Vec<String> {
    match &node.args {
        Args::Values(v) => v.clone(),
        Args::Nested(_) => Vec::new(),
    }
}

fn is_windows_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' || path.starts_with('\\')
}

/// ConsistentInstructionCasing: keywords in one case, that of most.
fn casing(ast: &Ast, add: &mut impl FnMut(&'static str, usize, String)) {
    let (mut upper, mut lower) = (0, 0);
    for n in &ast.children {
        if n.keyword == n.keyword.to_ascii_uppercase() {
            upper += 1;
        } else if n.keyword == n.keyword.to_ascii_lowercase() {
            lower += 1;
        }
    }
    let majority_upper = upper >= lower;
    for n in &ast.children {
        let k = &n.keyword;
        let is_upper = *k == k.to_ascii_uppercase();
        let is_lower = *k == k.to_ascii_lowercase();
        if !is_upper && !is_lower {
            add(
                "ConsistentInstructionCasing",
                n.start_line,
                format!("Command '{k}' should be consistently cased"),
            );
        } else if is_upper != majority_upper {
            add(
                "ConsistentInstructionCasing",
                n.start_line,
                format!(
                    "Command '{k}' should match the case of the command majority ({})",
                    if majority_upper {
                        "uppercase"
                    } else {
                        "lowercase"
                    }
                ),
            );
        }
    }
}

fn from(
    add: &mut impl FnMut(&'static str, usize, String),
    node: &Node,
    values: &[String],
    global_args: &BTreeSet<String>,
    stages: &mut BTreeMap<String, usize>,
) {
    let line = node.start_line;
    if let [_, as_kw, name] = values {
        let from_upper = node.keyword == node.keyword.to_ascii_uppercase();
        let from_lower = node.keyword == node.keyword.to_ascii_lowercase();
        if (from_upper && *as_kw != as_kw.to_ascii_uppercase())
            || (from_lower && *as_kw != as_kw.to_ascii_lowercase())
        {
            add(
                "FromAsCasing",
                line,
                format!(
                    "'{as_kw}' and '{}' keywords' casing do not match",
                    node.keyword
                ),
            );
        }
        if *name != name.to_ascii_lowercase() {
            add(
                "StageNameCasing",
                line,
                format!("Stage name '{name}' should be lowercase"),
            );
        }
        let lower = name.to_ascii_lowercase();
        if matches!(lower.as_str(), "scratch" | "context") {
            add(
                "ReservedStageName",
                line,
                format!("'{name}' is reserved and should not be used as a stage name"),
            );
        }
        if stages.insert(lower, line).is_some() {
            add(
                "DuplicateStageName",
                line,
                format!("Duplicate stage name '{name}', stage names should be unique"),
            );
        }
    }
    if let Some(image) = values.first() {
        for var in variables(image) {
            if !global_args.contains(&var) && !PREDEFINED_ARGS.contains(&var.as_str()) {
                add(
                    "UndefinedArgInFrom",
                    line,
                    format!("FROM argument '{var}' is not declared"),
                );
            }
        }
    }
    for flag in &node.flags {
        let Some(platform) = flag.strip_prefix("--platform=") else {
            continue;
        };
        if platform == "$TARGETPLATFORM" || platform == "${TARGETPLATFORM}" {
            add(
                "RedundantTargetPlatform",
                line,
                format!(
                    "Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"
                ),
            );
        } else if !platform.contains('$') && !names_platform(values, platform) {
            add(
                "FromPlatformFlagConstDisallowed",
                line,
                format!("FROM --platform flag should not use constant value {platform:?}"),
            );
        }
    }
}

/// BuildKit's exception: a stage named for its platform (`AS
/// build-amd64`) pins it on purpose.
fn names_platform(values: &[String], platform: &str) -> bool {
    let Some(name) = values.get(2).map(|n| n.to_ascii_lowercase()) else {
        return false;
    };
    platform
        .split(['/', ':'])
        .filter(|p| !p.is_empty())
        .take(2)
        .any(|p| name.contains(&p.to_ascii_lowercase()))
}

/// The variables `$X` and `${X…}` in `text`.
fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| start + n);
            if end > start {
                out.push(text[start..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// SecretsUsedInArgOrEnv: a name that reads like a credential.
fn secret(add: &mut impl FnMut(&'static str, usize, String), node: &Node, kind: &str, name: &str) {
    const WORDS: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    // BuildKit's exceptions: words that contain a match but name no secret.
    const ALLOWED: [&str; 2] = ["public", "file"];
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    if parts.iter().any(|p| ALLOWED.contains(p)) {
        return;
    }
    if parts.iter().any(|p| WORDS.contains(p)) {
        add(
            "SecretsUsedInArgOrEnv",
            node.start_line,
            format!("Do not use ARG or ENV instructions for sensitive data ({kind} \"{name}\")"),
        );
    }
}

/// `ENV key value` rather than `ENV key=value`: the text after the keyword
/// has whitespace before any `=`.
fn legacy_key_value(node: &Node) -> bool {
    let rest = node.original[node.keyword.len()..].trim_start();
    let rest = rest
        .split_whitespace()
        .skip_while(|w| w.starts_with("--"))
        .collect::<Vec<_>>();
    match rest.first() {
        Some(first) => !first.contains('='),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dockerfile: &str) -> Vec<(&'static str, usize, String)> {
        let ast = crate::parse("Dockerfile", dockerfile.as_bytes()).unwrap();
        check(&ast)
            .into_iter()
            .map(|f| (f.rule, f.line, f.message))
            .collect()
    }

    #[test]
    fn a_clean_file_has_no_findings() {
        assert_eq!(
            rules("ARG V=1\nFROM busybox:${V} AS build\nWORKDIR /app\nCMD [\"sh\"]\n"),
            []
        );
    }

    #[test]
    fn each_rule_with_buildkits_message() {
        let found = rules(
            "FROM busybox:$VERSION as Builder\n\
             FROM --platform=linux/amd64 busybox AS builder\n\
             FROM --platform=$TARGETPLATFORM busybox AS scratch\n\
             FROM --platform=linux/arm64 busybox AS tools-arm64\n\
             MAINTAINER me\n\
             WORKDIR app\n\
             ENV API_TOKEN abc\n\
             ARG PUBLIC_KEY\n\
             copy a b\n\
             CMD echo hi\n",
        );
        let want = [
            ("FromAsCasing", 1, "'as' and 'FROM' keywords' casing do not match"),
            ("StageNameCasing", 1, "Stage name 'Builder' should be lowercase"),
            ("UndefinedArgInFrom", 1, "FROM argument 'VERSION' is not declared"),
            ("DuplicateStageName", 2, "Duplicate stage name 'builder', stage names should be unique"),
            ("FromPlatformFlagConstDisallowed", 2, "FROM --platform flag should not use constant value \"linux/amd64\""),
            ("ReservedStageName", 3, "'scratch' is reserved and should not be used as a stage name"),
            ("RedundantTargetPlatform", 3, "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"),
            ("MaintainerDeprecated", 5, "Maintainer instruction is deprecated in favor of using label"),
            ("WorkdirRelativePath", 6, "Relative workdir \"app\" can have unexpected results if the base image changes"),
            ("LegacyKeyValueFormat", 7, "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format"),
            ("SecretsUsedInArgOrEnv", 7, "Do not use ARG or ENV instructions for sensitive data (ENV \"API_TOKEN\")"),
            ("ConsistentInstructionCasing", 9, "Command 'copy' should match the case of the command majority (uppercase)"),
            ("JSONArgsRecommended", 10, "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"),
        ];
        let mut found: Vec<(&str, usize, String)> = found;
        found.sort();
        let mut want: Vec<(&str, usize, String)> = want
            .iter()
            .map(|(r, l, m)| (*r, *l, m.to_string()))
            .collect();
        want.sort();
        assert_eq!(found, want);
    }

    #[test]
    fn the_check_directive_skips_rules_and_asks_for_errors() {
        let text = "# check=skip=JSONArgsRecommended,MaintainerDeprecated;error=true\nFROM busybox\nMAINTAINER me\nCMD echo\nWORKDIR rel\n";
        let ast = crate::parse("Dockerfile", text.as_bytes()).unwrap();
        assert!(CheckDirective::of(&ast).error);
        let found: Vec<&str> = check(&ast).iter().map(|f| f.rule).collect();
        assert_eq!(found, ["WorkdirRelativePath"]);
        let all = crate::parse("Dockerfile", b"# check=skip=all\nFROM busybox AS Bad\n").unwrap();
        assert!(check(&all).is_empty());
    }

    #[test]
    fn urls_follow_buildkits_pages() {
        let f = |rule| Finding {
            rule,
            line: 1,
            message: String::new(),
        };
        assert_eq!(
            f("StageNameCasing").url(),
            "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
        );
        assert_eq!(
            f("JSONArgsRecommended").url(),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        for rule in RULES {
            assert!(f(rule).url().ends_with('/'));
        }
    }
}
