//! BuildKit's AST dump format (`(keyword ["--flag"] "arg" ...)`), used by
//! its parser tests, with Go's `strconv.Quote` rules for every string.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

use super::text::go_lower;
use crate::{Args, Ast, Node};

impl Ast {
    /// Prints the AST the way BuildKit's `dumper` tool does: one
    /// parenthesised line per instruction, ending in a newline.
    ///
    /// ```
    /// let ast = kiln_frontend::parse("Dockerfile", b"FROM a AS b\nONBUILD COPY --from=x . /\n").unwrap();
    /// assert_eq!(ast.dump(), "(from \"a\" \"AS\" \"b\")\n(onbuild (copy [\"--from=x\"] \".\" \"/\"))\n");
    /// ```
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            out.push('(');
            out.push_str(&dump_node(child));
            out.push_str(")\n");
        }
        // Upstream trims the joined text and its dumper then adds one
        // newline; a dump always starts with `(` so only the end changes.
        let mut out = out.trim().to_string();
        out.push('\n');
        out
    }
}

impl Node {
    /// The plain argument values, or an empty slice for ONBUILD's nested
    /// instruction (see [`Args::Nested`]).
    pub fn values(&self) -> &[String] {
        match &self.args {
            Args::Values(values) => values,
            Args::Nested(_) => &[],
        }
    }
}

fn dump_node(node: &Node) -> String {
    let mut out = go_lower(&node.keyword);
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        out.push_str(" [");
        out.push_str(&flags.join(" "));
        out.push(']');
    }
    match &node.args {
        Args::Values(values) => {
            for value in values {
                out.push(' ');
                out.push_str(&go_quote(value));
            }
        }
        Args::Nested(inner) => {
            out.push_str(" (");
            out.push_str(&dump_node(inner));
            out.push(')');
        }
    }
    out.trim().to_string()
}

/// Quotes `s` exactly like Go's `strconv.Quote` (and `%q`): a double-quoted
/// literal where printable characters stay as they are and everything else
/// is escaped (`\t`, `\x00`, `\u00a0`, `\U000f0000`).
///
/// ```
/// assert_eq!(kiln_frontend::go_quote("a\t\"♥\"\u{0}"), r#""a\t\"♥\"\x00""#);
/// ```
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_print(c) => out.push(c),
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

/// Go's `strconv.IsPrint`: the ASCII space, or a letter, mark, number,
/// punctuation or symbol.
fn is_go_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        Gc::Control
            | Gc::Format
            | Gc::PrivateUse
            | Gc::Surrogate
            | Gc::Unassigned
            | Gc::SpaceSeparator
            | Gc::LineSeparator
            | Gc::ParagraphSeparator
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(go_quote(""), "\"\"");
        assert_eq!(
            go_quote("\" \\ / \u{8} \u{c} \n \r \t \u{0}"),
            r#""\" \\ / \b \f \n \r \t \x00""#
        );
        assert_eq!(go_quote("\u{7}\u{b}\u{1b}\u{7f}"), r#""\a\v\x1b\x7f""#);
        assert_eq!(go_quote("♥☃é😀"), "\"♥☃é😀\"");
        assert_eq!(go_quote("\u{a0}\u{ad}\u{2028}"), r#""\u00a0\u00ad\u2028""#);
        assert_eq!(go_quote("\u{e000}\u{f0000}"), r#""\ue000\U000f0000""#);
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
    }
}
