//! Front-end errors: a cause, wrapped with the file, line and column it came
//! from, so the CLI can print the offending line with a caret under the spot.

use std::fmt;

/// What went wrong, independent of where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The Dockerfile could not be parsed (syntax, directives, heredocs).
    Syntax,
    /// An instruction or flag is unknown or malformed.
    Instruction,
    /// Shell-word expansion failed (`${x:?unset}`, bad substitution, ...).
    Expansion,
    /// The build description is inconsistent (unknown stage, cycles, ...).
    Semantic,
    /// The feature is recognised but kiln does not support it.
    NotSupported,
    /// The file could not be read.
    Io,
}

/// An error with its location in a Dockerfile.
///
/// `line` and `column` are 1-based; 0 means "unknown" (the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The category of the error.
    pub kind: ErrorKind,
    /// The file name as given by the caller (usually the Dockerfile path).
    pub file: String,
    /// 1-based line number, 0 if the error concerns the whole file.
    pub line: usize,
    /// 1-based column, 0 if unknown.
    pub column: usize,
    /// The text of the offending physical line, when known.
    pub source_line: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious fix.
    pub help: Option<String>,
}

impl Error {
    /// Makes an error of `kind` with a message and no location yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            file: String::new(),
            line: 0,
            column: 0,
            source_line: None,
            message: message.into(),
            help: None,
        }
    }

    /// Sets the file name.
    pub fn in_file(mut self, file: impl Into<String>) -> Error {
        self.file = file.into();
        self
    }

    /// Sets the line (1-based) and the column (1-based, 0 for unknown).
    pub fn at(mut self, line: usize, column: usize) -> Error {
        self.line = line;
        self.column = column;
        self
    }

    /// Records the source text of the offending line.
    pub fn with_source_line(mut self, text: impl Into<String>) -> Error {
        self.source_line = Some(text.into());
        self
    }

    /// Adds a hint on how to fix the problem.
    pub fn with_help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    /// Fills in the source line and, when the column is unknown, points at
    /// the first occurrence of `needle` in it. `source` is the whole file.
    pub fn locate(mut self, source: &str, needle: Option<&str>) -> Error {
        if self.line == 0 {
            return self;
        }
        if self.source_line.is_none() {
            if let Some(text) = source.lines().nth(self.line - 1) {
                self.source_line = Some(text.trim_end_matches('\r').to_string());
            }
        }
        if self.column == 0 {
            if let (Some(text), Some(needle)) = (&self.source_line, needle) {
                if let Some(pos) = text.find(needle) {
                    self.column = text[..pos].chars().count() + 1;
                }
            }
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = if self.file.is_empty() {
            "Dockerfile"
        } else {
            &self.file
        };
        match (self.line, self.column) {
            (0, _) => write!(f, "{file}: {}", self.message)?,
            (line, 0) => write!(f, "{file}:{line}: {}", self.message)?,
            (line, col) => write!(f, "{file}:{line}:{col}: {}", self.message)?,
        }
        if let Some(text) = &self.source_line {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            write!(f, "\n {pad} |\n {number} | {text}")?;
            if self.column > 0 {
                // Tabs keep their width so the caret lines up under them.
                let lead: String = text
                    .chars()
                    .take(self.column - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n {pad} | {lead}^")?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_line_and_caret() {
        let err = Error::new(ErrorKind::Instruction, "unknown flag --mout for RUN")
            .in_file("app/Dockerfile")
            .at(3, 5)
            .with_source_line("RUN --mout=type=cache true")
            .with_help("did you mean --mount?");
        assert_eq!(
            err.to_string(),
            "app/Dockerfile:3:5: unknown flag --mout for RUN\n   |\n 3 | RUN --mout=type=cache true\n   |     ^\n  help: did you mean --mount?"
        );
    }

    #[test]
    fn locate_finds_column_from_needle() {
        let err = Error::new(ErrorKind::Instruction, "x")
            .at(2, 0)
            .locate("FROM a\nCOPY --chmod=9z a b\n", Some("--chmod"));
        assert_eq!(err.column, 6);
        assert_eq!(err.source_line.as_deref(), Some("COPY --chmod=9z a b"));
    }
}
