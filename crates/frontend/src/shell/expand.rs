//! The expansion itself: one pass over the word, left to right, in the
//! structure of BuildKit's `shellWord` (`processStopOn`, `processDollar`,
//! quotes), so that its corner cases come out the same.

use std::collections::BTreeSet;

use super::error::{ShellError, ShellErrorKind};
use super::names::{is_digit, is_letter, is_space};
use super::pattern;
use super::{Env, Lexer};

/// How many `${…}` may nest inside each other. BuildKit has no limit; kiln
/// has one so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 100;

/// The most bytes one word may expand to. BuildKit has no limit, so
/// `ARG a=$a$a` repeated 30 times asks it for gigabytes; kiln stops at
/// 1 MiB, which is far more than any real instruction argument needs and
/// more than Linux accepts for one environment string of a RUN (128 KiB).
pub const MAX_WORD_LEN: usize = 1 << 20;

/// The outcome of expanding one word.
pub(crate) struct Expanded {
    pub(crate) value: String,
    pub(crate) words: Vec<String>,
    pub(crate) matched: BTreeSet<String>,
    pub(crate) unmatched: BTreeSet<String>,
}

pub(crate) fn expand(lexer: &Lexer, word: &str, env: &dyn Env) -> Result<Expanded, ShellError> {
    let mut expander = Expander {
        lexer,
        env,
        src: word,
        pos: 0,
        raw_escapes: lexer.raw_escapes,
        depth: 0,
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    match expander.process_until(None, lexer.raw_escapes) {
        Ok((value, words)) => Ok(Expanded {
            value,
            words: words.finish(),
            matched: expander.matched,
            unmatched: expander.unmatched,
        }),
        Err(Fail { offset, kind }) => Err(ShellError {
            word: word.to_string(),
            offset,
            kind,
        }),
    }
}

/// Fails when a word would grow to `len` bytes, past [`MAX_WORD_LEN`],
/// blaming the variable `name` whose `$` is at `offset`.
fn check_len(len: usize, offset: usize, name: &str) -> Result<(), Fail> {
    if len > MAX_WORD_LEN {
        return fail(offset, too_long(name));
    }
    Ok(())
}

/// The most `value` characters × `pattern` characters one `${name#…}`,
/// `${name%…}` or `${name/…/…}` may match: the matcher's time grows with
/// that product, and `${a/$a/x}` with a 64 KiB `a` ran for minutes. Real
/// patterns against real values are thousands of times smaller.
pub const MAX_PATTERN_WORK: usize = 1 << 27;

/// Fails when matching `pattern` against `value` would take longer than
/// [`MAX_PATTERN_WORK`] allows.
fn check_pattern_work(value: &str, pattern: &str, offset: usize, name: &str) -> Result<(), Fail> {
    let work = value
        .chars()
        .count()
        .saturating_mul(pattern.chars().count() + 1);
    if work > MAX_PATTERN_WORK {
        return fail(
            offset,
            ShellErrorKind::PatternTooCostly {
                name: name.to_string(),
            },
        );
    }
    Ok(())
}

fn too_long(name: &str) -> ShellErrorKind {
    ShellErrorKind::TooLong {
        name: name.to_string(),
        limit: MAX_WORD_LEN,
    }
}

struct Fail {
    offset: usize,
    kind: ShellErrorKind,
}

fn fail<T>(offset: usize, kind: ShellErrorKind) -> Result<T, Fail> {
    Err(Fail { offset, kind })
}

/// Word splitting: unquoted whitespace ends a word; quoted and escaped text
/// never does. Empty words are never produced.
#[derive(Default)]
struct Words {
    current: String,
    done: Vec<String>,
}

impl Words {
    fn push(&mut self, c: char) {
        if is_space(c) {
            self.split();
        } else {
            self.current.push(c);
        }
    }

    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    fn push_raw(&mut self, c: char) {
        self.current.push(c);
    }

    fn push_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
    }

    fn split(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.split();
        self.done
    }
}

struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    src: &'a str,
    pos: usize,
    /// Whether escapes are kept; on inside patterns, where they matter.
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl Expander<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.get(name);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !seen.contains(name) {
            seen.insert(name.to_string());
        }
        value
    }

    /// Expands up to `stop` (consumed) or the end of the word. Reaching the
    /// end while looking for `stop` is an error; callers report it as the
    /// missing delimiter of their `${…}`.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Words), Fail> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Result<(String, Words), Fail> {
        let escape = self.lexer.escape;
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.bump();
                return Ok((result, words));
            }
            match c {
                '$' => {
                    let start = self.pos;
                    let (name, value) = self.dollar()?;
                    check_len(result.len() + value.len(), start, &name)?;
                    result.push_str(&value);
                    words.push_str(&value);
                    continue;
                }
                '\'' | '"' if !self.lexer.skip_process_quotes => {
                    let value = if c == '\'' {
                        self.single_quote()?
                    } else {
                        self.double_quote()?
                    };
                    result.push_str(&value);
                    words.push_raw_str(&value);
                    continue;
                }
                _ => {}
            }
            self.bump();
            if c == escape {
                if self.raw_escapes {
                    words.push_raw(c);
                    result.push(c);
                }
                // An escape at the very end escapes nothing and is dropped.
                let Some(escaped) = self.bump() else { break };
                words.push_raw(escaped);
                result.push(escaped);
            } else if c == '<' && self.peek() == Some('<') {
                // A heredoc marker keeps the blanks after `<<` in its word.
                self.bump();
                words.push_raw_str("<<");
                result.push_str("<<");
                while let Some(blank @ (' ' | '\t' | '\r')) = self.peek() {
                    self.bump();
                    words.push_raw(blank);
                    result.push(blank);
                }
            } else {
                words.push(c);
                result.push(c);
            }
        }
        match stop {
            Some('/') => fail(self.pos, ShellErrorKind::MissingSlash),
            Some(_) => fail(self.pos, ShellErrorKind::MissingBrace),
            None => Ok((result, words)),
        }
    }

    fn single_quote(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.bump() {
                None => return fail(start, ShellErrorKind::UnterminatedQuote('\'')),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, Fail> {
        let escape = self.lexer.escape;
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return fail(start, ShellErrorKind::UnterminatedQuote('"')),
                Some('"') => {
                    self.bump();
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let dollar = self.pos;
                    let (name, value) = self.dollar()?;
                    check_len(out.len() + value.len(), dollar, &name)?;
                    out.push_str(&value);
                }
                Some(c) => {
                    self.bump();
                    if c != escape {
                        out.push(c);
                        continue;
                    }
                    if self.raw_escapes {
                        out.push(c);
                    }
                    // Only `"`, `$` and the escape itself can be escaped;
                    // before anything else the escape is an ordinary
                    // character. At the end it is dropped (and the quote is
                    // then unterminated).
                    match self.peek() {
                        None => {}
                        Some(next) if next == '"' || next == '$' || next == escape => {
                            self.bump();
                            out.push(next);
                        }
                        // BuildKit writes the escape a second time here
                        // when escapes are kept, so `"\t"` in a pattern
                        // means a literal backslash followed by `t`.
                        Some(_) => out.push(c),
                    }
                }
            }
        }
    }

    /// A variable name: a run of decimal digits, one special parameter
    /// character, or letters, digits and `_` not starting with a digit.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    self.bump();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.bump();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.bump();
            name.push(c);
        }
        name
    }

    /// Expands the WORD, PATTERN or REPLACEMENT part of a `${…}` that
    /// starts at `start`. Any failure at the end of the input is reported
    /// as the missing delimiter `at_end`, as BuildKit does.
    fn nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        start: usize,
        at_end: ShellErrorKind,
    ) -> Result<String, Fail> {
        match self.process_until(Some(stop), raw_escapes) {
            Ok((value, _)) => Ok(value),
            Err(_) if self.peek().is_none() => fail(start, at_end),
            Err(e) => Err(e),
        }
    }

    /// A `$…` expansion: the variable's name (empty for a lone `$`) and the
    /// text it expands to.
    fn dollar(&mut self) -> Result<(String, String), Fail> {
        let start = self.pos;
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok((name, "$".to_string()));
            }
            let value = match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            };
            return Ok((name, value));
        }
        self.bump();
        if self.depth >= MAX_DEPTH {
            return fail(start, ShellErrorKind::TooDeep);
        }
        match self.peek() {
            None => return fail(start, ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return fail(start, ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        self.depth += 1;
        let result = self.braced(start, &name);
        self.depth -= 1;
        let value = result?;
        check_len(value.len(), start, &name)?;
        Ok((name, value))
    }

    /// The rest of a `${name…}` after the name; the `$` is at `start`.
    fn braced(&mut self, start: usize, name: &str) -> Result<String, Fail> {
        let name = name.to_string();
        let Some(op) = self.bump() else {
            return fail(start, ShellErrorKind::MissingBrace);
        };
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.modifier(start, name, op),
            '/' => self.replace(start, name),
            other => fail(
                start,
                ShellErrorKind::UnsupportedModifier(other.to_string()),
            ),
        }
    }

    /// `${name<op>WORD}` for `-`, `+`, `?`, `#`, `%`, with or without `:`.
    fn modifier(&mut self, start: usize, name: String, first: char) -> Result<String, Fail> {
        let mut written = first.to_string();
        let null_is_unset = first == ':';
        let op = if null_is_unset {
            let Some(op) = self.bump() else {
                return fail(start, ShellErrorKind::MissingBrace);
            };
            written.push(op);
            op
        } else {
            first
        };
        let is_pattern = op == '#' || op == '%';
        if null_is_unset && is_pattern {
            return fail(start, ShellErrorKind::UnsupportedModifier(written));
        }
        let word = self.nested('}', is_pattern, start, ShellErrorKind::MissingBrace)?;
        let value = self.lookup(&name);
        if value.is_none() && self.lexer.skip_unset {
            return Ok(format!("${{{name}{written}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let usable = set && !(null_is_unset && value.is_empty());
        match op {
            '-' => Ok(if usable { value } else { word }),
            '+' => Ok(if usable { word } else { String::new() }),
            '?' if usable => Ok(value),
            '?' => {
                let message = if !word.is_empty() {
                    word
                } else if set {
                    "is not allowed to be empty".to_string()
                } else {
                    "is not allowed to be unset".to_string()
                };
                fail(start, ShellErrorKind::Required { name, message })
            }
            '#' | '%' => {
                let (pattern, longest) = match word.strip_prefix(op) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                check_pattern_work(&value, pattern, start, &name)?;
                let trimmed = if op == '#' {
                    pattern::trim_prefix(&value, pattern, longest)
                } else {
                    pattern::trim_suffix(&value, pattern, longest)
                };
                trimmed.or_else(|e| fail(start, ShellErrorKind::InvalidPattern(e)))
            }
            _ => fail(start, ShellErrorKind::UnsupportedModifier(written)),
        }
    }

    /// `${name/PATTERN/REPLACEMENT}` and `${name//PATTERN/REPLACEMENT}`.
    fn replace(&mut self, start: usize, name: String) -> Result<String, Fail> {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let pat = self.nested('/', true, start, ShellErrorKind::MissingSlash)?;
        let replacement = self.nested('}', true, start, ShellErrorKind::MissingBrace)?;
        let value = match self.lookup(&name) {
            Some(value) => value,
            None if self.lexer.skip_unset => return Ok(format!("${{{name}/{pat}/{replacement}}}")),
            None => String::new(),
        };
        check_pattern_work(&value, &pat, start, &name)?;
        let replaced = if all {
            pattern::replace_all_within(&value, &pat, &replacement, MAX_WORD_LEN)
        } else {
            pattern::replace_first(&value, &pat, &replacement).map(Some)
        };
        match replaced {
            Ok(Some(text)) => Ok(text),
            Ok(None) => fail(start, too_long(&name)),
            Err(e) => fail(start, ShellErrorKind::InvalidPattern(e)),
        }
    }
}
