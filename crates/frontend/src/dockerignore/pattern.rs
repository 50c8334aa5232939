//! One pattern, compiled and matched the way moby/patternmatcher does it.
//!
//! moby checks a pattern's syntax with Go's `filepath.Match` and then
//! matches with a regular expression built from it, except that patterns
//! without wildcards are compared as plain strings (exact, prefix for a
//! trailing `**`, suffix for a leading `**`). Those string comparisons do
//! not always agree with the regular expression (`**foo` matches `xfoo`), and
//! the exact results are what Docker sends, so both paths are kept here.

use crate::ErrorKind;

/// How a pattern is compared with a path; mirrors moby's `matchType`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// Literal text then a final `**`: the path must start with the text.
    Prefix,
    /// A leading `**` then literal text: the path must end with the text.
    Suffix,
    /// Anything else: moby's regular expression, as tokens.
    Tokens(Vec<Token>),
}

/// moby's `detectedType` while it scans a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// One element of moby's generated regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`, which moby turns into `[^/]`.
    AnyOne,
    /// `*`, which moby turns into `[^/]*`.
    Star,
    /// `**` inside a pattern, moby's `(.*/)?`: nothing, or any text ending
    /// in `/`. This is what lets `**` stand for zero directories.
    Dirs,
    /// `**` at the end after other wildcards, moby's `.*`.
    Rest,
    /// `[...]`; a negated class matches `/` too, as in the regular expression.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A `^` outside a class. moby does not escape it, so in a regular
    /// expression it anchors at the start of the path instead of matching
    /// the character.
    Start,
}

/// A problem with one pattern, before the caller adds file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    pub kind: ErrorKind,
    pub message: String,
    pub help: &'static str,
}

impl PatternError {
    fn syntax(message: impl Into<String>, help: &'static str) -> PatternError {
        PatternError {
            kind: ErrorKind::Syntax,
            message: message.into(),
            help,
        }
    }

    fn unsupported(message: impl Into<String>, help: &'static str) -> PatternError {
        PatternError {
            kind: ErrorKind::NotSupported,
            message: message.into(),
            help,
        }
    }
}

/// One compiled `.dockerignore` line: the cleaned pattern text and whether
/// it is an exception (`!`), which re-includes what it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exception: bool,
    line: usize,
    kind: Kind,
}

impl Pattern {
    /// Compiles cleaned pattern text (without its `!`).
    pub(crate) fn compile(
        text: &str,
        exception: bool,
        line: usize,
    ) -> Result<Pattern, PatternError> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut kind = Detected::Exact;
        let mut idx = 0;
        // moby's "first element" test counts loop steps, not characters:
        // only a `**` that opens the pattern makes it a suffix match.
        let mut step = 0;
        while idx < chars.len() {
            let c = chars[idx];
            idx += 1;
            match c {
                '*' if chars.get(idx) == Some(&'*') => {
                    idx += 1;
                    if chars.get(idx) == Some(&'/') {
                        idx += 1;
                    }
                    if idx == chars.len() {
                        if kind == Detected::Exact {
                            kind = Detected::Prefix;
                        } else {
                            tokens.push(Token::Rest);
                            kind = Detected::Regex;
                        }
                    } else {
                        tokens.push(Token::Dirs);
                        kind = Detected::Regex;
                    }
                    if step == 0 {
                        kind = Detected::Suffix;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    kind = Detected::Regex;
                }
                '?' => {
                    tokens.push(Token::AnyOne);
                    kind = Detected::Regex;
                }
                '\\' => {
                    let escaped = *chars.get(idx).ok_or_else(|| {
                        PatternError::syntax(
                            "the pattern ends with a lone backslash",
                            "write \\\\ to match a backslash, or remove it",
                        )
                    })?;
                    idx += 1;
                    check_escape(escaped)?;
                    tokens.push(Token::Lit(escaped));
                    kind = Detected::Regex;
                }
                '[' => {
                    let (class, next) = parse_class(&chars, idx)?;
                    idx = next;
                    tokens.push(class);
                    kind = Detected::Regex;
                }
                ']' => {
                    tokens.push(Token::Lit(']'));
                    kind = Detected::Regex;
                }
                '^' => tokens.push(Token::Start),
                c => tokens.push(Token::Lit(c)),
            }
            step += 1;
        }
        let kind = match kind {
            Detected::Exact => Kind::Exact,
            Detected::Prefix => Kind::Prefix,
            Detected::Suffix => Kind::Suffix,
            Detected::Regex => Kind::Tokens(tokens),
        };
        Ok(Pattern {
            text: text.to_string(),
            exception,
            line,
            kind,
        })
    }

