//! The index of step results.

use crate::Error;
use kiln_oci::Digest;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SCHEMA_VERSION: i64 = 1;

/// Long enough for another process's largest transaction (a prune, or a
/// stat-cache flush) to finish; a process holding a lock cannot outlive its
/// death, since SQLite's locks are the kernel's and go away with it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY NOT NULL,
    layer_digest TEXT,
    layer_media_type TEXT,
    layer_size INTEGER,
    layer_diff_id TEXT,
    created TEXT NOT NULL,
    description TEXT NOT NULL,
    metadata BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_last_used ON records (last_used);
CREATE TABLE IF NOT EXISTS stat_contexts (
    id INTEGER PRIMARY KEY,
    root BLOB NOT NULL UNIQUE,
    last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stat_cache (
    context INTEGER NOT NULL REFERENCES stat_contexts (id) ON DELETE CASCADE,
    path BLOB NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_s INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_s INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (context, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_digests (
    layer TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (layer, ordinal)
) WITHOUT ROWID;
";

/// A layer a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The blob's digest in the store (compressed, as in the manifest).
    pub digest: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// What a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The layer, or `None` for a step that changes only the config.
    pub layer: Option<Layer>,
    /// The history entry's `created` time when the step was first built,
    /// exactly as written into the image (RFC 3339, or whatever the engine
    /// uses), so that a fully cached rebuild gives the same image digest.
    pub created: String,
    /// A line for `kiln du` to show (e.g. the instruction); not used to
    /// replay the step.
    pub description: String,
    /// Anything else the engine needs to replay the step (e.g. JSON).
    pub metadata: Vec<u8>,
}

/// One record as `kiln du` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The step key.
    pub key: Digest,
    /// The layer blob the record refers to, if any.
    pub blob: Option<Digest>,
    /// The layer blob's size (0 without a layer).
    pub size: u64,
    /// Whether another record refers to the same blob, so that removing this
    /// record alone frees nothing.
    pub shared: bool,
    /// When the record was stored.
    pub created_at: SystemTime,
    /// When the record was last stored or returned by [`Cache::get`].
    pub last_used: SystemTime,
    /// The record's [`Record::description`].
    pub description: String,
}

/// What [`Cache::prune`] removes: the union of what each field selects.
/// The default removes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFilter {
    /// Remove everything, and forget every context's stat cache.
    pub all: bool,
    /// Remove records not used since this time (`kiln prune --filter
    /// until=24h` is now minus 24 hours); it also forgets the stat caches of
    /// contexts not built since.
    pub until: Option<SystemTime>,
    /// Then remove least recently used records until the blobs the rest
    /// refer to take at most this many bytes (each blob counted once).
    pub keep_bytes: Option<u64>,
}

/// What [`Cache::prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The removed records, least recently used first.
    pub removed: Vec<Entry>,
    /// The blobs no remaining record refers to any more, sorted; the store's
    /// garbage collector may delete them unless an image uses them.
    pub freed_blobs: Vec<Digest>,
    /// The total size of `freed_blobs`.
    pub freed_bytes: u64,
}

/// The build cache index: a handle on the SQLite database, shared by the
/// threads of one process (it is `Send + Sync`; pass `&Cache` to scoped
/// threads or wrap it in an `Arc`) and by any number of processes.
///
/// Each operation takes a connection from a small pool, so threads do not
/// wait for one another to read; writes from every thread and process are
/// serialized by SQLite.
pub struct Cache {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// A pooled connection, returned to the pool when dropped.
pub(crate) struct Conn<'c> {
    cache: &'c Cache,
    conn: Option<Connection>,
}

impl Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.cache.idle.lock()) {
            idle.push(conn);
        }
    }
}

