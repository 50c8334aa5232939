//! Character classes and small string helpers shared by the parser modules.
//!
//! BuildKit mixes two notions of whitespace: Go's `unicode.IsSpace` (the
//! Unicode `White_Space` property, which is what Rust's `char::is_whitespace`
//! tests) and the regular expression `[\t\v\f\r ]+` it uses to split
//! keywords, `FROM`/`COPY` arguments and legacy `ENV` pairs. Both are kept
//! apart here so each call site says which one it means.

/// One of the separators of BuildKit's `[\t\v\f\r ]+` splitting regex.
pub(crate) fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// Splits on runs of separators like Go's `regexp.Split(s, -1)`: empty
/// fields at either end are kept, runs never produce empty fields inside.
pub(crate) fn split_separators(s: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_separator(c) {
            fields.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_separator(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            start = end;
        }
    }
    fields.push(&s[start..]);
    fields
}

/// Splits at the first run of separators, like `regexp.Split(s, 2)`.
pub(crate) fn split_separators_once(s: &str) -> (&str, Option<&str>) {
    match s.find(is_separator) {
        None => (s, None),
        Some(i) => {
            let rest = &s[i..];
            let rest = rest.trim_start_matches(is_separator);
            (&s[..i], Some(rest))
        }
    }
}

/// Removes every trailing `\r` and `\n` (BuildKit's `trimNewline`).
pub(crate) fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Lower-cases like Go's `strings.ToLower`: one character at a time with
/// the simple case mapping, so the result never depends on context.
pub(crate) fn go_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // U+0130 is the only character whose full lower-case mapping has
        // two characters; Go's simple mapping turns it into a plain `i`.
        if c == '\u{130}' {
            out.push('i');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_edge_fields_like_go() {
        assert_eq!(split_separators("a \t b"), ["a", "b"]);
        assert_eq!(split_separators(" a"), ["", "a"]);
        assert_eq!(split_separators("a\u{a0}b c"), ["a\u{a0}b", "c"]);
        assert_eq!(split_separators(""), [""]);
    }

    #[test]
    fn split_once_takes_the_whole_rest() {
        assert_eq!(split_separators_once("k  v w "), ("k", Some("v w ")));
        assert_eq!(split_separators_once("k"), ("k", None));
    }

    #[test]
    fn lower_uses_simple_mapping() {
        assert_eq!(go_lower("RUN"), "run");
        assert_eq!(go_lower("ENTRYPO\u{130}NT"), "entrypoint");
        assert_eq!(go_lower("ΟΔΟΣ"), "οδοσ");
    }

    #[test]
    fn newline_trim_removes_all_cr_lf() {
        assert_eq!(trim_newline("a\r\r\n"), "a");
        assert_eq!(trim_newline("a\rb"), "a\rb");
    }
}
