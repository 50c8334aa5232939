//! Records: round trips, `kiln du` entries, pruning, opening bad files.

use kiln_cache::{Cache, Error, KeyBuilder, Layer, PruneFilter, Record};
use kiln_oci::Digest;
use std::thread::sleep;
use std::time::{Duration, SystemTime};

fn key(name: &str) -> Digest {
    KeyBuilder::new("test").field("name", name).finish()
}

fn layer(blob: &str, size: u64) -> Layer {
    Layer {
        digest: Digest::of(blob.as_bytes()),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size,
        diff_id: Digest::of(format!("{blob} uncompressed").as_bytes()),
    }
}

fn record(layer: Option<Layer>, description: &str) -> Record {
    Record {
        layer,
        created: "2024-05-01T12:00:00Z".into(),
        description: description.into(),
        metadata: format!("{{\"step\":{description:?}}}").into_bytes(),
    }
}

/// Distinct last-used times, so LRU order is the order of the calls.
fn tick() {
    sleep(Duration::from_millis(3));
}

fn open() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("cache/index.db")).unwrap();
    (dir, cache)
}

#[test]
fn get_put_round_trip() {
    let (dir, cache) = open();
    assert_eq!(cache.get(&key("a")).unwrap(), None);
    let with_layer = record(Some(layer("blob-a", 1234)), "RUN make");
    let config_only = record(None, "ENV A=1");
    cache.put(&key("a"), &with_layer).unwrap();
    cache.put(&key("b"), &config_only).unwrap();
    assert_eq!(cache.get(&key("a")).unwrap().as_ref(), Some(&with_layer));
    assert_eq!(cache.get(&key("b")).unwrap().as_ref(), Some(&config_only));
    // A later put replaces.
    let replaced = record(Some(layer("blob-a2", 99)), "RUN make again");
    cache.put(&key("a"), &replaced).unwrap();
    assert_eq!(cache.get(&key("a")).unwrap().as_ref(), Some(&replaced));
    // And everything survives a reopen.
    drop(cache);
    let cache = Cache::open(&dir.path().join("cache/index.db")).unwrap();
    assert_eq!(cache.get(&key("a")).unwrap(), Some(replaced));
    assert_eq!(cache.get(&key("b")).unwrap(), Some(config_only));
    assert_eq!(cache.check().unwrap(), Vec::<String>::new());
}

#[test]
fn entries_list_most_recent_first_with_sharing() {
    let (_dir, cache) = open();
    cache
        .put(&key("a"), &record(Some(layer("shared", 10)), "A"))
        .unwrap();
    tick();
    cache
        .put(&key("b"), &record(Some(layer("shared", 10)), "B"))
        .unwrap();
    tick();
    cache.put(&key("c"), &record(None, "C")).unwrap();
    tick();
    cache.get(&key("a")).unwrap().unwrap();
    let entries = cache.entries().unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.description.as_str()).collect();
    assert_eq!(names, ["A", "C", "B"]);
    assert_eq!(entries[0].key, key("a"));
    assert_eq!(entries[0].blob, Some(Digest::of(b"shared")));
    assert_eq!(entries[0].size, 10);
    assert!(entries[0].shared && entries[2].shared);
    assert_eq!(
        (entries[1].blob, entries[1].size, entries[1].shared),
        (None, 0, false)
    );
    assert!(
        entries[0].last_used > entries[0].created_at,
        "get marks the use"
    );
    assert_eq!(entries[1].last_used, entries[1].created_at);
}

