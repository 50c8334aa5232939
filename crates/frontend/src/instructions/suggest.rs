//! "Did you mean …?" suggestions, by edit distance as BuildKit's
//! `util/suggest` does.

/// The option closest to `value`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    value: &str,
    options: &[&'a str],
    case_sensitive: bool,
) -> Option<&'a str> {
    if value.is_empty() {
        return None;
    }
    let norm = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let value = norm(value);
    // A third of the word may be wrong, but at least one edit is allowed,
    // so `mout` finds `mount` and `RUNN` finds `RUN`.
    let limit = (value.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for option in options {
        let d = distance(&value, &norm(option));
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, option));
        }
    }
    best.map(|(_, o)| o)
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_but_not_strangers() {
        assert_eq!(closest("mout", &["mount", "network"], true), Some("mount"));
        assert_eq!(closest("runn", &["RUN", "CMD"], false), Some("RUN"));
        assert_eq!(closest("zzzz", &["mount", "network"], true), None);
        assert_eq!(closest("", &["a"], true), None);
    }
}
