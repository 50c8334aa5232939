//! The stat cache: content digests of a context's files, remembered by each
//! file's identity and change times so that an unchanged file is not read
//! again.

use crate::db::{nanos, Cache};
use crate::source::{normalize, EntryKind, SourceEntry, SourceHasher};
use crate::sys;
use crate::Error;
use kiln_oci::tree::FileIdentity;
use kiln_oci::{Digest, DigestWriter};
use rusqlite::{params, Connection, TransactionBehavior};
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Here rather than in `db`, so the database module knows nothing of stat
// sessions, which are built on it.
impl Cache {
    /// Starts looking up content digests of files in the context at `root`
    /// (see [`StatSession`]), marking the context used now.
    pub fn stat_session(&self, root: &Path) -> Result<StatSession<'_>, Error> {
        StatSession::new(self, root)
    }
}

/// How often a file is read again when it keeps changing while being hashed.
const READ_ATTEMPTS: usize = 3;

/// How many files [`StatSession`] has looked up and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatCounts {
    /// Files whose recorded digest was used without reading them.
    pub hits: u64,
    /// Files read and hashed (each attempt counts, so a file that changed
    /// while being read counts more than once).
    pub reads: u64,
}

/// What identifies one version of a file's content without reading it.
/// The ctime is what makes this safe: every content change sets it to the
/// current time and no system call can put it back, so restoring the size
/// and mtime after an edit (buildah#6106) is still noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn identity(&self) -> FileIdentity {
        FileIdentity {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    fn of(identity: FileIdentity) -> Stamp {
        Stamp {
            dev: identity.dev,
            ino: identity.ino,
            size: identity.size,
            mtime: identity.mtime,
            ctime: identity.ctime,
        }
    }

    /// Whether any later change to the file is sure to get a different
    /// ctime. The kernel stamps files from a clock that ticks once per
    /// jiffy (or once per second or two on some file systems), so a write
    /// within the tick that our read ended in could leave every field
    /// unchanged; such a file is hashed but not recorded, as git does with
    /// "racily clean" index entries.
    fn settled(&self, now: SystemTime) -> bool {
        let whole_seconds = self.ctime.1 == 0 && self.mtime.1 == 0;
        let tick = if whole_seconds {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(20)
        };
        let Ok(secs) = u64::try_from(self.ctime.0) else {
            return false;
        };
        let ctime = UNIX_EPOCH + Duration::new(secs, self.ctime.1.clamp(0, 999_999_999) as u32);
        now.duration_since(ctime).is_ok_and(|age| age > tick)
    }
}

#[derive(Clone, Copy, Debug)]
struct Known {
    stamp: Stamp,
    digest: Digest,
}

/// A stat cache for one build context, from [`Cache::stat_session`].
///
/// The context's recorded rows are read into memory when the session
/// starts, and what it learns is written back in one transaction by
/// [`StatSession::finish`] (or, ignoring errors, when it is dropped), so a
/// 20,000-file context costs two queries, not 20,000.
///
/// Several sessions on one context, in this or other processes, may run at
/// once: every row is a file's stamp with the digest of the content read
/// under it, so whichever session writes last leaves correct rows. Rows for
/// files that were deleted stay until [`Cache::prune`] forgets the context.
pub struct StatSession<'c> {
    cache: &'c Cache,
    root: PathBuf,
    known: HashMap<Vec<u8>, Known>,
    learned: HashMap<Vec<u8>, Known>,
    hashed: HashMap<PathBuf, FileIdentity>,
    counts: StatCounts,
}

