//! `.dockerignore` semantics, checked against what Docker/BuildKit do.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_frontend::dockerignore::{load, Matcher, ParentMatch};
use kiln_frontend::ErrorKind;

fn matcher(ignore_file: &str) -> Matcher {
    Matcher::parse(".dockerignore", ignore_file.as_bytes()).unwrap()
}

/// Asserts which of `paths` are excluded: `excluded` lists exactly those.
fn assert_excluded(ignore_file: &str, paths: &[&str], excluded: &[&str]) {
    let m = matcher(ignore_file);
    for path in paths {
        assert_eq!(
            m.is_excluded(path),
            excluded.contains(path),
            "{path:?} with\n{ignore_file}"
        );
    }
}

#[test]
fn reads_the_file_like_moby() {
    let m = matcher(
        "\u{feff}# comment\n\n  spaced  \r\n  # not a comment\n/abs/path/\n! /inverted/../kept\n./keep.txt\n",
    );
    let patterns: Vec<String> = m.patterns().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        patterns,
        ["spaced", "# not a comment", "abs/path", "!kept", "keep.txt"]
    );
    let lines: Vec<usize> = m.patterns().iter().map(|p| p.line()).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    assert!(m.patterns()[3].is_exception());
    assert_eq!(m.patterns()[3].text(), "kept");
    assert_eq!(m.source(), Some(Path::new(".dockerignore")));
}

#[test]
fn lone_exclamation_mark_is_an_error_with_line() {
    for text in ["a\n!\n", "a\n!   \n", "a\n!/\n"] {
        let err = Matcher::parse("ctx/.dockerignore", text.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Syntax);
        assert_eq!(err.file, "ctx/.dockerignore");
        assert_eq!(err.line, 2);
        assert_eq!(
            err.message,
            "illegal exclusion pattern \"!\": a `!` must be followed by the pattern to re-include"
        );
    }
}

#[test]
fn unterminated_class_is_a_syntax_error_with_file_and_line() {
    let err = Matcher::parse(".dockerignore", b"ok\n# c\nfile[ab\n").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert_eq!(
        err.to_string(),
        ".dockerignore:3: invalid pattern \"file[ab\": unterminated character class: `[` has no closing `]`\n   |\n 3 | file[ab\n  help: close the class with `]`, or write \\[ to match a literal bracket"
    );
}

#[test]
fn other_malformed_patterns_are_syntax_errors() {
    for (text, message) in [
        ("a\\", "invalid pattern \"a\\\\\": the pattern ends with a lone backslash"),
        ("[]a]", "invalid pattern \"[]a]\": a character class cannot be empty or have an item starting with `]`"),
        ("[a-]", "invalid pattern \"[a-]\": the range `a-` in a character class has no upper end"),
        ("[-a]", "invalid pattern \"[-a]\": a character class cannot be empty or have an item starting with `-`"),
        ("[z-a]", "invalid pattern \"[z-a]\": the character range `z-a` is reversed"),
    ] {
        let err = Matcher::parse("i", text.as_bytes()).unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Syntax, message));
    }
}

#[test]
fn regular_expression_only_constructs_are_refused() {
    for text in ["a\\d", "[*]", "[[:alpha:]]", "x/\\é"] {
        let err = Matcher::parse("i", text.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotSupported, "{text}");
    }
    let err = Matcher::parse("i", b"a\\d").unwrap_err();
    assert_eq!(
        err.message,
        "invalid pattern \"a\\\\d\": the escape `\\d` is not supported: Docker reads it as a regular-expression escape, not as the character `d`"
    );
}

#[test]
fn star_then_python_exception_keeps_python_files_at_any_depth() {
    let ignore = "*\n!**/*.py\n";
    assert_excluded(
        ignore,
        &[
            "setup.py",
            "README.md",
            "src",
            "src/app.py",
            "src/a/b/c.py",
            "src/a/notes.txt",
            "src/a",
        ],
        &["README.md", "src", "src/a/notes.txt", "src/a"],
    );
    let m = matcher(ignore);
    // `src` is excluded, but files inside are re-included, so it must be walked.
    assert!(!m.may_skip_dir("src"));
    assert!(!m.may_skip_dir("src/a"));
}

