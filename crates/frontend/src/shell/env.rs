//! Variable lookup for expansion.

use std::collections::{BTreeMap, HashMap};

/// Variable lookup for expansion.
///
/// Implemented for the usual maps and for ordered `(name, value)` lists,
/// where a later entry with the same name wins (the way repeated `ENV` and
/// `ARG` lines override earlier ones).
pub trait Env {
    /// The value of `name`, or `None` when it is not set. A variable set to
    /// the empty string is `Some("")`: `${X-default}` treats the two
    /// differently.
    fn get(&self, name: &str) -> Option<String>;

    /// Looks `name` up comparing names case-insensitively, as BuildKit does
    /// when the build targets Windows (`$path` finds `PATH`).
    ///
    /// The provided implementations compare every name. The default, for
    /// types that cannot list their names, tries the exact name and then its
    /// upper-case form.
    fn get_ignore_case(&self, name: &str) -> Option<String> {
        self.get(name).or_else(|| self.get(&fold_case(name)))
    }
}

/// Upper-cases one character at a time, keeping characters whose upper case
/// is more than one character (`ß`), like Go's `strings.ToUpper` that
/// BuildKit uses to normalise Windows variable names.
pub(crate) fn fold_case(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

fn last_matching<'a, I>(entries: I, name: &str) -> Option<String>
where
    I: DoubleEndedIterator<Item = (&'a String, &'a String)>,
{
    let wanted = fold_case(name);
    entries
        .rev()
        .find(|(k, _)| fold_case(k) == wanted)
        .map(|(_, v)| v.clone())
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name)
            .cloned()
            .or_else(|| last_matching(self.iter(), name))
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        if let Some(v) = HashMap::get(self, name) {
            return Some(v.clone());
        }
        // Iteration order is random, so pick the smallest matching name to
        // stay deterministic when several names differ only in case.
        let wanted = fold_case(name);
        self.iter()
            .filter(|(k, _)| fold_case(k) == wanted)
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(_, v)| v.clone())
    }
}

impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        last_matching(self.iter().map(|(k, v)| (k, v)), name)
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        Env::get_ignore_case(self.as_slice(), name)
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, name: &str) -> Option<String> {
        (**self).get(name)
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        (**self).get_ignore_case(name)
    }
}

/// Wraps an [`Env`] so names are looked up ignoring case (Windows targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseInsensitive<E>(pub E);

impl<E: Env> Env for CaseInsensitive<E> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get_ignore_case(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn later_entries_win_in_lists() {
        let env = pairs(&[("A", "1"), ("B", ""), ("A", "2")]);
        assert_eq!(Env::get(&env, "A").as_deref(), Some("2"));
        assert_eq!(Env::get(&env, "B").as_deref(), Some(""));
        assert_eq!(Env::get(&env, "a"), None);
        assert_eq!(Env::get(env.as_slice(), "C"), None);
    }

    #[test]
    fn case_insensitive_lookup() {
        let env = CaseInsensitive(pairs(&[("Path", "1"), ("PATH", "2")]));
        assert_eq!(env.get("path").as_deref(), Some("2"));
        let map: BTreeMap<String, String> = pairs(&[("Pwd", "/home")]).into_iter().collect();
        assert_eq!(CaseInsensitive(&map).get("PWD").as_deref(), Some("/home"));
        let hash: HashMap<String, String> = pairs(&[("pwd", "/x")]).into_iter().collect();
        assert_eq!(CaseInsensitive(hash).get("PwD").as_deref(), Some("/x"));
        assert_eq!(fold_case("straße"), "STRAßE");
    }

    #[test]
    fn default_case_insensitive_tries_upper_case() {
        struct Only;
        impl Env for Only {
            fn get(&self, name: &str) -> Option<String> {
                (name == "HOME").then(|| "/root".to_string())
            }
        }
        assert_eq!(CaseInsensitive(Only).get("home").as_deref(), Some("/root"));
        assert_eq!(CaseInsensitive(Only).get("user"), None);
    }
}
