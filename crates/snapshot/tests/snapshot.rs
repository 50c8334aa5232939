//! The snapshotter on the real kernel: real overlayfs mounts (as root) and
//! the copy driver, which must agree.

use kiln_oci::{write_layer, Compression, Digest, EntryKind, FileSource, LayerEntry, LayerOptions};
use kiln_snapshot::{DriverKind, Error, Snapshotter};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Barrier, Once};
use std::time::Duration;

const T: i64 = 1_600_000_000;

fn setup() {
    static UMASK: Once = Once::new();
    // The expected modes below assume files made with the usual umask.
    UMASK.call_once(|| {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    });
}

/// The drivers to test: both as root, only copy otherwise.
fn drivers() -> Vec<DriverKind> {
    setup();
    if rustix::process::geteuid().is_root() {
        vec![DriverKind::Overlay, DriverKind::Copy]
    } else {
        eprintln!("skipping the overlay driver: mounting overlayfs needs root");
        vec![DriverKind::Copy]
    }
}

fn layer(entries: Vec<LayerEntry>) -> (Digest, Vec<u8>) {
    let options = LayerOptions {
        compression: Compression::Gzip(1),
        threads: 1,
        ..LayerOptions::default()
    };
    let (desc, blob) = write_layer(entries, &options, Vec::new()).unwrap();
    (desc.diff_id, blob)
}

fn base_layer() -> (Digest, Vec<u8>) {
    layer(
        vec![
            LayerEntry::dir("etc"),
            LayerEntry::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            LayerEntry::file("etc/motd", "hello\n").with_xattr("user.note", "base"),
            LayerEntry::file("etc/hosts", "127.0.0.1 localhost\n"),
            LayerEntry::dir("bin"),
            LayerEntry::file("bin/tool", "#!tool\n").with_mode(0o4755),
            LayerEntry::symlink("bin/sh", "tool"),
            LayerEntry::file("bin/a", "shared\n"),
            LayerEntry::new("bin/b", EntryKind::Hardlink("bin/a".into())),
            LayerEntry::dir("data").with_mode(0o750),
            LayerEntry::file("data/one", "1"),
            LayerEntry::file("data/two", "2"),
            LayerEntry::dir("data/sub"),
            LayerEntry::file("data/sub/three", "3"),
            LayerEntry::dir("var"),
            LayerEntry::dir("var/cache"),
            LayerEntry::file("var/cache/old", "old"),
            LayerEntry::file("owned", "mine")
                .with_mode(0o600)
                .with_owner(1000, 1000),
            LayerEntry::file("gone-later", "x"),
        ]
        .into_iter()
        .map(|e| e.with_mtime(T))
        .collect(),
    )
}

fn second_layer() -> (Digest, Vec<u8>) {
    layer(
        vec![
            LayerEntry::whiteout("gone-later"),
            LayerEntry::dir("etc"),
            LayerEntry::file("etc/hosts", "127.0.0.1 kiln\n"),
            LayerEntry::dir("var"),
            LayerEntry::dir("var/cache"),
            LayerEntry::new("var/cache", EntryKind::Opaque),
            LayerEntry::file("var/cache/new", "new"),
        ]
        .into_iter()
        .map(|e| e.with_mtime(T + 1))
        .collect(),
    )
}

/// Everything observable about a tree, one line per path (mtimes in whole
/// seconds, which is what layers keep).
fn tree(root: &Path) -> Vec<String> {
    fn rec(root: &Path, dir: &Path, out: &mut Vec<String>, inodes: &mut HashMap<u64, String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            let body = if md.is_file() {
                let link = match inodes.get(&md.ino()) {
                    Some(first) => format!(" =link:{first}"),
                    None => {
                        inodes.insert(md.ino(), rel.clone());
                        String::new()
                    }
                };
                format!(
                    "{:?}{link}",
                    String::from_utf8_lossy(&fs::read(&p).unwrap())
                )
            } else if md.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else {
                String::new()
            };
            let xattrs: Vec<String> = kiln_oci::read_xattrs(&p)
                .unwrap()
                .into_iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
                .collect();
            out.push(format!(
                "{rel} {:o} {}:{} {} {body} {}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
                xattrs.join(",")
            ));
            if md.is_dir() {
                rec(root, &p, out, inodes);
            }
        }
    }
    let mut out = Vec::new();
    rec(root, root, &mut out, &mut HashMap::new());
    out
}

