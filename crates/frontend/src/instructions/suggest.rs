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

/// Optimal-string-alignment distance: edits plus swaps of neighbours, so
/// `biuld` is one step from `build`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
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
        assert_eq!(closest("biuld", &["build"], true), Some("build"));
    }
}