impl<'c> StatSession<'c> {
    pub(crate) fn new(cache: &'c Cache, root: &Path) -> Result<StatSession<'c>, Error> {
        // One context reached by two spellings must share its rows.
        let root = fs::canonicalize(root).map_err(|source| Error::Io {
            action: "resolving",
            path: root.to_path_buf(),
            source,
        })?;
        let mut conn = cache.conn()?;
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = context_id(&tx, &root)?;
            tx.commit()?;
            let mut stmt = conn.prepare_cached(
                "SELECT path, dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns, digest
                 FROM stat_cache WHERE context = ?1",
            )?;
            let rows = stmt
                .query_map([id], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        Stamp {
                            dev: row.get::<_, i64>(1)? as u64,
                            ino: row.get::<_, i64>(2)? as u64,
                            size: row.get::<_, i64>(3)? as u64,
                            mtime: (row.get(4)?, row.get(5)?),
                            ctime: (row.get(6)?, row.get(7)?),
                        },
                        row.get::<_, String>(8)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        };
        let rows = run(&mut conn).map_err(|e| cache.db(e))?;
        let mut known = HashMap::with_capacity(rows.len());
        for (path, stamp, digest) in rows {
            let digest = cache.digest(&digest)?;
            known.insert(path, Known { stamp, digest });
        }
        Ok(StatSession {
            cache,
            root,
            known,
            learned: HashMap::new(),
            hashed: HashMap::new(),
            counts: StatCounts::default(),
        })
    }

    /// The context root, resolved to a canonical path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sha256 of the regular file at `path` (relative to the context
    /// root; an absolute path is used as is). Symlinks are not followed:
    /// anything but a regular file is [`Error::NotAFile`].
    ///
    /// The recorded digest is returned when the file's device, inode, size,
    /// mtime and ctime match the recorded ones; otherwise the file is read,
    /// and its new stamp recorded if it did not change while being read.
    /// A file that keeps changing is read a few times and then its last
    /// digest returned unrecorded, as a copy of it would be equally torn.
    pub fn file_digest(&mut self, path: &Path) -> Result<Digest, Error> {
        let full = self.root.join(path);
        let meta = fs::symlink_metadata(&full).map_err(|source| Error::Io {
            action: "reading",
            path: full.clone(),
            source,
        })?;
        self.digest_of(full, &meta)
    }

    /// The [`SourceEntry`] for the file, directory, link or device at
    /// `path` (relative to the context root), with `path` as its path.
    pub fn source_entry(&mut self, path: &Path) -> Result<SourceEntry, Error> {
        let full = self.root.join(path);
        let meta = fs::symlink_metadata(&full).map_err(|source| Error::Io {
            action: "reading",
            path: full.clone(),
            source,
        })?;
        self.entry_at(path.to_path_buf(), full, &meta)
    }

    /// The [`SourceHasher`] digest of everything at and under `path`
    /// (relative to the context root), with paths relative to `path`: the
    /// same tree in another directory gives the same digest. Symlinks are
    /// hashed as links, never followed. The entry for `path` itself (path
    /// `""`) is included, so its mode and owner count too.
    pub fn source_digest(&mut self, path: &Path) -> Result<Digest, Error> {
        let mut hasher = SourceHasher::new();
        let top = self.root.join(path);
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            // Joining "" would add a trailing slash, which makes the kernel
            // follow a symlink and refuse a file.
            let full = if rel.as_os_str().is_empty() {
                top.clone()
            } else {
                top.join(&rel)
            };
            let meta = fs::symlink_metadata(&full).map_err(|source| Error::Io {
                action: "reading",
                path: full.clone(),
                source,
            })?;
            if meta.is_dir() {
                let io_err = |source| Error::Io {
                    action: "listing",
                    path: full.clone(),
                    source,
                };
                let listing = fs::read_dir(&full).map_err(|e| raced(e, &full, REMOVED_DIR))?;
                for child in listing {
                    pending.push(rel.join(child.map_err(io_err)?.file_name()));
                }
            }
            hasher.add(&self.entry_at(rel, full, &meta)?);
        }
        Ok(hasher.finish())
    }

    /// Every regular file below the root whose digest this session gave,
    /// by its path relative to the root, with the identity it had then. A
    /// step keyed by these digests must copy these very files: the copy
    /// compares what it lists with them.
    pub fn hashed_files(&self) -> &HashMap<PathBuf, FileIdentity> {
        &self.hashed
    }

    /// How many lookups were answered from the cache and how many files
    /// were read, so far.
    pub fn counts(&self) -> StatCounts {
        self.counts
    }

    /// Records what this session learned, in one transaction, and returns
    /// its counts.
    pub fn finish(mut self) -> Result<StatCounts, Error> {
        self.flush()?;
        Ok(self.counts)
    }

