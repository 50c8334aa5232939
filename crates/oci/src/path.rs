//! Lexical cleaning of POSIX paths in an image, Go's `path.Clean` rules,
//! in one place: every part of kiln that names a file in an image (config
//! `WorkingDir`, the image file-system view, COPY sources and destinations,
//! RUN mounts) cleans paths with these.

/// Cleaned components of `path`: empty and `.` components go, `..` removes
/// the one before it and stays at the root when there is none (an image's
/// `/..` is `/`).
fn clamped(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `path` as a clean absolute path (`/a/b`, `/` for the root), whether or
/// not it starts with `/`.
pub fn clean_absolute(path: &str) -> String {
    join_absolute(&clamped(path))
}

/// `path` as clean components joined by `/` with no leading `/` (`a/b`,
/// empty for the root).
pub fn clean_relative(path: &str) -> String {
    clamped(path).join("/")
}

/// The cleaned components of `path` below a root, or `None` when a `..`
/// would climb above it (a build context's paths must not).
pub fn components_within(path: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Components joined as an absolute path: `/a/b`, `/` for none.
pub fn join_absolute<S: AsRef<str>>(components: &[S]) -> String {
    let mut out = String::new();
    for c in components {
        out.push('/');
        out.push_str(c.as_ref());
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_clean_rules() {
        for (input, absolute, relative) in [
            ("", "/", ""),
            ("/", "/", ""),
            ("a/b/", "/a/b", "a/b"),
            ("/a/./b//c/", "/a/b/c", "a/b/c"),
            ("/a/../../b", "/b", "b"),
            ("..", "/", ""),
            ("/a/./b/../c/", "/a/c", "a/c"),
            ("//", "/", ""),
        ] {
            assert_eq!(clean_absolute(input), absolute, "{input:?}");
            assert_eq!(clean_relative(input), relative, "{input:?}");
        }
        assert_eq!(components_within("a/../b/./c"), Some(vec!["b", "c"]));
        assert_eq!(components_within("a/../../b"), None);
        assert_eq!(join_absolute::<&str>(&[]), "/");
        assert_eq!(join_absolute(&["x", "y z"]), "/x/y z");
    }
}
