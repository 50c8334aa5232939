//! The merged image view: layers written with kiln_oci into a real store,
//! indexed, resolved, read and extracted.

use kiln_native::imagefs::{FsEntry, FsKind, ImageFs};
use kiln_oci::{
    entries_from_dir, write_layer, Compression, EntryKind, FileSource, LayerEntry, LayerOptions,
};
use kiln_store::{media_type, Descriptor, Store};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn layer_with(store: &Store, entries: Vec<LayerEntry>, compression: Compression) -> Descriptor {
    let options = LayerOptions {
        compression,
        threads: 1,
        ..LayerOptions::default()
    };
    let (desc, writer) = write_layer(entries, &options, store.ingest().unwrap()).unwrap();
    writer.commit(Some(desc.digest)).unwrap();
    Descriptor::new(desc.media_type, desc.digest, desc.size)
}

fn layer(store: &Store, entries: Vec<LayerEntry>) -> Descriptor {
    layer_with(store, entries, Compression::Gzip(6))
}

/// An uncompressed layer from hand-written tar entries: `(name, type,
/// mode, uid, data)`, names written into the header exactly as given.
fn raw_layer(store: &Store, entries: &[(&str, tar::EntryType, u32, u64, &[u8])]) -> Descriptor {
    let mut b = tar::Builder::new(Vec::new());
    for (name, ty, mode, uid, data) in entries {
        let mut h = tar::Header::new_gnu();
        let field = &mut h.as_gnu_mut().unwrap().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*ty);
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let bytes = b.into_inner().unwrap();
    let info = store.put_bytes(&bytes).unwrap();
    Descriptor::new(media_type::OCI_LAYER, info.digest, info.size)
}

fn describe(e: &FsEntry) -> String {
    let kind = match &e.kind {
        FsKind::File => format!("file {}", e.size),
        FsKind::Dir => "dir".to_string(),
        FsKind::Symlink(t) => format!("-> {t}"),
        FsKind::Hardlink(t) => format!("link {t} {}", e.size),
        FsKind::CharDevice { major, minor } => format!("char {major},{minor}"),
        FsKind::BlockDevice { major, minor } => format!("block {major},{minor}"),
        FsKind::Fifo => "fifo".to_string(),
    };
    format!("{kind} {:o} {}:{} L{}", e.mode, e.uid, e.gid, e.layer)
}

fn listing(fs: &ImageFs) -> Vec<String> {
    fs.walk("/")
        .into_iter()
        .map(|(p, e)| format!("{p} {}", describe(e)))
        .collect()
}

