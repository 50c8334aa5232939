//! JSON written the way Go's `encoding/json` writes it.
//!
//! Image configs and manifests are content-addressed, so the bytes matter:
//! docker and BuildKit are Go programs, and Go escapes `<`, `>`, `&`,
//! U+2028 and U+2029 as `\u003c`-style sequences and writes backspace and
//! form feed as `\u0008`/`\u000c`. Writing the same escapes is what lets a
//! docker-produced config round-trip byte for byte.

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use serde_json::Value;
use std::io::{self, Write};

struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        match char_escape {
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(writer, other),
        }
    }
}

/// Serialises `value` as compact JSON with Go's escaping.
pub(crate) fn to_go_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // A `Value` into a `Vec` cannot fail: there is no I/O, and every map key
    // is already a string.
    value
        .serialize(&mut ser)
        .expect("serialising a JSON value into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"a": "x && y <z> \u{2028} \u{8} \u{c} \n é"});
        assert_eq!(
            String::from_utf8(to_go_json(&v)).unwrap(),
            r#"{"a":"x \u0026\u0026 y \u003cz\u003e \u2028 \u0008 \u000c \n é"}"#
        );
    }
}
