//! Garbage collection and consistency checks.

use crate::descriptor::REF_NAME;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::lease;
use crate::store::Store;
use kiln_oci::reference::Reference;
use kiln_oci::{Digest, DigestWriter};
use std::collections::HashSet;
use std::fs;
use std::io;

/// What [`Store::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blobs deleted.
    pub removed_blobs: usize,
    /// Bytes freed, blobs and the temporary files of dead processes together.
    pub reclaimed_bytes: u64,
    /// Unreferenced blobs kept because a live process's lease holds them
    /// (written by a build not yet done, or used by one).
    pub kept_in_flight: usize,
}

/// What [`Store::fsck`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs whose content was hashed.
    pub blobs_checked: usize,
    /// Index entries checked.
    pub images_checked: usize,
    /// Everything wrong, one line each; empty when the store is consistent.
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong, one line each: foreign
    /// layers whose bytes are not in the store.
    pub notes: Vec<String>,
}

impl Store {
    /// Deletes blobs no image reaches, and what dead processes left.
    ///
    /// The rules that keep concurrent processes safe: GC holds the index
    /// lock exclusively for its whole run, so no tag lands half-way and no
    /// blob is committed or [held](Store::hold) meanwhile; blobs a live
    /// process's lease holds are kept, as is its `tmp/` directory; a dead
    /// process's lease and temporary files go. Tagging re-checks that an
    /// image's blobs are all present under the same lock, so a writer never
    /// makes a dangling tag.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_keeping(|| Ok::<_, Error>(HashSet::new()))
    }

    /// [`Store::gc`], also keeping the blobs `keep` returns (the layers the
    /// build cache refers to). `keep` is called under GC's lock, after the
    /// live leases were read: a process that records a blob elsewhere (a
    /// cache record) while holding it, and then ends, has either its lease
    /// seen or its record read.
    pub fn gc_keeping<E: std::fmt::Display>(
        &self,
        keep: impl FnOnce() -> std::result::Result<HashSet<Digest>, E>,
    ) -> Result<GcReport> {
        let _lock = self.lock(Mode::Exclusive)?;
        let mut report = GcReport {
            reclaimed_bytes: lease::reclaim(self.root()).bytes,
            ..GcReport::default()
        };
        let held = lease::held_blobs(self.root(), None);
        let mut live = self.live_blobs()?;
        live.extend(keep().map_err(|e| Error::invalid("the blobs to keep", e.to_string()))?);
        let blobs = self.blobs_dir();
        for (name, meta) in list_dir(&blobs)? {
            let digest = format!("sha256:{name}").parse::<Digest>().ok();
            if digest.is_some_and(|d| live.contains(&d)) || !meta.is_file() {
                continue;
            }
            if digest.is_some_and(|d| held.contains(&d)) {
                report.kept_in_flight += 1;
                continue;
            }
            let path = blobs.join(&name);
            fs::remove_file(&path).map_err(Error::io("removing", &path))?;
            report.removed_blobs += 1;
            report.reclaimed_bytes += meta.len();
        }
        fsutil::sync_dir(&blobs)?;
        Ok(report)
    }

    /// Removes the blobs of `digests` this process is done with (a build's
    /// uncompressed layers once their compressed blobs are made), each
    /// unless it is still held here, an image reaches it, another live
    /// process holds it, or `keep` names it (the blobs the build cache
    /// refers to); returns how many went. Under the index lock taken
    /// exclusively, as GC's, so nothing is tagged with them meanwhile.
    pub fn discard<E: std::fmt::Display>(
        &self,
        digests: &[Digest],
        keep: impl FnOnce() -> std::result::Result<HashSet<Digest>, E>,
    ) -> Result<usize> {
        let done: Vec<&Digest> = digests.iter().filter(|d| self.lease.release(d)).collect();
        if done.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock(Mode::Exclusive)?;
        let mut live = self.live_blobs()?;
        live.extend(lease::held_blobs(self.root(), Some(self.lease.id())));
        live.extend(keep().map_err(|e| Error::invalid("the blobs to keep", e.to_string()))?);
        let mut removed = 0;
        for digest in done.into_iter().filter(|d| !live.contains(d)) {
            let path = self.blob_path(digest);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &path)(e)),
            }
        }
        Ok(removed)
    }

    /// The blobs the store's images use (manifests, configs, layers and the
    /// indexes between), and the total size of every blob in the store.
    pub fn usage(&self) -> Result<(HashSet<Digest>, u64)> {
        let _lock = self.lock(Mode::Shared)?;
        let live = self.live_blobs()?;
        let total = list_dir(&self.blobs_dir())?
            .iter()
            .map(|(_, meta)| meta.len())
            .sum();
        Ok((live, total))
    }

    /// What the images reach; the caller holds the index lock.
    fn live_blobs(&self) -> Result<HashSet<Digest>> {
        let mut live = HashSet::new();
        for entry in self.read_index()?.manifests {
            live.extend(self.tree(&entry).present.into_iter().map(|d| d.digest));
        }
        Ok(live)
    }

    /// Checks the whole store: the layout files, that every blob hashes to
    /// its name, and that every image's manifest, config and layers are
    /// present with the sizes their descriptors give. Unreferenced blobs
    /// and files in `tmp/` are not problems (GC removes them).
    pub fn fsck(&self) -> Result<FsckReport> {
        let _lock = self.lock(Mode::Shared)?;
        let mut report = FsckReport::default();
        let layout = self.layout_dir().join("oci-layout");
        match fs::read(&layout).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
            Ok(Ok(v)) if v.get("imageLayoutVersion").is_some_and(|v| v.is_string()) => {}
            _ => report.problems.push(format!(
                "{} is missing or has no imageLayoutVersion",
                layout.display()
            )),
        }
        let blobs = self.blobs_dir();
        for (name, meta) in list_dir(&blobs)? {
            let path = blobs.join(&name);
            let Ok(expected) = format!("sha256:{name}").parse::<Digest>() else {
                report.problems.push(format!(
                    "{} is not named by a sha256 digest",
                    path.display()
                ));
                continue;
            };
            if !meta.is_file() {
                report
                    .problems
                    .push(format!("{} is not a regular file", path.display()));
                continue;
            }
            let mut hasher = DigestWriter::new(io::sink());
            fs::File::open(&path)
                .and_then(|mut f| io::copy(&mut f, &mut hasher))
                .map_err(Error::io("reading", &path))?;
            let (actual, _, _) = hasher.finish();
            report.blobs_checked += 1;
            if actual != expected {
                report.problems.push(format!(
                    "blob {expected} is corrupt: its content has digest {actual}"
                ));
            }
        }
        let index = match self.read_index() {
            Ok(index) => index,
            Err(e) => {
                report.problems.push(e.to_string());
                return Ok(report);
            }
        };
        let mut names = HashSet::new();
        for entry in &index.manifests {
            report.images_checked += 1;
            let label = match entry.annotations.get(REF_NAME) {
                Some(name) => {
                    if Reference::parse(name).is_err() {
                        report.problems.push(format!(
                            "index entry {} has an invalid name {name:?}",
                            entry.digest
                        ));
                    }
                    if !names.insert(name.clone()) {
                        report.problems.push(format!(
                            "the name {name} is given to more than one index entry"
                        ));
                    }
                    name.clone()
                }
                None => entry.digest.to_string(),
            };
            let tree = self.tree(entry);
            for problem in tree.problems {
                report.problems.push(format!("image {label}: {problem}"));
            }
            for layer in tree.foreign_absent {
                report.notes.push(format!(
                    "image {label}: foreign layer {} is not present (it is fetched from {} when needed)",
                    layer.digest,
                    layer.urls().join(", ")
                ));
            }
        }
        Ok(report)
    }
}

fn list_dir(dir: &std::path::Path) -> Result<Vec<(String, fs::Metadata)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Deleted between listing and stat, e.g. a temp file just renamed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading", &entry.path())(e)),
        };
        out.push((entry.file_name().to_string_lossy().into_owned(), meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
