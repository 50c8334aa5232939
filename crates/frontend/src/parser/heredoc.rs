//! Heredoc markers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) on RUN, COPY and ADD
//! lines, found the way BuildKit finds them: split the whole line into
//! shell words, then test each word against `^(\d*)<<(-?)\s*([^<]*)$`.

use crate::shell::Lexer;
use crate::{Error, ErrorKind, Heredoc};

/// Reads one shell word as a heredoc marker.
///
/// Returns `Ok(None)` when the word is not a marker (`EOF`, `<<`, `<<<EOF`,
/// or a marker whose name is more than one word, like `<<EOF sh`), and an
/// error when the name is malformed (`<<'EOF`). The returned heredoc has no
/// content yet. `expand` is false when any part of the name was quoted.
///
/// ```
/// let doc = kiln_frontend::parse_heredoc_word("3<<-'EOF'").unwrap().unwrap();
/// assert_eq!((doc.name.as_str(), doc.expand, doc.chomp, doc.file_descriptor), ("EOF", false, true, 3));
/// ```
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, Error> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, rest) = word.split_at(digits_end);
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let name = rest.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if name.is_empty() || name.contains('<') {
        return Ok(None);
    }
    let syntax = |message: String| Error::new(ErrorKind::Syntax, message);
    let words = shell_words(name, false, false).map_err(syntax)?;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    let raw = shell_words(name, true, false).map_err(syntax)?;
    let [raw] = raw.as_slice() else {
        return Err(syntax(format!(
            "internal lexing of heredoc produced inconsistent results: {name}"
        )));
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(Heredoc {
        name: word.clone(),
        content: String::new(),
        expand: quotes(word) == quotes(raw),
        chomp,
        // Go parses the digits into a uint and ignores overflow errors,
        // which leaves the maximum value.
        file_descriptor: if digits.is_empty() {
            0
        } else {
            digits.parse().unwrap_or(u32::MAX)
        },
    }))
}

/// Finds the heredoc markers of a whole instruction line, in order.
///
/// A line that cannot be split into words (an unterminated quote, say) has
/// no markers; upstream ignores that error too.
///
/// ```
/// let names: Vec<String> = kiln_frontend::heredocs_from_line("COPY <<A 3<<'B' \"<<C\" /dst")
///     .unwrap().into_iter().map(|h| h.name).collect();
/// assert_eq!(names, ["A", "B"]);
/// ```
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, Error> {
    let words = shell_words(line, true, true).unwrap_or_default();
    let mut docs = Vec::new();
    for word in &words {
        if let Some(doc) = parse_heredoc_word(word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Strips the leading tabs of every line of a `<<-` heredoc body.
///
/// ```
/// assert_eq!(kiln_frontend::chomp_heredoc("\thello\n\t\tworld\n"), "hello\nworld\n");
/// ```
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

/// Splits `input` into shell words the way BuildKit does to find heredoc
/// markers: backslash as escape token whatever the `escape` directive says,
/// unset variables kept as written, no expansion.
fn shell_words(input: &str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, String> {
    Lexer::new('\\')
        .raw_quotes(raw_quotes)
        .raw_escapes(raw_escapes)
        .skip_unset(true)
        .process_words(input, &Vec::<(String, String)>::new())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(word: &str) -> Option<(String, bool)> {
        parse_heredoc_word(word)
            .unwrap()
            .map(|h| (h.name, h.expand))
    }

    #[test]
    fn markers_and_non_markers() {
        assert_eq!(name("<<EOF"), Some(("EOF".into(), true)));
        assert_eq!(name("<< EOF"), Some(("EOF".into(), true)));
        assert_eq!(name("<<EO\"F\""), Some(("EOF".into(), false)));
        assert_eq!(name("<<eo\\'f"), Some(("eo'f".into(), true)));
        assert_eq!(name("<<'e'o\\'f"), Some(("eo'f".into(), false)));
        assert_eq!(name("<<$EOF"), Some(("$EOF".into(), true)));
        for word in [
            "", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "a<<EOF",
        ] {
            assert_eq!(name(word), None, "{word:?}");
        }
        assert!(parse_heredoc_word("<<EOF'").is_err());
    }

    #[test]
    fn file_descriptor_digits() {
        let fd = |w: &str| parse_heredoc_word(w).unwrap().unwrap().file_descriptor;
        assert_eq!(fd("<<EOF"), 0);
        assert_eq!(fd("12<<EOF"), 12);
        assert_eq!(fd("99999999999<<EOF"), u32::MAX);
    }

    #[test]
    fn line_scan_skips_quoted_and_broken_lines() {
        let names = |l: &str| -> Vec<String> {
            heredocs_from_line(l)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert_eq!(names("RUN '<<EOF'"), Vec::<String>::new());
        assert_eq!(names("RUN <<- EOF"), Vec::<String>::new());
        assert_eq!(names("RUN <<EOF 'unterminated"), Vec::<String>::new());
    }

    #[test]
    fn chomp_strips_only_leading_tabs() {
        assert_eq!(chomp_heredoc("\ta\tb\n \tc\r\n\t\td"), "a\tb\n \tc\r\nd");
    }
}
