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

const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// What the Win32 layer of an NTFS volume would not store faithfully in
/// the file name `name`, if anything: `\ / : * ? " < > |` (a `:` would be
/// read as an alternate data stream), control characters, a trailing dot
/// or space (Win32 strips them), a DOS device name, and `.`, `..` or empty.
/// Here, not in [`crate::windows`], because the Windows extractor of
/// [`crate::layer`] checks names too.
pub fn windows_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Some("not a file name");
    }
    if let Some(c) = name.chars().find(|c| "\\/:*?\"<>|".contains(*c)) {
        return Some(match c {
            ':' => "':' in a name makes Windows read it as an alternate data stream",
            _ => "contains a character Windows does not allow in file names (\\ / : * ? \" < > |)",
        });
    }
    if name.chars().any(|c| (c as u32) < 0x20) {
        return Some("contains a control character, which Windows does not allow in file names");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("ends with a dot or a space, which Windows strips from file names");
    }
    if is_device_name(name) {
        return Some("is a DOS device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), which Windows opens as a device in every directory");
    }
    None
}

fn is_device_name(name: &str) -> bool {
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if DEVICES.contains(&upper.as_str()) {
        return true;
    }
    let Some(num) = upper.strip_prefix("COM").or(upper.strip_prefix("LPT")) else {
        return false;
    };
    let mut chars = num.chars();
    // Windows also takes the superscript digits ¹ ² ³ as port numbers.
    matches!(
        (chars.next(), chars.next()),
        (Some('1'..='9' | '¹' | '²' | '³'), None)
    )
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
