//! Source digests and the stat cache, including the cases other builders
//! got wrong. Unix only: they set modes, owners, xattrs and times through
//! Unix calls; `sources_windows.rs` checks the Windows side.
#![cfg(unix)]

use kiln_cache::{Cache, Error, StatCounts};
use kiln_oci::Digest;
use rustix::fs::Timespec;
use rustix::fs::{AtFlags, Timestamps, XattrFlags, CWD};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
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
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.ctx.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str, mode: u32) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The digest of `rel` in a fresh session, and that session's counts.
    fn source(&self, rel: &str) -> (Digest, StatCounts) {
        let mut s = self.cache.stat_session(self.ctx.path()).unwrap();
        let d = s.source_digest(rel.as_ref()).unwrap();
        (d, s.finish().unwrap())
    }

    fn file(&self, rel: &str) -> (Digest, StatCounts) {
        let mut s = self.cache.stat_session(self.ctx.path()).unwrap();
        let d = s.file_digest(rel.as_ref()).unwrap();
        (d, s.finish().unwrap())
    }
}

/// Files written less than a clock tick before they are hashed are not
/// recorded (a later same-tick write could go unseen), so tests that
/// expect recording wait past it.
fn settle() {
    sleep(Duration::from_millis(60));
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn counts(hits: u64, reads: u64) -> StatCounts {
    StatCounts { hits, reads }
}

#[test]
fn file_digest_is_the_content_sha256() {
    let f = fixture();
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    f.write("big", &big, 0o644);
    assert_eq!(f.file("big").0, Digest::of(big.as_bytes()));
    f.write("empty", "", 0o644);
    assert_eq!(f.file("empty").0, Digest::of(b""));
}

/// buildah#6106: content changed with size and mtime restored. The ctime
/// still moves, so the stat cache must not answer from its row.
#[test]
fn a_content_change_with_mtime_restored_is_seen() {
    let f = fixture();
    f.write("app.conf", "port=80\n", 0o644);
    settle();
    let (before, c) = f.file("app.conf");
    assert_eq!((before, c), (Digest::of(b"port=80\n"), counts(0, 1)));
    assert_eq!(f.file("app.conf").1, counts(1, 0), "recorded");
    let (source_before, _) = f.source("app.conf");

    let path = f.path("app.conf");
    let meta = fs::metadata(&path).unwrap();
    fs::write(&path, "port=90\n").unwrap();
    set_mtime(&path, meta.mtime(), meta.mtime_nsec());
    let restored = fs::metadata(&path).unwrap();
    assert_eq!(
        (restored.size(), restored.mtime(), restored.mtime_nsec()),
        (meta.size(), meta.mtime(), meta.mtime_nsec())
    );

    let (after, c) = f.file("app.conf");
    assert_eq!(after, Digest::of(b"port=90\n"));
    assert_eq!(c, counts(0, 1));
    assert_ne!(f.source("app.conf").0, source_before);
}

/// BuildKit#5680: `touch` on every file (as a checkout or an archive
/// extraction does) must keep the source digest. The files are read again,
/// since the stat cache cannot know, but hash the same.
#[test]
fn a_mass_touch_keeps_the_digest() {
    let f = fixture();
    for i in 0..50 {
        f.write(
            &format!("src/{}/f{i}.rs", i % 5),
            &format!("fn f{i}() {{}}\n"),
            0o644,
        );
    }
    settle();
    let (first, c) = f.source("src");
    assert_eq!(c, counts(0, 50));
    for i in 0..50 {
        set_mtime(
            &f.path(&format!("src/{}/f{i}.rs", i % 5)),
            1_000_000_000 + i,
            0,
        );
    }
    for d in 0..5 {
        set_mtime(&f.path(&format!("src/{d}")), 1_000_000_000, 0);
    }
    settle();
    let (touched, c) = f.source("src");
    assert_eq!(touched, first);
    assert_eq!(c, counts(0, 50), "every touched file re-read");
    assert_eq!(f.source("src"), (first, counts(50, 0)));
}

#[test]
fn the_same_tree_elsewhere_has_the_same_digest() {
    let f = fixture();
    for top in ["one", "two/nested"] {
        f.write(&format!("{top}/a.txt"), "alpha", 0o644);
        f.write(&format!("{top}/sub/b.txt"), "beta", 0o600);
        symlink("../a.txt", f.path(&format!("{top}/sub/link"))).unwrap();
        for dir in [top.to_string(), format!("{top}/sub")] {
            fs::set_permissions(f.path(&dir), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let (one, _) = f.source("one");
    assert_eq!(f.source("two/nested").0, one);
    // And from another context root altogether.
    let mut other = f.cache.stat_session(&f.path("two")).unwrap();
    assert_eq!(other.source_digest("nested".as_ref()).unwrap(), one);
    drop(other);
    // A different relative path is a different tree.
    fs::rename(f.path("one/sub/b.txt"), f.path("one/sub/c.txt")).unwrap();
    assert_ne!(f.source("one").0, one);
}

#[test]
fn a_mode_only_change_changes_the_digest() {
    let f = fixture();
    f.write("run.sh", "#!/bin/sh\n", 0o644);
    let (plain, _) = f.source("run.sh");
    let mut seen = vec![plain];
    for mode in [0o755, 0o4755, 0o2755, 0o1755] {
        fs::set_permissions(f.path("run.sh"), fs::Permissions::from_mode(mode)).unwrap();
        let (d, _) = f.source("run.sh");
        assert!(
            !seen.contains(&d),
            "mode {mode:o} hashed like an earlier mode"
        );
        seen.push(d);
    }
    fs::set_permissions(f.path("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(f.source("run.sh").0, plain);
}

#[test]
fn owner_and_group_changes_change_the_digest() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let f = fixture();
    f.write("owned", "x", 0o644);
    let path = f.path("owned");
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    let (root, _) = f.source("owned");
    std::os::unix::fs::chown(&path, Some(1000), Some(0)).unwrap();
    let (uid, _) = f.source("owned");
    std::os::unix::fs::chown(&path, Some(0), Some(1000)).unwrap();
    let (gid, _) = f.source("owned");
    assert!(root != uid && uid != gid && root != gid);
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    assert_eq!(f.source("owned").0, root);
}

#[test]
fn an_xattr_change_changes_the_digest() {
    let f = fixture();
    f.write("bin", "ELF", 0o755);
    let path = f.path("bin");
    let (bare, _) = f.source("bin");
    match rustix::fs::lsetxattr(&path, "user.kiln.test", b"one", XattrFlags::empty()) {
        Err(rustix::io::Errno::NOTSUP) => {
            eprintln!("skipped: the temporary directory's file system has no user xattrs");
            return;
        }
        r => r.unwrap(),
    }
    let (one, _) = f.source("bin");
    rustix::fs::lsetxattr(&path, "user.kiln.test", b"two", XattrFlags::empty()).unwrap();
    let (two, _) = f.source("bin");
    assert!(bare != one && one != two && bare != two);
    let mut s = f.cache.stat_session(f.ctx.path()).unwrap();
    let entry = s.source_entry("bin".as_ref()).unwrap();
    assert!(entry
        .xattrs
        .contains(&(b"user.kiln.test".to_vec(), b"two".to_vec())));
}

#[test]
fn a_symlink_target_change_changes_the_digest() {
    let f = fixture();
    f.write("x", "same", 0o644);
    f.write("y", "same", 0o644);
    symlink("x", f.path("link")).unwrap();
    let (to_x, _) = f.source("link");
    fs::remove_file(f.path("link")).unwrap();
    symlink("y", f.path("link")).unwrap();
    assert_ne!(f.source("link").0, to_x);
    // A link is never followed: not by the tree walk, not by file_digest.
    let mut s = f.cache.stat_session(f.ctx.path()).unwrap();
    assert!(matches!(
        s.file_digest("link".as_ref()),
        Err(Error::NotAFile { .. })
    ));
    assert!(matches!(
        s.file_digest(".".as_ref()),
        Err(Error::NotAFile { .. })
    ));
}

#[test]
fn mtime_alone_does_not_change_the_digest_but_size_does() {
    let f = fixture();
    f.write("a", "12345", 0o644);
    let (d, _) = f.source("a");
    set_mtime(&f.path("a"), 12345, 678);
    assert_eq!(f.source("a").0, d);
    f.write("a", "123456", 0o644);
    assert_ne!(f.source("a").0, d);
}

#[test]
fn an_unchanged_second_session_reads_nothing() {
    let f = fixture();
    let n = 2000;
    for i in 0..n {
        f.write(
            &format!("d{}/file{i}", i % 20),
            &format!("content {i}"),
            0o644,
        );
    }
    settle();
    let (first, c) = f.source("");
    assert_eq!(c, counts(0, n));
    let (second, c) = f.source("");
    assert_eq!(second, first);
    assert_eq!(c, counts(n, 0));

    // One changed file costs exactly one read.
    f.write("d7/file7", "changed", 0o644);
    let (third, c) = f.source("");
    assert_ne!(third, first);
    assert_eq!(c, counts(n - 1, 1));
}

#[test]
fn sessions_that_are_dropped_still_record() {
    let f = fixture();
    f.write("a", "a", 0o644);
    settle();
    {
        let mut s = f.cache.stat_session(f.ctx.path()).unwrap();
        s.file_digest("a".as_ref()).unwrap();
        assert_eq!(s.counts(), counts(0, 1));
    }
    assert_eq!(f.file("a").1, counts(1, 0));
}

#[test]
fn contexts_do_not_share_rows() {
    let f = fixture();
    let other = tempfile::tempdir().unwrap();
    f.write("same-name", "one", 0o644);
    fs::write(other.path().join("same-name"), "two").unwrap();
    settle();
    assert_eq!(f.file("same-name").0, Digest::of(b"one"));
    let mut s = f.cache.stat_session(other.path()).unwrap();
    assert_eq!(
        s.file_digest("same-name".as_ref()).unwrap(),
        Digest::of(b"two")
    );
    assert_eq!(s.counts(), counts(0, 1));
}

#[test]
fn a_missing_context_is_an_error_naming_it() {
    let f = fixture();
    let missing = f.path("nope");
    let err = f.cache.stat_session(&missing).err().unwrap();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn hashed_files_are_the_identities_read_or_found_recorded() {
    let f = fixture();
    f.write("a", "one", 0o644);
    f.write("d/b", "two", 0o644);
    symlink("a", f.path("link")).unwrap();
    settle();
    for _ in 0..2 {
        // The first session reads the files, the second finds them recorded:
        // either way it says which files the digests came from.
        let mut s = f.cache.stat_session(f.ctx.path()).unwrap();
        s.source_digest(Path::new("")).unwrap();
        let mut hashed: Vec<_> = s.hashed_files().iter().collect();
        hashed.sort_by_key(|(p, _)| p.as_path());
        let names: Vec<_> = hashed.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(names, ["a", "d/b"]);
        let meta = fs::symlink_metadata(f.path("d/b")).unwrap();
        assert_eq!(
            *hashed[1].1,
            kiln_oci::tree::FileIdentity::of(&meta),
            "{:?}",
            s.counts()
        );
        s.finish().unwrap();
    }
}
