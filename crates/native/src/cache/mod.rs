//! The build cache as a build uses it: [`kiln_cache`] holds the records,
//! this module decides what goes into a step's key and digests the
//! context files a COPY, ADD or RUN bind mount reads.
//!
//! A key is the parent step's key, the instruction after expansion, the
//! step's environment (ENV and the build args in scope, never secret
//! values: a secret mount names only its id), the platform, and what the
//! step reads besides its parent: context files by content (see
//! [`kiln_cache::SourceHasher`] for what counts), other stages by their
//! final key, images by their config and layers. ADD of a URL without
//! `--checksum` or of a git repository is never cached, since only the
//! download says what it holds.

mod image_sources;
mod remote;

use crate::copy::paths::{clean_clamped, go_match, join, split_wildcards};
use kiln_backend::{CacheExport, CacheLocation, CacheMode};
use kiln_cache::{Cache, KeyBuilder, Record, SourceHasher, StatSession};
use kiln_frontend::dockerignore::Matcher;
use kiln_oci::name::to_path;
use kiln_oci::Digest;
use kiln_registry::Client;
use kiln_store::{Descriptor, Store};
use remote::Imported;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Opens the build cache index of the store at `store_root`, where every
/// build of that store records its steps (`KILN_ROOT/cache/index.db`), for
/// `kiln du`, `kiln prune` and `kiln fsck`.
pub fn open_index(store_root: &Path) -> Result<Cache, kiln_cache::Error> {
    Cache::open(&store_root.join("cache").join("index.db"))
}

/// Writes `records` (of one build, or of each platform of one) to the
/// `--cache-to` cache `export` names.
pub(crate) fn export_records(
    export: &CacheExport,
    client: &Client,
    store: &Store,
    records: &[(Digest, Record)],
) -> Result<(), String> {
    remote::export(export, client, store, records)
        .map_err(|e| format!("cannot write the cache {}: {e}", export.location))
}

/// The cache of one build.
pub(crate) struct BuildCache {
    cache: Cache,
    /// `--no-cache`: no step is taken from the cache (results are still
    /// recorded for later builds).
    no_cache: bool,
    /// `--no-cache-filter`: stages (names or indexes) never taken from it.
    no_cache_filter: Vec<String>,
    /// The `--cache-from` caches that could be read.
    imported: Vec<Imported>,
    /// Every step this build took or made: (stage index, key, record), for
    /// `--cache-to`.
    used: Mutex<Vec<(usize, Digest, Record)>>,
    /// Steps taken from a `--cache-from` cache, to record locally once the
    /// build is done (only those whose layer it fetched).
    remote_hits: Mutex<Vec<(Digest, Record)>>,
}

/// The most source entries a shape record keeps to say which file changed.
const MAX_LISTED: usize = 100_000;

impl BuildCache {
    /// Opens the index at `root/cache/index.db`.
    pub(crate) fn open(
        root: &Path,
        no_cache: bool,
        no_cache_filter: Vec<String>,
    ) -> Result<BuildCache, String> {
        let cache = open_index(root).map_err(|e| e.to_string())?;
        Ok(BuildCache {
            cache,
            no_cache,
            no_cache_filter,
            imported: Vec::new(),
            used: Mutex::new(Vec::new()),
            remote_hits: Mutex::new(Vec::new()),
        })
    }

    /// Reads a `--cache-from` cache (its records, no layer); a cache that
    /// cannot be read is only a warning, as in BuildKit, since the build
    /// can go on without it.
    pub(crate) fn import(
        &mut self,
        location: &CacheLocation,
        client: &Client,
        store: &Store,
    ) -> Result<(), String> {
        let imported = remote::import(location, client, store)
            .map_err(|e| format!("cannot read the cache {location}: {e}"))?;
        self.imported.push(imported);
        Ok(())
    }

    /// Notes that the build took `key` from a `--cache-from` cache.
    pub(crate) fn took_remote(&self, key: Digest, record: &Record) {
        let mut hits = self.remote_hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.push((key, record.clone()));
    }