#[test]
fn everything_but_a_dot_slash_exception() {
    let ignore = "**\n!./keep.txt\n";
    assert_excluded(
        ignore,
        &["keep.txt", "other.txt", "dir", "dir/keep.txt", "Dockerfile"],
        &["other.txt", "dir", "dir/keep.txt", "Dockerfile"],
    );
    // A plain exception cannot reach inside `dir`, so BuildKit skips it.
    assert!(matcher(ignore).may_skip_dir("dir"));
}

#[test]
fn double_star_prefix_matches_at_any_depth_including_the_root() {
    assert_excluded(
        "**/foo",
        &[
            "foo", "a/foo", "a/b/foo", "foo/x", "a/foo/x", "xfoo", "a/xfoo", "foo.txt",
        ],
        &["foo", "a/foo", "a/b/foo", "foo/x", "a/foo/x"],
    );
    assert_excluded(
        "**/*.py",
        &["x.py", "a/b/x.py", "x.pyc"],
        &["x.py", "a/b/x.py"],
    );
}

#[test]
fn double_star_suffix_excludes_the_contents_but_not_the_directory() {
    assert_excluded(
        "foo/**",
        &["foo", "foo/x", "foo/a/b", "foobar", "a/foo/x"],
        &["foo/x", "foo/a/b"],
    );
}

#[test]
fn double_star_in_the_middle_matches_zero_or_more_directories() {
    assert_excluded(
        "a/**/b",
        &["a/b", "a/x/b", "a/x/y/b", "a/b/c", "ab", "a/xb", "x/a/b"],
        &["a/b", "a/x/b", "a/x/y/b", "a/b/c"],
    );
}

#[test]
fn leading_double_star_with_plain_text_matches_any_suffix_like_moby() {
    assert_excluded(
        "**foo",
        &["foo", "xfoo", "a/bfoo", "foox"],
        &["foo", "xfoo", "a/bfoo"],
    );
}

#[test]
fn single_star_stays_in_one_directory() {
    assert_excluded(
        "*.md",
        &["README.md", "docs/x.md", "docs", ".md"],
        &["README.md", ".md"],
    );
    assert_excluded(
        "docs/*/x",
        &["docs/a/x", "docs/a/b/x", "docs/x"],
        &["docs/a/x"],
    );
    assert_excluded("a?c", &["abc", "a/c", "ac"], &["abc"]);
}

#[test]
fn last_matching_pattern_wins() {
    let files = ["a.txt", "important.txt", "b.md"];
    assert_excluded("*.txt\n!important.txt\n", &files, &["a.txt"]);
    assert_excluded(
        "!important.txt\n*.txt\n",
        &files,
        &["a.txt", "important.txt"],
    );
    assert_excluded("*.txt\n!*.txt\nimportant.txt\n", &files, &["important.txt"]);
}

#[test]
fn excluding_a_directory_excludes_everything_below() {
    let ignore = "build\nnode_modules/\n";
    assert_excluded(
        ignore,
        &[
            "build",
            "build/x",
            "build/a/b/c",
            "builder",
            "src/build",
            "node_modules/x/y",
        ],
        &["build", "build/x", "build/a/b/c", "node_modules/x/y"],
    );
    let m = matcher(ignore);
    assert!(m.may_skip_dir("build"));
    assert!(m.may_skip_dir("node_modules"));
    assert!(!m.may_skip_dir("src"));
}

#[test]
fn exceptions_re_include_inside_excluded_directories() {
    let ignore = "build\nlogs\n!build/keep\n";
    assert_excluded(
        ignore,
        &["build", "build/x", "build/keep", "build/keep/y", "logs/a"],
        &["build", "build/x", "logs/a"],
    );
    let m = matcher(ignore);
    assert!(!m.may_skip_dir("build"));
    assert!(m.may_skip_dir("logs"));
    assert!(!m.may_skip_dir("build/keep"));
}

