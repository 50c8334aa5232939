//! Container paths on a Windows target and the names NTFS accepts.
//!
//! A Dockerfile path means the system drive whichever way it is written:
//! `C:\x`, `C:/x`, `/x` and `\x` are absolute, `x` and the drive-relative
//! `C:x` are relative to the working directory (BuildKit's
//! `CheckSystemDriveAndRemoveDriveLetter`). Other drives, UNC paths and a
//! bare `C:` are refused.

/// Why a path or a name cannot be used in a Windows container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A drive letter other than `C:`.
    #[error("{0:?}: the specified path is not on the system drive (C:)")]
    NotSystemDrive(String),
    /// `C:` alone names no directory.
    #[error("{0:?}: no relative path specified after the drive letter")]
    BareDrive(String),
    /// `\\server\share`, `\\?\…`, `\\.\…`.
    #[error("{0:?}: UNC paths are not supported")]
    Unc(String),
    /// A component NTFS or the Win32 API would refuse or misread.
    #[error("{name:?}: {reason}")]
    BadName {
        /// The component.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

/// Resolves `path` against `workdir` (itself resolved against `C:\`, so
/// a relative working directory hangs off the root) to the components of
/// an absolute path on `C:`, with `.` and `..` applied (`..` stops at the
/// root, as Go's `filepath.Clean` does) and every remaining component
/// checked with [`validate_name`]. An empty `path` is the working
/// directory.
pub fn resolve(path: &str, workdir: &str) -> Result<Vec<String>, PathError> {
    let base = if workdir.is_empty() {
        Vec::new()
    } else {
        clean(Vec::new(), strip_drive(workdir)?.1)
    };
    let out = if path.is_empty() {
        base
    } else {
        let (absolute, rest) = strip_drive(path)?;
        clean(if absolute { Vec::new() } else { base }, rest)
    };
    for c in &out {
        validate_name(c)?;
    }
    Ok(out)
}

/// Absolute components as Windows writes them: `C:\app\x`, `C:\` for the
/// root.
pub fn display(components: &[String]) -> String {
    format!("C:\\{}", components.join("\\"))
}

/// Whether the path is absolute, and what follows a `C:` drive.
fn strip_drive(path: &str) -> Result<(bool, &str), PathError> {
    let b = path.as_bytes();
    if b.len() >= 2 && is_sep(b[0]) && is_sep(b[1]) {
        return Err(PathError::Unc(path.to_string()));
    }
    let rest = if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        if b.len() == 2 {
            return Err(PathError::BareDrive(path.to_string()));
        }
        if !b[0].eq_ignore_ascii_case(&b'c') {
            return Err(PathError::NotSystemDrive(path.to_string()));
        }
        &path[2..]
    } else {
        path
    };
    Ok((rest.bytes().next().is_some_and(is_sep), rest))
}

fn is_sep(b: u8) -> bool {
    b == b'\\' || b == b'/'
}

