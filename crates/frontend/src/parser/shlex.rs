//! The word splitter BuildKit runs over RUN/COPY/ADD lines to find heredoc
//! markers. It is BuildKit's shell lexer with an empty environment, unset
//! variables kept as written, backslash as escape token whatever the
//! Dockerfile's `escape` directive says, and no expansion of any kind.
//!
//! It is deliberately separate from [`crate::shell`]: that module expands
//! words for real, while this one only has to reproduce which words upstream
//! sees, quirks included (for example `${a:-x y}` splits into two words).

/// Splits `input` into words. `raw_quotes` keeps quote characters in the
/// words, `raw_escapes` keeps backslashes.
pub(crate) fn words(
    input: &str,
    raw_quotes: bool,
    raw_escapes: bool,
) -> Result<Vec<String>, String> {
    let mut lexer = Lexer {
        chars: input.chars().collect(),
        pos: 0,
        raw_quotes,
        raw_escapes,
    };
    lexer
        .stop_on(None, raw_escapes)
        .map(|(_, words)| words)
        .map_err(|e| format!("failed to process {}: {e}", super::dump::go_quote(input)))
}

const ESCAPE: char = '\\';

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let text = self.dollar()?;
                    result.push_str(&text);
                    words.add_string(&text);
                }
                '\'' | '"' | '<' => {
                    let text = match c {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.possible_heredoc(),
                    };
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                ESCAPE => {
                    self.pos += 1;
                    if self.raw_escapes {
                        words.add_raw_char(c);
                        result.push(c);
                    }
                    let Some(escaped) = self.next() else { break };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                }
                _ => {
                    self.pos += 1;
                    words.add_char(c);
                    result.push(c);
                }
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `<<` keeps the blanks after it, so `<<  EOF` stays one word.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut text = String::from("<<");
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            text.push(c);
            self.pos += 1;
        }
        text
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if c == ESCAPE {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(e @ ('"' | '$' | ESCAPE)) => {
                                self.pos += 1;
                                c = e;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$name`, `${name}` and `${name<op>word}`: nothing is ever set, so the
    /// reference is given back as written (after processing `word`).
    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let op = self.next();
        let mut ops = op.map_or('\u{FFFD}'.to_string(), String::from);
        match op {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut modifier = op;
                if op == Some(':') {
                    modifier = self.next();
                    ops.push(modifier.unwrap_or('\u{FFFD}'));
                }
                let raw = matches!(modifier, Some('#' | '%'));
                if op == Some(':') && raw {
                    return Err(format!("unsupported modifier ({ops}) in substitution"));
                }
                let (word, _) = self
                    .stop_on(Some('}'), raw)
                    .map_err(|e| self.missing('}', e))?;
                Ok(format!("${{{name}{ops}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let (pattern, _) = self.stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".into()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self
                    .stop_on(Some('}'), true)
                    .map_err(|e| self.missing('}', e))?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({ops}) in substitution")),
        }
    }

    fn missing(&self, c: char, err: String) -> String {
        if self.peek().is_none() {
            format!("syntax error: missing '{c}'")
        } else {
            err
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

/// Go's `unicode.IsDigit`: general category Nd.
fn is_digit(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory};
    c.is_ascii_digit() || get_general_category(c) == GeneralCategory::DecimalNumber
}

/// Go's `unicode.IsLetter`: general category L*.
fn is_letter(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory as Gc};
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_words_keep_quotes_and_escapes() {
        assert_eq!(
            words(r#"RUN <<'EOF' "a b"\ c"#, true, true).unwrap(),
            ["RUN", "<<'EOF'", "\"a b\"\\ c"]
        );
        assert_eq!(
            words("RUN <<  EOF  > foo", true, true).unwrap(),
            ["RUN", "<<  EOF", ">", "foo"]
        );
        assert_eq!(
            words("RUN <<- EOF", true, true).unwrap(),
            ["RUN", "<<-", "EOF"]
        );
        assert_eq!(
            words("RUN <<$EOF ${A} ${B:-x y}", true, true).unwrap(),
            ["RUN", "<<$EOF", "${A}", "${B:-x", "y}"]
        );
    }

    #[test]
    fn unquoted_words_drop_quotes() {
        assert_eq!(words(r#"eo\'f"#, false, false).unwrap(), ["eo'f"]);
        assert_eq!(words(r#"'e'o\'f"#, true, false).unwrap(), ["'e'o'f"]);
        assert_eq!(words("'one two'", false, false).unwrap(), ["one two"]);
        assert_eq!(words("EOF sh", false, false).unwrap(), ["EOF", "sh"]);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(words("'EOF", false, false)
            .unwrap_err()
            .contains("matching single-quote"));
        assert!(words("\"EOF", false, false)
            .unwrap_err()
            .contains("matching double-quote"));
        assert!(words("${", false, false)
            .unwrap_err()
            .contains("missing '}'"));
        assert!(words("${}", false, false)
            .unwrap_err()
            .contains("bad substitution"));
        assert!(words("${a:#b}", false, false)
            .unwrap_err()
            .contains("unsupported modifier (:#)"));
    }
}
