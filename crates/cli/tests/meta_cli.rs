//! `kiln version`, `kiln completion SHELL` and `kiln man`, through the
//! binary: completions and the manual come from the parser's own
//! definition, so every subcommand appears in them.

use std::process::Command;

fn kiln(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_release_the_commit_and_the_features() {
    let (code, out, _) = kiln(&["version"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("kiln {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("commit: "), "{out}");
    assert!(
        lines[2].starts_with("features: dockerfile, zimagefile"),
        "{out}"
    );
}

#[test]
fn completions_cover_every_subcommand_in_each_shell() {
    for (shell, marker) in [
        ("bash", "_kiln()"),
        ("zsh", "#compdef kiln"),
        ("fish", "complete -c kiln"),
    ] {
        let (code, out, err) = kiln(&["completion", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        for sub in ["build", "pull", "push", "images", "convert", "prune"] {
            assert!(out.contains(sub), "{shell} lacks {sub}");
        }
    }
    let (code, _, err) = kiln(&["completion", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let (code, out, _) = kiln(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH kiln 1"), "{out}");
    for sub in ["build", "pull", "push", "images", "convert", "completion"] {
        assert!(out.contains(sub), "the man page lacks {sub}");
    }
}
