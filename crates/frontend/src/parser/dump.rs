//! BuildKit's AST dump format (`(keyword ["--flag"] "arg" ...)`), used by
//! its parser tests, with Go's `strconv.Quote` rules for every string.

use super::text::go_lower;
use crate::{Args, Ast, Node};
use kiln_oci::config::go_quote;

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
