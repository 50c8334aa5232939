//! Several threads and processes on one index, and a process killed while
//! writing.
//!
//! Child processes are this test binary run again with `KILN_CACHE_WORKER`
//! set, which makes the `worker` test do the work instead of returning.

use kiln_cache::{Cache, KeyBuilder, Layer, PruneFilter, Record};
use kiln_oci::Digest;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const WORKER_ENV: &str = "KILN_CACHE_WORKER";
const KEYS: u64 = 40;
const FILES: usize = 200;

fn key(i: u64) -> Digest {
    KeyBuilder::new("shared").field("i", i.to_string()).finish()
}

/// A record whose parts all derive from `tag`, so that a record mixed from
/// two writers' puts would be caught.
fn record(tag: &str, padding: usize) -> Record {
    let metadata = format!("{tag}|{}", "x".repeat(padding)).into_bytes();
    Record {
        layer: Some(Layer {
            digest: Digest::of(&metadata),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: metadata.len() as u64,
            diff_id: Digest::of(tag.as_bytes()),
        }),
        created: tag.into(),
        description: tag.into(),
        metadata,
    }
}

fn assert_consistent(r: &Record) {
    let layer = r.layer.as_ref().expect("every test record has a layer");
    assert_eq!(layer.digest, Digest::of(&r.metadata));
    assert_eq!(layer.size, r.metadata.len() as u64);
    assert_eq!(layer.diff_id, Digest::of(r.created.as_bytes()));
    assert_eq!(r.description, r.created);
    assert!(r.metadata.starts_with(format!("{}|", r.created).as_bytes()));
}

fn make_context(dir: &Path) {
    for i in 0..FILES {
        let p = dir.join(format!("d{}/f{i}", i % 10));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("file {i}\n")).unwrap();
    }
}

/// Puts and gets overlapping keys and runs stat sessions over `ctx` until
/// `seconds` have passed.
fn mixed_work(cache: &Cache, ctx: &Path, name: &str, seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut n: u64 = 0;
    while Instant::now() < end {
        for _ in 0..20 {
            let i = (n * 7 + name.len() as u64) % KEYS;
            cache
                .put(
                    &key(i),
                    &record(&format!("{name}-{n}"), (n % 5) as usize * 1000),
                )
                .unwrap();
            if let Some(r) = cache.get(&key((n * 3) % KEYS)).unwrap() {
                assert_consistent(&r);
            }
            n += 1;
        }
        let mut session = cache.stat_session(ctx).unwrap();
        for i in (0..FILES).step_by(3) {
            let rel = PathBuf::from(format!("d{}/f{i}", i % 10));
            assert_eq!(
                session.file_digest(&rel).unwrap(),
                Digest::of(format!("file {i}\n").as_bytes())
            );
        }
        session.finish().unwrap();
        if n.is_multiple_of(100) {
            cache
                .prune(&PruneFilter {
                    keep_bytes: Some(1 << 30),
                    ..Default::default()
                })
                .unwrap();
        }
    }
}

/// Keeps writing (large records, and prunes that remove many) until killed.
fn write_forever(cache: &Cache) -> ! {
    let mut n: u64 = 0;
    loop {
        cache
            .put(&key(n % 500), &record(&format!("loop-{n}"), 50_000))
            .unwrap();
        if n % 50 == 49 {
            cache
                .prune(&PruneFilter {
                    keep_bytes: Some(2_000_000),
                    ..Default::default()
                })
                .unwrap();
        }
        n += 1;
    }
}

#[test]
fn worker() {
    let Ok(mode) = std::env::var(WORKER_ENV) else {
        return;
    };
    let db = PathBuf::from(std::env::var("KILN_CACHE_DB").unwrap());
    let cache = Cache::open(&db).unwrap();
    match mode.as_str() {
        "mixed" => {
            let ctx = PathBuf::from(std::env::var("KILN_CACHE_CTX").unwrap());
            let name = std::env::var("KILN_CACHE_NAME").unwrap();
            mixed_work(&cache, &ctx, &name, 1.5);
            // Then, once the parent has stopped writing, every key once
            // more: the last write to each is a child's however late the
            // children started (a loaded machine, or wine, starts a
            // process in more than the parent's second of work).
            let parent_done = PathBuf::from(std::env::var("KILN_CACHE_DONE").unwrap());
            while !parent_done.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            for i in 0..KEYS {
                cache
                    .put(&key(i), &record(&format!("{name}-last-{i}"), 1000))
                    .unwrap();
            }
        }
        "write-forever" => write_forever(&cache),
        other => panic!("unknown worker mode {other}"),
    }
}