/// A change list as text, without what legitimately differs between
/// drivers (where a file's bytes are read from, directory mtimes).
fn describe(entries: &[LayerEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let owner = format!("{:o} {}:{}", e.mode, e.uid, e.gid);
            let xattrs: Vec<String> = e
                .xattrs
                .iter()
                .map(|(k, v)| format!(" {k}={}", String::from_utf8_lossy(v)))
                .collect();
            let xattrs = xattrs.concat();
            match &e.kind {
                EntryKind::File(FileSource::Tree(t)) => format!(
                    "{} file {owner} {:?}{xattrs}",
                    e.path,
                    String::from_utf8_lossy(&fs::read(t.full_path()).unwrap())
                ),
                EntryKind::File(FileSource::Bytes(b)) => format!(
                    "{} file {owner} {:?}{xattrs}",
                    e.path,
                    String::from_utf8_lossy(b)
                ),
                EntryKind::Dir => format!("{} dir {owner}{xattrs}", e.path),
                EntryKind::Symlink(t) => format!("{} symlink {t} {owner}{xattrs}", e.path),
                EntryKind::Hardlink(t) => format!("{} hardlink {t}", e.path),
                EntryKind::Whiteout => format!("{} whiteout {owner}", e.path),
                EntryKind::Opaque => format!("{} opaque {owner}", e.path),
                other => format!("{} {other:?} {owner}{xattrs}", e.path),
            }
        })
        .collect()
}

fn mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

