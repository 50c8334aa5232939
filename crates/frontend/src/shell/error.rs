//! Expansion errors.

use std::fmt;

use super::pattern::PatternError;
use crate::go_quote;

/// What went wrong while expanding a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellErrorKind {
    /// A `${` is never closed: `${x`, `${x:-y`.
    MissingBrace,
    /// `${x/pattern` has no second `/`.
    MissingSlash,
    /// `${` is followed by `}`, `{` or `:` instead of a name.
    BadSubstitution,
    /// `${name` is followed by something other than a supported operator,
    /// e.g. `:=` or `.`; the text is the operator as written.
    UnsupportedModifier(String),
    /// A `'` or `"` (the character given) is never closed.
    UnterminatedQuote(char),
    /// `${NAME?message}` or `${NAME:?message}` found the variable unset (or
    /// empty); `message` is the expanded message or BuildKit's default.
    Required {
        /// The variable name.
        name: String,
        /// The message shown after `NAME: `.
        message: String,
    },
    /// The pattern of `${x#…}`, `${x%…}` or `${x/…/…}` is invalid.
    InvalidPattern(PatternError),
    /// `${…}` is nested deeper than kiln follows.
    TooDeep,
    /// Expanding the variable `name` made the word longer than `limit`
    /// bytes ([`crate::shell::MAX_WORD_LEN`]).
    TooLong {
        /// The variable whose expansion crossed the limit.
        name: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Matching the pattern of `${name#…}`, `${name%…}` or `${name/…/…}`
    /// against the value of `name` would take more than
    /// [`crate::shell::MAX_PATTERN_WORK`] steps.
    PatternTooCostly {
        /// The variable the pattern is matched against.
        name: String,
    },
}

/// An expansion error.
///
/// `Display` gives a message like BuildKit's, e.g.
/// `failed to process "${x": missing '}'` or
/// `failed to process "${NAME?}": NAME: is not allowed to be unset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellError {
    /// The whole word being expanded.
    pub word: String,
    /// Byte offset in `word` of the construct at fault (the `$` of a
    /// `${…}`, or the opening quote).
    pub offset: usize,
    /// What went wrong.
    pub kind: ShellErrorKind,
}

impl ShellError {
    /// How to fix the error, when there is an obvious fix.
    pub fn help(&self) -> Option<String> {
        Some(match &self.kind {
            ShellErrorKind::MissingBrace => {
                "close the ${ with a }, or escape the $ to keep it literal".to_string()
            }
            ShellErrorKind::MissingSlash => {
                "write ${NAME/pattern/replacement}, escaping any / in the pattern as \\/"
                    .to_string()
            }
            ShellErrorKind::BadSubstitution | ShellErrorKind::UnsupportedModifier(_) => {
                "supported forms are ${NAME}, ${NAME-word}, ${NAME:-word}, ${NAME+word}, \
                 ${NAME:+word}, ${NAME?message}, ${NAME:?message}, ${NAME#pattern}, \
                 ${NAME%pattern} and ${NAME/pattern/replacement}"
                    .to_string()
            }
            ShellErrorKind::UnterminatedQuote(q) => {
                format!("add the closing {q}, or escape the opening one")
            }
            ShellErrorKind::Required { name, .. } => {
                format!("set {name} (for example with ARG or ENV)")
            }
            ShellErrorKind::InvalidPattern(_) => {
                "in patterns only \\*, \\?, \\\\, \\} and \\/ may be escaped".to_string()
            }
            ShellErrorKind::TooDeep => "nest fewer ${…} inside each other".to_string(),
            ShellErrorKind::TooLong { name, .. } => format!(
                "a variable that refers to itself more than once (like ARG {name}=${name}${name}) doubles with each line; \
                 pass large data in a file instead"
            ),
            ShellErrorKind::PatternTooCostly { .. } => {
                "match a shorter pattern, or a shorter value".to_string()
            }
        })
    }
}

impl fmt::Display for ShellErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellErrorKind::MissingBrace => write!(f, "missing '}}'"),
            ShellErrorKind::MissingSlash => write!(f, "missing '/' in ${{}}"),
            ShellErrorKind::BadSubstitution => write!(f, "bad substitution"),
            ShellErrorKind::UnsupportedModifier(m) => {
                write!(f, "unsupported modifier ({m}) in substitution")
            }
            ShellErrorKind::UnterminatedQuote('\'') => {
                write!(
                    f,
                    "unexpected end of statement while looking for matching single-quote"
                )
            }
            ShellErrorKind::UnterminatedQuote(_) => {
                write!(
                    f,
                    "unexpected end of statement while looking for matching double-quote"
                )
            }
            ShellErrorKind::Required { name, message } => write!(f, "{name}: {message}"),
            ShellErrorKind::InvalidPattern(e) => write!(
                f,
                "invalid pattern ({}) in substitution: {}",
                e.pattern, e.message
            ),
            ShellErrorKind::TooDeep => write!(f, "${{…}} nested too deeply"),
            ShellErrorKind::TooLong { name, limit } => write!(
                f,
                "expanding ${name} makes the word longer than {} MiB, kiln's limit",
                limit >> 20
            ),
            ShellErrorKind::PatternTooCostly { name } => write!(
                f,
                "matching this pattern against ${name} is too costly: \
                 its length times the length of ${name} passes kiln's limit of {} million",
                crate::shell::MAX_PATTERN_WORK / 1_000_000
            ),
        }
    }
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "failed to process {}: {}",
            go_quote(&self.word),
            self.kind
        )
    }
}

impl std::error::Error for ShellError {}