#[test]
fn size_limit_evicts_least_recently_used_first() {
    let (_dir, cache) = open();
    for name in ["a", "b", "c", "d", "e"] {
        cache
            .put(&key(name), &record(Some(layer(name, 100)), name))
            .unwrap();
        tick();
    }
    // Using "a" and "b" makes "c" and "d" the least recently used.
    cache.get(&key("a")).unwrap().unwrap();
    tick();
    cache.get(&key("b")).unwrap().unwrap();
    let report = cache
        .prune(&PruneFilter {
            keep_bytes: Some(300),
            ..PruneFilter::default()
        })
        .unwrap();
    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|e| e.description.as_str())
        .collect();
    assert_eq!(removed, ["c", "d"]);
    let mut freed = vec![Digest::of(b"c"), Digest::of(b"d")];
    freed.sort();
    assert_eq!(report.freed_blobs, freed);
    assert_eq!(report.freed_bytes, 200);
    assert!(cache.get(&key("c")).unwrap().is_none());
    for name in ["a", "b", "e"] {
        assert!(cache.get(&key(name)).unwrap().is_some(), "{name} kept");
    }
    // Already within the limit: nothing more goes.
    let again = cache
        .prune(&PruneFilter {
            keep_bytes: Some(300),
            ..PruneFilter::default()
        })
        .unwrap();
    assert!(again.removed.is_empty() && again.freed_blobs.is_empty());
    // The limit is on blob bytes, so config-only records never count.
    let total: u64 = cache.entries().unwrap().iter().map(|e| e.size).sum();
    assert_eq!(total, 300);
}

#[test]
fn shared_blobs_are_counted_once_and_freed_only_with_their_last_record() {
    let (_dir, cache) = open();
    cache
        .put(&key("old"), &record(Some(layer("shared", 500)), "old"))
        .unwrap();
    tick();
    cache
        .put(&key("new"), &record(Some(layer("shared", 500)), "new"))
        .unwrap();
    tick();
    cache
        .put(&key("own"), &record(Some(layer("own", 100)), "own"))
        .unwrap();
    // 600 bytes in all (the shared blob once), so 600 is within the limit.
    let report = cache
        .prune(&PruneFilter {
            keep_bytes: Some(600),
            ..PruneFilter::default()
        })
        .unwrap();
    assert!(report.removed.is_empty());
    // At 550, "old" goes first but frees nothing, so "new" goes too.
    let report = cache
        .prune(&PruneFilter {
            keep_bytes: Some(550),
            ..PruneFilter::default()
        })
        .unwrap();
    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|e| e.description.as_str())
        .collect();
    assert_eq!(removed, ["old", "new"]);
    assert_eq!(report.freed_blobs, [Digest::of(b"shared")]);
    assert_eq!(report.freed_bytes, 500);
    assert_eq!(cache.referenced_blobs().unwrap(), [Digest::of(b"own")]);
}

#[test]
fn a_blob_still_referenced_is_not_reported_freed() {
    let (_dir, cache) = open();
    cache
        .put(&key("a"), &record(Some(layer("shared", 50)), "a"))
        .unwrap();
    tick();
    let cut = SystemTime::now();
    tick();
    cache
        .put(&key("b"), &record(Some(layer("shared", 50)), "b"))
        .unwrap();
    let report = cache
        .prune(&PruneFilter {
            until: Some(cut),
            ..PruneFilter::default()
        })
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(report.removed[0].shared, "b still refers to the blob");
    assert!(report.freed_blobs.is_empty());
    assert_eq!(report.freed_bytes, 0);
    assert_eq!(cache.referenced_blobs().unwrap(), [Digest::of(b"shared")]);
}

#[test]
fn until_removes_only_records_unused_since() {
    let (_dir, cache) = open();
    cache
        .put(&key("stale"), &record(Some(layer("stale", 7)), "stale"))
        .unwrap();
    cache.put(&key("used"), &record(None, "used")).unwrap();
    tick();
    let cut = SystemTime::now();
    tick();
    // Used after the cut, so kept although stored before it.
    cache.get(&key("used")).unwrap().unwrap();
    cache.put(&key("fresh"), &record(None, "fresh")).unwrap();
    let report = cache
        .prune(&PruneFilter {
            until: Some(cut),
            ..PruneFilter::default()
        })
        .unwrap();
    let removed: Vec<_> = report.removed.iter().map(|e| e.key).collect();
    assert_eq!(removed, [key("stale")]);
    assert_eq!(report.freed_blobs, [Digest::of(b"stale")]);
    assert_eq!(report.freed_bytes, 7);
    assert!(cache.get(&key("used")).unwrap().is_some());
    assert!(cache.get(&key("fresh")).unwrap().is_some());
}