fn set_xattr(path: &Path, name: &str, value: &str) {
    rustix::fs::lsetxattr(
        path,
        name,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// The RUN step every driver is tested with.
fn make_changes(r: &Path) {
    fs::write(r.join("new.txt"), "new\n").unwrap();
    let mut passwd = fs::read_to_string(r.join("etc/passwd")).unwrap();
    passwd.push_str("kiln:x:1000:1000::/home/kiln:/bin/sh\n");
    fs::write(r.join("etc/passwd"), passwd).unwrap();
    fs::remove_file(r.join("etc/motd")).unwrap();
    fs::remove_dir_all(r.join("data")).unwrap();
    fs::create_dir(r.join("data")).unwrap();
    fs::write(r.join("data/fresh"), "fresh").unwrap();
    fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(r.join("links")).unwrap();
    fs::write(r.join("links/x"), "linked").unwrap();
    fs::hard_link(r.join("links/x"), r.join("links/y")).unwrap();
    set_xattr(&r.join("owned"), "user.tag", "t");
}

const EXPECTED_CHANGES: &[&str] = &[
    "bin dir 755 0:0",
    "bin/tool file 755 0:0 \"#!tool\\n\"",
    "data dir 755 0:0",
    "data opaque 0 0:0",
    "data/fresh file 644 0:0 \"fresh\"",
    "etc dir 755 0:0",
    "etc/motd whiteout 0 0:0",
    "etc/passwd file 644 0:0 \"root:x:0:0::/root:/bin/sh\\nkiln:x:1000:1000::/home/kiln:/bin/sh\\n\"",
    "links dir 755 0:0",
    "links/x file 644 0:0 \"linked\"",
    "links/y hardlink links/x",
    "new.txt file 644 0:0 \"new\\n\"",
    "owned file 600 1000:1000 \"mine\" user.tag=t",
];

#[test]
fn both_drivers_see_the_layers_and_report_the_same_changes() {
    let (l1, b1) = base_layer();
    let (l2, b2) = second_layer();
    let mut results = Vec::new();
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        assert_eq!(snaps.driver(), driver);
        assert!(!snaps.has_layer(&l1));
        snaps.ensure_layer(&l1, &b1[..]).unwrap();
        snaps.ensure_layer(&l2, &b2[..]).unwrap();
        assert!(snaps.has_layer(&l1) && snaps.has_layer(&l2));

        let active = snaps.prepare(&[l1, l2]).unwrap();
        let r = active.rootfs();
        let view = tree(r);
        let paths: Vec<&str> = view.iter().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "bin",
                "bin/a",
                "bin/b",
                "bin/sh",
                "bin/tool",
                "data",
                "data/one",
                "data/sub",
                "data/sub/three",
                "data/two",
                "etc",
                "etc/hosts",
                "etc/motd",
                "etc/passwd",
                "owned",
                "var",
                "var/cache",
                "var/cache/new"
            ],
            "{driver:?}"
        );
        assert_eq!(fs::read(r.join("etc/hosts")).unwrap(), b"127.0.0.1 kiln\n");
        let md = |p: &str| fs::symlink_metadata(r.join(p)).unwrap();
        assert_eq!(md("bin/tool").mode() & 0o7777, 0o4755);
        assert_eq!(md("bin/a").ino(), md("bin/b").ino(), "{driver:?}");
        assert_eq!((md("owned").uid(), md("owned").gid()), (1000, 1000));
        assert_eq!(md("owned").mode() & 0o7777, 0o600);
        assert_eq!(md("data").mode() & 0o7777, 0o750);
        assert_eq!(md("etc/passwd").mtime(), T);
        assert_eq!(md("etc").mtime(), T + 1);
        assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("tool"));
        assert_eq!(
            kiln_oci::read_xattrs(&r.join("etc/motd")).unwrap(),
            [("user.note".to_string(), b"base".to_vec())]
        );
        assert_eq!(fs::metadata(r).unwrap().mode() & 0o7777, 0o755);
        assert!(active.changes().unwrap().is_empty(), "{driver:?}");

        make_changes(r);
        let changes = active.changes().unwrap();
        assert_eq!(describe(&changes), EXPECTED_CHANGES, "{driver:?}");
        results.push(changes.iter().map(|e| e.path.clone()).collect::<Vec<_>>());
    }
    results.dedup();
    assert_eq!(results.len(), 1);
}

#[test]
fn a_layer_that_appears_twice_in_the_chain_mounts_as_its_top_most_copy() {
    // Two steps that make the same change (`RUN true` twice, the same file
    // written again) give one diff_id twice in a chain; overlayfs refuses a
    // directory given twice as a lower layer (ELOOP).
    let (x, bx) = layer(vec![
        LayerEntry::file("x", "X"),
        LayerEntry::file("shared", "X"),
    ]);
    let (b, bb) = layer(vec![
        LayerEntry::file("shared", "B"),
        LayerEntry::file("b", "B"),
        LayerEntry::whiteout("x"),
    ]);
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        snaps.ensure_layer(&x, &bx[..]).unwrap();
        snaps.ensure_layer(&b, &bb[..]).unwrap();
        let active = snaps.prepare(&[x, b, x]).unwrap();
        let r = active.rootfs();
        assert_eq!(fs::read(r.join("x")).unwrap(), b"X", "{driver:?}");
        assert_eq!(fs::read(r.join("shared")).unwrap(), b"X", "{driver:?}");
        assert_eq!(fs::read(r.join("b")).unwrap(), b"B", "{driver:?}");
        assert!(active.changes().unwrap().is_empty(), "{driver:?}");
        fs::write(r.join("new"), "n").unwrap();
        let changes = active.changes().unwrap();
        assert_eq!(describe(&changes), ["new file 644 0:0 \"n\""], "{driver:?}");
    }
}

