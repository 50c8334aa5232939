//! Character classes, matching Go's `unicode` package where BuildKit uses it.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// Go's `unicode.IsLetter`: general category L.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// Go's `unicode.IsDigit`: decimal digits (category Nd), not every number.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == Gc::DecimalNumber
}

/// Go's `unicode.IsSpace`, which is the Unicode White_Space property, the
/// same set as Rust's `char::is_whitespace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        Gc::Control
            | Gc::Format
            | Gc::LineSeparator
            | Gc::ParagraphSeparator
            | Gc::PrivateUse
            | Gc::SpaceSeparator
            | Gc::Surrogate
            | Gc::Unassigned
    )
}

/// Go's `%q` (`strconv.Quote`), so error messages quote the word the way
/// BuildKit's do.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x1_0000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_digits_follow_go() {
        for c in ['a', 'Z', '한', 'é', 'ß', 'न', 'ʰ'] {
            assert!(is_letter(c), "{c}");
        }
        for c in ['_', '1', '-', '\u{0301}', '\u{093E}', 'Ⅻ', '²'] {
            assert!(!is_letter(c), "{c:?}");
        }
        for c in ['0', '9', '٣', '५'] {
            assert!(is_digit(c), "{c}");
        }
        for c in ['a', '²', '½', 'Ⅻ', '①'] {
            assert!(!is_digit(c), "{c}");
        }
        assert!(is_space('\u{a0}') && is_space('\u{3000}') && !is_space('x'));
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\u{0}\u{7f}♥"), r#""\t\n\x00\x7f♥""#);
        assert_eq!(
            go_quote("\u{a0}\u{ad}\u{e000}\u{f0000}"),
            r#""\u00a0\u00ad\ue000\U000f0000""#
        );
    }
}
