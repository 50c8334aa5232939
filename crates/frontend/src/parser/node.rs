//! One logical line to one [`Node`]: keyword, `--flags`, and the argument
//! nodes each instruction gets in BuildKit's AST.

use super::json::{self, Document, Item};
use super::text::{go_lower, split_separators, split_separators_once};
use crate::{Args, Node};
use kiln_oci::config::go_quote;

/// Why a line could not become a node, and what to point the caret at.
#[derive(Debug)]
pub(crate) struct LineError {
    pub(crate) message: String,
    pub(crate) needle: Option<String>,
    pub(crate) help: Option<String>,
}

/// How many `ONBUILD`s one line may nest. BuildKit parses any number
/// (and rejects more than one later); each level is a stack frame here
/// and in every walk of the tree, so thousands of them overflowed the
/// stack.
const MAX_ONBUILD_NESTING: usize = 16;

/// Parses a logical line (continuations joined) into a node. Line numbers
/// are left at 0 for the caller to fill in.
pub(crate) fn node_from_line(line: &str, escape: char) -> Result<Node, LineError> {
    nested_node(line, escape, 0)
}

fn nested_node(line: &str, escape: char, depth: usize) -> Result<Node, LineError> {
    if depth > MAX_ONBUILD_NESTING {
        return Err(LineError {
            message: format!("ONBUILD nested more than {MAX_ONBUILD_NESTING} times"),
            needle: Some(split_command(line).0.to_string()),
            help: Some("an ONBUILD trigger cannot be another ONBUILD".to_string()),
        });
    }
    let (keyword, flags, args) = split_command(line);
    let (args, json_form) = match go_lower(keyword).as_str() {
        "add" | "copy" | "volume" => match exec_form(args)? {
            Some(values) => (Args::Values(values), true),
            None => (Args::Values(whitespace_list(args)), false),
        },
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(args)?,
        "env" => (Args::Values(name_values(args, "ENV", escape)?), false),
        "label" => (Args::Values(name_values(args, "LABEL", escape)?), false),
        "arg" => (Args::Values(parse_words(args, escape)), false),
        "expose" | "from" => (Args::Values(whitespace_list(args)), false),
        "healthcheck" => healthcheck(args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (Args::Values(single(args)), false),
        "onbuild" if args.is_empty() => (Args::Values(Vec::new()), false),
        "onbuild" => (
            Args::Nested(Box::new(nested_node(args, escape, depth + 1)?)),
            false,
        ),
        // Unknown instructions parse; the instruction layer rejects them.
        _ => (Args::Values(vec![String::new()]), false),
    };
    Ok(Node {
        keyword: keyword.to_string(),
        flags,
        args,
        json_form,
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        heredocs: Vec::new(),
    })
}

/// Splits a line into keyword, flags and the trimmed rest.
fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    match split_separators_once(line.trim()) {
        (keyword, None) => (keyword, Vec::new(), ""),
        (keyword, Some(rest)) => {
            let (args, flags) = extract_flags(rest);
            (keyword, flags, args.trim())
        }
    }
}