    /// Records locally the `--cache-from` hits whose layer is now in the
    /// store (or that have none), so the next build finds them without
    /// the shared cache; a hit whose layer nothing fetched stays remote.
    pub(crate) fn keep_remote_hits(&self, store: &Store) {
        let hits = self.remote_hits.lock().unwrap_or_else(|p| p.into_inner());
        for (key, record) in hits.iter() {
            if record
                .layer
                .as_ref()
                .is_none_or(|l| store.has_blob(&l.digest))
            {
                self.put(key, record);
            }
        }
    }

    /// Notes that the build took or made `key` in stage `stage`.
    pub(crate) fn used(&self, stage: usize, key: Digest, record: &Record) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.push((stage, key, record.clone()));
    }

    /// Rewrites the records this build wrote or took whose layer is a key
    /// of `compressed` (an uncompressed tar) with its compressed blob, in
    /// the index and for `--cache-to`.
    pub(crate) fn settle(&self, compressed: &HashMap<Digest, Descriptor>) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        for (_, key, record) in used.iter_mut() {
            let Some(layer) = record.layer.as_mut() else {
                continue;
            };
            if let Some(blob) = compressed.get(&layer.digest) {
                layer.digest = blob.digest;
                layer.media_type = blob.media_type.clone();
                layer.size = blob.size;
                self.put(key, record);
            }
        }
    }

    /// The steps `--cache-to` with `mode` writes: those of `stages` (the
    /// image's), or with `mode=max` every step of the build.
    pub(crate) fn records_for(&self, mode: CacheMode, stages: &[usize]) -> Vec<(Digest, Record)> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.iter()
            .filter(|(stage, _, _)| mode == CacheMode::Max || stages.contains(stage))
            .map(|(_, key, record)| (*key, record.clone()))
            .collect()
    }

    /// Whether blob `digest` is in the store or a `--cache-from` cache. A
    /// blob in the store is held by the build's lease from here on: a
    /// `kiln prune` running meanwhile may drop the record that found it,
    /// but not the layer the build now stands on.
    pub(crate) fn can_get(&self, store: &Store, digest: &Digest) -> bool {
        store.hold(digest).unwrap_or(false) || self.imported.iter().any(|i| i.has_layer(digest))
    }

    /// Makes sure `layer` is in the store, fetching it from a `--cache-from`
    /// cache that has it; the error says why none could.
    pub(crate) fn ensure_blob(
        &self,
        client: &Client,
        store: &Store,
        layer: &Descriptor,
    ) -> Result<(), String> {
        if store.has_blob(&layer.digest) {
            return Ok(());
        }
        if layer.is_foreign() {
            // A base's foreign layer kept by `--keep-foreign-layers` is
            // fetched only now that a step reads it (design §2.5).
            let runtime = kiln_backend::runtime()?;
            runtime
                .block_on(client.fetch_foreign(store, None, layer))
                .map_err(|e| e.to_string())?;
            store.hold(&layer.digest).map_err(|e| e.to_string())?;
            return Ok(());
        }
        let mut why = Vec::new();
        for i in self.imported.iter().filter(|i| i.has_layer(&layer.digest)) {
            match remote::fetch_layer(i, client, store, layer) {
                Ok(()) => return Ok(()),
                Err(e) => why.push(format!("from {}: {e}", i.location())),
            }
        }
        if why.is_empty() {
            why.push("it is not in the store, nor in any --cache-from cache".into());
        }
        Err(format!(
            "cannot get layer {}: {}",
            layer.digest,
            why.join("; ")
        ))
    }

    /// Why the stage named `name` (index `index`) may not use the cache.
    pub(crate) fn disabled_for(&self, name: Option<&str>, index: usize) -> Option<&'static str> {
        if self.no_cache {
            return Some("--no-cache");
        }
        let hit = self
            .no_cache_filter
            .iter()
            .any(|f| Some(f.as_str()) == name || *f == index.to_string());
        hit.then_some("--no-cache-filter names this stage")
    }

    /// The record for `key`, from the local index or else (with `true`) a
    /// `--cache-from` cache; a broken index only costs the hit.
    pub(crate) fn get(&self, key: &Digest) -> Option<(Record, bool)> {
        if let Some(r) = self.get_local(key) {
            return Some((r, false));
        }
        self.imported
            .iter()
            .find_map(|i| i.get(key).cloned())
            .map(|r| (r, true))
    }

    /// The record for `key` in the local index only (the shape records
    /// that say what changed are never shared).
    pub(crate) fn get_local(&self, key: &Digest) -> Option<Record> {
        self.cache.get(key).ok().flatten()
    }

    /// Remembers `record` for `key`; failing to is not a build failure.
    pub(crate) fn put(&self, key: &Digest, record: &Record) {
        let _ = self.cache.put(key, record);
    }

    /// The digest of the context files `sources` name (paths relative to
    /// `root`, as COPY's sources are), with the list of entries for a later
    /// "what changed" message and the identity each regular file had when
    /// it was hashed (see [`kiln_cache::StatSession::hashed_files`]).
    /// `mask` leaves out what the step overrides.
    pub(crate) fn sources_digest(
        &self,
        root: &Path,
        ignore: &Matcher,
        sources: &[String],
        mask: SourceMask,
    ) -> Result<SourcesDigest, String> {
        let mut session = self.cache.stat_session(root).map_err(|e| e.to_string())?;
        let mut walk = Walk {
            session: &mut session,
            root,
            ignore,
            mask,
            hasher: SourceHasher::new(),
            listed: Vec::new(),
        };
        for (i, src) in sources.iter().enumerate() {
            walk.source(i, src).map_err(|e| format!("{src}: {e}"))?;
        }
        let Walk {
            hasher, mut listed, ..
        } = walk;
        listed.sort();
        let digest = hasher.finish();
        let files = Arc::new(session.hashed_files().clone());
        session.finish().map_err(|e| e.to_string())?;
        Ok(SourcesDigest {
            digest,
            listed,
            files,
        })
    }
}