#[test]
fn a_committed_layer_is_what_its_tar_holds() {
    let (l1, b1) = base_layer();
    let (l2, b2) = second_layer();
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        snaps.ensure_layer(&l1, &b1[..]).unwrap();
        snaps.ensure_layer(&l2, &b2[..]).unwrap();
        let active = snaps.prepare(&[l1, l2]).unwrap();
        make_changes(active.rootfs());
        let after = tree(active.rootfs());
        let (l3, b3) = layer(active.changes().unwrap());
        active.commit(&l3).unwrap();
        assert!(snaps.has_layer(&l3));
        assert!(fs::read_dir(root.path().join("active"))
            .unwrap()
            .next()
            .is_none());

        // On top of the committed layer, no extraction.
        let next = snaps.prepare(&[l1, l2, l3]).unwrap();
        assert_eq!(tree(next.rootfs()), after, "{driver:?}");
        assert!(next.changes().unwrap().is_empty(), "{driver:?}");

        // The same layer unpacked from the tar written from changes().
        let other = tempfile::tempdir().unwrap();
        let fresh = Snapshotter::open(other.path(), Some(driver)).unwrap();
        for (d, b) in [(l1, &b1), (l2, &b2), (l3, &b3)] {
            fresh.ensure_layer(&d, &b[..]).unwrap();
        }
        let unpacked = fresh.prepare(&[l1, l2, l3]).unwrap();
        assert_eq!(tree(unpacked.rootfs()), after, "{driver:?}");
    }
}

#[test]
fn scratch_snapshots_start_empty() {
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        let active = snaps.prepare(&[]).unwrap();
        assert!(tree(active.rootfs()).is_empty());
        fs::write(active.rootfs().join("hello"), "hi").unwrap();
        assert_eq!(
            describe(&active.changes().unwrap()),
            ["hello file 644 0:0 \"hi\""],
            "{driver:?}"
        );
    }
}

#[test]
fn dropping_a_snapshot_unmounts_and_removes_it() {
    let (l1, b1) = base_layer();
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        snaps.ensure_layer(&l1, &b1[..]).unwrap();
        let active = snaps.prepare(&[l1]).unwrap();
        let rootfs = active.rootfs().to_path_buf();
        assert_eq!(mounted(&rootfs), driver == DriverKind::Overlay);
        drop(active);
        assert!(!mounted(&rootfs));
        assert!(!rootfs.exists());
        assert!(fs::read_dir(root.path().join("active"))
            .unwrap()
            .next()
            .is_none());
        assert!(snaps.has_layer(&l1));
    }
}