#[test]
fn dockerfile_and_dockerignore_can_be_excluded() {
    assert_excluded(
        "Dockerfile\n.dockerignore\n",
        &["Dockerfile", ".dockerignore", "app/Dockerfile"],
        &["Dockerfile", ".dockerignore"],
    );
}

#[test]
fn character_classes() {
    assert_excluded(
        "file[a-c].txt",
        &["filea.txt", "filec.txt", "filed.txt", "file-.txt"],
        &["filea.txt", "filec.txt"],
    );
    assert_excluded(
        "x[^a-c]y",
        &["xay", "xdy", "x/y"],
        // A negated class matches `/`, as in Docker's regular expression.
        &["xdy", "x/y"],
    );
    // Docker does not negate with `!`: it is a plain character in brackets.
    assert_excluded("x[!a]y", &["x!y", "xay", "xby"], &["x!y", "xay"]);
    assert_excluded("[\\]]", &["]", "\\"], &["]"]);
}

#[test]
fn backslash_escapes_the_next_character() {
    assert_excluded("a\\*b", &["a*b", "axb", "a\\*b"], &["a*b"]);
    assert_excluded("\\[x\\]", &["[x]", "x"], &["[x]"]);
}

#[test]
fn leading_slash_anchors_at_the_context_root() {
    assert_excluded(
        "/foo\n/bar/baz/\n",
        &["foo", "a/foo", "bar/baz", "x/bar/baz"],
        &["foo", "bar/baz"],
    );
    // Patterns are always relative to the root, with or without the slash.
    assert_excluded("foo", &["foo", "a/foo"], &["foo"]);
}

#[test]
fn caller_paths_are_cleaned() {
    let m = matcher("a/b");
    assert!(m.is_excluded("./a/b"));
    assert!(m.is_excluded("/a//b/"));
    assert!(m.is_excluded("a/x/../b/c"));
    assert!(!m.is_excluded("."));
    assert!(!matcher("**").is_excluded(""));
}

#[test]
fn follows_buildkit_walk_not_the_classic_builder() {
    // The classic builder re-includes `a/x` because `!a` matches its parent;
    // BuildKit's walk does not, since `a` itself was never excluded.
    assert_excluded("a/x\n!a\n", &["a", "a/x", "a/y"], &["a/x"]);
}

#[test]
fn check_carries_state_from_parent_to_child() {
    let m = matcher("*\n!**/*.py\n");
    let root = ParentMatch::default();
    let (excluded, src) = m.check(&root, "src");
    assert!(excluded);
    assert!(!m.check(&src, "src/main.py").0);
    assert!(m.check(&src, "src/notes.txt").0);
}

#[test]
fn new_takes_patternmatcher_style_patterns() {
    let m = Matcher::new(["  *.log ", "", "!keep.log", "./tmp/"]).unwrap();
    let texts: Vec<String> = m.patterns().iter().map(|p| p.to_string()).collect();
    assert_eq!(texts, ["*.log", "!keep.log", "tmp"]);
    assert!(m.is_excluded("a.log"));
    assert!(!m.is_excluded("keep.log"));
    assert!(m.is_excluded("tmp/x"));
    assert_eq!(m.source(), None);
    let err = Matcher::new(["ok", "!"]).unwrap_err();
    assert_eq!(
        (err.kind, err.line, err.file.as_str()),
        (ErrorKind::Syntax, 0, "")
    );
    assert!(Matcher::new(Vec::<String>::new()).unwrap().is_empty());
}

fn make_tree(root: &Path, files: &[&str]) {
    for file in files {
        let path = root.join(file);
        if let Some(stripped) = file.strip_suffix('/') {
            fs::create_dir_all(root.join(stripped)).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, file.as_bytes()).unwrap();
        }
    }
}