fn spawn(mode: &str, db: &Path, ctx: &Path, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, mode)
        .env("KILN_CACHE_DB", db)
        .env("KILN_CACHE_CTX", ctx)
        .env("KILN_CACHE_NAME", name)
        .env("KILN_CACHE_DONE", db.with_file_name("parent-done"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn assert_all_readable(cache: &Cache) {
    assert_eq!(cache.check().unwrap(), Vec::<String>::new());
    let entries = cache.entries().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        assert_consistent(&cache.get(&e.key).unwrap().expect("listed, so present"));
    }
}

#[test]
fn threads_share_one_cache_and_open_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    make_context(&dir.path().join("ctx"));
    let ctx = dir.path().join("ctx");
    let shared = Cache::open(&db).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (shared, db, ctx) = (&shared, &db, &ctx);
            s.spawn(move || {
                let own;
                // Half share the pool of one handle, half use handles of
                // their own, as separate parts of the engine might.
                let cache = if t % 2 == 0 {
                    shared
                } else {
                    own = Cache::open(db).unwrap();
                    &own
                };
                mixed_work(cache, ctx, &format!("thread{t}"), 1.0);
            });
        }
    });
    assert_all_readable(&shared);
}

#[test]
fn processes_share_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let ctx = dir.path().join("ctx");
    make_context(&ctx);
    let children: Vec<Child> = (0..4)
        .map(|p| spawn("mixed", &db, &ctx, &format!("proc{p}")))
        .collect();
    // This process takes part too, so that a pool shares the file with them.
    let cache = Cache::open(&db).unwrap();
    mixed_work(&cache, &ctx, "parent", 1.0);
    std::fs::write(db.with_file_name("parent-done"), b"").unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a worker failed");
    }
    assert_all_readable(&cache);
    let keys = cache.entries().unwrap().len() as u64;
    assert_eq!(keys, KEYS, "every shared key written by someone");
    let writers: std::collections::BTreeSet<String> = cache
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.description.split('-').next().unwrap().to_string())
        .collect();
    assert!(
        // They write every key again once this process is done, so the
        // last write to each key is theirs.
        writers.iter().all(|w| w.starts_with("proc")),
        "the child processes wrote: {writers:?}"
    );
    // What the workers recorded is what a new session finds: nothing of
    // the context is read again.
    let mut session = cache.stat_session(&ctx).unwrap();
    for i in (0..FILES).step_by(3) {
        session
            .file_digest(format!("d{}/f{i}", i % 10).as_ref())
            .unwrap();
    }
    let counts = session.finish().unwrap();
    assert_eq!(counts.reads, 0, "{counts:?}");
}

#[test]
fn a_writer_killed_mid_write_leaves_a_usable_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    drop(Cache::open(&db).unwrap());
    for round in 0..3 {
        let mut child = spawn("write-forever", &db, dir.path(), "killed");
        // Long enough to be well into the loop (the first round also
        // waits for the child to start), different each round so that the
        // kill lands at different points of a transaction.
        sleep(Duration::from_millis(400 + 130 * round));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the writer was killed, not finished");
        let cache = Cache::open(&db).unwrap();
        assert_all_readable(&cache);
        assert!(
            cache
                .entries()
                .unwrap()
                .iter()
                .any(|e| e.description.starts_with("loop-")),
            "the child wrote before it was killed"
        );
        // And it still takes writes.
        cache.put(&key(9999), &record("after-kill", 10)).unwrap();
        assert_consistent(&cache.get(&key(9999)).unwrap().unwrap());
    }
}
