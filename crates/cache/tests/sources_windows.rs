//! The stat cache and source digests on Windows: a file's identity is its
//! volume serial, file index and NTFS change time, read from a handle,
//! and an entry records the mode docker and BuildKit give a file from a
//! Windows client (0o755, 0o555 when read-only), owner 0:0, no xattrs.
#![cfg(windows)]

use kiln_cache::{Cache, StatCounts};
use kiln_oci::Digest;
use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

struct Fixture {
    _db_dir: tempfile::TempDir,
    cache: Cache,
    ctx: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let db_dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&db_dir.path().join("index.db")).unwrap();
    Fixture {
        _db_dir: db_dir,
        cache,
        ctx: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn path(&self, rel: &str) -> PathBuf {
        self.ctx.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }

    fn file(&self, rel: &str) -> (Digest, StatCounts) {
        let mut s = self.cache.stat_session(self.ctx.path()).unwrap();
        let d = s.file_digest(rel.as_ref()).unwrap();
        (d, s.finish().unwrap())
    }

    fn source(&self, rel: &str) -> Digest {
        let mut s = self.cache.stat_session(self.ctx.path()).unwrap();
        s.source_digest(rel.as_ref()).unwrap()
    }
}

/// Past the tick within which a later write could leave a file's times
/// unchanged: only then is a file's digest recorded.
fn settle() {
    sleep(Duration::from_millis(60));
}

fn counts(hits: u64, reads: u64) -> StatCounts {
    StatCounts { hits, reads }
}

fn identity(path: &Path) -> kiln_oci::tree::FileIdentity {
    kiln_oci::tree::FileIdentity::of_file(&File::open(path).unwrap()).unwrap()
}

#[test]
fn a_settled_file_is_read_once_and_a_content_change_with_its_write_time_restored_is_seen() {
    let f = fixture();
    f.write("app.conf", "port=80\n");
    settle();
    assert_eq!(f.file("app.conf"), (Digest::of(b"port=80\n"), counts(0, 1)));
    assert_eq!(f.file("app.conf"), (Digest::of(b"port=80\n"), counts(1, 0)));

    // Same size, the last write time put back: only the change time moves.
    let path = f.path("app.conf");
    let before = identity(&path);
    let written = fs::metadata(&path).unwrap().modified().unwrap();
    settle();
    fs::write(&path, "port=90\n").unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(written))
        .unwrap();
    let after = identity(&path);
    assert_eq!((after.size, after.mtime), (before.size, before.mtime));
    assert_ne!(after.ctime, before.ctime);
    assert_eq!(f.file("app.conf"), (Digest::of(b"port=90\n"), counts(0, 1)));
}

#[test]
fn a_file_replaced_by_another_of_the_same_content_and_times_is_read_again() {
    let f = fixture();
    f.write("a", "same");
    settle();
    assert_eq!(f.file("a").1, counts(0, 1));
    assert_eq!(f.file("a").1, counts(1, 0));
    // Another file (another index) under the name.
    fs::rename(f.path("a"), f.path("old")).unwrap();
    f.write("a", "same");
    assert_ne!(identity(&f.path("a")).ino, identity(&f.path("old")).ino);
    assert_eq!(f.file("a"), (Digest::of(b"same"), counts(0, 1)));
}

#[test]
fn the_same_tree_elsewhere_has_the_same_digest_and_read_only_changes_it() {
    let f = fixture();
    f.write("src/a/one", "1");
    f.write("src/two", "2");
    f.write("copy/a/one", "1");
    f.write("copy/two", "2");
    let src = f.source("src");
    assert_eq!(f.source("copy"), src);
    f.write("copy/two", "3");
    assert_ne!(f.source("copy"), src);

    let mut readonly = fs::metadata(f.path("src/two")).unwrap().permissions();
    readonly.set_readonly(true);
    fs::set_permissions(f.path("src/two"), readonly).unwrap();
    assert_ne!(f.source("src"), src);

    let mut s = f.cache.stat_session(f.ctx.path()).unwrap();
    let entry = s.source_entry("src/two".as_ref()).unwrap();
    assert_eq!((entry.mode, entry.uid, entry.gid), (0o555, 0, 0));
    assert!(entry.xattrs.is_empty());
    assert_eq!(s.source_entry("src/a".as_ref()).unwrap().mode, 0o755);
    // Hashed files are named by their path below the root, joined by /.
    assert!(s.hashed_files().contains_key(Path::new("src/two")));
}