fn clean(mut out: Vec<String>, rest: &str) -> Vec<String> {
    for c in rest.split(['\\', '/']) {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

/// DOS device names, which Win32 opens as devices in any directory and
/// with any extension (`NUL.txt` is `NUL`).
/// Checks one file name against what the Win32 layer of an NTFS volume
/// stores faithfully ([`crate::path::windows_name_problem`]).
pub fn validate_name(name: &str) -> Result<(), PathError> {
    match crate::path::windows_name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(PathError::BadName {
            name: name.to_string(),
            reason,
        }),
    }
}

/// The key under which NTFS considers two names equal: each character
/// upper-cased on its own, as NTFS's upcase table maps one UTF-16 unit to
/// one (so `ß` stays `ß`, unlike Unicode's full case mapping).
pub fn fold_case(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `resolve(path, workdir)` in BuildKit's WorkingDir form, `\a\b`.
    fn buildkit_form(workdir: &str, path: &str) -> Result<String, PathError> {
        resolve(path, workdir).map(|c| format!("\\{}", c.join("\\")))
    }

    /// BuildKit's `util/system/path_test.go` (`TestNormalizeWorkdirWindows`
    /// and `TestCheckSystemDriveAndRemoveDriveLetter`), then the design's
    /// test 8.
    #[test]
    fn buildkit_normalize_workdir_table() {
        for (current, new, want) in [
            ("", "test", Ok(r"\test")),
            ("", r"\strippedWd", Ok(r"\strippedWd")),
            ("", r"C:\withDriveLetter", Ok(r"\withDriveLetter")),
            (
                "",
                "C:/withDriveLetterAndForwardSlash",
                Ok(r"\withDriveLetterAndForwardSlash"),
            ),
            ("", r"C:/first\second/third", Ok(r"\first\second\third")),
            ("testing", "", Ok(r"\testing")),
            ("testing", "newTesting", Ok(r"\testing\newTesting")),
            (
                r"testing/with\mixed/slashes",
                "newTesting",
                Ok(r"\testing\with\mixed\slashes\newTesting"),
            ),
            (
                r"C:\testing/with\mixed/slashes",
                "newTesting",
                Ok(r"\testing\with\mixed\slashes\newTesting"),
            ),
            (
                r"C:\testing/with\mixed/slashes",
                "",
                Ok(r"\testing\with\mixed\slashes"),
            ),
            (r"D:\IWillErrorOut", "doesNotMatter", Err("system drive")),
            (r"C:\testing", r"D:\testing", Err("system drive")),
            ("C:", "testing", Err("no relative path")),
            ("/test", "C:", Err("no relative path")),
            ("/test", "C:testing", Ok(r"\test\testing")),
            (r"C:\..\test\..\", "", Ok(r"\")),
            ("/test", "relative/path", Ok(r"\test\relative\path")),
            ("", r"d:\", Err("system drive")),
            ("", "z", Ok(r"\z")),
            ("", "AB", Ok(r"\AB")),
            ("", r"\l", Ok(r"\l")),
            ("", "/l", Ok(r"\l")),
            ("", r"c:\", Ok(r"\")),
            ("", "c:/", Ok(r"\")),
            ("", "c:", Err("no relative path")),
            ("", "d:", Err("no relative path")),
            ("", r"\\.\C$\test", Err("UNC")),
            ("", r"\\srv\s", Err("UNC")),
            ("", "//srv/s", Err("UNC")),
            (r"C:\app", "x", Ok(r"\app\x")),
            (r"C:\app", "C:foo", Ok(r"\app\foo")),
            (r"C:\app", "/x", Ok(r"\x")),
            (r"C:\app", r"C:\x", Ok(r"\x")),
        ] {
            let got = buildkit_form(current, new);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{current:?} + {new:?}"),
                (Err(w), Err(e)) => {
                    assert!(e.to_string().contains(w), "{current:?} + {new:?}: {e}")
                }
                (w, g) => panic!("{current:?} + {new:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    /// Classic moby's `dispatchers_windows_test.go` `TestNormalizeWorkdir`
    /// (moby stores `C:\x`; the components are the same). Where moby and
    /// BuildKit disagree, kiln follows BuildKit: `\\foo` is a UNC path
    /// (moby reads `C:\foo`), and `C:.` is the working directory (moby
    /// refuses it).
    #[test]
    fn moby_normalize_workdir_table() {
        for (current, requested, want) in [
            ("", "C:", Err("no relative path")),
            ("c:", r"\a", Err("no relative path")),
            ("", "a", Ok(r"C:\a")),
            ("", r"c:\foo", Ok(r"C:\foo")),
            ("", r"c:\\foo", Ok(r"C:\foo")),
            ("", r"\foo", Ok(r"C:\foo")),
            ("", r"\\foo", Err("UNC")),
            ("", "/foo", Ok(r"C:\foo")),
            ("", "C:/foo", Ok(r"C:\foo")),
            (r"C:\foo", "bar", Ok(r"C:\foo\bar")),
            (r"C:\foo", "/bar", Ok(r"C:\bar")),
            (r"C:\foo", r"\bar", Ok(r"C:\bar")),
            (r"C:\foo", "C:.", Ok(r"C:\foo")),
            ("", r"c:\", Ok(r"C:\")),
        ] {
            let got = resolve(requested, current).map(|c| display(&c));
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{current:?} + {requested:?}"),
                (Err(w), Err(e)) => {
                    assert!(
                        e.to_string().contains(w),
                        "{current:?} + {requested:?}: {e}"
                    )
                }
                (w, g) => panic!("{current:?} + {requested:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn names_windows_refuses() {
        for name in [
            "a\\b",
            "a:b",
            "a*",
            "a?",
            "a\"",
            "a<",
            "a>",
            "a|",
            "a\u{1}",
            "a\t",
            "a.",
            "a ",
            "CON",
            "con",
            "Nul.txt",
            "aux.tar.gz",
            "PRN",
            "COM1",
            "lpt9",
            "COM¹",
            "NUL .txt",
            "",
            ".",
            "..",
        ] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
        for name in [
            "CONFIG",
            "COM0",
            "COM10",
            "LPT",
            "nul_",
            "a.b",
            ".hidden",
            "x y",
            "über",
            "CON_x.txt",
        ] {
            assert!(validate_name(name).is_ok(), "{name:?}");
        }
        let err = resolve(r"C:\app\NUL", "").unwrap_err();
        assert!(err.to_string().contains("DOS device"), "{err}");
        let err = resolve(r"C:\app\a:b", "").unwrap_err();
        assert!(err.to_string().contains("alternate data stream"), "{err}");
    }

    #[test]
    fn case_folding_is_per_character() {
        assert_eq!(fold_case("Windows"), fold_case("WINDOWS"));
        assert_eq!(fold_case("straße"), "STRAßE");
        assert_ne!(fold_case("a"), fold_case("b"));
    }
}
