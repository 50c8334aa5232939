//! Shell-word expansion, as BuildKit's `shell.Lex` does it.
//!
//! Dockerfile instructions such as `ENV`, `COPY` and `WORKDIR` expand
//! `$VAR` and `${VAR…}` in their arguments and remove quotes and escapes,
//! with no shell involved. This module reproduces BuildKit's rules exactly:
//!
//! * `'…'` is literal; `"…"` expands `$` and lets the escape token escape
//!   only `"`, `$` and itself; outside quotes the escape token (`\` or
//!   `` ` ``) makes the next character literal.
//! * `$name`, `${name}`, `${name-word}`, `${name:-word}`, `${name+word}`,
//!   `${name:+word}`, `${name?message}`, `${name:?message}`,
//!   `${name#pat}`, `${name##pat}`, `${name%pat}`, `${name%%pat}`,
//!   `${name/pat/repl}` and `${name//pat/repl}` (see [`pattern`]). WORD and
//!   the patterns are expanded recursively.
//! * [`Lexer::process_words`] also splits the result into words at unquoted
//!   whitespace, including whitespace that comes out of an unquoted `$var`.
//! * Limits BuildKit does not have, so that a hostile Dockerfile fails at
//!   once instead of exhausting the machine: `${…}` nests at most 100 deep,
//!   one word expands to at most [`MAX_WORD_LEN`] bytes (1 MiB), and a
//!   pattern operator matches at most [`MAX_PATTERN_WORK`] value × pattern
//!   characters. Each is an error naming the variable.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kiln_frontend::shell::Lexer;
//!
//! let env = BTreeMap::from([("NAME".to_string(), "a b".to_string())]);
//! let lexer = Lexer::new('\\');
//! assert_eq!(lexer.process_word(r#"x${NAME}'$NAME'"#, &env).unwrap(), "xa b$NAME");
//! assert_eq!(lexer.process_words("x$NAME \"c d\"", &env).unwrap(), ["xa", "b", "c d"]);
//! assert_eq!(lexer.process_word("${MISSING:-/usr}/bin", &env).unwrap(), "/usr/bin");
//! ```

mod env;
mod error;
mod expand;
mod names;
pub mod pattern;

use std::collections::BTreeSet;

pub use env::{CaseInsensitive, Env};
pub use error::{ShellError, ShellErrorKind};
pub use expand::{MAX_PATTERN_WORK, MAX_WORD_LEN};

/// The result of an expansion with the names that were looked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Variables that were looked up and were set (possibly to "").
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and were not set. BuildKit uses these
    /// for its "undefined variable" lint.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell lexer: expands words with an escape token and options.
///
/// The default mode removes quotes and escapes and expands unset variables
/// to "". The builder methods switch on BuildKit's other modes, which the
/// parser and the instruction layer need:
///
/// ```
/// use kiln_frontend::shell::Lexer;
///
/// // Heredoc marker detection: keep quotes and escapes, leave unset
/// // variables as written.
/// let raw = Lexer::new('\\').raw_quotes(true).raw_escapes(true).skip_unset(true);
/// let words = raw.process_words(r#"cat <<'EOF' "a\$b" $X"#, &Vec::new()).unwrap();
/// assert_eq!(words, ["cat", "<<'EOF'", r#""a\$b""#, "$X"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset: bool,
}

impl Default for Lexer {
    /// A lexer with the default escape token `\`.
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer in the default mode with `escape` as the escape token
    /// (`\`, or `` ` `` after `# escape=``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset: false,
        }
    }

    /// The escape token.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keeps the quote characters in the output (BuildKit's `RawQuotes`);
    /// they still group text and stop `$` expansion inside `'…'`.
    pub fn raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keeps escape tokens in the output (BuildKit's `RawEscapes`); the
    /// escaped character is still taken literally.
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Treats `'` and `"` as ordinary characters (BuildKit's
    /// `SkipProcessQuotes`), as for the body of an unquoted heredoc:
    /// `$` expands everywhere and the quotes stay.
    pub fn skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// Leaves references to unset variables as written (BuildKit's
    /// `SkipUnsetEnv`): `$X`, `${X}`, `${X:-word}` stay in the output, with
    /// their inner WORD expanded.
    pub fn skip_unset(mut self, on: bool) -> Lexer {
        self.skip_unset = on;
        self
    }

    /// Expands one word without splitting it: spaces stay as they are.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        expand::expand(self, word, env).map(|e| e.value)
    }

    /// Expands one word without splitting it, and reports which variables
    /// were looked up.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expansion, ShellError> {
        expand::expand(self, word, env).map(|e| Expansion {
            value: e.value,
            matched: e.matched,
            unmatched: e.unmatched,
        })
    }

    /// Expands `word` and splits the result into words at unquoted
    /// whitespace (also whitespace produced by an unquoted `$var`). Quoted
    /// and escaped text never splits; empty words are dropped.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        expand::expand(self, word, env).map(|e| e.words)
    }
}

#[cfg(test)]
mod tests;