#[test]
fn all_removes_everything_and_the_default_nothing() {
    let (dir, cache) = open();
    cache
        .put(&key("a"), &record(Some(layer("a", 1)), "a"))
        .unwrap();
    cache
        .put(&key("b"), &record(Some(layer("b", 2)), "b"))
        .unwrap();
    cache.put(&key("c"), &record(None, "c")).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("f"), "x").unwrap();
    let mut session = cache.stat_session(ctx.path()).unwrap();
    session.file_digest("f".as_ref()).unwrap();
    session.finish().unwrap();

    assert_eq!(
        cache.prune(&PruneFilter::default()).unwrap().removed.len(),
        0
    );
    let report = cache
        .prune(&PruneFilter {
            all: true,
            ..PruneFilter::default()
        })
        .unwrap();
    assert_eq!(report.removed.len(), 3);
    assert_eq!(report.freed_bytes, 3);
    assert_eq!(report.freed_blobs.len(), 2);
    assert!(cache.entries().unwrap().is_empty());
    assert!(cache.referenced_blobs().unwrap().is_empty());
    let conn = rusqlite::Connection::open(dir.path().join("cache/index.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM stat_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "stat caches forgotten too");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    drop(Cache::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match Cache::open(&path) {
        Err(Error::Schema {
            path: p,
            found: 99,
            supported: 1,
        }) => assert_eq!(p, path),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

#[test]
fn a_garbage_file_gives_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&path, junk).unwrap();
    let err = Cache::open(&path).err().expect("garbage opened");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(matches!(err, Error::Db { .. }), "{message}");
}

#[test]
fn check_reports_bad_records() {
    let (dir, cache) = open();
    cache
        .put(&key("good"), &record(Some(layer("g", 1)), "good"))
        .unwrap();
    assert_eq!(cache.check().unwrap(), Vec::<String>::new());
    let conn = rusqlite::Connection::open(dir.path().join("cache/index.db")).unwrap();
    conn.execute(
        "INSERT INTO records (key, layer_digest, layer_media_type, layer_size, layer_diff_id,
                              created, description, metadata, created_at, last_used)
         VALUES ('sha256:nothex', 'md5:x', NULL, 5, NULL, '', '', x'', 0, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let problems = cache.check().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("invalid digest \"md5:x\"")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("invalid digest \"sha256:nothex\"")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("invalid layer")),
        "{problems:?}"
    );
    // The good record still reads; the bad one is an error, not a panic.
    assert!(cache.get(&key("good")).unwrap().is_some());
    assert!(matches!(cache.entries(), Err(Error::Corrupt { .. })));
}

#[test]
fn file_digests_are_kept_per_blob_and_go_with_a_freed_blob() {
    let (_dir, cache) = open();
    let (a, b) = (layer("blob-a", 10), layer("blob-b", 10));
    assert!(cache.file_digests(&a.digest).unwrap().is_empty());
    let one = Digest::of(b"one");
    let two = Digest::of(b"two");
    cache
        .put_file_digests(&a.digest, &[(3, one), (7, two)])
        .unwrap();
    cache.put_file_digests(&b.digest, &[(3, two)]).unwrap();
    let known = cache.file_digests(&a.digest).unwrap();
    assert_eq!((known.len(), known[&3], known[&7]), (2, one, two));
    // A blob pruned away takes what was known of its files with it.
    cache
        .put(&key("a"), &record(Some(a.clone()), "COPY a"))
        .unwrap();
    cache
        .put(&key("b"), &record(Some(b.clone()), "COPY b"))
        .unwrap();
    tick();
    cache.get(&key("b")).unwrap();
    let report = cache
        .prune(&PruneFilter {
            keep_bytes: Some(10),
            ..PruneFilter::default()
        })
        .unwrap();
    assert_eq!(report.freed_blobs, [a.digest]);
    assert!(cache.file_digests(&a.digest).unwrap().is_empty());
    assert_eq!(cache.file_digests(&b.digest).unwrap()[&3], two);
    cache
        .prune(&PruneFilter {
            all: true,
            ..PruneFilter::default()
        })
        .unwrap();
    assert!(cache.file_digests(&b.digest).unwrap().is_empty());
}
