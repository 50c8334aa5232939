//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a
//! Dockerfile, and the front-end helpers that look for `syntax` and `check`
//! without parsing the whole file.

use super::json::{self, Document, Item};

/// The directive names BuildKit recognises; any other name ends the
/// directive section.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// A `syntax` or `check` directive found by [`detect_syntax`] or
/// [`parse_check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxDirective {
    /// The value up to its first space (`docker/dockerfile:1` for
    /// `# syntax=docker/dockerfile:1 // opts`).
    pub ref_: String,
    /// The whole value.
    pub cmdline: String,
    /// The 1-based line the directive is on.
    pub line: usize,
}

/// Matches `NAME \s* = \s* VALUE` (the part after the comment marker and
/// its leading whitespace), as BuildKit's
/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` does. The name is lower-cased.
fn match_directive(text: &str) -> Option<(String, String)> {
    let is_space = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let name_end = text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = text[name_end..].trim_start_matches(is_space);
    let rest = rest.strip_prefix('=')?;
    let trimmed = rest.trim_start_matches(is_space);
    let value = if trimmed.is_empty() {
        // The lazy value group still needs one character: the regex gives
        // back the last of the blanks.
        let last = rest.chars().next_back()?;
        last.to_string()
    } else {
        trimmed.trim_end_matches(is_space).to_string()
    };
    Some((name.to_ascii_lowercase(), value))
}

/// BuildKit's `DirectiveParser`: fed one line at a time, it reports
/// directives until the first line that is not a known directive.
#[derive(Debug)]
pub(crate) struct DirectiveParser {
    prefix: &'static str,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    pub(crate) fn new(prefix: &'static str) -> DirectiveParser {
        DirectiveParser {
            prefix,
            seen: Vec::new(),
            done: false,
        }
    }

    /// Returns the directive on this line, if any; a repeated directive is
    /// an error (`only one escape parser directive can be used`).
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let found = line
            .strip_prefix(self.prefix)
            .and_then(|rest| match_directive(rest.trim_start()))
            .filter(|(name, _)| KNOWN.contains(&name.as_str()));
        let Some((name, value)) = found else {
            self.done = true;
            return Ok(None);
        };
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some((name, value)))
    }
}

/// Finds the `# syntax=` directive the way a front end picks its frontend
/// image: a leading BOM and `#!` line are ignored, and `//syntax=` and a
/// whole-file JSON object `{"syntax": "…"}` are accepted too.
///
/// ```
/// let found = kiln_frontend::detect_syntax(b"#!/bin/sh\n# syntax=docker/dockerfile:1 // x\nFROM a\n").unwrap();
/// assert_eq!((found.ref_.as_str(), found.cmdline.as_str(), found.line), ("docker/dockerfile:1", "docker/dockerfile:1 // x", 2));
/// ```
pub fn detect_syntax(source: &[u8]) -> Option<SyntaxDirective> {
    find_directive("syntax", source, true)
}

/// The warning a build shows for a `# syntax=` directive naming a front end
/// other than Docker's own Dockerfile front end, which kiln implements
/// itself: kiln cannot run front-end images, so such a directive is
/// ignored rather than silently obeyed.
///
/// ```
/// assert!(kiln_frontend::syntax_warning(b"# syntax=docker/dockerfile:1.7\nFROM a\n").is_none());
/// let w = kiln_frontend::syntax_warning(b"# syntax=example.com/my/frontend\nFROM a\n").unwrap();
/// assert_eq!(w.line, 1);
/// ```
pub fn syntax_warning(source: &[u8]) -> Option<crate::Warning> {
    let syntax = detect_syntax(source)?;
    let name = syntax.ref_.split(['@', ':']).next().unwrap_or_default();
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    if matches!(name, "docker/dockerfile" | "docker/dockerfile-upstream") {
        return None;
    }
    Some(crate::Warning {
        line: syntax.line,
        message: format!(
            "# syntax={} is ignored: kiln reads Dockerfiles with its own BuildKit-compatible front end and cannot run front-end images",
            syntax.cmdline
        ),
    })
}

