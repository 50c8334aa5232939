//! A stage's environment while it is resolved, and the snapshots each step
//! keeps of it.
//!
//! Every step records the variables in effect when it runs. Copying the
//! whole environment into each step made a Dockerfile of n ENV lines cost
//! O(n²) memory (20,000 lines ran out of memory), so a snapshot is instead
//! a pointer into a shared, append-only chain of assignments: taking one is
//! O(1) and a stage's snapshots together cost O(n).

use kiln_oci::Digest;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::shell::Env;

/// The variables in effect at one step: BuildKit's `EnvList`, in definition
/// order, where a variable set again keeps its place and takes the new value.
///
/// Snapshots share their storage with the snapshots of earlier steps (and,
/// for a stage built FROM another, with that stage's), so cloning one is
/// cheap. [`StepEnv::to_vec`] lists the variables; [`StepEnv::get`] and the
/// [`Env`] implementation look one up.
#[derive(Clone, Default)]
pub struct StepEnv {
    last: Option<Arc<Assignment>>,
}

/// One `name=value` assignment and the assignments before it.
struct Assignment {
    name: String,
    value: String,
    /// Where `name` stands in definition order.
    position: usize,
    /// How many distinct names are set, this one included.
    count: usize,
    /// The digest of this assignment and every one before it, in order.
    chain: Digest,
    earlier: Option<Arc<Assignment>>,
}

impl Drop for Assignment {
    // The default drop recurses once per link and overflows the stack on a
    // long chain (tens of thousands of ENV lines), so unlink iteratively.
    fn drop(&mut self) {
        let mut next = self.earlier.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut owned) => next = owned.earlier.take(),
                Err(_) => break,
            }
        }
    }
}

impl StepEnv {
    /// This environment with `name`, the `position`th name in definition
    /// order, set to `value`; `count` names are then set.
    fn with(&self, name: &str, value: &str, position: usize, count: usize) -> StepEnv {
        let mut framed = self.digest().map(|d| d.hex()).unwrap_or_default();
        for part in [name, value] {
            framed.push_str(&format!("\0{}:", part.len()));
            framed.push_str(part);
        }
        StepEnv {
            last: Some(Arc::new(Assignment {
                name: name.to_string(),
                value: value.to_string(),
                position,
                count,
                chain: Digest::of(framed.as_bytes()),
                earlier: self.last.clone(),
            })),
        }
    }

    /// A digest of the assignments that made this environment, in order
    /// (`None` for an empty one); O(1). The same assignments give the same
    /// digest, so it stands for the environment in a cache key where
    /// listing it would cost time linear in its size at every step.
    pub fn digest(&self) -> Option<Digest> {
        self.last.as_ref().map(|a| a.chain)
    }

    fn assignments(&self) -> impl Iterator<Item = &Assignment> {
        std::iter::successors(self.last.as_deref(), |a| a.earlier.as_deref())
    }

    /// The value of `name`, or `None` when it is not set. Takes time linear
    /// in the number of assignments so far; use [`StepEnv::to_vec`] to look
    /// up many names.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.assignments()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The variables as `(name, value)` pairs, in definition order, each
    /// name once with its latest value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        // Newest first, each slot takes the first assignment that reaches
        // it: no hashing, and the walk stops once every name is found.
        let count = self.last.as_ref().map_or(0, |a| a.count);
        let mut slots: Vec<Option<(&str, &str)>> = vec![None; count];
        let mut missing = count;
        for a in self.assignments() {
            if missing == 0 {
                break;
            }
            let slot = &mut slots[a.position];
            if slot.is_none() {
                *slot = Some((a.name.as_str(), a.value.as_str()));
                missing -= 1;
            }
        }
        slots.into_iter().flatten()
    }

    /// [`StepEnv::iter`], owned.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Env for StepEnv {
    fn get(&self, name: &str) -> Option<String> {
        StepEnv::get(self, name).map(str::to_string)
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        Env::get_ignore_case(&self.to_vec(), name)
    }
}

impl PartialEq for StepEnv {
    fn eq(&self, other: &StepEnv) -> bool {
        let same_chain = match (&self.last, &other.last) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_chain || self.iter().eq(other.iter())
    }
}

impl Eq for StepEnv {}

impl fmt::Debug for StepEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The environment being built up while a stage is resolved: the current
/// values, indexed so that setting and looking up a name are O(1), and the
/// snapshot steps take.
#[derive(Debug, Clone, Default)]
pub(super) struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
    snapshot: StepEnv,
}

impl EnvList {
    pub(super) fn set(&mut self, key: &str, value: String) {
        let position = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.index.insert(key.to_string(), self.vars.len());
                self.vars.push((key.to_string(), String::new()));
                self.vars.len() - 1
            }
        };
        self.snapshot = self.snapshot.with(key, &value, position, self.vars.len());
        self.vars[position].1 = value;
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(|&i| self.vars[i].1.as_str())
    }

    /// The environment now, to keep in a step; O(1).
    pub(super) fn snapshot(&self) -> StepEnv {
        self.snapshot.clone()
    }

    pub(super) fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<String> {
        EnvList::get(self, name).map(str::to_string)
    }

    fn get_ignore_case(&self, name: &str) -> Option<String> {
        Env::get_ignore_case(&self.vars, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_the_assignments() {
        let mut a = EnvList::default();
        let mut b = EnvList::default();
        assert_eq!(a.snapshot().digest(), None);
        a.set("A", "1".into());
        b.set("A", "1".into());
        assert_eq!(a.snapshot().digest(), b.snapshot().digest());
        a.set("B", "2".into());
        b.set("B", "3".into());
        assert_ne!(a.snapshot().digest(), b.snapshot().digest());
        // Bytes cannot move between a name and its value.
        let (mut c, mut d) = (EnvList::default(), EnvList::default());
        c.set("AB", "C".into());
        d.set("A", "BC".into());
        assert_ne!(c.snapshot().digest(), d.snapshot().digest());
    }

    #[test]
    fn snapshots_keep_definition_order_and_latest_values() {
        let mut env = EnvList::default();
        env.set("A", "1".into());
        env.set("B", "2".into());
        let before = env.snapshot();
        env.set("A", "3".into());
        let after = env.snapshot();
        assert_eq!(
            before.to_vec(),
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(
            after.to_vec(),
            [("A".into(), "3".into()), ("B".into(), "2".into())]
        );
        assert_eq!(after.get("A"), Some("3"));
        assert_eq!(before.get("A"), Some("1"));
        assert_eq!(after.get("C"), None);
        assert_ne!(before, after);
        assert!(StepEnv::default().is_empty());
    }

    #[test]
    fn equal_contents_compare_equal_whatever_the_history() {
        let mut one = EnvList::default();
        one.set("A", "0".into());
        one.set("A", "1".into());
        let mut two = EnvList::default();
        two.set("A", "1".into());
        assert_eq!(one.snapshot(), two.snapshot());
    }

    #[test]
    fn a_long_chain_drops_without_overflowing_the_stack() {
        let mut env = EnvList::default();
        for i in 0..1_000_000 {
            env.set("A", i.to_string());
        }
        drop(env);
    }
}
