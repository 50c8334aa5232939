//! The merged tree: one entry per absolute path, kept in a sorted map so a
//! directory's descendants are one contiguous range.
//!
//! Invariant: every entry's parent exists and is a directory, the same rule
//! the layer extractor enforces on disk, so a walk never meets a symlink or
//! a file in the middle of a path.

use super::{index, Error, FsEntry, FsKind};
use kiln_oci::layer::read::Entry;
use kiln_oci::windows::path::fold_case;
use kiln_oci::{Digest, LayerFormat};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;

/// A layer the tree was built from.
#[derive(Clone, Debug)]
pub(super) struct Layer {
    /// The blob's digest, for messages.
    pub digest: Digest,
    /// Where the blob is, for reading file contents later.
    pub blob: PathBuf,
}

/// The index behind an [`super::ImageFs`].
#[derive(Clone, Debug)]
pub(super) struct Tree {
    pub layers: Vec<Layer>,
    /// How the layers lay out their files.
    pub format: LayerFormat,
    root: FsEntry,
    /// Keyed by absolute cleaned path (`/a/b`); the root is not in here.
    entries: BTreeMap<String, FsEntry>,
    /// Windows names are case-insensitive: every key ever inserted, by its
    /// case-folded form, so `/WINDOWS/temp` finds `/Windows/Temp`. Keys
    /// removed since stay here; [`Tree::spell`] checks they still exist.
    folded: Option<HashMap<String, String>>,
}

impl Tree {
    pub fn new(format: LayerFormat) -> Tree {
        Tree {
            layers: Vec::new(),
            format,
            root: FsEntry::implicit_dir(0),
            entries: BTreeMap::new(),
            folded: (format == LayerFormat::Windows).then(HashMap::new),
        }
    }

    /// `key` as the tree spells it: on Windows, each existing component in
    /// the spelling of the entry that has it (whatever case `key` uses),
    /// the rest as given; elsewhere `key` itself.
    pub fn spell(&self, key: &str) -> String {
        let Some(folded) = &self.folded else {
            return key.to_string();
        };
        if key == "/" || self.entries.contains_key(key) {
            return key.to_string();
        }
        if let Some(found) = folded.get(&fold_case(key)) {
            if self.entries.contains_key(found) {
                return found.clone();
            }
        }
        match key.rsplit_once('/') {
            Some((parent, name)) if !parent.is_empty() => {
                format!("{}/{name}", self.spell(parent))
            }
            _ => key.to_string(),
        }
    }

    fn put(&mut self, key: &str, entry: FsEntry) {
        if let Some(folded) = &mut self.folded {
            folded.insert(fold_case(key), key.to_string());
        }
        self.entries.insert(key.to_string(), entry);
    }

    /// Applies one layer blob on top, in place: on error the tree is left
    /// half-changed, so callers apply to a copy they can drop.
    /// Each entry read is also pushed to `keep`, when given.
    pub fn apply_layer(
        &mut self,
        digest: Digest,
        blob: PathBuf,
        file: File,
        keep: Option<&mut Vec<Entry>>,
    ) -> Result<(), Error> {
        self.layers.push(Layer { digest, blob });
        let index = self.layers.len() - 1;
        index::read_layer(self, index, &digest, file, keep)
    }

    /// [`Tree::apply_layer`] from the entries an earlier read of the same
    /// blob kept.
    pub fn apply_saved(
        &mut self,
        digest: Digest,
        blob: PathBuf,
        entries: &[Entry],
    ) -> Result<(), Error> {
        self.layers.push(Layer { digest, blob });
        let index = self.layers.len() - 1;
        index::apply_entries(self, index, &digest, entries)
    }

    /// The entry at a cleaned absolute path.
    pub fn get(&self, key: &str) -> Option<&FsEntry> {
        if key == "/" {
            Some(&self.root)
        } else {
            self.entries.get(key)
        }
    }

    /// The direct children of the directory at `key`, sorted by name.
    pub fn children(&self, key: &str) -> Vec<(String, &FsEntry)> {
        if !self.get(key).is_some_and(FsEntry::is_dir) {
            return Vec::new();
        }
        let skip = prefix(key).len();
        self.descendants(key)
            .filter_map(|(k, e)| {
                let name = &k[skip..];
                (!name.contains('/')).then(|| (name.to_string(), e))
            })
            .collect()
    }