    fn entry_at(
        &mut self,
        path: PathBuf,
        full: PathBuf,
        meta: &Metadata,
    ) -> Result<SourceEntry, Error> {
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            EntryKind::File {
                size: meta.len(),
                content: self.digest_of(full.clone(), meta)?,
            }
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(|e| raced(e, &full, NOT_A_LINK))?;
            EntryKind::Symlink { target }
        } else {
            sys::special_kind(meta, &full).map_err(|source| Error::Io {
                action: "reading",
                path: full.clone(),
                source,
            })?
        };
        let xattrs = sys::xattrs(&full).map_err(|source| Error::Io {
            action: "reading extended attributes of",
            path: full,
            source,
        })?;
        let attributes = sys::attributes(meta);
        Ok(SourceEntry {
            path,
            kind,
            mode: attributes.mode,
            uid: attributes.uid,
            gid: attributes.gid,
            xattrs,
        })
    }

    fn digest_of(&mut self, full: PathBuf, meta: &Metadata) -> Result<Digest, Error> {
        if !meta.is_file() {
            return Err(Error::NotAFile { path: full });
        }
        let key = match full.strip_prefix(&self.root) {
            Ok(rel) => normalize(rel),
            // Relative keys never start with '/', so these cannot collide.
            Err(_) => sys::os_bytes(full.as_os_str()).to_vec(),
        };
        let stamp = Stamp::of(
            sys::listed_identity(&full, meta).map_err(|e| raced(e, &full, REPLACED_FILE))?,
        );
        let below_root = full.starts_with(&self.root);
        let recorded = self.learned.get(&key).or_else(|| self.known.get(&key));
        if let Some(k) = recorded.filter(|k| k.stamp == stamp) {
            self.counts.hits += 1;
            if below_root {
                let rel = sys::bytes_path(&key);
                self.hashed.insert(rel, stamp.identity());
            }
            return Ok(k.digest);
        }
        let io_err = |action, source| Error::Io {
            action,
            path: full.clone(),
            source,
        };
        let mut last = None;
        for _ in 0..READ_ATTEMPTS {
            let mut file = sys::open_listed(&full).map_err(|e| raced(e, &full, REPLACED_FILE))?;
            let before = file.metadata().map_err(|e| io_err("reading", e))?;
            let before_id = sys::open_identity(&file, &before).map_err(|e| io_err("reading", e))?;
            // The file listed, not whatever took its name since: what is
            // hashed must be what COPY then checks it copies.
            if !before.is_file() || (before_id.dev, before_id.ino) != (stamp.dev, stamp.ino) {
                return Err(Error::Changed {
                    path: full,
                    reason: REPLACED_FILE,
                });
            }
            let (digest, len) = hash(&mut file).map_err(|e| io_err("reading", e))?;
            let after = file.metadata().map_err(|e| io_err("reading", e))?;
            self.counts.reads += 1;
            let stamp =
                Stamp::of(sys::open_identity(&file, &after).map_err(|e| io_err("reading", e))?);
            if below_root {
                let rel = sys::bytes_path(&key);
                self.hashed.insert(rel, stamp.identity());
            }
            if Stamp::of(before_id) == stamp && len == stamp.size {
                if stamp.settled(SystemTime::now()) {
                    self.learned.insert(key, Known { stamp, digest });
                }
                return Ok(digest);
            }
            last = Some(digest);
        }
        Ok(last.expect("READ_ATTEMPTS > 0"))
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.learned.is_empty() {
            return Ok(());
        }
        let learned = std::mem::take(&mut self.learned);
        let mut conn = self.cache.conn()?;
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Again, not the id from the start: a prune may have forgotten
            // the context since.
            let id = context_id(&tx, &self.root)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO stat_cache
                     (context, path, dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for (path, k) in &learned {
                    let s = &k.stamp;
                    insert.execute(params![
                        id,
                        path,
                        s.dev as i64,
                        s.ino as i64,
                        s.size as i64,
                        s.mtime.0,
                        s.mtime.1,
                        s.ctime.0,
                        s.ctime.1,
                        k.digest.to_string(),
                    ])?;
                }
            }
            tx.commit()
        };
        run(&mut conn).map_err(|e| self.cache.db(e))?;
        self.known.extend(learned);
        Ok(())
    }
}

impl Drop for StatSession<'_> {
    fn drop(&mut self) {
        // An error here only costs a re-read next time.
        let _ = self.flush();
    }
}

/// The context's id, creating it if need be, marked used now.
fn context_id(tx: &rusqlite::Transaction, root: &Path) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO stat_contexts (root, last_used) VALUES (?1, ?2)
         ON CONFLICT (root) DO UPDATE SET last_used = max(last_used, excluded.last_used)
         RETURNING id",
    )?
    .query_row(
        params![sys::os_bytes(root.as_os_str()), nanos(SystemTime::now())],
        |row| row.get(0),
    )
}

const REPLACED_FILE: &str = "another file, a symlink or nothing is now in its place";
const NOT_A_LINK: &str = "it is no longer a symbolic link";
const REMOVED_DIR: &str = "it is no longer a directory";

/// The error for `err` met reading `path` just after it was seen to be
/// what it no longer is (`reason`); other errors are plain I/O errors.
fn raced(err: io::Error, path: &Path, reason: &'static str) -> Error {
    if sys::is_raced(&err) {
        Error::Changed {
            path: path.to_path_buf(),
            reason,
        }
    } else {
        Error::Io {
            action: "reading",
            path: path.to_path_buf(),
            source: err,
        }
    }
}

/// The sha256 and length of everything `file` holds, read in chunks.
fn hash(file: &mut File) -> io::Result<(Digest, u64)> {
    let mut writer = DigestWriter::new(io::sink());
    io::copy(file, &mut writer)?;
    let (digest, len, _) = writer.finish();
    Ok((digest, len))
}