    /// The pattern as moby keeps it: trimmed, `filepath.Clean`ed, without a
    /// leading `/` and without the `!` of an exception.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), re-including what it
    /// matches.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// The 1-based line of the ignore file the pattern came from, or its
    /// 1-based position in the list given to [`Matcher::new`](super::Matcher::new).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the pattern matches `path` itself (a clean, relative,
    /// slash-separated path); parents are the caller's business.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            // The text ends in `**`, two bytes.
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(tokens) => run(tokens, path),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exception {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

/// moby puts `\x` into the regular expression as is. For ASCII punctuation
/// that is the plain character, as in `filepath.Match`; for a letter, digit
/// or non-ASCII character it is a regular-expression escape (`\d` is any
/// digit, `\b` a word boundary) or an error, which kiln refuses rather than
/// guessing.
fn check_escape(c: char) -> Result<(), PatternError> {
    if c.is_ascii() && !c.is_ascii_alphanumeric() {
        return Ok(());
    }
    Err(PatternError::unsupported(
        format!("the escape `\\{c}` is not supported: Docker reads it as a regular-expression escape, not as the character `{c}`"),
        "remove the backslash; only punctuation needs escaping",
    ))
}

/// Parses a class after its `[` with `filepath.Match`'s grammar and returns
/// the token and the index after the closing `]`.
fn parse_class(chars: &[char], mut idx: usize) -> Result<(Token, usize), PatternError> {
    let negated = chars.get(idx) == Some(&'^');
    if negated {
        idx += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(idx) == Some(&']') && !ranges.is_empty() {
            return Ok((Token::Class { negated, ranges }, idx + 1));
        }
        let lo = class_char(chars, &mut idx)?;
        let hi = if chars.get(idx) == Some(&'-') {
            idx += 1;
            if chars.get(idx) == Some(&']') {
                return Err(PatternError::syntax(
                    format!("the range `{lo}-` in a character class has no upper end"),
                    "escape the dash as \\- to match it literally",
                ));
            }
            class_char(chars, &mut idx)?
        } else {
            lo
        };
        if lo > hi {
            return Err(PatternError::syntax(
                format!("the character range `{lo}-{hi}` is reversed"),
                "write the smaller character first, e.g. [a-z]",
            ));
        }
        ranges.push((lo, hi));
    }
}

/// One character of a class, escapes resolved. Like Go's `getEsc` it also
/// insists that something follows, so an unclosed class is an error.
fn class_char(chars: &[char], idx: &mut usize) -> Result<char, PatternError> {
    let unterminated = || {
        PatternError::syntax(
            "unterminated character class: `[` has no closing `]`",
            "close the class with `]`, or write \\[ to match a literal bracket",
        )
    };
    let c = *chars.get(*idx).ok_or_else(unterminated)?;
    let c = match c {
        '-' | ']' => {
            return Err(PatternError::syntax(
                format!("a character class cannot be empty or have an item starting with `{c}`"),
                "escape it inside the brackets (\\] or \\-) to match it literally",
            ))
        }
        '\\' => {
            *idx += 1;
            let escaped = *chars.get(*idx).ok_or_else(unterminated)?;
            check_escape(escaped)?;
            escaped
        }
        // moby rewrites these inside the brackets too, which breaks the class.
        '*' | '?' => {
            return Err(PatternError::unsupported(
                format!("an unescaped `{c}` inside [...] is not supported: Docker turns it into a wildcard that breaks the class"),
                "escape it as \\* or \\? inside the brackets",
            ))
        }
        '[' if chars.get(*idx + 1) == Some(&':') => {
            return Err(PatternError::unsupported(
                "`[:` inside [...] is not supported: Docker reads it as a POSIX class such as [[:alpha:]]",
                "list the characters or ranges instead, or write \\[ for a literal bracket",
            ))
        }
        c => c,
    };
    *idx += 1;
    if *idx >= chars.len() {
        return Err(unterminated());
    }
    Ok(c)
}

/// Runs the tokens over `path` as a set of states, so no pattern can make
/// matching exponential. Like moby's regular expression (Go's RE2 with its
/// default flags), `.` does not match a newline but negated classes do.
fn run(tokens: &[Token], path: &str) -> bool {
    let n = tokens.len();
    // at[i]: ready to match token i. inside[i]: part-way through a `Dirs`
    // that still has to end with a `/`.
    let mut at = vec![false; n + 1];
    let mut inside = vec![false; n + 1];
    at[0] = true;
    follow_empty(tokens, &mut at, true);
    for c in path.chars() {
        let mut next_at = vec![false; n + 1];
        let mut next_inside = vec![false; n + 1];
        for (i, token) in tokens.iter().enumerate() {
            if inside[i] && c != '\n' {
                next_inside[i] = true;
                if c == '/' {
                    next_at[i + 1] = true;
                }
            }
            if !at[i] {
                continue;
            }
            match token {
                Token::Lit(l) => next_at[i + 1] |= *l == c,
                Token::AnyOne => next_at[i + 1] |= c != '/',
                Token::Star => next_at[i] |= c != '/',
                Token::Rest => next_at[i] |= c != '\n',
                Token::Dirs => {
                    if c != '\n' {
                        next_inside[i] = true;
                        next_at[i + 1] |= c == '/';
                    }
                }
                Token::Class { negated, ranges } => {
                    let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    next_at[i + 1] |= hit != *negated;
                }
                Token::Start => {}
            }
        }
        at = next_at;
        inside = next_inside;
        follow_empty(tokens, &mut at, false);
        if !at.iter().any(|&s| s) && !inside.iter().any(|&s| s) {
            return false;
        }
    }
    at[n]
}

/// Moves past tokens that can match nothing. Those moves only go forward,
/// so one pass in order reaches everything.
fn follow_empty(tokens: &[Token], at: &mut [bool], at_start: bool) {
    for (i, token) in tokens.iter().enumerate() {
        let empty = match token {
            Token::Star | Token::Rest | Token::Dirs => true,
            Token::Start => at_start,
            _ => false,
        };
        if at[i] && empty {
            at[i + 1] = true;
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let body = parts.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        Pattern::compile(pattern, false, 1).unwrap().matches(path)
    }

    #[test]
    fn clean_follows_go() {
        for (input, want) in [
            ("", "."),
            ("./keep.txt", "keep.txt"),
            ("a//b/./c/", "a/b/c"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/..", "."),
            ("../../x/../y", "../../y"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn kinds_follow_moby() {
        let kind = |p: &str| Pattern::compile(p, false, 1).unwrap().kind;
        assert_eq!(kind("a/b"), Kind::Exact);
        assert_eq!(kind("a/**"), Kind::Prefix);
        assert_eq!(kind("**"), Kind::Suffix);
        assert_eq!(kind("**/a.b"), Kind::Suffix);
        assert!(matches!(kind("**/*.go"), Kind::Tokens(_)));
        assert!(matches!(kind("**/a/**"), Kind::Tokens(_)));
    }

    #[test]
    fn caret_is_literal_in_plain_patterns_but_an_anchor_with_wildcards() {
        assert!(matches("a^b", "a^b"));
        assert!(!matches("a^b*", "a^bc"));
        assert!(matches("^a*", "abc"));
    }

    #[test]
    fn dot_star_stops_at_newline_but_negated_class_does_not() {
        assert!(!matches("a/**/b*", "a/x\ny/bc"));
        assert!(matches("a[^x]b", "a\nb"));
        assert!(matches("a[^x]b", "a/b"));
    }
}
