//! Path arithmetic for COPY and ADD: cleaning sources and destinations the
//! way BuildKit's `system.NormalizePath` does, and Go's `filepath.Match`
//! wildcards, which BuildKit uses for source patterns.

pub(crate) use kiln_oci::path::{
    clean_relative as clean_clamped, components_within as clean_components,
};

/// The absolute destination of a COPY: relative to `workdir` unless
/// absolute, cleaned, with a trailing `/` kept (and added for `.` and an
/// empty destination) because it makes the destination a directory.
pub(crate) fn normalize_dest(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut out = format!("/{}", clean_clamped(&joined));
    if out != "/" && (dest.ends_with('/') || dest.ends_with("/.")) {
        out.push('/');
    }
    out
}

/// `a/b` + `c` → `a/b/c`, with an empty side left out.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The parent of a relative path (`""` for a top-level name).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The last component of a path.
pub(crate) fn base(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

/// Whether a path component holds a wildcard (`*`, `?`, `[`); `\` escapes
/// the next character, as in fsutil.
pub(crate) fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits a clean relative path at its first component with a wildcard:
/// the literal prefix and the pattern (empty when there is no wildcard).
pub(crate) fn split_wildcards(path: &str) -> (String, String) {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    match comps.iter().position(|c| contains_wildcards(c)) {
        Some(i) => (comps[..i].join("/"), comps[i..].join("/")),
        None => (comps.join("/"), String::new()),
    }
}

/// Go's `filepath.Match`: `*` is any run of characters but `/`, `?` one
/// character but `/`, `[a-z]`/`[^a-z]` classes, `\` escapes. A malformed
/// pattern matches nothing.
///
/// Not `kiln_frontend::dockerignore`'s matcher, though both have classes:
/// BuildKit matches COPY sources with Go's `filepath.Match`, where `[^a]`
/// never matches `/`, and `.dockerignore` lines with moby's translation to
/// regular expressions, where it does; one matcher would get one of them
/// wrong.
pub(crate) fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n).unwrap_or(false)
}

fn match_from(p: &[char], n: &[char]) -> Option<bool> {
    if p.is_empty() {
        return Some(n.is_empty());
    }
    match p[0] {
        '*' => {
            let rest = &p[1..];
            let mut i = 0;
            loop {
                if match_from(rest, &n[i..])? {
                    return Some(true);
                }
                if i == n.len() || n[i] == '/' {
                    return Some(false);
                }
                i += 1;
            }
        }
        '?' => {
            if n.first().is_some_and(|c| *c != '/') {
                match_from(&p[1..], &n[1..])
            } else {
                check_rest(&p[1..]).map(|_| false)
            }
        }
        '[' => {
            let (matched, len) = match_class(&p[1..], n.first().copied())?;
            if matched {
                match_from(&p[1 + len..], &n[1..])
            } else {
                check_rest(&p[1 + len..]).map(|_| false)
            }
        }
        '\\' => {
            let c = *p.get(1)?;
            if n.first() == Some(&c) {
                match_from(&p[2..], &n[1..])
            } else {
                Some(false)
            }
        }
        c => {
            if n.first() == Some(&c) {
                match_from(&p[1..], &n[1..])
            } else {
                check_rest(&p[1..]).map(|_| false)
            }
        }
    }
}

/// Go reports a bad pattern even when an earlier part fails to match;
/// this keeps `None` (bad pattern) for the rest of the pattern.
fn check_rest(p: &[char]) -> Option<()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                p.get(i + 1)?;
                i += 2;
            }
            '[' => {
                let (_, len) = match_class(&p[i + 1..], Some('a'))?;
                i += 1 + len;
            }
            _ => i += 1,
        }
    }
    Some(())
}

/// Matches one character against the class starting after `[`; returns
/// whether it matched and how many pattern characters the class used
/// (through `]`). `None` for a malformed class.
fn match_class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, used) = class_char(&p[i..])?;
        i += used;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            let (h, used) = class_char(&p[i + 1..])?;
            hi = h;
            i += 1 + used;
        }
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    let c = c?;
    if c == '/' {
        return Some((false, i));
    }
    Some((matched != negated, i))
}