fn read(fs: &ImageFs, path: &str) -> Option<String> {
    fs.read_file(path, 1 << 20)
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn whiteouts_and_opaque_dirs_across_three_layers() {
    let (_dir, store) = new_store();
    let l0 = layer(
        &store,
        vec![
            LayerEntry::file("etc/a", "A0"),
            LayerEntry::file("etc/b", "B0"),
            LayerEntry::file("etc/sub/x", "X0"),
            LayerEntry::file("var/lib/data/f", "F0"),
            LayerEntry::file("var/keep", "K0"),
            LayerEntry::file("opt/tool", "T0"),
            LayerEntry::new("dev/null", EntryKind::CharDevice { major: 1, minor: 3 })
                .with_mode(0o666),
        ],
    );
    let l1 = layer(
        &store,
        vec![
            LayerEntry::whiteout("etc/a"),
            LayerEntry::dir("var/lib"),
            LayerEntry::new("var/lib", EntryKind::Opaque),
            LayerEntry::file("var/lib/new", "N1"),
            LayerEntry::file("etc/sub/y", "Y1"),
        ],
    );
    let l2 = layer(
        &store,
        vec![
            LayerEntry::whiteout("etc/sub"),
            LayerEntry::file("etc/a", "A2").with_owner(5, 6),
            LayerEntry::dir("opt").with_mode(0o700),
        ],
    );
    let fs = ImageFs::open(&store, &[l0, l1, l2]).unwrap();
    assert_eq!(fs.layer_count(), 3);
    assert_eq!(
        listing(&fs),
        [
            "/dev dir 755 0:0 L0",
            "/dev/null char 1,3 666 0:0 L0",
            "/etc dir 755 0:0 L2",
            "/etc/a file 2 644 5:6 L2",
            "/etc/b file 2 644 0:0 L0",
            "/opt dir 700 0:0 L2",
            "/opt/tool file 2 644 0:0 L0",
            "/var dir 755 0:0 L1",
            "/var/keep file 2 644 0:0 L0",
            "/var/lib dir 755 0:0 L1",
            "/var/lib/new file 2 644 0:0 L1",
        ]
    );
    assert_eq!(read(&fs, "/etc/a").as_deref(), Some("A2"));
    assert_eq!(read(&fs, "/etc/b").as_deref(), Some("B0"));
    assert_eq!(read(&fs, "/var/lib/new").as_deref(), Some("N1"));
    assert_eq!(read(&fs, "/etc/sub/x"), None);
    assert_eq!(read(&fs, "/var/lib/data/f"), None);
}

#[test]
fn replacing_a_directory_with_a_file_drops_its_children() {
    let (_dir, store) = new_store();
    let l0 = layer(
        &store,
        vec![LayerEntry::file("a/x", "x"), LayerEntry::file("b", "b")],
    );
    let l1 = layer(
        &store,
        vec![
            LayerEntry::file("a", "now a file"),
            LayerEntry::file("b/y", "y"),
        ],
    );
    let fs = ImageFs::open(&store, &[l0, l1]).unwrap();
    assert_eq!(
        listing(&fs),
        [
            "/a file 10 644 0:0 L1",
            "/b dir 755 0:0 L1",
            "/b/y file 1 644 0:0 L1",
        ]
    );
}

#[test]
fn paths_are_normalised_and_implicit_parents_exist() {
    let (_dir, store) = new_store();
    use tar::EntryType as T;
    let l0 = raw_layer(
        &store,
        &[
            ("./", T::Directory, 0o700, 0, b""),
            ("./a/b/c", T::Regular, 0o600, 5, b"C"),
            ("./x/y/", T::Directory, 0o710, 0, b""),
            ("/abs//file", T::Regular, 0o644, 0, b"abs"),
            ("old/dir/", T::Regular, 0o750, 0, b""),
        ],
    );
    let fs = ImageFs::open(&store, &[l0]).unwrap();
    assert_eq!(
        listing(&fs),
        [
            "/a dir 755 0:0 L0",
            "/a/b dir 755 0:0 L0",
            "/a/b/c file 1 600 5:0 L0",
            "/abs dir 755 0:0 L0",
            "/abs/file file 3 644 0:0 L0",
            "/old dir 755 0:0 L0",
            "/old/dir dir 750 0:0 L0",
            "/x dir 755 0:0 L0",
            "/x/y dir 710 0:0 L0",
        ]
    );
    assert_eq!(describe(fs.lookup("/").unwrap()), "dir 700 0:0 L0");
    assert_eq!(fs.lookup(""), fs.lookup("/"));
    assert_eq!(fs.lookup("./a//b/"), fs.lookup("/a/b"));
    assert_eq!(fs.lookup("/a/b/../b/c").unwrap().size, 1);
    assert_eq!(read(&fs, "a/b/c").as_deref(), Some("C"));

    let evil = raw_layer(&store, &[("a/../../evil", T::Regular, 0o644, 0, b"")]);
    assert_eq!(
        ImageFs::open(&store, std::slice::from_ref(&evil)).unwrap_err().to_string(),
        format!(
            "layer {}: entry \"a/../../evil\": path contains \"..\", which would escape the layer root",
            evil.digest
        )
    );
}

#[test]
fn gzip_zstd_and_uncompressed_layers_read_the_same() {
    let (_dir, store) = new_store();
    let entries = || {
        vec![
            LayerEntry::file("bin/tool", vec![7u8; 100_000]).with_mode(0o755),
            LayerEntry::file("etc/conf", "key=value\n").with_mtime(1_700_000_000),
            LayerEntry::symlink("bin/alias", "tool"),
        ]
    };
    let mut listings = Vec::new();
    for (compression, media) in [
        (Compression::Gzip(6), media_type::OCI_LAYER_GZIP),
        (Compression::Zstd(3), media_type::OCI_LAYER_ZSTD),
        (Compression::None, media_type::OCI_LAYER),
    ] {
        let desc = layer_with(&store, entries(), compression);
        assert_eq!(desc.media_type, media);
        let fs = ImageFs::open(&store, &[desc]).unwrap();
        assert_eq!(read(&fs, "/etc/conf").as_deref(), Some("key=value\n"));
        assert_eq!(
            fs.read_file("/bin/alias", 1 << 20).unwrap().unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(fs.lookup("/etc/conf").unwrap().mtime, 1_700_000_000);
        listings.push(listing(&fs));
    }
    assert_eq!(
        listings[0],
        [
            "/bin dir 755 0:0 L0",
            "/bin/alias -> tool 777 0:0 L0",
            "/bin/tool file 100000 755 0:0 L0",
            "/etc dir 755 0:0 L0",
            "/etc/conf file 10 644 0:0 L0",
        ]
    );
    assert_eq!(listings[0], listings[1]);
    assert_eq!(listings[0], listings[2]);
}

#[test]
fn hard_links_keep_the_linked_contents() {
    let (_dir, store) = new_store();
    let hardlink =
        |path: &str, target: &str| LayerEntry::new(path, EntryKind::Hardlink(target.into()));
    let l0 = layer(
        &store,
        vec![
            LayerEntry::file("bin/busybox", "BB")
                .with_mode(0o755)
                .with_mtime(100),
            hardlink("bin/sh", "bin/busybox"),
            hardlink("bin/ls", "/bin/busybox"),
        ],
    );
    let l1 = layer(&store, vec![LayerEntry::file("bin/busybox", "NEW!")]);
    let fs = ImageFs::open(&store, &[l0.clone(), l1]).unwrap();
    assert_eq!(
        listing(&fs),
        [
            "/bin dir 755 0:0 L1",
            "/bin/busybox file 4 644 0:0 L1",
            "/bin/ls link /bin/busybox 2 755 0:0 L0",
            "/bin/sh link /bin/busybox 2 755 0:0 L0",
        ]
    );
    assert_eq!(read(&fs, "/bin/sh").as_deref(), Some("BB"));
    let key = |p: &str| fs.lookup(p).unwrap().content_key();
    assert_eq!(key("/bin/sh"), key("/bin/ls"));
    assert!(key("/bin/sh").is_some());
    assert_ne!(key("/bin/sh"), key("/bin/busybox"));
    assert_eq!(key("/bin"), None);
    assert_eq!(read(&fs, "/bin/busybox").as_deref(), Some("NEW!"));

    // Extracted, the three names of the old file are one inode again.
    let dest = tempfile::tempdir().unwrap();
    fs.extract(&store, "/", dest.path()).unwrap();
    let md = |p: &str| std::fs::symlink_metadata(dest.path().join(p)).unwrap();
    assert_eq!(
        std::fs::read(dest.path().join("bin/busybox")).unwrap(),
        b"NEW!"
    );
    assert_eq!(md("bin/busybox").nlink(), 1);
    assert_eq!(md("bin/sh").nlink(), 2);
    assert_eq!(md("bin/sh").ino(), md("bin/ls").ino());
    assert_eq!(md("bin/sh").mode() & 0o7777, 0o755);
    assert_eq!(md("bin/sh").mtime(), 100);

    // Alone, a link becomes a plain copy.
    let single = tempfile::tempdir().unwrap();
    fs.extract(&store, "/bin/sh", single.path()).unwrap();
    let sh = single.path().join("sh");
    assert_eq!(std::fs::read(&sh).unwrap(), b"BB");
    assert_eq!(std::fs::metadata(&sh).unwrap().nlink(), 1);

    let broken = layer(&store, vec![hardlink("a", "nope")]);
    assert_eq!(
        ImageFs::open(&store, std::slice::from_ref(&broken)).unwrap_err().to_string(),
        format!(
            "layer {}: entry \"a\": hard link target \"nope\" is not a file written earlier in this layer",
            broken.digest
        )
    );
    // A link into a lower layer is refused here as RUN's snapshots refuse
    // it (each layer is unpacked on its own there), so COPY --from and RUN
    // never see different files.
    let cross = layer(&store, vec![hardlink("usr/bin/env", "bin/ls")]);
    let err = ImageFs::open(&store, &[l0, cross]).unwrap_err().to_string();
    assert!(
        err.ends_with(r#"entry "usr/bin/env": hard link target "bin/ls" is not a file written earlier in this layer"#),
        "{err}"
    );
}

fn symlink_fs(store: &Store) -> ImageFs {
    let mut entries = vec![
        LayerEntry::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        LayerEntry::symlink("abs", "/etc"),
        LayerEntry::symlink("usr/up", "../../../../etc"),
        LayerEntry::file("usr/lib/x", "x"),
        LayerEntry::symlink("lib", "usr/lib"),
        LayerEntry::symlink("loop1", "loop2"),
        LayerEntry::symlink("loop2", "/loop1"),
        LayerEntry::symlink("dangling", "/nonexistent/file"),
        LayerEntry::symlink("escape", "../../../../tmp"),
        LayerEntry::symlink("chain", "abs/passwd"),
        LayerEntry::new("pipe", EntryKind::Fifo),
    ];
    // c0 -> c1 -> ... -> c40 -> /etc/passwd: 40 links from c1, 41 from c0.
    for i in 0..40 {
        entries.push(LayerEntry::symlink(format!("c{i}"), format!("c{}", i + 1)));
    }
    entries.push(LayerEntry::symlink("c40", "/etc/passwd"));
    ImageFs::open(store, &[layer(store, entries)]).unwrap()
}

#[test]
fn symlinks_resolve_inside_the_root() {
    let (_dir, store) = new_store();
    let fs = symlink_fs(&store);
    let ok = |path: &str, follow: bool| fs.resolve(path, follow).unwrap();
    assert_eq!(ok("/abs/passwd", false), "/etc/passwd");
    assert_eq!(ok("/usr/up/passwd", true), "/etc/passwd");
    assert_eq!(ok("/lib/x", false), "/usr/lib/x");
    assert_eq!(ok("/lib", false), "/lib");
    assert_eq!(ok("/lib", true), "/usr/lib");
    assert_eq!(ok("/lib/", false), "/usr/lib");
    assert_eq!(ok("/chain", true), "/etc/passwd");
    assert_eq!(ok("/chain", false), "/chain");
    assert_eq!(ok("/escape/x", true), "/tmp/x");
    assert_eq!(ok("/../../etc/./passwd", true), "/etc/passwd");
    assert_eq!(ok("relative/./p", false), "/relative/p");
    assert_eq!(ok("/missing/new/../file", false), "/missing/file");
    assert_eq!(ok("/dangling", true), "/nonexistent/file");
    assert_eq!(ok("/", true), "/");
    assert_eq!(ok("..", true), "/");
    assert_eq!(ok("/c1", true), "/etc/passwd");
    assert_eq!(ok("/loop1", false), "/loop1");

    let err = |path: &str, follow: bool| fs.resolve(path, follow).unwrap_err().to_string();
    let loop_msg = |p: &str| {
        format!("{p}: too many levels of symbolic links (more than 40) in the image; check it for a symlink loop")
    };
    assert_eq!(err("/c0", true), loop_msg("/c0"));
    assert_eq!(err("/loop1", true), loop_msg("/loop1"));
    assert_eq!(err("/loop2/a", false), loop_msg("/loop2/a"));
    assert_eq!(
        err("/lib/x/../x", true),
        "/lib/x/../x: /usr/lib/x is not a directory in the image"
    );
}

#[test]
fn read_file_and_read_dir() {
    let (_dir, store) = new_store();
    let fs = symlink_fs(&store);
    let passwd = Some("root:x:0:0::/root:/bin/sh\n".to_string());
    assert_eq!(read(&fs, "/abs/passwd"), passwd);
    assert_eq!(read(&fs, "/chain"), passwd);
    assert_eq!(read(&fs, "/c1"), passwd);
    assert_eq!(read(&fs, "/nonexistent"), None);
    assert_eq!(read(&fs, "/dangling"), None);
    let err = |path: &str, limit| fs.read_file(path, limit).unwrap_err().to_string();
    assert_eq!(
        err("/abs", 100),
        "/etc is a directory in the image, not a file"
    );
    assert_eq!(
        err("/pipe", 100),
        "/pipe is a named pipe in the image, not a regular file"
    );
    assert_eq!(
        err("/chain", 3),
        "/etc/passwd in the image is 26 bytes, more than the 3 bytes kiln reads for it"
    );

    let names =
        |path: &str| -> Vec<String> { fs.read_dir(path).into_iter().map(|(n, _)| n).collect() };
    let root = names("/");
    assert_eq!(
        root[..10],
        ["abs", "c0", "c1", "c10", "c11", "c12", "c13", "c14", "c15", "c16"]
    );
    assert_eq!(
        root[42..],
        ["chain", "dangling", "escape", "etc", "lib", "loop1", "loop2", "pipe", "usr"]
    );
    assert_eq!(names("/usr"), ["lib", "up"]);
    assert!(names("/lib").is_empty());
    assert_eq!(names(&fs.resolve("/lib", true).unwrap()), ["x"]);
    assert!(names("/etc/passwd").is_empty());
}

/// A directory tree as lines: path, kind, mode, owner, mtime, contents or
/// target, xattrs (hard links show their first path).
fn tree_of(root: &Path) -> Vec<String> {
    entries_from_dir(root)
        .unwrap()
        .into_iter()
        .map(|e| {
            let what = match &e.kind {
                EntryKind::File(FileSource::Tree(t)) => {
                    format!(
                        "file {:?}",
                        String::from_utf8(std::fs::read(t.full_path()).unwrap()).unwrap()
                    )
                }
                EntryKind::Dir => "dir".to_string(),
                EntryKind::Symlink(t) => format!("-> {t}"),
                EntryKind::Hardlink(t) => format!("link {t}"),
                EntryKind::Fifo => "fifo".to_string(),
                other => format!("{other:?}"),
            };
            let xattrs: Vec<String> = e
                .xattrs
                .iter()
                .map(|(k, v)| format!(" {k}={}", String::from_utf8_lossy(v)))
                .collect();
            format!(
                "{} {what} {:o} {}:{} @{}{}",
                e.path,
                e.mode,
                e.uid,
                e.gid,
                e.mtime,
                xattrs.concat()
            )
        })
        .collect()
}

#[test]
fn extract_a_subtree_and_a_single_file() {
    let (_dir, store) = new_store();
    let l0 = layer(
        &store,
        vec![
            LayerEntry::dir("app").with_mtime(10),
            LayerEntry::dir("app/bin").with_mtime(1500),
            LayerEntry::file("app/bin/tool", "TOOL")
                .with_mode(0o4755)
                .with_mtime(1000),
            LayerEntry::dir("app/data")
                .with_mode(0o1777)
                .with_mtime(2000),
            LayerEntry::file("app/data/f", "F")
                .with_owner(1000, 1000)
                .with_mode(0o640)
                .with_mtime(3000)
                .with_xattr("user.note", "v1"),
            LayerEntry::symlink("app/link", "bin/tool").with_mtime(4000),
            LayerEntry::new("app/fifo", EntryKind::Fifo).with_mtime(5000),
            LayerEntry::file("app/old", "OLD"),
            LayerEntry::file("other/unrelated", "U"),
        ],
    );
    let l1 = layer(&store, vec![LayerEntry::file("other/big", "only here")]);
    let l2 = layer(
        &store,
        vec![
            LayerEntry::whiteout("app/old"),
            LayerEntry::file("app/new", "NEW").with_mtime(6000),
            LayerEntry::dir("app").with_mode(0o750).with_mtime(7000),
        ],
    );
    let fs = ImageFs::open(&store, &[l0, l1.clone(), l2]).unwrap();
    assert_eq!(
        fs.lookup("/app/data/f").unwrap().xattrs,
        [("user.note".to_string(), b"v1".to_vec())]
    );

    // The middle layer holds nothing under /app, so it is never opened.
    std::fs::remove_file(store.blob_path(&l1.digest)).unwrap();

    let dest = tempfile::tempdir().unwrap();
    fs.extract(&store, "/app", dest.path()).unwrap();
    assert_eq!(
        tree_of(dest.path()),
        [
            "bin dir 755 0:0 @1500",
            "bin/tool file \"TOOL\" 4755 0:0 @1000",
            "data dir 1777 0:0 @2000",
            "data/f file \"F\" 640 1000:1000 @3000 user.note=v1",
            "fifo fifo 644 0:0 @5000",
            "link -> bin/tool 777 0:0 @4000",
            "new file \"NEW\" 644 0:0 @6000",
        ]
    );

    // One file, through a symlink: written under the resolved name.
    let single = tempfile::tempdir().unwrap();
    fs.extract(&store, "/app/link", single.path()).unwrap();
    assert_eq!(
        tree_of(single.path()),
        ["tool file \"TOOL\" 4755 0:0 @1000"]
    );

    let missing = tempfile::tempdir().unwrap();
    assert_eq!(
        fs.extract(&store, "/app/nope", missing.path())
            .unwrap_err()
            .to_string(),
        "/app/nope: no such file or directory in the image"
    );
    let err = fs
        .extract(&store, "/other", missing.path())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("layer {}: ", l1.digest)), "{err}");
}

#[test]
fn extract_keeps_long_names_and_link_targets() {
    let (_dir, store) = new_store();
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(90));
    let target = format!("/{}/{}", "t".repeat(150), "x");
    let l0 = layer(
        &store,
        vec![
            LayerEntry::file(format!("top/{deep}"), "deep").with_mtime(9),
            LayerEntry::symlink("top/far", target.clone()).with_mtime(9),
            LayerEntry::file("top/name with spaces and ünïcode", "u").with_mtime(9),
        ],
    );
    let fs = ImageFs::open(&store, &[l0]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    fs.extract(&store, "top", dest.path()).unwrap();
    assert_eq!(std::fs::read(dest.path().join(&deep)).unwrap(), b"deep");
    assert_eq!(
        std::fs::read_link(dest.path().join("far")).unwrap(),
        Path::new(&target)
    );
    assert_eq!(
        std::fs::read(dest.path().join("name with spaces and ünïcode")).unwrap(),
        b"u"
    );
}

#[test]
fn users_and_groups() {
    let (_dir, store) = new_store();
    let l0 = layer(
        &store,
        vec![
            LayerEntry::file(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\n\
                 app:x:1000:1001:App:/home/app:/bin/sh\n\
                 \n  nobody:x:65534:65534:nobody:/:/sbin/nologin  \n",
            ),
            LayerEntry::file("etc/group", "root:x:0:\nstaff:x:50:app\napp:x:1001:\n"),
        ],
    );
    let fs = ImageFs::open(&store, &[l0]).unwrap();
    assert_eq!(fs.lookup_user("app").unwrap(), (1000, 1001));
    assert_eq!(fs.lookup_user("1000").unwrap(), (1000, 1001));
    assert_eq!(fs.lookup_user("4242").unwrap(), (4242, 0));
    assert_eq!(fs.lookup_user("").unwrap(), (0, 0));
    assert_eq!(fs.lookup_user("nobody").unwrap(), (65534, 65534));
    assert_eq!(
        fs.lookup_user("ghost").unwrap_err().to_string(),
        "unable to find user \"ghost\": no matching entries in the image's /etc/passwd; \
         create the user in an earlier step or use a numeric uid"
    );
    assert_eq!(
        fs.lookup_user("-1").unwrap_err().to_string(),
        "invalid uid \"-1\": ids must be whole numbers from 0 to 4294967294"
    );
    // BuildKit's supplementary groups: memberships only, never the user's
    // own group, and none when USER names a group.
    assert_eq!(fs.supplementary_groups("app", false).unwrap(), [50]);
    assert_eq!(fs.supplementary_groups("1000", false).unwrap(), [50]);
    assert!(fs.supplementary_groups("app", true).unwrap().is_empty());
    assert!(fs.supplementary_groups("root", false).unwrap().is_empty());
    assert!(fs.supplementary_groups("4242", false).unwrap().is_empty());
    assert_eq!(fs.lookup_group("staff").unwrap(), 50);
    assert_eq!(fs.lookup_group("77").unwrap(), 77);
    assert_eq!(
        fs.lookup_group("ghost").unwrap_err().to_string(),
        "unable to find group \"ghost\": no matching entries in the image's /etc/group; \
         create the group in an earlier step or use a numeric gid"
    );

    for (spec, ids) in [
        ("app", (1000, 1001)),
        ("app:staff", (1000, 50)),
        ("1234", (1234, 1234)),
        ("1234:55", (1234, 55)),
        ("root", (0, 0)),
        ("root:app", (0, 1001)),
        ("app:", (1000, 0)),
        (":50", (0, 50)),
        (":staff", (0, 50)),
        ("ghost", (0, 0)),
        ("app:ghost", (1000, 1001)),
        ("5000000000", (0, 0)),
    ] {
        assert_eq!(fs.resolve_chown(spec).unwrap(), ids, "--chown={spec}");
    }
    assert_eq!(
        fs.resolve_chown("app:-5").unwrap_err().to_string(),
        "invalid gid \"-5\": ids must be whole numbers from 0 to 4294967294"
    );

    // /etc/passwd through a symlink, and an image without one.
    let l1 = layer(
        &store,
        vec![
            LayerEntry::file("srv/passwd", "svc:x:7:8::/:/bin/sh\n"),
            LayerEntry::symlink("etc/passwd", "../srv/passwd"),
        ],
    );
    let mut linked = fs.clone();
    linked.push_layer(&store, &l1).unwrap();
    assert_eq!(linked.lookup_user("svc").unwrap(), (7, 8));
    assert_eq!(fs.lookup_user("app").unwrap(), (1000, 1001));

    let scratch = ImageFs::empty();
    assert_eq!(scratch.lookup_user("1000").unwrap(), (1000, 0));
    assert!(scratch.lookup_user("app").is_err());
    assert_eq!(scratch.resolve_chown("app").unwrap(), (0, 0));
    assert_eq!(scratch.resolve_chown("5").unwrap(), (5, 5));
}

#[test]
fn push_layer_leaves_clones_and_failures_alone() {
    let (_dir, store) = new_store();
    let l0 = layer(&store, vec![LayerEntry::file("a", "a")]);
    let base = ImageFs::open(&store, &[l0]).unwrap();
    let mut next = base.clone();
    next.push_layer(&store, &layer(&store, vec![LayerEntry::file("b", "b")]))
        .unwrap();
    assert_eq!(listing(&base), ["/a file 1 644 0:0 L0"]);
    assert_eq!(
        listing(&next),
        ["/a file 1 644 0:0 L0", "/b file 1 644 0:0 L1"]
    );

    let garbage = store.put_bytes(b"this is not a tar archive").unwrap();
    let desc = Descriptor::new(media_type::OCI_LAYER, garbage.digest, garbage.size);
    let err = next.push_layer(&store, &desc).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("layer {}: corrupt tar", garbage.digest)),
        "{err}"
    );
    assert_eq!(next.layer_count(), 2);
    assert_eq!(listing(&next).len(), 2);

    let absent = Descriptor::new(media_type::OCI_LAYER_GZIP, kiln_oci::Digest::of(b"x"), 1);
    let err = next.push_layer(&store, &absent).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("layer {}: ", absent.digest)),
        "{err}"
    );
}

