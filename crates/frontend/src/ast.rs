//! BuildKit's low-level Dockerfile AST.
//!
//! This mirrors BuildKit's `parser.Node` closely enough to print its dump
//! format byte for byte; the typed instructions in [`crate::instructions`]
//! are built from it.

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    /// The file name given to [`crate::parse`], used in error messages.
    pub file: String,
    /// The physical lines of the source (BOM and line endings removed), so
    /// later stages can show the offending line of an error.
    pub lines: Vec<String>,
    /// Top-level instructions in source order.
    pub children: Vec<Node>,
    /// Parser directives found at the top of the file, as
    /// `(lower-cased name, value)` in file order (`syntax`, `escape`, `check`).
    pub directives: Vec<(String, String)>,
    /// The escape token in force (`\` or `` ` ``).
    pub escape: char,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

/// One instruction (or, for ONBUILD, the instruction it wraps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword exactly as written (`RUN`, `run`, `Copy`).
    pub keyword: String,
    /// Flags in source order, unquoted, as `--name=value` or `--name`.
    pub flags: Vec<String>,
    /// The argument nodes.
    pub args: Args,
    /// True when the arguments were given in JSON (exec) form.
    pub json_form: bool,
    /// The logical line after continuation joining and trimming, keyword
    /// included (BuildKit's `Original`).
    pub original: String,
    /// First physical line (1-based).
    pub start_line: usize,
    /// Last physical line consumed, heredoc bodies included (1-based).
    pub end_line: usize,
    /// Heredocs attached to this instruction, in order of their markers.
    pub heredocs: Vec<Heredoc>,
}

/// The argument nodes of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Plain string arguments (see the conformance README, section 2.2).
    Values(Vec<String>),
    /// The instruction wrapped by ONBUILD.
    Nested(Box<Node>),
}

/// A heredoc body attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The marker word with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// Every body line up to the terminator, each with its `\n`; tabs are
    /// not stripped here even for `<<-`.
    pub content: String,
    /// False when any part of the marker was quoted: no expansion.
    pub expand: bool,
    /// True for `<<-` (leading tabs are stripped when the body is used).
    pub chomp: bool,
    /// The file descriptor digits before `<<`, 0 when absent.
    pub file_descriptor: u32,
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line the warning concerns.
    pub line: usize,
    /// Human-readable text.
    pub message: String,
}

impl Ast {
    /// Builds an error located at `line` of this file, with the source line
    /// filled in and the caret on the first occurrence of `needle`, if given.
    pub fn error_at(&self, err: crate::Error, line: usize, needle: Option<&str>) -> crate::Error {
        let mut err = err.in_file(self.file.clone()).at(line, 0);
        if let Some(text) = line.checked_sub(1).and_then(|i| self.lines.get(i)) {
            err = err.with_source_line(text.clone());
            if let Some(pos) = needle.and_then(|n| text.find(n)) {
                err.column = text[..pos].chars().count() + 1;
            }
        }
        err
    }
}
