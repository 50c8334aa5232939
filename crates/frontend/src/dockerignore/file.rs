//! Reading an ignore file into patterns, as moby's `ignorefile.ReadAll` does.

use super::pattern::clean;

/// One pattern line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternLine {
    /// 1-based line number in the file.
    pub number: usize,
    /// The pattern as `ReadAll` returns it (with `!` for an exception).
    pub pattern: String,
    /// The line as written, for error messages.
    pub source: String,
}

/// Splits `contents` into patterns: a UTF-8 byte order mark is dropped from
/// the first line, lines whose first character is `#` are comments (a `#`
/// after leading blanks is part of a pattern), blank lines are skipped, and
/// each pattern is trimmed and cleaned with a leading `/` removed.
///
/// Bytes that are not UTF-8 become U+FFFD rather than an error, so a
/// Latin-1 comment does not break a build that Docker accepts.
pub(crate) fn read_patterns(contents: &[u8]) -> Vec<PatternLine> {
    let text = String::from_utf8_lossy(contents);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        // Go's line scanner drops one `\r` before each `\n`.
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (invert, rest) = match trimmed.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, trimmed),
        };
        let mut pattern = String::new();
        if !rest.is_empty() {
            let cleaned = clean(rest);
            pattern = match cleaned.strip_prefix('/') {
                Some(relative) if !relative.is_empty() => relative.to_string(),
                _ => cleaned,
            };
        }
        if invert {
            pattern.insert(0, '!');
        }
        lines.push(PatternLine {
            number: index + 1,
            pattern,
            source: line.to_string(),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_moby_read_all() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        let got: Vec<String> = read_patterns(content.as_bytes())
            .into_iter()
            .map(|l| l.pattern)
            .collect();
        assert_eq!(
            got,
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
    }

    #[test]
    fn keeps_line_numbers_and_source() {
        let lines = read_patterns(b"\xEF\xBB\xBF# c\r\n\r\n  ./a/b/ \r\n");
        assert_eq!(
            lines,
            [PatternLine {
                number: 3,
                pattern: "a/b".into(),
                source: "  ./a/b/ ".into()
            }]
        );
    }
}