/// The digest of a step's context sources, from [`BuildCache::sources_digest`].
pub(crate) struct SourcesDigest {
    /// The digest, for the step's key.
    pub(crate) digest: Digest,
    /// Each entry's path and digest, to say what changed on a miss.
    pub(crate) listed: Vec<(String, Digest)>,
    /// The regular files hashed, by path relative to the root, as they
    /// were when hashed: the step must copy these, unchanged.
    pub(crate) files: Arc<HashedFiles>,
}

/// Regular files of a context by path relative to its root, with their
/// identity when the build cache hashed them.
pub(crate) type HashedFiles = std::collections::HashMap<PathBuf, kiln_oci::tree::FileIdentity>;

/// What of a source's metadata a step replaces, and so leaves out of its
/// digest: a COPY with an octal `--chmod` sets every permission bit but
/// setuid, setgid and sticky, and one with `--chown` sets every owner, so
/// the sources' own bits and owners cannot change the layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceMask {
    /// The mode bits that still count.
    pub(crate) mode: u32,
    /// Whether owners count.
    pub(crate) owner: bool,
}

impl SourceMask {
    /// Everything counts.
    pub(crate) const ALL: SourceMask = SourceMask {
        mode: 0o7777,
        owner: true,
    };
}

/// A "shape" record: the key of a step without its sources, whose record
/// lists the source entries it last had, so a miss can name what changed.
pub(crate) fn shape_key(key: &KeyBuilder) -> Digest {
    key.clone().field("shape", "sources left out").finish()
}

