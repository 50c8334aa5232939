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
}