fn class_char(p: &[char]) -> Option<(char, usize)> {
    match *p.first()? {
        '\\' => Some((*p.get(1)?, 2)),
        '-' | ']' => None,
        c => Some((c, 1)),
    }
}

/// fsutil's include-pattern test for `--parents`: whether `path` matches
/// `pattern` fully, or is a directory on the way to something that could
/// (`partial`). `**` stands for any number of components.
pub(crate) fn include_match(pattern: &str, path: &str, is_dir: bool) -> (bool, bool) {
    let pat: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (full, partial) = prefix_match(&pat, &comps);
    if full {
        (true, false)
    } else if partial && is_dir {
        (true, true)
    } else {
        (false, false)
    }
}

/// (full match, path is a proper prefix that later components could match)
fn prefix_match(pat: &[&str], comps: &[&str]) -> (bool, bool) {
    match (pat.first(), comps.first()) {
        (None, None) => (true, false),
        (None, Some(_)) => (false, false),
        (Some(&"**"), _) => {
            // `**` swallows zero or more components.
            let mut partial = true;
            for skip in 0..=comps.len() {
                let (full, part) = prefix_match(&pat[1..], &comps[skip..]);
                if full {
                    return (true, false);
                }
                partial |= part;
            }
            (false, partial)
        }
        (Some(_), None) => (false, true),
        (Some(p), Some(c)) => {
            if go_match(p, c) {
                prefix_match(&pat[1..], &comps[1..])
            } else {
                (false, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_follows_filepath_match() {
        assert!(go_match("*.txt", "a.txt"));
        assert!(!go_match("*.txt", "d/a.txt"));
        assert!(go_match("a?c", "abc"));
        assert!(!go_match("a?c", "a/c"));
        assert!(go_match("[a-c]x", "bx"));
        assert!(!go_match("[^a-c]x", "bx"));
        assert!(go_match("[^a-c]x", "dx"));
        assert!(go_match("\\*", "*"));
        assert!(!go_match("\\*", "a"));
        assert!(!go_match("[", "["));
        assert!(go_match("*/*.go", "cmd/main.go"));
    }

    #[test]
    fn destinations_keep_their_slash() {
        assert_eq!(normalize_dest("/app", "."), "/app/");
        assert_eq!(normalize_dest("/app", ""), "/app/");
        assert_eq!(normalize_dest("/app", "x"), "/app/x");
        assert_eq!(normalize_dest("/app", "x/"), "/app/x/");
        assert_eq!(normalize_dest("/app", "/x/../y/."), "/y/");
        assert_eq!(normalize_dest("/", "../../x"), "/x");
        assert_eq!(normalize_dest("/", "/"), "/");
    }

    #[test]
    fn wildcards_split_at_the_first_pattern_component() {
        assert_eq!(split_wildcards("a/b*/c"), ("a".into(), "b*/c".into()));
        assert_eq!(split_wildcards("a/b"), ("a/b".into(), "".into()));
        assert_eq!(split_wildcards("a/b\\*"), ("a/b\\*".into(), "".into()));
        assert_eq!(clean_components("a/../../b"), None);
        assert_eq!(clean_components("./a/./b/../c"), Some(vec!["a", "c"]));
    }

    #[test]
    fn include_patterns_match_prefixes() {
        assert_eq!(include_match("a/*/c.txt", "a", true), (true, true));
        assert_eq!(include_match("a/*/c.txt", "a/b", true), (true, true));
        assert_eq!(
            include_match("a/*/c.txt", "a/b/c.txt", false),
            (true, false)
        );
        assert_eq!(
            include_match("a/*/c.txt", "a/b/d.txt", false),
            (false, false)
        );
        assert_eq!(
            include_match("a/**/c.txt", "a/x/y/c.txt", false),
            (true, false)
        );
        assert_eq!(include_match("a", "a", true), (true, false));
        assert_eq!(include_match("a/b", "x", true), (false, false));
    }
}