    /// Everything under `key` (not `key` itself), parents first.
    pub fn descendants<'a>(&'a self, key: &str) -> impl Iterator<Item = (&'a str, &'a FsEntry)> {
        let prefix = prefix(key);
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Replaces the root directory's metadata.
    pub fn set_root(&mut self, entry: FsEntry) {
        self.root = entry;
    }

    /// Makes sure `key` is a directory, creating it (and its parents) as an
    /// implicit directory of `layer` if missing.
    pub fn ensure_dir(&mut self, key: &str, layer: usize) -> Result<(), String> {
        self.ensure_parents(key, layer)?;
        if key == "/" {
            return Ok(());
        }
        match self.entries.get(key).map(|e| &e.kind) {
            None => {
                self.put(key, FsEntry::implicit_dir(layer));
                Ok(())
            }
            Some(kind) => check_dir(key, kind),
        }
    }

    /// Adds or replaces the entry at `key`. A directory over a directory
    /// keeps the children; anything else replaces the whole subtree.
    pub fn insert(&mut self, key: &str, entry: FsEntry) -> Result<(), String> {
        self.ensure_parents(key, entry.layer)?;
        if let Some(old) = self.entries.get(key) {
            if old.is_dir() && !entry.is_dir() {
                self.remove_under(key, |_| true);
            }
        }
        self.put(key, entry);
        Ok(())
    }

    /// A whiteout in `layer`: removes `key` and everything under it that
    /// lower layers put there.
    pub fn whiteout(&mut self, key: &str, layer: usize) -> Result<(), String> {
        if self.entries.get(key).is_some_and(|e| e.layer < layer) {
            self.entries.remove(key);
        }
        self.remove_under(key, |e| e.layer < layer);
        self.reattach_under(key, layer)
    }

    /// An opaque directory marker in `layer`: hides what lower layers had
    /// inside `key`.
    pub fn make_opaque(&mut self, key: &str, layer: usize) -> Result<(), String> {
        self.remove_under(key, |e| e.layer < layer);
        self.reattach_under(key, layer)
    }

    /// Removes the entries strictly under `key` that `pred` selects.
    fn remove_under(&mut self, key: &str, pred: impl Fn(&FsEntry) -> bool) {
        let doomed: Vec<String> = self
            .descendants(key)
            .filter(|(_, e)| pred(e))
            .map(|(k, _)| k.to_string())
            .collect();
        for k in doomed {
            self.entries.remove(&k);
        }
    }

    /// After a partial removal, gives entries that survived under `key`
    /// their parents back (as implicit directories of `layer`).
    fn reattach_under(&mut self, key: &str, layer: usize) -> Result<(), String> {
        let survivors: Vec<String> = self.descendants(key).map(|(k, _)| k.to_string()).collect();
        if survivors.is_empty() {
            return Ok(());
        }
        self.ensure_dir(key, layer)?;
        for k in survivors {
            self.ensure_parents(&k, layer)?;
        }
        Ok(())
    }

    /// Checks that every ancestor of `key` is a directory, creating missing
    /// ones as implicit directories of `layer`.
    fn ensure_parents(&mut self, key: &str, layer: usize) -> Result<(), String> {
        for (i, _) in key.match_indices('/').skip(1) {
            let parent = &key[..i];
            match self.entries.get(parent) {
                None => self.put(parent, FsEntry::implicit_dir(layer)),
                Some(e) => check_dir(parent, &e.kind)?,
            }
        }
        Ok(())
    }
}

fn check_dir(key: &str, kind: &FsKind) -> Result<(), String> {
    match kind {
        FsKind::Dir => Ok(()),
        FsKind::Symlink(_) => Err(format!(
            "parent {key:?} is a symlink in a lower layer; layers must not write through symlinks"
        )),
        _ => Err(format!(
            "parent {key:?} is not a directory in the lower layers"
        )),
    }
}

/// `key` with a trailing `/`: what its descendants' keys start with.
fn prefix(key: &str) -> String {
    if key == "/" {
        "/".to_string()
    } else {
        format!("{key}/")
    }
}

/// Cleans a path lexically into a key: absolute, no empty, `.` or `..`
/// components (`..` at the root stays there), no trailing `/`.
pub(super) use kiln_oci::path::clean_absolute as clean;

/// Joins components into a key.
pub(super) use kiln_oci::path::join_absolute as join;