#[test]
fn overlay_is_chosen_when_it_works() {
    setup();
    let root = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(root.path(), None).unwrap();
    let expected = if rustix::process::geteuid().is_root() {
        DriverKind::Overlay
    } else {
        DriverKind::Copy
    };
    assert_eq!(snaps.driver(), expected);
    // The probe leaves nothing behind.
    assert!(fs::read_dir(root.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn preparing_on_a_layer_never_ensured_says_so() {
    let root = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(root.path(), Some(DriverKind::Copy)).unwrap();
    let missing = Digest::of(b"nothing");
    let err = snaps.prepare(&[missing]).unwrap_err();
    assert!(matches!(err, Error::MissingLayer { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&missing.to_string()), "{text}");
    assert!(text.contains("ensure_layer"), "{text}");
}

#[test]
fn more_layers_than_a_mount_option_string_holds() {
    if !drivers().contains(&DriverKind::Overlay) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(root.path(), Some(DriverKind::Overlay)).unwrap();
    let mut parents = Vec::new();
    for i in 0..60 {
        let (d, b) = layer(vec![
            LayerEntry::file("n", i.to_string()),
            LayerEntry::file(format!("layer-{i}"), ""),
        ]);
        snaps.ensure_layer(&d, &b[..]).unwrap();
        parents.push(d);
    }
    // 60 paths of ~90 bytes: past mount(2)'s one-page limit.
    let option_len: usize = parents
        .iter()
        .map(|d| root.path().join("layers").join(d.hex()).as_os_str().len() + 1)
        .sum();
    assert!(option_len > 4096, "{option_len}");
    let active = snaps.prepare(&parents).unwrap();
    assert_eq!(fs::read(active.rootfs().join("n")).unwrap(), b"59");
    for i in 0..60 {
        assert!(active.rootfs().join(format!("layer-{i}")).exists());
    }
}

#[test]
fn concurrent_ensure_layer_of_one_diff_id_both_succeed() {
    setup();
    let (l1, b1) = base_layer();
    for round in 0..5 {
        let root = tempfile::tempdir().unwrap();
        let a = Snapshotter::open(root.path(), Some(DriverKind::Copy)).unwrap();
        let b = Snapshotter::open(root.path(), Some(DriverKind::Copy)).unwrap();
        let barrier = Barrier::new(2);
        std::thread::scope(|s| {
            let results: Vec<_> = [&a, &b]
                .map(|snaps| {
                    let (barrier, blob) = (&barrier, &b1);
                    s.spawn(move || {
                        barrier.wait();
                        snaps.ensure_layer(&l1, &blob[..])
                    })
                })
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            for r in results {
                r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        });
        assert!(a.has_layer(&l1));
        assert!(fs::read_dir(root.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
        let active = a.prepare(&[l1]).unwrap();
        assert_eq!(
            fs::read(active.rootfs().join("bin/b")).unwrap(),
            b"shared\n"
        );
    }
}

const CHILD_ROOT: &str = "KILN_SNAPSHOT_TEST_CHILD_ROOT";
const CHILD_DRIVER: &str = "KILN_SNAPSHOT_TEST_CHILD_DRIVER";

/// Gives the bytes of `blob` up to `stop`, then blocks for good: a layer
/// download that hangs mid-way.
struct Hang<'a> {
    blob: &'a [u8],
    stop: usize,
}

impl Read for Hang<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop == 0 {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let n = buf.len().min(self.stop).min(self.blob.len());
        buf[..n].copy_from_slice(&self.blob[..n]);
        self.blob = &self.blob[n..];
        self.stop -= n;
        Ok(n)
    }
}

/// Not a test on its own: the body of the child process that
/// `a_killed_builds_leftovers_are_cleaned_by_the_next_open` kills.
#[test]
fn child_process_holding_a_snapshot() {
    let Some(root) = std::env::var_os(CHILD_ROOT) else {
        return;
    };
    let driver = match std::env::var(CHILD_DRIVER).as_deref() {
        Ok("overlay") => DriverKind::Overlay,
        _ => DriverKind::Copy,
    };
    // Should the test process die first, do not sleep on forever.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).unwrap();
    let root = Path::new(&root);
    let snaps = Snapshotter::open(root, Some(driver)).unwrap();
    let (l1, b1) = base_layer();
    snaps.ensure_layer(&l1, &b1[..]).unwrap();
    let active = snaps.prepare(&[l1]).unwrap();
    // A layer half unpacked when the kill comes.
    let (big, big_blob) = layer(vec![LayerEntry::file("big", vec![7u8; 1 << 20])]);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = snaps.ensure_layer(
                &big,
                Hang {
                    blob: &big_blob,
                    stop: big_blob.len() / 2,
                },
            );
        });
        while fs::read_dir(root.join("tmp")).unwrap().next().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("ROOTFS {}", active.rootfs().display());
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
}

/// Kills the child when a failed assertion unwinds past it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_builds_leftovers_are_cleaned_by_the_next_open() {
    let (l1, b1) = base_layer();
    for driver in drivers() {
        let root = tempfile::tempdir().unwrap();
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_process_holding_a_snapshot",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ROOT, root.path())
                .env(
                    CHILD_DRIVER,
                    if driver == DriverKind::Overlay {
                        "overlay"
                    } else {
                        "copy"
                    },
                )
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let rootfs = loop {
            let line = lines
                .next()
                .expect("the child exited before preparing")
                .unwrap();
            // libtest may have started the line with the test's name.
            if let Some((_, p)) = line.split_once("ROOTFS ") {
                break std::path::PathBuf::from(p);
            }
        };
        let snapshot_dir = rootfs.parent().unwrap().to_path_buf();
        assert_eq!(mounted(&rootfs), driver == DriverKind::Overlay);
        assert!(fs::read_dir(root.path().join("tmp"))
            .unwrap()
            .next()
            .is_some());

        // A live build's snapshot must survive the cleaning, as must the
        // child's while it lives.
        let snaps = Snapshotter::open(root.path(), Some(driver)).unwrap();
        assert!(snapshot_dir.exists());
        snaps.ensure_layer(&l1, &b1[..]).unwrap();
        let mine = snaps.prepare(&[l1]).unwrap();

        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert_eq!(mounted(&rootfs), driver == DriverKind::Overlay);

        let again = Snapshotter::open(root.path(), Some(driver)).unwrap();
        assert!(!mounted(&rootfs), "{driver:?}");
        assert!(!snapshot_dir.exists(), "{driver:?}");
        assert!(fs::read_dir(root.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
        assert!(again.has_layer(&l1));
        assert!(mine.rootfs().join("etc/passwd").exists());
        assert_eq!(mounted(mine.rootfs()), driver == DriverKind::Overlay);
    }
}

#[test]
fn a_blob_that_is_not_its_diff_id_is_never_unpacked_under_it() {
    // The attack: an image whose config claims the base's diff_id for a
    // different layer poisoned every later RUN on the real base.
    setup();
    let (base, _) = base_layer();
    let (_, evil) = layer(vec![LayerEntry::file(
        "etc/passwd",
        "evil::0:0::/:/bin/sh\n",
    )]);
    let root = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(root.path(), Some(DriverKind::Copy)).unwrap();
    let err = snaps.ensure_layer(&base, &evil[..]).unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { expected, .. } if expected == base));
    assert!(
        err.to_string().contains("does not match its diff_id"),
        "{err}"
    );
    assert!(!snaps.has_layer(&base));
    assert_eq!(fs::read_dir(root.path().join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_layer_unpacked_without_verification_is_not_trusted_and_is_replaced() {
    setup();
    let (base, blob) = base_layer();
    let root = tempfile::tempdir().unwrap();
    let snaps = Snapshotter::open(root.path(), Some(DriverKind::Copy)).unwrap();
    // What an older kiln left: a directory under the diff_id, poisoned.
    let dir = root.path().join("layers").join(base.hex());
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/passwd"), "evil\n").unwrap();
    assert!(!snaps.has_layer(&base));
    let problems = snaps.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("never checked against its diff_id"),
        "{problems:?}"
    );

    snaps.ensure_layer(&base, &blob[..]).unwrap();
    assert!(snaps.has_layer(&base));
    assert_eq!(
        fs::read_to_string(dir.join("etc/passwd")).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
    assert!(snaps.check().is_empty(), "{:?}", snaps.check());

    // A change on disk after unpacking is found.
    fs::write(dir.join("etc/passwd"), "evil\n").unwrap();
    let problems = snaps.check();
    assert!(
        problems.len() == 1 && problems[0].contains("changed on disk since it was unpacked"),
        "{problems:?}"
    );
}

/// Several builds of one process (a pipeline's) open snapshotters on one
/// fresh root at once: each must come up, whichever records the xattr
/// namespace first.
#[test]
fn snapshotters_of_one_process_open_a_fresh_root_at_once() {
    for _ in 0..20 {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("snapshots");
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        Snapshotter::open(&dir, Some(DriverKind::Copy))
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
    }
}
