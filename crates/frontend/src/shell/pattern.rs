//! Shell patterns as used by `${x#pat}`, `${x%pat}` and `${x/pat/repl}`.
//!
//! BuildKit translates a pattern to a Go regular expression and lets Go's
//! leftmost-first engine pick the match. The patterns are simple enough to
//! match directly, so this module does that, with the same choice of match:
//!
//! * `*` matches any run of characters and `?` any one character, but
//!   neither matches a newline (Go's `.` does not).
//! * `\*`, `\?` and `\\` match `*`, `?` and `\`. `\}` and `\/` stand for
//!   `}` and `/` (they had to be escaped inside `${…}`). Any other escape,
//!   or a `\` at the end, is an error. The escape is always `\`, even when
//!   the Dockerfile's escape token is a backtick.
//! * There are no bracket expressions: `[` is a literal character.
//!
//! ```
//! use kiln_frontend::shell::pattern;
//! assert_eq!(pattern::trim_prefix("a/b/c", "*/", false).unwrap(), "b/c");
//! assert_eq!(pattern::trim_suffix("a/b/c", "/*", true).unwrap(), "a");
//! assert_eq!(pattern::replace_all("a.b.c", ".", "-").unwrap(), "a-b-c");
//! ```

use std::fmt;

/// A pattern that cannot be used: an unsupported escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it, e.g. `invalid escape '\x'`.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pattern ({}): {}; only \\*, \\?, \\\\, \\}} and \\/ may be escaped",
            self.pattern, self.message
        )
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
}

fn compile(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => match chars.peek() {
                // The escape only protected the delimiter inside `${…}`;
                // the delimiter itself is then an ordinary character.
                Some('}' | '/') => continue,
                Some(&e @ ('*' | '?' | '\\')) => {
                    chars.next();
                    Token::Char(e)
                }
                Some(&e) => {
                    return Err(PatternError {
                        pattern: pattern.to_string(),
                        message: format!("invalid escape '\\{e}'"),
                    })
                }
                None => {
                    return Err(PatternError {
                        pattern: pattern.to_string(),
                        message: "'\\' at the end of the pattern escapes nothing".to_string(),
                    })
                }
            },
            c => Token::Char(c),
        });
    }
    Ok(tokens)
}

/// Which match a leftmost-first engine reports when every `*` prefers
/// longer runs (`greedy`) or shorter ones. This is a small Pike VM:
/// threads are kept in priority order, and the first thread to reach the
/// end of the pattern cuts off every lower-priority thread, exactly as Go's
/// `regexp` does.
struct Matcher<'a> {
    tokens: &'a [Token],
    greedy: bool,
}

/// A thread list: `(program counter, match start)` in priority order,
/// plus which program counters it already holds.
struct Queue {
    threads: Vec<(usize, usize)>,
    seen: Vec<bool>,
    touched: Vec<usize>,
}

impl Queue {
    fn new(states: usize) -> Queue {
        Queue {
            threads: Vec::new(),
            seen: vec![false; states],
            touched: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.threads.clear();
        for pc in self.touched.drain(..) {
            self.seen[pc] = false;
        }
    }
}

impl Matcher<'_> {
    // Program counters: `0..m` are the tokens (a `*` there is the choice
    // between looping and moving on), `m` is the accepting state and
    // `m + 1 + i` is the body of the `*` at token `i`.
    fn states(&self) -> usize {
        2 * self.tokens.len() + 1
    }

    fn add(&self, queue: &mut Queue, pc: usize, start: usize) {
        let m = self.tokens.len();
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if queue.seen[pc] {
                continue;
            }
            queue.seen[pc] = true;
            queue.touched.push(pc);
            if pc < m && self.tokens[pc] == Token::Star {
                let (first, second) = if self.greedy {
                    (m + 1 + pc, pc + 1)
                } else {
                    (pc + 1, m + 1 + pc)
                };
                // Popped in reverse order: `first` and everything it leads
                // to is explored before `second`.
                stack.push(second);
                stack.push(first);
            } else {
                queue.threads.push((pc, start));
            }
        }
    }

    /// The next program counter after `pc` consumes `c`, if it can.
    fn consume(&self, pc: usize, c: char) -> Option<usize> {
        let m = self.tokens.len();
        if pc > m {
            return (c != '\n').then_some(pc - m - 1);
        }
        match self.tokens.get(pc)? {
            Token::Char(t) => (*t == c).then_some(pc + 1),
            Token::Any => (c != '\n').then_some(pc + 1),
            Token::Star => None,
        }
    }

    /// The leftmost match starting at or after `from` (only at `from` when
    /// `anchored`), as `(start, end)` character indices.
    fn find(&self, text: &[char], from: usize, anchored: bool) -> Option<(usize, usize)> {
        let m = self.tokens.len();
        let mut current = Queue::new(self.states());
        let mut next = Queue::new(self.states());
        let mut found = None;
        let mut pos = from;
        loop {
            if current.threads.is_empty() && (found.is_some() || (anchored && pos != from)) {
                break;
            }
            if found.is_none() && (!anchored || pos == from) {
                self.add(&mut current, 0, pos);
            }
            let c = text.get(pos).copied();
            for &(pc, start) in &current.threads {
                if pc == m {
                    found = Some((start, pos));
                    break;
                }
                if let Some(next_pc) = c.and_then(|c| self.consume(pc, c)) {
                    self.add(&mut next, next_pc, start);
                }
            }
            if pos >= text.len() {
                break;
            }
            pos += 1;
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        found
    }
}

