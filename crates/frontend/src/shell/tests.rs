//! Unit tests for the tricky corners of expansion. The conformance tables
//! live in `tests/conformance_shell.rs`.

use super::*;

fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(input: &str, vars: &[(&str, &str)]) -> Result<String, ShellError> {
    Lexer::new('\\').process_word(input, &env(vars))
}

fn words(input: &str, vars: &[(&str, &str)]) -> Vec<String> {
    Lexer::new('\\').process_words(input, &env(vars)).unwrap()
}

#[test]
fn backtick_escape_token() {
    let lexer = Lexer::new('`');
    let vars = env(&[("A", "x")]);
    assert_eq!(lexer.process_word("a`$A", &vars).unwrap(), "a$A");
    assert_eq!(
        lexer.process_word(r"C:\dir\$A", &vars).unwrap(),
        r"C:\dir\x"
    );
    assert_eq!(lexer.process_word("\"a`\"b\"", &vars).unwrap(), "a\"b");
    assert_eq!(lexer.process_word("\"a`tb\"", &vars).unwrap(), "a`tb");
    assert_eq!(lexer.process_word("end`", &vars).unwrap(), "end");
    assert_eq!(lexer.process_words("a` b c", &vars).unwrap(), ["a b", "c"]);
}

#[test]
fn error_messages_and_offsets() {
    let err = word("ab${x", &[]).unwrap_err();
    assert_eq!(err.to_string(), r#"failed to process "ab${x": missing '}'"#);
    assert_eq!((err.offset, &err.kind), (2, &ShellErrorKind::MissingBrace));
    assert!(err.help().unwrap().contains("close the ${"));

    let err = word("${NAME?}", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to process "${NAME?}": NAME: is not allowed to be unset"#
    );
    let err = word("x${NAME:?}", &[("NAME", "")]).unwrap_err();
    assert_eq!(err.kind.to_string(), "NAME: is not allowed to be empty");
    assert_eq!(err.offset, 1);
    let err = word("${NAME:?need $W}", &[("W", "it")]).unwrap_err();
    assert_eq!(err.kind.to_string(), "NAME: need it");

    let err = word("a 'b", &[]).unwrap_err();
    assert_eq!(err.offset, 2);
    assert_eq!(
        err.kind.to_string(),
        "unexpected end of statement while looking for matching single-quote"
    );
    let err = word("\"b\\\"", &[]).unwrap_err();
    assert_eq!(err.kind, ShellErrorKind::UnterminatedQuote('"'));

    assert_eq!(
        word("${}", &[]).unwrap_err().kind,
        ShellErrorKind::BadSubstitution
    );
    assert_eq!(
        word("${X:=1}", &[]).unwrap_err().kind.to_string(),
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        word("${X.}", &[]).unwrap_err().kind,
        ShellErrorKind::UnsupportedModifier(".".into())
    );
    assert_eq!(
        word("${X:#a}", &[]).unwrap_err().kind,
        ShellErrorKind::UnsupportedModifier(":#".into())
    );
    assert_eq!(
        word("${X/a}", &[]).unwrap_err().kind,
        ShellErrorKind::MissingSlash
    );
    assert_eq!(
        word("${X/a/b", &[]).unwrap_err().kind,
        ShellErrorKind::MissingBrace
    );
    let err = word("${X#\\q}", &[("X", "q")]).unwrap_err();
    assert_eq!(
        err.kind.to_string(),
        "invalid pattern (\\q) in substitution: invalid escape '\\q'"
    );
    // The quoted word is printed the way Go's %q prints it.
    let err = word("\t\"", &[]).unwrap_err();
    assert!(
        err.to_string().starts_with(r#"failed to process "\t\"": "#),
        "{err}"
    );
}

#[test]
fn errors_at_the_end_inside_braces_report_the_missing_brace() {
    // BuildKit turns any failure that leaves the input exhausted inside a
    // `${…}` into "missing '}'", even an unterminated quote.
    assert_eq!(
        word("${a:-\"x}", &[]).unwrap_err().kind,
        ShellErrorKind::MissingBrace
    );
    assert_eq!(
        word("${a:-${b?m}", &[]).unwrap_err().kind,
        ShellErrorKind::MissingBrace
    );
    let err = word("${a:-${b?m}}", &[]).unwrap_err();
    assert_eq!(err.kind.to_string(), "b: m");
    assert_eq!(err.offset, 5);
}

#[test]
fn names() {
    let vars = [("A_1", "v"), ("é", "accent")];
    assert_eq!(word("$A_1.$A_1x", &vars).unwrap(), "v.");
    assert_eq!(word("$é!", &vars).unwrap(), "accent!");
    assert_eq!(word("$12x ${0}y $$ $", &vars).unwrap(), "x y  $");
    assert_eq!(word("$_", &vars).unwrap(), "");
    assert_eq!(word("$²", &vars).unwrap(), "$²");
}

#[test]
fn braces_and_words() {
    assert_eq!(
        word("${A-}${A:-x}${A+y}${A:+z}", &[("A", "")]).unwrap(),
        "xy"
    );
    assert_eq!(word("${A:-'}'}", &[]).unwrap(), "}");
    assert_eq!(word("${A:-\\}}", &[]).unwrap(), "}");
    assert_eq!(word("${A:-a\\tb}", &[]).unwrap(), "atb");
    assert_eq!(word("\"${A:-'x y'}\"", &[]).unwrap(), "x y");
    assert_eq!(
        word("${A%%/*}:${A#*/}", &[("A", "a/b/c")]).unwrap(),
        "a:b/c"
    );
    assert_eq!(word("${A#\"*\"}${A##\"*\"}", &[("A", "xy")]).unwrap(), "xy");
    // Inside double quotes in a pattern, escapes are kept twice.
    assert_eq!(word("${A#\"\\t\"}", &[("A", "\\tz")]).unwrap(), "z");
    assert_eq!(word("${A//o/[$0]}", &[("A", "foo")]).unwrap(), "f[][]");
    assert_eq!(word("${A//o/'[$0]'}", &[("A", "foo")]).unwrap(), "f[o][o]");
}

#[test]
fn word_splitting() {
    let vars = [("S", " a  b "), ("E", "")];
    assert_eq!(words("x${S}y", &vars), ["x", "a", "b", "y"]);
    assert_eq!(words("\"$S\"", &vars), [" a  b "]);
    assert_eq!(words("  '' \"\" $E  ", &vars), Vec::<String>::new());
    assert_eq!(words("a\\ b\\\tc d", &vars), ["a b\tc", "d"]);
    assert_eq!(words("${E:-p q} r", &vars), ["p", "q", "r"]);
    assert_eq!(words("x\u{3000}y", &vars), ["x", "y"]);
    // No buffer sharing between a word and a nested default.
    assert_eq!(
        words("pre${E:-mid}post tail", &vars),
        ["premidpost", "tail"]
    );
}

#[test]
fn heredoc_markers_keep_their_blanks() {
    let lexer = Lexer::new('\\').raw_quotes(true).raw_escapes(true);
    let none = env(&[]);
    assert_eq!(
        lexer.process_words("RUN <<  EOF", &none).unwrap(),
        ["RUN", "<<  EOF"]
    );
    assert_eq!(
        lexer.process_words("RUN <<- EOF", &none).unwrap(),
        ["RUN", "<<-", "EOF"]
    );
    assert_eq!(
        lexer.process_words("3<<\"E F\" x", &none).unwrap(),
        ["3<<\"E F\"", "x"]
    );
    assert_eq!(
        Lexer::new('\\').process_word("a<< b", &none).unwrap(),
        "a<< b"
    );
}

#[test]
fn raw_and_skip_modes() {
    let none = env(&[]);
    let raw = Lexer::new('\\').raw_quotes(true).skip_unset(true);
    assert_eq!(
        raw.process_word("'a' \"b$X\" ${Y} ${Z:-$W} ${V/a/b} ${U#x}", &none)
            .unwrap(),
        "'a' \"b$X\" ${Y} ${Z:-$W} ${V/a/b} ${U#x}"
    );
    assert_eq!(raw.process_word("${X:-a\\ b}", &none).unwrap(), "${X:-a b}");
    let escapes = Lexer::new('\\').raw_escapes(true);
    assert_eq!(
        escapes.process_word("a\\ b \"\\$\" \\", &none).unwrap(),
        "a\\ b \\$ \\"
    );
    let plain = Lexer::new('\\').skip_process_quotes(true);
    let vars = env(&[("X", "1")]);
    assert_eq!(
        plain.process_word("'$X' \"$X\"", &vars).unwrap(),
        "'1' \"1\""
    );
    assert_eq!(plain.process_words("'a b'", &vars).unwrap(), ["'a", "b'"]);
}

#[test]
fn matches_are_recorded() {
    let lexer = Lexer::default();
    let vars = env(&[("A", "1"), ("B", "")]);
    let got = lexer
        .process_word_with_matches("$A ${B:-$C} ${A:+$D} '$E' \\$F", &vars)
        .unwrap();
    assert_eq!(got.value, "1   $E $F");
    assert_eq!(
        got.matched,
        BTreeSet::from(["A".to_string(), "B".to_string()])
    );
    assert_eq!(
        got.unmatched,
        BTreeSet::from(["C".to_string(), "D".to_string()])
    );
    let insensitive = CaseInsensitive(vars);
    let got = lexer.process_word_with_matches("$a", &insensitive).unwrap();
    assert_eq!(got.value, "1");
    assert_eq!(got.matched, BTreeSet::from(["a".to_string()]));
}

#[test]
fn odd_input_never_panics() {
    let lexer = Lexer::new('\\');
    let vars = env(&[("A", "x\ny*"), ("P", "\\")]);
    let pieces = [
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "`", "'", "\"", "*", "A", "P", " ",
        "\n", "é", "<<", "\u{0}", "${", "$A", "${A", "${P",
    ];
    // Every string of up to three pieces, plus a few long ones.
    let mut inputs = Vec::new();
    for a in pieces {
        for b in pieces {
            for c in pieces {
                inputs.push(format!("{a}{b}{c}"));
            }
        }
    }
    inputs.push("${A:-".repeat(10_000));
    inputs.push("${A:-x}".repeat(1000));
    inputs.push("${A//*/${A//?/$A}}".repeat(50));
    for input in &inputs {
        for lexer in [
            lexer,
            lexer.raw_quotes(true).raw_escapes(true).skip_unset(true),
            Lexer::new('`'),
        ] {
            let _ = lexer.process_word_with_matches(input, &vars);
            let _ = lexer.process_words(input, &vars);
        }
    }
    let deep = "${A:-".repeat(500) + &"}".repeat(500);
    assert_eq!(word(&deep, &[]).unwrap_err().kind, ShellErrorKind::TooDeep);
    let fine = "${A:-".repeat(50) + "z" + &"}".repeat(50);
    assert_eq!(word(&fine, &[]).unwrap(), "z");
}

#[test]
fn every_env_shape_works_as_dyn_env() {
    let lexer = Lexer::default();
    let list = env(&[("A", "1"), ("A", "2")]);
    let slice: &[(String, String)] = &list;
    let map: std::collections::BTreeMap<String, String> = list.iter().cloned().collect();
    let hash: std::collections::HashMap<String, String> = list.iter().cloned().collect();
    assert_eq!(lexer.process_word("$A", &list).unwrap(), "2");
    assert_eq!(lexer.process_word("$A", &slice).unwrap(), "2");
    assert_eq!(lexer.process_word("$A", &map).unwrap(), "2");
    assert_eq!(lexer.process_word("$A", &hash).unwrap(), "2");
    assert_eq!(
        lexer.process_word("$a", &CaseInsensitive(&map)).unwrap(),
        "2"
    );
}