fn walked(m: &Matcher, root: &Path) -> Vec<String> {
    m.walk(root)
        .unwrap()
        .into_iter()
        .map(|e| {
            let path = e.path.to_string_lossy().into_owned();
            if e.is_dir {
                format!("{path}/")
            } else {
                path
            }
        })
        .collect()
}

#[test]
fn walk_keeps_exactly_what_buildkit_sends() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(
        dir.path(),
        &[
            ".dockerignore",
            ".git/HEAD",
            ".git/objects/ab/cdef",
            "Dockerfile",
            "README.md",
            "build/out.bin",
            "build/keep/me.txt",
            "docs/guide.md",
            "empty/",
            "logs/",
            "node_modules/pkg/index.js",
            "src/app.py",
            "src/lib/util.py",
            "src/lib/util.pyc",
            "src/notes.md",
        ],
    );
    let m = matcher(
        ".git\n*.md\n!docs/*.md\nnode_modules\n**/*.pyc\nbuild\n!build/keep\nlogs\n.dockerignore\n",
    );
    assert_eq!(
        walked(&m, dir.path()),
        [
            "Dockerfile",
            "build/",
            "build/keep/",
            "build/keep/me.txt",
            "docs/",
            "docs/guide.md",
            "empty/",
            "src/",
            "src/app.py",
            "src/lib/",
            "src/lib/util.py",
            "src/notes.md",
        ]
    );
}

#[test]
fn walk_sends_excluded_parents_of_re_included_files_only() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(
        dir.path(),
        &[
            "a.py",
            "b.txt",
            "pkg/c.py",
            "pkg/d.txt",
            "pkg/deep/e.py",
            "other/f.txt",
            "other/g/",
        ],
    );
    assert_eq!(
        walked(&matcher("*\n!**/*.py\n"), dir.path()),
        ["a.py", "pkg/", "pkg/c.py", "pkg/deep/", "pkg/deep/e.py"]
    );
    assert_eq!(walked(&matcher("**\n!./b.txt\n"), dir.path()), ["b.txt"]);
    assert_eq!(
        walked(&Matcher::default(), dir.path()).len(),
        10,
        "no rules keep everything"
    );
}

#[test]
fn load_prefers_the_dockerfile_specific_ignore_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    let df_dir = dir.path().join("docker");
    fs::create_dir_all(&ctx).unwrap();
    fs::create_dir_all(&df_dir).unwrap();
    let dockerfile = df_dir.join("app.Dockerfile");
    fs::write(&dockerfile, "FROM scratch\n").unwrap();

    let none = load(&ctx, &dockerfile).unwrap();
    assert!(none.is_empty());
    assert_eq!(none.source(), None);

    fs::write(ctx.join(".dockerignore"), "from-context\n").unwrap();
    let m = load(&ctx, &dockerfile).unwrap();
    assert_eq!(m.source(), Some(ctx.join(".dockerignore").as_path()));
    assert_eq!(m.patterns()[0].text(), "from-context");

    let specific: PathBuf = df_dir.join("app.Dockerfile.dockerignore");
    fs::write(&specific, "from-dockerfile\n").unwrap();
    let m = load(&ctx, &dockerfile).unwrap();
    assert_eq!(m.source(), Some(specific.as_path()));
    let texts: Vec<&str> = m.patterns().iter().map(|p| p.text()).collect();
    assert_eq!(texts, ["from-dockerfile"]);
}

#[test]
fn load_reports_bad_patterns_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = dir.path().join("Dockerfile");
    fs::write(dir.path().join(".dockerignore"), "ok\n[\n").unwrap();
    let err = load(dir.path(), &dockerfile).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert_eq!(
        err.file,
        dir.path().join(".dockerignore").display().to_string()
    );
    assert_eq!(err.line, 2);

    // A directory where the file should be cannot be read.
    fs::create_dir(dir.path().join("Dockerfile.dockerignore")).unwrap();
    let err = load(dir.path(), &dockerfile).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(
        err.message.starts_with("cannot read the ignore file: "),
        "{}",
        err.message
    );
}