#[derive(PartialEq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Reads leading `--flag` words, unquoting them. The flag syntax always
/// uses backslash as escape, whatever the `escape` directive says.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let Some(&(pos, mut c)) = chars.get(i) else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            return ("", flags);
        };
        i += 1;
        match phase {
            Phase::Spaces => {
                if c.is_whitespace() {
                    continue;
                }
                if c != '-' || chars.get(i).map(|&(_, d)| d) != Some('-') {
                    return (&line[pos..], flags);
                }
                phase = Phase::Word;
                word.push(c);
            }
            Phase::Word => {
                if c.is_whitespace() {
                    if word == "--" {
                        return (&line[pos..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if c == '\'' || c == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(c);
                    continue;
                }
                if c == '\\' {
                    let Some(&(_, next)) = chars.get(i) else {
                        continue;
                    };
                    i += 1;
                    c = next;
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                    continue;
                }
                if c == '\\' {
                    let Some(&(_, next)) = chars.get(i) else {
                        phase = Phase::Word;
                        continue;
                    };
                    i += 1;
                    c = next;
                }
                word.push(c);
            }
        }
    }
}

/// Splits instruction arguments into words the way ENV, LABEL and ARG see
/// them: on whitespace outside quotes, with quotes and escape characters
/// kept in the words. `escape` is the Dockerfile's escape token.
///
/// ```
/// assert_eq!(
///     kiln_frontend::parse_words(r#"a="x y" b\ c 'd'"#, '\\'),
///     [r#"a="x y""#, r"b\ c", "'d'"]
/// );
/// ```
pub fn parse_words(text: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let Some(&c) = chars.get(i) else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return words;
        };
        i += 1;
        if phase == Phase::Spaces {
            if c.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        let escapes = match phase {
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                }
                // Nothing can be escaped inside single quotes.
                quote != '\''
            }
            _ => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if c == '\'' || c == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(c);
                }
                true
            }
        };
        if escapes && c == escape {
            // The escape token and the character after it are both kept;
            // a trailing escape token is dropped.
            let Some(&next) = chars.get(i) else {
                phase = Phase::Word;
                continue;
            };
            i += 1;
            word.push(c);
            word.push(next);
            continue;
        }
        word.push(c);
    }
}

/// The JSON exec form of `args`: `Ok(Some(values))` for an array of
/// strings, `Ok(None)` when `args` is not JSON (shell form), and an error
/// for valid JSON that is not an array of strings only.
fn exec_form(args: &str) -> Result<Option<Vec<String>>, LineError> {
    let text = args.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Some(Document::Array(items)) = json::parse(text) else {
        return Ok(None);
    };
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Str(s) => values.push(s),
            Item::Other => {
                return Err(LineError {
                    message:
                        "when using JSON array syntax, arrays must be comprised of strings only"
                            .into(),
                    needle: Some("[".into()),
                    help: Some("quote every element, as in [\"sleep\", \"10\"]".into()),
                })
            }
        }
    }
    Ok(Some(values))
}

/// RUN/CMD/ENTRYPOINT/SHELL: exec form, or the whole text as one node.
fn maybe_json(args: &str) -> Result<(Args, bool), LineError> {
    if args.is_empty() {
        return Ok((Args::Values(Vec::new()), false));
    }
    Ok(match exec_form(args)? {
        Some(values) => (Args::Values(values), true),
        None => (Args::Values(vec![args.to_string()]), false),
    })
}

fn whitespace_list(args: &str) -> Vec<String> {
    if args.is_empty() {
        return Vec::new();
    }
    split_separators(args)
        .into_iter()
        .map(String::from)
        .collect()
}

fn single(args: &str) -> Vec<String> {
    if args.is_empty() {
        Vec::new()
    } else {
        vec![args.to_string()]
    }
}

/// ENV and LABEL: `name value` (legacy) or `name=value ...`, as triples of
/// name, value and `""`/`"="`.
fn name_values(args: &str, keyword: &str, escape: char) -> Result<Vec<String>, LineError> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        return match split_separators_once(args) {
            (name, Some(value)) => Ok(vec![name.to_string(), value.to_string(), String::new()]),
            (name, None) => Err(LineError {
                message: format!("{keyword} must have two arguments"),
                needle: Some(name.to_string()),
                help: Some(format!("give it a value: `{keyword} {name}=value`")),
            }),
        };
    }
    let mut values = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(LineError {
                message: format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(word)
                ),
                needle: Some(word.clone()),
                help: Some(format!(
                    "write `{word}=value`, or quote the value if it has spaces"
                )),
            });
        };
        values.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(values)
}