/// Finds the `# check=` directive (lint configuration); only the `#` form
/// counts.
///
/// ```
/// let found = kiln_frontend::parse_check(b"# check=skip=all\nFROM a\n").unwrap();
/// assert_eq!(found.cmdline, "skip=all");
/// ```
pub fn parse_check(source: &[u8]) -> Option<SyntaxDirective> {
    find_directive("check", source, false)
}

fn find_directive(key: &str, source: &[u8], any_format: bool) -> Option<SyntaxDirective> {
    let source = source.strip_prefix(super::BOM).unwrap_or(source);
    let text = String::from_utf8_lossy(source);
    let (text, offset) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => (rest, 1),
        _ if text.starts_with("#!") => ("", 1),
        _ => (&*text, 0),
    };
    let prefixes: &[&'static str] = if any_format { &["#", "//"] } else { &["#"] };
    for prefix in prefixes {
        if let Some(found) = scan_lines(key, text, prefix, offset) {
            return Some(found);
        }
    }
    if !any_format {
        return None;
    }
    let Some(Document::Object(members)) = json::parse(text) else {
        return None;
    };
    // Go's map keeps the last of duplicate keys.
    match members.into_iter().rev().find(|(k, _)| k == key)?.1 {
        Item::Str(value) => Some(SyntaxDirective {
            ref_: value.clone(),
            cmdline: value,
            line: offset + 1,
        }),
        Item::Other => None,
    }
}

fn scan_lines(
    key: &str,
    text: &str,
    prefix: &'static str,
    offset: usize,
) -> Option<SyntaxDirective> {
    let mut parser = DirectiveParser::new(prefix);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Go's line scanner drops the newline and one carriage return.
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parser.parse_line(line) {
            Ok(Some((name, value))) if name == key => {
                let ref_ = value.split(' ').next().unwrap_or_default().to_string();
                return Some(SyntaxDirective {
                    ref_,
                    cmdline: value,
                    line: offset + i + 1,
                });
            }
            Ok(Some(_)) => {}
            // The section ended, or a repeated directive stopped it.
            Ok(None) | Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_regex_edge_cases() {
        assert_eq!(
            match_directive("escape=`"),
            Some(("escape".into(), "`".into()))
        );
        assert_eq!(
            match_directive("EScape =  \\  "),
            Some(("escape".into(), "\\".into()))
        );
        assert_eq!(
            match_directive("escape=  "),
            Some(("escape".into(), " ".into()))
        );
        assert_eq!(match_directive("escape="), None);
        assert_eq!(match_directive("1x=y"), None);
        assert_eq!(
            match_directive("syntax = a b  c \t"),
            Some(("syntax".into(), "a b  c".into()))
        );
    }

    #[test]
    fn parser_stops_at_first_other_line() {
        let mut p = DirectiveParser::new("#");
        assert_eq!(
            p.parse_line("# escape=`").unwrap(),
            Some(("escape".into(), "`".into()))
        );
        assert!(p
            .parse_line("# escape=\\")
            .unwrap_err()
            .contains("only one escape"));
        assert_eq!(p.parse_line("# key=value").unwrap(), None);
        assert_eq!(p.parse_line("# syntax=x").unwrap(), None);
    }

    #[test]
    fn syntax_from_json_and_slashes() {
        assert_eq!(
            detect_syntax(b"{\"syntax\": \"foo\", \"syntax\": \"bar\"}")
                .unwrap()
                .ref_,
            "bar"
        );
        assert_eq!(detect_syntax(b"{\"syntax\": 1}"), None);
        assert_eq!(detect_syntax(b"// syntax = x y\n").unwrap().cmdline, "x y");
        assert_eq!(parse_check(b"//check=skip=all"), None);
    }
}
