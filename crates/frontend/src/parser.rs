//! BuildKit's Dockerfile parser, reproduced exactly: physical lines, line
//! continuation with the escape token, parser directives, keyword and flag
//! extraction, the per-instruction argument rules, and heredoc bodies.
//!
//! The input is decoded as UTF-8 first; invalid byte sequences become
//! U+FFFD (BuildKit keeps raw bytes, which kiln's string types cannot), so
//! any input parses or fails with an error and never panics.
//!
//! Two deliberate differences from upstream, both only visible with
//! non-ASCII text: flags are read one character at a time (upstream reads
//! bytes and turns `é` in a flag into mojibake), and HEALTHCHECK's type
//! word ends at ASCII whitespace only (upstream also splits inside some
//! UTF-8 sequences).

mod directives;
mod dump;
mod heredoc;
mod json;
mod node;
mod text;

pub use directives::{detect_syntax, parse_check, syntax_warning, SyntaxDirective};
pub use heredoc::{chomp_heredoc, heredocs_from_line, parse_heredoc_word};
pub use kiln_oci::config::go_quote;
pub use node::parse_words;

use crate::{Args, Ast, Error, ErrorKind, Node, Warning};
use directives::DirectiveParser;
use node::{node_from_line, LineError};
use text::{go_lower, trim_newline};

/// The longest line BuildKit's parser reads (`bufio.MaxScanTokenSize - 1`).
const MAX_LINE: usize = 65_535;

/// The UTF-8 byte-order mark, ignored at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses a Dockerfile. `file` names it in errors.
///
/// ```
/// let ast = kiln_frontend::parse("Dockerfile", b"# escape=`\nFROM a\nRUN echo `\n  hi\n").unwrap();
/// assert_eq!(ast.escape, '`');
/// assert_eq!(ast.children[1].values(), ["echo   hi"]);
/// assert_eq!((ast.children[1].start_line, ast.children[1].end_line), (3, 4));
/// ```
pub fn parse(file: &str, source: &[u8]) -> Result<Ast, Error> {
    let source = source.strip_prefix(BOM).unwrap_or(source);
    // BuildKit reads lines with a 64 KiB scanner and refuses a longer one.
    if let Some((i, line)) = source
        .split(|b| *b == b'\n')
        .enumerate()
        .find(|(_, l)| l.len() > MAX_LINE)
    {
        return Err(Error::new(
            ErrorKind::Syntax,
            format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
        )
        .in_file(file)
        .at(i + 1, 0)
        .with_help(format!(
            "this line is {} bytes long; pass large data in a file (COPY it, or RUN --mount it) instead",
            line.len()
        )));
    }
    let text = String::from_utf8_lossy(source);
    let raw: Vec<&str> = text.split_inclusive('\n').collect();
    let lines: Vec<String> = raw.iter().map(|l| trim_newline(l).to_string()).collect();
    let mut parser = Parser {
        file,
        raw: &raw,
        lines: &lines,
        next: 0,
        escape: '\\',
        directive_parser: DirectiveParser::new("#"),
        directives: Vec::new(),
        children: Vec::new(),
        warnings: Vec::new(),
    };
    parser.run()?;
    let Parser {
        escape,
        directives,
        children,
        warnings,
        ..
    } = parser;
    Ok(Ast {
        file: file.to_string(),
        lines,
        children,
        directives,
        escape,
        warnings,
    })
}

impl Ast {
    /// The lines from the first instruction's start to the last one's end
    /// (blank lines and comments around them excluded), or `None` for an
    /// AST without instructions.
    pub fn span(&self) -> Option<(usize, usize)> {
        Some((
            self.children.first()?.start_line,
            self.children.last()?.end_line,
        ))
    }
}

struct Parser<'a> {
    file: &'a str,
    /// Physical lines with their line endings (heredoc bodies keep them).
    raw: &'a [&'a str],
    /// Physical lines without line endings.
    lines: &'a [String],
    /// Index of the next unread physical line.
    next: usize,
    escape: char,
    directive_parser: DirectiveParser,
    directives: Vec<(String, String)>,
    children: Vec<Node>,
    warnings: Vec<Warning>,
}

impl<'a> Parser<'a> {
    /// Takes the next physical line: its 1-based number and its text
    /// without line ending.
    fn take_line(&mut self) -> Option<(usize, &'a str)> {
        let index = self.next;
        let lines = self.lines;
        let line = lines.get(index)?;
        self.next += 1;
        Some((index + 1, line))
    }

    fn run(&mut self) -> Result<(), Error> {
        while let Some((number, line)) = self.take_line() {
            let first = line.trim_start();
            self.directive(first, number)?;
            let content = if first.starts_with('#') { "" } else { first };
            let (start_text, mut ended) = trim_continuation(content, self.escape);
            if ended && start_text.is_empty() {
                continue;
            }
            let mut logical = start_text.to_string();
            let mut end = number;
            let mut empty_continuation = false;
            while !ended {
                let Some((number, line)) = self.take_line() else {
                    break;
                };
                end = number;
                let trimmed = line.trim_start();
                if trimmed.starts_with('#') {
                    continue;
                }
                if trimmed.is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (text, line_ended) = trim_continuation(line, self.escape);
                logical.push_str(text);
                ended = line_ended;
            }
            if empty_continuation {
                self.warnings.push(Warning {
                    line: end,
                    message: format!(
                        "Empty continuation line found in: {logical}\n\
                         Empty continuation lines will become errors in a future release"
                    ),
                });
            }
            let node = node_from_line(&logical, self.escape)
                .map_err(|e| self.line_error(e, number, end))?;
            let node = self.read_heredocs(node, &logical, number, &mut end)?;
            self.children.push(with_lines(node, number, end));
        }
        if self.children.is_empty() {
            let line = self.lines.len().max(1);
            return Err(self
                .error(ErrorKind::Syntax, "file with no instructions", line, None)
                .with_help("a Dockerfile needs at least one instruction, usually FROM"));
        }
        Ok(())
    }