#[test]
fn twenty_thousand_files_index_quickly() {
    let (_dir, store) = new_store();
    let entries: Vec<LayerEntry> = (0..20_000)
        .map(|i| LayerEntry::file(format!("d{}/f{i}", i / 100), format!("{i}")))
        .collect();
    let desc = layer(&store, entries);
    let fs = ImageFs::open(&store, &[desc]).unwrap();
    assert_eq!(fs.walk("/").len(), 20_200);
    assert_eq!(fs.read_dir("/d7").len(), 100);
    assert_eq!(read(&fs, "/d199/f19999").as_deref(), Some("19999"));
}

/// A big layer's headers are saved the first time it is indexed, and
/// later indexes come from them without reading the blob (here replaced
/// by garbage to prove it); damaged headers are only a miss; `kiln prune`
/// drops those of blobs GC removed.
#[test]
fn a_big_layer_is_indexed_from_its_saved_headers_after_the_first_read() {
    let (_dir, store) = new_store();
    let lower = layer(
        &store,
        vec![
            LayerEntry::dir("etc")
                .with_mode(0o750)
                .with_mtime(1_600_000_000),
            LayerEntry::file(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\napp:x:7:8::/:/bin/sh\n",
            ),
            LayerEntry::file("big", kiln_testsupport::noise(1_500_000)).with_owner(7, 8),
            LayerEntry::symlink("link", "/etc/passwd"),
            LayerEntry::file("gone/x", "x"),
            LayerEntry::file("xa", "v").with_xattr("user.k", "value"),
        ],
    );
    let upper = layer(
        &store,
        vec![
            LayerEntry::whiteout("gone"),
            LayerEntry::file("big2", kiln_testsupport::noise(1_200_000)),
        ],
    );
    let layers = [lower.clone(), upper.clone()];
    let first = ImageFs::open(&store, &layers).unwrap();
    let saved = store.root().join("layer-headers");
    assert_eq!(std::fs::read_dir(&saved).unwrap().count(), 2);

    for l in &layers {
        let blob = store.blob_path(&l.digest);
        std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(&blob, b"not a layer any more").unwrap();
    }
    let again = ImageFs::open(&store, &layers).unwrap();
    assert_eq!(listing(&again), listing(&first));
    assert!(listing(&again)
        .iter()
        .any(|l| l.starts_with("/big file 1500000 644 7:8")));
    assert!(again.lookup("/gone").is_none());
    assert_eq!(
        again.lookup("/xa").unwrap().xattrs,
        first.lookup("/xa").unwrap().xattrs
    );
    assert_eq!(again.lookup("/etc").unwrap().mtime, 1_600_000_000);
    assert!(
        again.read_file("/etc/passwd", 4096).is_err(),
        "contents still come from the blob"
    );

    let upper_headers = saved.join(upper.digest.hex());
    let mut bytes = std::fs::read(&upper_headers).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&upper_headers, bytes).unwrap();
    assert!(
        ImageFs::open(&store, &layers).is_err(),
        "damaged headers: the blob is read"
    );

    std::fs::remove_file(store.blob_path(&lower.digest)).unwrap();
    assert_eq!(kiln_native::imagefs::prune_saved_headers(&store), 1);
    assert!(upper_headers.is_file());
}
