//! Deterministic layer tars: exact entries and headers.
#![cfg(unix)]
// Listing trees with modes, owners, devices, FIFOs and xattrs that only a
// Unix file system holds.

use kiln_oci::{
    entries_from_dir, write_layer, write_tar, Compression, LayerEntry, LayerOptions, MtimePolicy,
    Ownership,
};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

fn plain() -> LayerOptions {
    LayerOptions {
        compression: Compression::None,
        threads: 1,
        ..LayerOptions::default()
    }
}

/// One line per entry: type, name, mode, uid, gid, mtime, size, link,
/// device, and PAX records other than `path`/`linkpath`.
fn listing(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut pax = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if x.key().unwrap() != "path" && x.key().unwrap() != "linkpath" {
                    pax.push(format!(
                        "{}={}",
                        x.key().unwrap(),
                        String::from_utf8_lossy(x.value_bytes()).escape_debug()
                    ));
                }
            }
        }
        assert!(
            h.username_bytes().unwrap_or_default().is_empty()
                && h.groupname_bytes().unwrap_or_default().is_empty()
        );
        out.push(format!(
            "{} {} {:o} {}:{} {} {} {} {}:{} {}",
            h.entry_type().as_byte() as char,
            String::from_utf8_lossy(&e.path_bytes()),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.entry_size().unwrap(),
            e.link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default(),
            h.device_major().unwrap().unwrap_or(0),
            h.device_minor().unwrap().unwrap_or(0),
            pax.join(","),
        ));
    }
    out
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tree with every file type the writer handles.
fn build_tree(root: &Path) {
    let long_dir = "d".repeat(120);
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join(&long_dir)).unwrap();
    fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-link")).unwrap();
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("../bin/tool", root.join("tmp/tool")).unwrap();
    fs::write(
        root.join(&long_dir).join(format!("{}.txt", "f".repeat(60))),
        b"long",
    )
    .unwrap();
    symlink("t".repeat(150), root.join("long-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    if is_root() {
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("loop"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o660),
            rustix::fs::makedev(7, 0),
        )
        .unwrap();
        // mknod applies the umask; set the modes exactly.
        fs::set_permissions(root.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::set_permissions(root.join("loop"), fs::Permissions::from_mode(0o660)).unwrap();
        // cap_net_bind_service+ep, as `setcap` writes it (VFS_CAP_REVISION_2).
        let cap = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rustix::fs::lsetxattr(
            root.join("bin/tool"),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    rustix::fs::lsetxattr(
        root.join("bin"),
        "user.note",
        b"hi",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // Fixed times so the listing is exact.
    let all = walk(root);
    for p in all.iter().rev() {
        let t = rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 5,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn tree_with_every_file_type_gives_exact_headers() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path());
    let options = LayerOptions {
        ownership: Ownership::Set { uid: 0, gid: 0 },
        ..plain()
    };
    let tar = write_tar(entries_from_dir(dir.path()).unwrap(), &options, Vec::new()).unwrap();
    let long_dir = "d".repeat(120);
    let t = 1_600_000_000;
    let mut expected = vec![
        format!("5 bin/ 755 0:0 {t} 0  0:0 SCHILY.xattr.user.note=hi"),
        format!(
            "0 bin/tool 4755 0:0 {t} 10  0:0 {}",
            if is_root() {
                "SCHILY.xattr.security.capability=\\0\\0\\0\\u{2}\\0\\u{4}\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0"
            } else {
                ""
            }
        ),
        format!(
            "1 bin/tool-link 4755 0:0 {t} 0 bin/tool 0:0 {}",
            if is_root() {
                "SCHILY.xattr.security.capability=\\0\\0\\0\\u{2}\\0\\u{4}\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0"
            } else {
                ""
            }
        ),
        format!("5 {long_dir}/ 755 0:0 {t} 0  0:0 "),
        format!("0 {long_dir}/{}.txt 644 0:0 {t} 4  0:0 ", "f".repeat(60)),
        format!("6 fifo 600 0:0 {t} 0  0:0 "),
        format!("2 long-link 777 0:0 {t} 0 {} 0:0 ", "t".repeat(150)),
    ];
    if is_root() {
        expected.push(format!("4 loop 660 0:0 {t} 0  7:0 "));
        expected.push(format!("3 null 666 0:0 {t} 0  1:3 "));
    }
    expected.push(format!("5 tmp/ 1777 0:0 {t} 0  0:0 "));
    expected.push(format!("2 tmp/tool 777 0:0 {t} 0 ../bin/tool 0:0 "));
    assert_eq!(listing(&tar), expected);

    // Same tree, written again: same bytes.
    let again = write_tar(entries_from_dir(dir.path()).unwrap(), &options, Vec::new()).unwrap();
    assert!(again == tar);
}

#[test]
fn same_tree_twice_gives_the_same_diff_id() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_tree(a.path());
    build_tree(b.path());
    let options = LayerOptions {
        compression: Compression::Gzip(6),
        threads: 2,
        ..LayerOptions::default()
    };
    let (da, _) = write_layer(entries_from_dir(a.path()).unwrap(), &options, Vec::new()).unwrap();
    let (db, _) = write_layer(
        entries_from_dir(b.path()).unwrap(),
        &options,
        std::io::sink(),
    )
    .unwrap();
    assert_eq!(da, db);
}

#[test]
fn change_sets_get_parents_sorted_order_and_whiteouts() {
    let entries = vec![
        LayerEntry::file("/usr/share/doc/z", "z").with_mtime(50),
        LayerEntry::whiteout("etc/old.conf"),
        LayerEntry::new("var/cache", kiln_oci::EntryKind::Opaque),
        LayerEntry::dir("var/cache")
            .with_mode(0o700)
            .with_owner(1000, 1000)
            .with_mtime(9),
        LayerEntry::file("var/cache/new", "n").with_mode(0o600),
        LayerEntry::file("a-b", "x"),
        LayerEntry::file("a/b", "y").with_owner(3_000_000, 5),
    ];
    let tar = write_tar(entries, &plain(), Vec::new()).unwrap();
    assert_eq!(
        listing(&tar),
        [
            "5 a/ 755 0:0 0 0  0:0 ",
            "0 a/b 644 3000000:5 0 1  0:0 uid=3000000",
            "0 a-b 644 0:0 0 1  0:0 ",
            "5 etc/ 755 0:0 0 0  0:0 ",
            "0 etc/.wh.old.conf 0 0:0 0 0  0:0 ",
            "5 usr/ 755 0:0 0 0  0:0 ",
            "5 usr/share/ 755 0:0 0 0  0:0 ",
            "5 usr/share/doc/ 755 0:0 0 0  0:0 ",
            "0 usr/share/doc/z 644 0:0 50 1  0:0 ",
            "5 var/ 755 0:0 0 0  0:0 ",
            "5 var/cache/ 700 1000:1000 9 0  0:0 ",
            "0 var/cache/.wh..wh..opq 0 0:0 0 0  0:0 ",
            "0 var/cache/new 600 0:0 0 1  0:0 ",
        ]
    );
}

#[test]
fn mtime_and_owner_normalisation() {
    let entries = || {
        vec![
            LayerEntry::file("old", "o")
                .with_mtime(100)
                .with_owner(5, 6),
            LayerEntry::file("new", "n")
                .with_mtime(2_000_000_000)
                .with_owner(7, 8),
        ]
    };
    let clamp = LayerOptions {
        mtime: MtimePolicy::Clamp(1_000),
        ownership: Ownership::Set { uid: 0, gid: 0 },
        ..plain()
    };
    assert_eq!(
        listing(&write_tar(entries(), &clamp, Vec::new()).unwrap()),
        ["0 new 644 0:0 1000 1  0:0 ", "0 old 644 0:0 100 1  0:0 "]
    );
    let set = LayerOptions {
        mtime: MtimePolicy::Set(7),
        ..plain()
    };
    assert_eq!(
        listing(&write_tar(entries(), &set, Vec::new()).unwrap()),
        ["0 new 644 7:8 7 1  0:0 ", "0 old 644 5:6 7 1  0:0 "]
    );
}

#[test]
fn bad_paths_are_refused() {
    let err = write_tar(
        vec![LayerEntry::file("a/../../x", "")],
        &plain(),
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer entry \"a/../../x\": \"..\" is not allowed in layer paths"
    );
    let err = write_tar(vec![LayerEntry::dir("/")], &plain(), Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer entry \"/\": the layer root itself cannot be an entry"
    );
}
