//! Tests of the line-level rules: continuation, comments, directives,
//! heredoc bodies and error locations.

use super::*;

fn dump(src: &str) -> String {
    parse("Dockerfile", src.as_bytes()).unwrap().dump()
}

fn err(src: &[u8]) -> Error {
    parse("Dockerfile", src).unwrap_err()
}

#[test]
fn continuation_rule() {
    assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
    assert_eq!(trim_continuation("RUN a \\ \t", '\\'), ("RUN a ", false));
    assert_eq!(trim_continuation("\\", '\\'), ("", false));
    assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
    assert_eq!(trim_continuation("a `", '`'), ("a ", false));
    assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
}

#[test]
fn bom_crlf_and_continuations() {
    let src = "\u{feff}FROM a\r\nRUN echo \\\r\n  # comment\r\n\r\n   hi\r\nCMD x\\\\\r\n";
    let ast = parse("Dockerfile", src.as_bytes()).unwrap();
    assert_eq!(
        ast.dump(),
        "(from \"a\")\n(run \"echo    hi\")\n(cmd \"x\\\\\\\\\")\n"
    );
    assert_eq!(
        (ast.children[1].start_line, ast.children[1].end_line),
        (2, 5)
    );
    assert_eq!(ast.span(), Some((1, 6)));
    assert_eq!(ast.warnings.len(), 1);
    assert_eq!(ast.warnings[0].line, 5);
    assert!(ast.warnings[0]
        .message
        .starts_with("Empty continuation line found in: RUN echo    hi\n"));
}

#[test]
fn directives_only_at_top() {
    let ast = parse(
        "Dockerfile",
        b"# syntax=x\n#Escape = `\n# check=skip=all\nFROM a `\n b\n",
    )
    .unwrap();
    assert_eq!(ast.escape, '`');
    assert_eq!(
        ast.directives,
        [
            ("syntax".into(), "x".into()),
            ("escape".into(), "`".into()),
            ("check".into(), "skip=all".into())
        ]
    );
    assert_eq!(ast.children[0].values(), ["a", "b"]);
    let ast = parse("Dockerfile", b"# hello\n# escape=`\nFROM a\n").unwrap();
    assert_eq!((ast.escape, ast.directives.len()), ('\\', 0));
}

#[test]
fn directive_errors_are_located() {
    let e = err(b"# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!(e.message, "only one escape parser directive can be used");
    assert_eq!((e.line, e.column), (2, 1));
    let e = err(b"# escape=x\nFROM a\n");
    assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    assert_eq!(e.source_line.as_deref(), Some("# escape=x"));
}

#[test]
fn instruction_errors_point_at_the_text() {
    let e = err(b"FROM a\nENV a=1 \\\n  b\n");
    assert_eq!(e.to_string(), "Dockerfile:3:3: Syntax error - can't find = in \"b\". Must be of the form: name=value\n   |\n 3 |   b\n   |   ^\n  help: write `b=value`, or quote the value if it has spaces");
    let e = err(b"FROM a\nENV E\n");
    assert_eq!((e.line, e.column), (2, 5));
    let e = err(b"FROM a\nCMD [\"a\", 1]\n");
    assert_eq!((e.line, e.column, e.file.as_str()), (2, 5, "Dockerfile"));
}

#[test]
fn no_instructions() {
    for src in [&b""[..], b"\n# only\n\n"] {
        let e = err(src);
        assert_eq!(e.message, "file with no instructions");
        assert!(e.line >= 1);
    }
    // A lone continuation makes an empty instruction upstream as well; the
    // instruction layer rejects it.
    assert_eq!(dump("\\\n"), "(\"\")\n");
}

#[test]
fn heredoc_bodies_and_spans() {
    let src = "FROM a\nRUN <<EOF cat\r\nline 1\r\n\tEOF\r\nEOF\r\nONBUILD COPY <<-X /x\n\tbody\n\tX\nRUN [\"<<EOF\"]\n";
    let ast = parse("Dockerfile", src.as_bytes()).unwrap();
    let run = &ast.children[1];
    assert_eq!(run.heredocs[0].content, "line 1\r\n\tEOF\r\n");
    assert_eq!((run.start_line, run.end_line), (2, 5));
    let onbuild = &ast.children[2];
    assert_eq!(
        (onbuild.heredocs[0].name.as_str(), onbuild.heredocs[0].chomp),
        ("X", true)
    );
    assert_eq!(onbuild.heredocs[0].content, "\tbody\n");
    assert_eq!((onbuild.end_line, ast.children[3].heredocs.len()), (8, 0));
    assert_eq!(
        ast.dump(),
        "(from \"a\")\n(run \"<<EOF cat\")\n(onbuild (copy \"<<-X\" \"/x\"))\n(run \"<<EOF\")\n"
    );
}

#[test]
fn unterminated_heredoc() {
    let e = err(b"FROM a\nRUN <<EOF\nbody\n");
    assert_eq!(
        (e.message.as_str(), e.line, e.column),
        ("unterminated heredoc", 2, 5)
    );
    assert_eq!(
        e.help.as_deref(),
        Some("end the heredoc with a line containing only `EOF`")
    );
}

#[test]
fn last_line_without_newline_is_body() {
    let ast = parse("Dockerfile", b"RUN <<A\nx\nA").unwrap();
    assert_eq!(ast.children[0].heredocs[0].content, "x\n");
}

#[test]
fn invalid_utf8_and_odd_bytes_never_panic() {
    let ast = parse("Dockerfile", b"FROM a\xff\nRUN \x00\xc3\n").unwrap();
    assert_eq!(
        ast.dump(),
        "(from \"a\u{fffd}\")\n(run \"\\x00\u{fffd}\")\n"
    );
    let mut state = 0x2545_f491_u32;
    let alphabet = b"RUN COPY ONBUILD ENV HEALTHCHECK <<-EOF\"'`\\ \t\r\n#=[]{},$-:x\xc3\xa9";
    for _ in 0..2000 {
        let len = (state % 60) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                alphabet[state as usize % alphabet.len()]
            })
            .collect();
        if let Ok(ast) = parse("f", &bytes) {
            let _ = ast.dump();
        }
    }
}

#[test]
fn keywords_keep_case_and_dispatch_case_insensitively() {
    assert_eq!(
        dump("from A\nCoPy --From=x a b\nfoo bar\n"),
        "(from \"A\")\n(copy [\"--From=x\"] \"a\" \"b\")\n(foo \"\")\n"
    );
    assert_eq!(parse("f", b"rUn a\n").unwrap().children[0].keyword, "rUn");
}

#[test]
fn a_line_longer_than_buildkits_64k_scanner_is_refused_naming_it() {
    let mut ok = b"FROM a\nRUN echo ".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 65_535 - 9));
    assert!(parse("f", &ok).is_ok());
    let mut long = b"FROM a\nRUN echo ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 70_000));
    long.extend(b"\nRUN true\n");
    let e = err(&long);
    assert_eq!(
        e.message,
        "dockerfile line greater than max allowed size of 65535"
    );
    assert_eq!((e.file.as_str(), e.line), ("Dockerfile", 2));
    assert!(e.help.unwrap().contains("70009 bytes"));
}