    /// Feeds a line to the directive parser and applies `escape`.
    fn directive(&mut self, line: &str, number: usize) -> Result<(), Error> {
        let found = self.directive_parser.parse_line(line).map_err(|msg| {
            self.error(ErrorKind::Syntax, msg, number, Some("#"))
                .with_help("remove the repeated directive")
        })?;
        let Some((name, value)) = found else {
            return Ok(());
        };
        if name == "escape" {
            self.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    let message = format!("invalid escape token '{value}' does not match ` or \\");
                    return Err(self
                        .error(ErrorKind::Syntax, message, number, Some("#"))
                        .with_help(
                            "the escape token must be a backslash (the default) or a backtick",
                        ));
                }
            };
        }
        self.directives.push((name, value));
        Ok(())
    }

    /// Reads the bodies of the heredocs `node` declares, if it can have any.
    fn read_heredocs(
        &mut self,
        mut node: Node,
        logical: &str,
        start: usize,
        end: &mut usize,
    ) -> Result<Node, Error> {
        if !can_contain_heredoc(&node) || !logical.contains("<<") {
            return Ok(node);
        }
        let docs = heredocs_from_line(logical).map_err(|e| {
            let located = self.error(e.kind.clone(), e.message.clone(), start, Some("<<"));
            match e.help {
                Some(help) => located.with_help(help),
                None => located,
            }
        })?;
        for mut doc in docs {
            let mut terminated = false;
            while self.next < self.raw.len() {
                let raw = self.raw[self.next];
                self.next += 1;
                *end = self.next;
                let mut candidate = trim_newline(raw);
                if doc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == doc.name {
                    terminated = true;
                    break;
                }
                doc.content.push_str(raw);
            }
            if !terminated {
                let name = &doc.name;
                return Err(self
                    .error(ErrorKind::Syntax, "unterminated heredoc", start, Some("<<"))
                    .with_help(format!(
                        "end the heredoc with a line containing only `{name}`"
                    )));
            }
            node.heredocs.push(doc);
        }
        Ok(node)
    }

    /// An error at `line`, with the caret on the first `needle` in it.
    fn error(
        &self,
        kind: ErrorKind,
        message: impl Into<String>,
        line: usize,
        needle: Option<&str>,
    ) -> Error {
        self.error_after(kind, message, line, needle, 0)
    }

    /// Like [`Parser::error`], looking for `needle` from byte `from` on.
    fn error_after(
        &self,
        kind: ErrorKind,
        message: impl Into<String>,
        line: usize,
        needle: Option<&str>,
        from: usize,
    ) -> Error {
        let mut err = Error::new(kind, message).in_file(self.file).at(line, 0);
        if let Some(text) = line.checked_sub(1).and_then(|i| self.lines.get(i)) {
            let found = needle.and_then(|n| Some(from + text.get(from..)?.find(n)?));
            if let Some(pos) = found {
                err.column = text[..pos].chars().count() + 1;
            }
            err = err.with_source_line(text.clone());
        }
        err
    }

    /// Locates an instruction error on the physical line (of the
    /// instruction's lines) that holds the offending text.
    fn line_error(&self, e: LineError, start: usize, end: usize) -> Error {
        // On the first line, look past the keyword so `ENV E` points at
        // the name, not at the E of ENV.
        let first = &self.lines[start - 1];
        let after_keyword = first.len() - first.trim_start().len()
            + first.trim_start().find(char::is_whitespace).unwrap_or(0);
        let needle = e.needle.as_deref();
        let (line, from) = match needle {
            Some(n) if first.get(after_keyword..).is_some_and(|t| t.contains(n)) => {
                (start, after_keyword)
            }
            Some(n) => (start + 1..=end)
                .find(|&l| self.lines[l - 1].contains(n))
                .map_or((start, 0), |l| (l, 0)),
            None => (start, 0),
        };
        let err = self.error_after(ErrorKind::Syntax, e.message, line, needle, from);
        match e.help {
            Some(help) => err.with_help(help),
            None => err,
        }
    }
}

/// Applies BuildKit's line-continuation rule: a line continues when it ends
/// with the escape token plus optional blanks, unless that token is itself
/// escaped. Returns the text to keep and whether the instruction ended.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    match body.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

/// RUN, COPY and ADD in shell form take heredocs, also inside ONBUILD.
fn can_contain_heredoc(node: &Node) -> bool {
    let target = match &node.args {
        Args::Nested(inner) if go_lower(&node.keyword) == "onbuild" => inner,
        _ => node,
    };
    matches!(go_lower(&target.keyword).as_str(), "add" | "copy" | "run") && !target.json_form
}

fn with_lines(mut node: Node, start: usize, end: usize) -> Node {
    node.start_line = start;
    node.end_line = end;
    if let Args::Nested(inner) = node.args {
        node.args = Args::Nested(Box::new(with_lines(*inner, start, end)));
    }
    node
}

#[cfg(test)]
mod tests;
