//! The slice of Go's `encoding/json` the parser relies on: whether a text is
//! exactly one valid JSON value, and the top-level items of an array or
//! object, with strings decoded.
//!
//! Go rules kept on purpose: only space, tab, LF and CR are whitespace; raw
//! control characters inside strings are invalid; an unpaired surrogate
//! escape decodes to U+FFFD; a number too large for a float64 makes the
//! whole document fail; nesting deeper than 10,000 fails. The scanner is
//! iterative, so deep input cannot overflow the stack.

/// An element of a top-level array, or a value of a top-level object.
#[derive(Debug, PartialEq)]
pub(crate) enum Item {
    /// A JSON string, decoded.
    Str(String),
    /// Any other valid JSON value.
    Other,
}

/// A valid JSON document, as far as the parser cares.
#[derive(Debug, PartialEq)]
pub(crate) enum Document {
    Array(Vec<Item>),
    Object(Vec<(String, Item)>),
    Scalar,
}

const MAX_DEPTH: usize = 10_000;

/// Parses `text` as one JSON value surrounded by optional whitespace;
/// `None` when Go's `json.Unmarshal` would fail.
pub(crate) fn parse(text: &str) -> Option<Document> {
    let mut sc = Scanner { s: text, i: 0 };
    sc.ws();
    let doc = match sc.peek()? {
        b'[' => Document::Array(sc.top_array()?),
        b'{' => Document::Object(sc.top_object()?),
        _ => {
            sc.value(0)?;
            Document::Scalar
        }
    };
    sc.ws();
    (sc.i == text.len()).then_some(doc)
}

struct Scanner<'a> {
    s: &'a str,
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn item(&mut self) -> Option<Item> {
        self.ws();
        if self.peek()? == b'"' {
            Some(Item::Str(self.string()?))
        } else {
            self.value(1)?;
            Some(Item::Other)
        }
    }

    fn top_array(&mut self) -> Option<Vec<Item>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']').is_some() {
            return Some(items);
        }
        loop {
            items.push(self.item()?);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    fn top_object(&mut self) -> Option<Vec<(String, Item)>> {
        self.eat(b'{')?;
        let mut members = Vec::new();
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(members);
        }
        loop {
            let key = self.key()?;
            members.push((key, self.item()?));
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(members);
                }
                _ => return None,
            }
        }
    }

    /// Reads `"key" :` (with whitespace) and returns the key.
    fn key(&mut self) -> Option<String> {
        self.ws();
        if self.peek()? != b'"' {
            return None;
        }
        let key = self.string()?;
        self.ws();
        self.eat(b':')?;
        Some(key)
    }

    /// Validates one value of any kind; `depth` counts enclosing containers.
    fn value(&mut self, depth: usize) -> Option<()> {
        let mut closers: Vec<u8> = Vec::new();
        'value: loop {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                open @ (b'[' | b'{') => {
                    if depth + closers.len() + 1 > MAX_DEPTH {
                        return None;
                    }
                    self.i += 1;
                    let close = if open == b'[' { b']' } else { b'}' };
                    self.ws();
                    if self.eat(close).is_none() {
                        closers.push(close);
                        if close == b'}' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // A value is complete: close containers or move to the next item.
            loop {
                let Some(&close) = closers.last() else {
                    return Some(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if close == b'}' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    b if b == close => {
                        self.i += 1;
                        closers.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // Go decodes every number into a float64 and fails on overflow.
        let n: f64 = self.s[start..self.i].parse().ok()?;
        n.is_finite().then_some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let hex = self.s.get(self.i..self.i + 4)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(hex, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.i..];
            let c = rest.chars().next()?;
            match c {
                '"' => {
                    self.i += 1;
                    return Some(out);
                }
                '\\' => {
                    self.i += 1;
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return None,
                    }
                }
                c if (c as u32) < 0x20 => return None,
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    /// Decodes the digits after `\u`, pairing surrogates the way Go does.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if !(0xD800..0xE000).contains(&first) {
            return char::from_u32(first);
        }
        if first < 0xDC00 && self.s[self.i..].starts_with("\\u") {
            let save = self.i;
            self.i += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00));
            }
            // Not a pair: the second escape is decoded on its own next.
            self.i = save;
        }
        Some('\u{FFFD}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Option<Vec<String>> {
        match parse(text)? {
            Document::Array(items) => Some(
                items
                    .into_iter()
                    .map(|i| match i {
                        Item::Str(s) => s,
                        Item::Other => "<other>".into(),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    #[test]
    fn arrays_decode_like_go() {
        assert_eq!(strings("[]"), Some(vec![]));
        assert_eq!(
            strings(" [ \"a\" ,\t\"b\" ] \n"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            strings(r#"["\u00e9\ud83d\ude00"]"#),
            Some(vec!["é😀".into()])
        );
        assert_eq!(strings(r#"["\ud800x"]"#), Some(vec!["\u{FFFD}x".into()]));
        assert_eq!(
            strings(r#"["\ud800\u0041"]"#),
            Some(vec!["\u{FFFD}A".into()])
        );
        assert_eq!(
            strings(r#"["a",{"b":[1,{"c":null}]},true]"#).unwrap().len(),
            3
        );
    }

    #[test]
    fn invalid_documents_are_rejected() {
        for bad in [
            "[",
            "[\"a\",]",
            "['a']",
            "[\"a\"] x",
            "[01]",
            "[1.]",
            "[-]",
            "[\"\t\"]",
            "[\"\\x\"]",
            "[1e400]",
            "[{\"a\" 1}]",
            "[{1:2}]",
            "[\"a\"",
            "[nul]",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn depth_is_limited_without_recursion() {
        let ok = format!("[{}{}]", "[".repeat(9_999), "]".repeat(9_999));
        assert!(parse(&ok).is_some());
        let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse(&deep), None);
        assert_eq!(parse(&"[".repeat(1_000_000)), None);
    }

    #[test]
    fn objects_keep_member_order() {
        assert_eq!(
            parse(r#"{"syntax": "foo", "bar": ["abc"]}"#),
            Some(Document::Object(vec![
                ("syntax".into(), Item::Str("foo".into())),
                ("bar".into(), Item::Other)
            ]))
        );
    }
}