fn find(
    pattern: &str,
    text: &[char],
    from: usize,
    greedy: bool,
    anchored: bool,
) -> Result<Option<(usize, usize)>, PatternError> {
    let tokens = compile(pattern)?;
    Ok(Matcher {
        tokens: &tokens,
        greedy,
    }
    .find(text, from, anchored))
}

/// Removes the shortest (or, with `longest`, the longest) prefix of `value`
/// that matches `pattern`, as `${value#pattern}` / `${value##pattern}` do.
/// A pattern that matches no prefix leaves `value` unchanged.
pub fn trim_prefix(value: &str, pattern: &str, longest: bool) -> Result<String, PatternError> {
    let text: Vec<char> = value.chars().collect();
    Ok(match find(pattern, &text, 0, longest, true)? {
        Some((_, end)) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Removes the shortest (or, with `longest`, the longest) suffix of `value`
/// that matches `pattern`, as `${value%pattern}` / `${value%%pattern}` do.
///
/// Like BuildKit, this reverses the pattern (keeping each `\x` escape pair
/// in order) and the value, and trims a prefix.
pub fn trim_suffix(value: &str, pattern: &str, longest: bool) -> Result<String, PatternError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed, &reverse_pattern(pattern), longest)?;
    Ok(trimmed.chars().rev().collect())
}

fn reverse_pattern(pattern: &str) -> String {
    // Escape pairs are formed left to right, then the sequence of units
    // (pairs and single characters) is reversed.
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<&[char]> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        units.push(&chars[i..i + len]);
        i += len;
    }
    units.iter().rev().flat_map(|u| u.iter()).collect()
}

/// Replaces the first (leftmost, longest) match of `pattern` in `value`
/// with `replacement`, as `${value/pattern/replacement}` does. An empty
/// pattern matches the empty string at the start.
pub fn replace_first(
    value: &str,
    pattern: &str,
    replacement: &str,
) -> Result<String, PatternError> {
    let text: Vec<char> = value.chars().collect();
    Ok(match find(pattern, &text, 0, true, false)? {
        Some((start, end)) => {
            let mut out: String = text[..start].iter().collect();
            out.push_str(replacement);
            out.extend(&text[end..]);
            out
        }
        None => value.to_string(),
    })
}

/// Replaces every non-overlapping match of `pattern` in `value`, as
/// `${value//pattern/replacement}` does.
///
/// BuildKit hands `replacement` to Go's `Regexp.ReplaceAllString`, so `$`
/// in it is a template: `$0` and `${0}` are the matched text, `$$` is a
/// `$`, any other `$name` is empty, and a `$` not followed by a name stays
/// as it is. An empty match right after a previous match is skipped.
pub fn replace_all(value: &str, pattern: &str, replacement: &str) -> Result<String, PatternError> {
    Ok(replace_all_within(value, pattern, replacement, usize::MAX)?
        .expect("no output is longer than usize::MAX"))
}

/// [`replace_all`], giving up with `Ok(None)` as soon as the result would
/// be longer than `limit` bytes: `${a//?/$a}` squares the length of `a`.
pub(crate) fn replace_all_within(
    value: &str,
    pattern: &str,
    replacement: &str,
    limit: usize,
) -> Result<Option<String>, PatternError> {
    let tokens = compile(pattern)?;
    let matcher = Matcher {
        tokens: &tokens,
        greedy: true,
    };
    let text: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((start, end)) = matcher.find(&text, search, false) else {
            break;
        };
        out.extend(&text[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(replacement, &text[start..end], &mut out);
        }
        if out.len() > limit {
            return Ok(None);
        }
        last_end = end;
        search = end.max(search + 1);
    }
    out.extend(&text[last_end..]);
    Ok((out.len() <= limit).then_some(out))
}