/// The listing kept in a shape record.
pub(crate) fn encode_listing(listed: &[(String, Digest)]) -> Vec<u8> {
    let mut out = String::new();
    for (path, digest) in listed.iter().take(MAX_LISTED) {
        out.push_str(path);
        out.push('\t');
        out.push_str(&digest.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// The first path whose entry differs between a stored listing and now:
/// `"app/main.rs changed"`, `"x was added"`, `"y was removed"`.
pub(crate) fn what_changed(stored: &[u8], now: &[(String, Digest)]) -> Option<String> {
    let before: BTreeMap<&str, &str> = std::str::from_utf8(stored)
        .ok()?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let after: BTreeMap<&str, String> = now
        .iter()
        .map(|(p, d)| (p.as_str(), d.to_string()))
        .collect();
    for (path, digest) in &after {
        match before.get(path) {
            None => return Some(format!("{} was added", shown(path))),
            Some(old) if old != digest => return Some(format!("{} changed", shown(path))),
            _ => {}
        }
    }
    before
        .keys()
        .find(|p| !after.contains_key(*p))
        .map(|p| format!("{} was removed", shown(p)))
}

/// A listed path without its source-number prefix.
fn shown(path: &str) -> &str {
    let rest = path.split_once(':').map_or(path, |(_, r)| r);
    if rest.is_empty() {
        "."
    } else {
        rest
    }
}

/// `err`, met reading the context path `rel` just after seeing it was what
/// it no longer is, said as the build failure it is (as BuildKit fails
/// when a context file changes while it is sent).
fn changed(err: io::Error, rel: &str, reason: &str) -> io::Error {
    if kiln_oci::tree::is_raced(&err) {
        io::Error::other(format!(
            "{rel} changed during the build: {reason}; nothing may change a build's sources while it runs"
        ))
    } else {
        err
    }
}

struct Walk<'s, 'c> {
    session: &'s mut StatSession<'c>,
    root: &'s Path,
    ignore: &'s Matcher,
    mask: SourceMask,
    hasher: SourceHasher,
    listed: Vec<(String, Digest)>,
}

impl Walk<'_, '_> {
    /// Hashes what source number `i` names: the tree at its path, or for a
    /// wildcard in its last part the matching names of that directory
    /// (anything deeper hashes the whole directory before the wildcard).
    fn source(&mut self, i: usize, src: &str) -> io::Result<()> {
        let cleaned = clean_clamped(&src.replace("/./", "/"));
        let (literal, pattern) = split_wildcards(&cleaned);
        if pattern.is_empty() {
            return self.item(i, &cleaned);
        }
        if pattern.contains('/') {
            return self.item(i, &literal);
        }
        let dir = self.root.join(to_path(&literal));
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| spelled(e.file_name()))
                .filter(|n| n.as_ref().map_or(true, |n| go_match(&pattern, n)))
                .collect::<io::Result<_>>()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        for name in names {
            self.item(i, &join(&literal, &name))?;
        }
        Ok(())
    }

    /// Hashes `rel` and everything under it. A source named through a
    /// symlink is copied from what the link points at, so that is hashed
    /// too (inside the context; a link out of it fails the COPY itself).
    fn item(&mut self, i: usize, rel: &str) -> io::Result<()> {
        // (path, whether it is the source itself or what its link names)
        let mut pending = vec![(rel.to_string(), true)];
        let mut hops = 0;
        while let Some((rel, top)) = pending.pop() {
            let full = if rel.is_empty() {
                self.root.to_path_buf()
            } else {
                self.root.join(to_path(&rel))
            };
            let meta = match std::fs::symlink_metadata(&full) {
                Ok(m) => m,
                // The step itself reports a missing source.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !rel.is_empty() && self.ignore.is_excluded(&rel) {
                if !meta.is_dir() || self.ignore.may_skip_dir(&rel) {
                    continue;
                }
            } else {
                let mut entry = self
                    .session
                    .source_entry(&to_path(&rel))
                    .map_err(io::Error::other)?;
                entry.mode &= self.mask.mode;
                if !self.mask.owner {
                    (entry.uid, entry.gid) = (0, 0);
                }
                let mut one = SourceHasher::new();
                one.add(&entry);
                self.listed.push((format!("{i}:{rel}"), one.finish()));
                entry.path = PathBuf::from(format!("{i}/{rel}"));
                self.hasher.add(&entry);
            }
            if meta.file_type().is_symlink() && top && hops < 40 {
                hops += 1;
                let target = std::fs::read_link(&full)
                    .map_err(|e| changed(e, &rel, "it is no longer a symbolic link"))?;
                let rel_path = to_path(&rel);
                let base = rel_path.parent().unwrap_or(Path::new(""));
                let joined = if target.is_absolute() {
                    target
                } else {
                    base.join(target)
                };
                pending.push((clean_clamped(&spelled(joined.into_os_string())?), true));
            } else if meta.is_dir() {
                let listing = std::fs::read_dir(&full)
                    .map_err(|e| changed(e, &rel, "it is no longer a directory"))?;
                for e in listing {
                    let name = spelled(e?.file_name())?;
                    pending.push((join(&rel, &name), false));
                }
            }
        }
        Ok(())
    }
}

/// A name read from the context as kiln spells it (`kiln_oci::name`), so a
/// file whose name is not UTF-8 is hashed like any other.
fn spelled(name: std::ffi::OsString) -> io::Result<String> {
    kiln_oci::name::from_os_string(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