impl Cache {
    /// Opens the index at `path` (normally `$KILN_ROOT/cache/index.db`),
    /// creating it and its directory if need be.
    pub fn open(path: &Path) -> Result<Cache, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "creating",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let cache = Cache {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        };
        let conn = cache.retry_busy(|| {
            let mut conn = cache.connect()?;
            cache.init_schema(&mut conn)?;
            Ok(conn)
        })?;
        cache.idle.lock().map_err(|_| cache.poisoned())?.push(conn);
        Ok(cache)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The record for `key`, marking it used now.
    pub fn get(&self, key: &Digest) -> Result<Option<Record>, Error> {
        let mut conn = self.conn()?;
        let now = nanos(SystemTime::now());
        let key = key.to_string();
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = tx
                .prepare_cached(
                    "UPDATE records SET last_used = max(last_used, ?2) WHERE key = ?1
                     RETURNING layer_digest, layer_media_type, layer_size, layer_diff_id,
                               created, description, metadata",
                )?
                .query_row(params![key, now], |row| {
                    Ok((
                        [
                            row.get::<_, Option<String>>(0)?,
                            row.get::<_, Option<String>>(1)?,
                        ],
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        [row.get::<_, String>(4)?, row.get::<_, String>(5)?],
                        row.get::<_, Vec<u8>>(6)?,
                    ))
                })
                .optional()?;
            tx.commit()?;
            Ok(row)
        };
        let Some(([digest, media_type], size, diff_id, [created, description], metadata)) =
            run(&mut conn).map_err(|e| self.db(e))?
        else {
            return Ok(None);
        };
        let layer = match (digest, media_type, size, diff_id) {
            (Some(digest), Some(media_type), Some(size), Some(diff_id)) if size >= 0 => {
                Some(Layer {
                    digest: self.digest(&digest)?,
                    media_type,
                    size: size as u64,
                    diff_id: self.digest(&diff_id)?,
                })
            }
            (None, None, None, None) => None,
            _ => return Err(self.corrupt(format!("record {key} has an invalid layer"))),
        };
        Ok(Some(Record {
            layer,
            created,
            description,
            metadata,
        }))
    }

    /// Stores `record` under `key`, replacing any record there (whose
    /// blobs then count as used only by other records that refer to them).
    pub fn put(&self, key: &Digest, record: &Record) -> Result<(), Error> {
        let conn = self.conn()?;
        let now = nanos(SystemTime::now());
        let layer = record.layer.as_ref();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO records
             (key, layer_digest, layer_media_type, layer_size, layer_diff_id,
              created, description, metadata, created_at, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                key.to_string(),
                layer.map(|l| l.digest.to_string()),
                layer.map(|l| l.media_type.as_str()),
                layer.map(|l| i64::try_from(l.size).unwrap_or(i64::MAX)),
                layer.map(|l| l.diff_id.to_string()),
                record.created,
                record.description,
                record.metadata,
                now,
            ])
        })
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The content digests known of the files in the layer blob `layer`,
    /// by their entry's ordinal in the blob (see [`Cache::put_file_digests`]).
    pub fn file_digests(&self, layer: &Digest) -> Result<HashMap<u64, Digest>, Error> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT ordinal, digest FROM file_digests WHERE layer = ?1")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([layer.to_string()], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(ordinal, digest)| {
                let ordinal = u64::try_from(ordinal)
                    .map_err(|_| self.corrupt(format!("file digest of {layer} at {ordinal}")))?;
                Ok((ordinal, self.digest(&digest)?))
            })
            .collect()
    }

    /// Remembers the sha256 of the contents of files in the layer blob
    /// `layer` (an entry's ordinal, its digest), so that keying a `COPY
    /// --from` by what it copies reads a blob once, not at every build. A
    /// blob's entries never change: its digest names them.
    pub fn put_file_digests(&self, layer: &Digest, digests: &[(u64, Digest)]) -> Result<(), Error> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO file_digests (layer, ordinal, digest) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| self.db(e))?;
            for (ordinal, digest) in digests {
                let ordinal = i64::try_from(*ordinal).unwrap_or(i64::MAX);
                insert
                    .execute(params![layer.to_string(), ordinal, digest.to_string()])
                    .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    /// Every record, most recently used first.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        let conn = self.conn()?;
        let mut entries = self.read_entries(&conn)?;
        let refs = blob_refs(&entries);
        for e in &mut entries {
            e.shared = e.blob.is_some_and(|b| refs[&b].0 > 1);
        }
        entries.reverse();
        Ok(entries)
    }

    /// Removes the records `filter` selects, in one transaction, and says
    /// which blobs that leaves unreferenced. Blobs a remaining record still
    /// refers to are never reported as freed.
    pub fn prune(&self, filter: &PruneFilter) -> Result<PruneReport, Error> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let entries = self.read_entries(&tx)?;
        let mut refs = blob_refs(&entries);
        let mut total: u64 = refs.values().map(|(_, size)| size).sum();
        let mut report = PruneReport::default();
        let until = filter.until.map(nanos);
        // Entries come least recently used first, so a cut at `until`
        // followed by a size limit is one pass.
        let mut removed = Vec::new();
        for e in entries {
            let stale = until.is_some_and(|u| nanos(e.last_used) < u);
            let over = filter.keep_bytes.is_some_and(|max| total > max);
            if !(filter.all || stale || over) {
                break;
            }
            if let Some(blob) = e.blob {
                let r = refs.get_mut(&blob).expect("counted above");
                r.0 -= 1;
                if r.0 == 0 {
                    total -= r.1;
                    report.freed_blobs.push(blob);
                    report.freed_bytes += r.1;
                }
            }
            removed.push(e);
        }
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM records WHERE key = ?1")
                .map_err(|e| self.db(e))?;
            for e in &removed {
                delete
                    .execute([e.key.to_string()])
                    .map_err(|e| self.db(e))?;
            }
        }
        {
            // What was known of the freed blobs' files goes with them.
            let mut forget = tx
                .prepare_cached("DELETE FROM file_digests WHERE layer = ?1")
                .map_err(|e| self.db(e))?;
            for blob in &report.freed_blobs {
                forget.execute([blob.to_string()]).map_err(|e| self.db(e))?;
            }
        }
        if filter.all {
            tx.execute("DELETE FROM file_digests", [])
                .map_err(|e| self.db(e))?;
        }
        let forget_before = if filter.all { Some(i64::MAX) } else { until };
        if let Some(before) = forget_before {
            tx.execute("DELETE FROM stat_contexts WHERE last_used < ?1", [before])
                .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))?;
        for e in &mut removed {
            e.shared = e.blob.is_some_and(|b| refs[&b].0 > 0);
        }
        report.removed = removed;
        report.freed_blobs.sort();
        Ok(report)
    }

    /// The blobs the records refer to, sorted: the store's garbage collector
    /// must keep them. Taken after [`Cache::prune`], these are the blobs it
    /// did not free.
    pub fn referenced_blobs(&self) -> Result<Vec<Digest>, Error> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT DISTINCT layer_digest FROM records
                 WHERE layer_digest IS NOT NULL ORDER BY layer_digest",
            )
            .map_err(|e| self.db(e))?;
        let digests = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db(e))?;
        digests.iter().map(|d| self.digest(d)).collect()
    }

    /// Checks the database file and the values in it; returns the problems
    /// found (none when all is well), for `kiln fsck`.
    pub fn check(&self) -> Result<Vec<String>, Error> {
        let conn = self.conn()?;
        let mut problems: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| {
                s.query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.db(e))?
            .into_iter()
            .filter(|line| line != "ok")
            .collect();
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM stat_cache
                 WHERE context NOT IN (SELECT id FROM stat_contexts)",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.db(e))?;
        if orphans > 0 {
            problems.push(format!("{orphans} stat cache rows belong to no context"));
        }
        let mut stmt = conn
            .prepare(
                "SELECT key, layer_digest, layer_media_type, layer_size, layer_diff_id
                 FROM records",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    [
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ],
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        for row in rows {
            let (key, [blob, media_type], size, diff_id) = row.map_err(|e| self.db(e))?;
            for d in [Some(&key), blob.as_ref(), diff_id.as_ref()]
                .into_iter()
                .flatten()
            {
                if d.parse::<Digest>().is_err() {
                    problems.push(format!("record {key:?} holds an invalid digest {d:?}"));
                }
            }
            match (&blob, &media_type, size, &diff_id) {
                (Some(_), Some(_), Some(size), Some(_)) if size >= 0 => {}
                (None, None, None, None) => {}
                _ => problems.push(format!("record {key:?} has an invalid layer")),
            }
        }
        let mut stmt = conn
            .prepare("SELECT path, digest FROM stat_cache")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.db(e))?;
        for row in rows {
            let (path, digest) = row.map_err(|e| self.db(e))?;
            if digest.parse::<Digest>().is_err() {
                problems.push(format!(
                    "stat cache row for {:?} holds an invalid digest {digest:?}",
                    String::from_utf8_lossy(&path)
                ));
            }
        }
        Ok(problems)
    }

    /// Every record, least recently used first (ties by key, so the order
    /// is the same in every process), with `shared` left false.
    fn read_entries(&self, conn: &Connection) -> Result<Vec<Entry>, Error> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, layer_digest, layer_size, created_at, last_used, description
                 FROM records ORDER BY last_used, key",
            )
            .map_err(|e| self.db(e))?;
        let read = |row: &Row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
            ))
        };
        let rows = stmt
            .query_map([], read)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(key, blob, size, created_at, last_used, description)| {
                Ok(Entry {
                    key: self.digest(&key)?,
                    blob: blob.map(|b| self.digest(&b)).transpose()?,
                    size: size.unwrap_or(0).max(0) as u64,
                    shared: false,
                    created_at: time(created_at),
                    last_used: time(last_used),
                    description,
                })
            })
            .collect()
    }

    pub(crate) fn conn(&self) -> Result<Conn<'_>, Error> {
        let idle = self.idle.lock().map_err(|_| self.poisoned())?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.retry_busy(|| self.connect())?,
        };
        Ok(Conn {
            cache: self,
            conn: Some(conn),
        })
    }

    /// Runs `f` again while it fails with SQLITE_BUSY, up to the busy
    /// timeout. SQLite does not call the busy handler in some lock states
    /// that only setting up a connection meets (switching a new file to
    /// WAL, recovering a WAL another process left), so processes opening
    /// one database at once can be refused there without this.
    fn retry_busy<T>(&self, mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match f() {
                Err(Error::Db {
                    error: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn connect(&self) -> Result<Connection, Error> {
        let setup = || {
            let conn = Connection::open(&self.path)?;
            // Before anything else, so that even switching to WAL waits for
            // another process instead of failing.
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
            conn.pragma_update(None, "synchronous", "normal")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            Ok((conn, mode))
        };
        let (conn, mode) = setup().map_err(|e| self.db(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Without WAL, readers and writers in different processes block
            // each other; a file system without shared memory is the usual
            // cause, and the cache must then live elsewhere.
            return Err(Error::NoWal {
                path: self.path.clone(),
                mode,
            });
        }
        Ok(conn)
    }

    fn init_schema(&self, conn: &mut Connection) -> Result<(), Error> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.db(e))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Schema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            tx.execute_batch(SCHEMA).map_err(|e| self.db(e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }

    pub(crate) fn db(&self, error: rusqlite::Error) -> Error {
        Error::Db {
            path: self.path.clone(),
            error,
        }
    }

    pub(crate) fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    pub(crate) fn digest(&self, text: &str) -> Result<Digest, Error> {
        text.parse().map_err(|e| self.corrupt(format!("{e}")))
    }

    fn poisoned(&self) -> Error {
        self.corrupt("a thread panicked while returning a connection".into())
    }
}

/// For each blob: how many records refer to it, and its size.
fn blob_refs(entries: &[Entry]) -> HashMap<Digest, (usize, u64)> {
    let mut refs: HashMap<Digest, (usize, u64)> = HashMap::new();
    for e in entries {
        if let Some(blob) = e.blob {
            let r = refs.entry(blob).or_default();
            r.0 += 1;
            r.1 = r.1.max(e.size);
        }
    }
    refs
}

/// Nanoseconds since the epoch, as stored; saturating, since only order and
/// equality matter and no clock reaches 2262.
pub(crate) fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

fn time(nanos: i64) -> SystemTime {
    let d = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}