/// Go's `Regexp.Expand` for a pattern whose only group is the whole match.
fn expand_template(template: &str, matched: &[char], out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.extend(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// A `name` or `{name}` at the start of `s` and the text after it.
fn template_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !(super::names::is_letter(c) || super::names::is_digit(c) || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        after.strip_prefix('}').map(|after| (name, after))
    } else {
        Some((name, after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_shortest_and_longest() {
        assert_eq!(trim_prefix("xxyy", "*x*y", false).unwrap(), "y");
        assert_eq!(trim_prefix("xxyy", "*x", true).unwrap(), "yy");
        assert_eq!(trim_prefix("xxyy", "*", false).unwrap(), "xxyy");
        assert_eq!(trim_prefix("xxyy", "*", true).unwrap(), "");
        assert_eq!(trim_prefix("xxyy", "", true).unwrap(), "xxyy");
        assert_eq!(trim_prefix("???y", "?\\?", false).unwrap(), "?y");
        assert_eq!(trim_prefix("abc", "z*", true).unwrap(), "abc");
    }

    #[test]
    fn suffix_shortest_and_longest() {
        assert_eq!(trim_suffix("xx**", "\\**", true).unwrap(), "xx");
        assert_eq!(trim_suffix("a***yy*", "\\**\\*", true).unwrap(), "a");
        assert_eq!(trim_suffix("a***yy*", "\\**\\*", false).unwrap(), "a**");
        assert_eq!(trim_suffix("file.tar.gz", ".*", false).unwrap(), "file.tar");
        assert_eq!(trim_suffix("file.tar.gz", ".*", true).unwrap(), "file");
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        assert_eq!(reverse_pattern("ab\\*c"), "c\\*ba");
        assert_eq!(reverse_pattern("\\\\x"), "x\\\\");
        // A lone trailing escape stays unpaired and ends up first.
        assert_eq!(reverse_pattern("*\\"), "\\*");
        assert_eq!(reverse_pattern(""), "");
    }

    #[test]
    fn wildcards_do_not_match_newlines() {
        assert_eq!(trim_prefix("a\nb", "*", true).unwrap(), "\nb");
        assert_eq!(trim_prefix("\nb", "?", true).unwrap(), "\nb");
        assert_eq!(replace_all("a\nb", "*", "X").unwrap(), "X\nX");
    }

    #[test]
    fn special_characters_are_literal() {
        let value = "()[]{}^$.*?|\\x";
        assert_eq!(
            trim_prefix(value, "()[]{\\}^$.\\*\\?|\\\\", false).unwrap(),
            "x"
        );
        assert_eq!(trim_prefix("a/b", "a\\/", false).unwrap(), "b");
    }

    #[test]
    fn invalid_escapes_are_rejected() {
        for bad in ["\\", "\\x", "\\\\\\", "a\\$"] {
            let err = trim_prefix("abc", bad, false).unwrap_err();
            assert_eq!(err.pattern, bad);
            assert!(err.to_string().starts_with("invalid pattern"), "{err}");
        }
        assert_eq!(compile("\\x").unwrap_err().message, "invalid escape '\\x'");
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(
            replace_first("/foo*/*/*.txt", "\\*/", ".").unwrap(),
            "/foo.*/*.txt"
        );
        assert_eq!(
            replace_all("/foo*/*/*.txt", "\\*/", ".").unwrap(),
            "/foo..*.txt"
        );
        assert_eq!(
            replace_first("/a/foo/b/c.txt", "/?/", "/").unwrap(),
            "/foo/b/c.txt"
        );
        assert_eq!(
            replace_all("/a/foo/b/c.txt", "/?/", "/").unwrap(),
            "/foo/c.txt"
        );
        assert_eq!(replace_first("xxyy", "", "ww").unwrap(), "wwxxyy");
        assert_eq!(replace_all("xxyy", "", "").unwrap(), "xxyy");
        assert_eq!(replace_all("abc", "", "-").unwrap(), "-a-b-c-");
        assert_eq!(replace_all("abc", "*", "-").unwrap(), "-");
        assert_eq!(replace_all("aXbXc", "X*", "-").unwrap(), "a-");
        assert_eq!(replace_first("abc", "z", "-").unwrap(), "abc");
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace_all("foo", "o", "[$0]").unwrap(), "f[o][o]");
        assert_eq!(replace_all("foo", "o", "[${0}]").unwrap(), "f[o][o]");
        assert_eq!(replace_all("foo", "o", "$$").unwrap(), "f$$");
        assert_eq!(replace_all("foo", "o", "$1x").unwrap(), "f");
        assert_eq!(replace_all("foo", "o", "$.").unwrap(), "f$.$.");
        assert_eq!(replace_all("foo", "o", "${0").unwrap(), "f${0${0");
        // replace_first inserts the replacement literally.
        assert_eq!(replace_first("foo", "o", "$0").unwrap(), "f$0o");
    }
}