/// HEALTHCHECK: the type word (`CMD`, `NONE`, ...) as written, then the
/// rest parsed like CMD.
fn healthcheck(args: &str) -> Result<(Args, bool), LineError> {
    // Upstream tests single bytes here, so only ASCII whitespace counts.
    let is_space = |c: char| matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ');
    let sep = args.find(is_space).unwrap_or(args.len());
    if sep == 0 {
        return Ok((Args::Values(Vec::new()), false));
    }
    let rest = args[sep..].trim_start_matches(is_space);
    let (cmd, json_form) = maybe_json(rest)?;
    let mut values = vec![args[..sep].to_string()];
    values.extend_from_slice(match &cmd {
        Args::Values(v) => v,
        Args::Nested(_) => &[],
    });
    Ok((Args::Values(values), json_form))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_unquoted_and_end_at_first_word() {
        assert_eq!(
            extract_flags("--a=\"x y\" --b='c\\'d' --c=e\\ f rest --x"),
            (
                "rest --x",
                vec!["--a=x y".to_string(), "--b=c'd".into(), "--c=e f".into()]
            )
        );
        assert_eq!(
            extract_flags("--x -- --y z"),
            (" --y z", vec!["--x".to_string()])
        );
        assert_eq!(extract_flags("--x --"), ("", vec!["--x".to_string()]));
        assert_eq!(extract_flags("--x=\"\""), ("", vec!["--x=".to_string()]));
        assert_eq!(extract_flags("-x"), ("-x", vec![]));
        assert_eq!(extract_flags("--a\\"), ("", vec!["--a".to_string()]));
        // Backslash even when the escape directive chose the backtick.
        assert_eq!(
            extract_flags("--a=`b\\c x"),
            ("x", vec!["--a=`bc".to_string()])
        );
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words("a\\ b \"c d\" 'e\\' f", '\\'),
            ["a\\ b", "\"c d\"", "'e\\'", "f"]
        );
        assert_eq!(parse_words("x\\", '\\'), ["x"]);
        assert_eq!(parse_words("a`\" b`", '`'), ["a`\"", "b"]);
        assert_eq!(parse_words("\"a\\\" b\"", '\\'), ["\"a\\\" b\""]);
        assert_eq!(parse_words("  ", '\\'), Vec::<String>::new());
    }

    #[test]
    fn env_forms_and_errors() {
        assert_eq!(
            name_values("k  v w", "ENV", '\\').unwrap(),
            ["k", "v w", ""]
        );
        assert_eq!(
            name_values("a=1 b=\"2 3\"", "ENV", '\\').unwrap(),
            ["a", "1", "=", "b", "\"2 3\"", "="]
        );
        assert_eq!(
            name_values("k", "ENV", '\\').unwrap_err().message,
            "ENV must have two arguments"
        );
        assert_eq!(
            name_values("a=1 b", "LABEL", '\\').unwrap_err().message,
            "Syntax error - can't find = in \"b\". Must be of the form: name=value"
        );
    }

    #[test]
    fn unknown_and_nested_instructions() {
        let node = node_from_line("FOO --x bar", '\\').unwrap();
        assert_eq!(
            (node.flags, node.args),
            (vec!["--x".to_string()], Args::Values(vec![String::new()]))
        );
        let node = node_from_line("ONBUILD RUN [\"a\"]", '\\').unwrap();
        let Args::Nested(inner) = node.args else {
            panic!("not nested")
        };
        assert!(inner.json_form && !node.json_form);
        assert_eq!(inner.original, "RUN [\"a\"]");
    }

    #[test]
    fn healthcheck_keeps_type_word() {
        let (args, json) = healthcheck("CMD [\"a\", \"b\"]").unwrap();
        assert_eq!(
            (args, json),
            (
                Args::Values(vec!["CMD".into(), "a".into(), "b".into()]),
                true
            )
        );
        assert_eq!(
            healthcheck("NONE").unwrap().0,
            Args::Values(vec!["NONE".into()])
        );
    }
}
