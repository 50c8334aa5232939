//! Extraction: exact round trips, whiteouts, and refusal of escapes.
#![cfg(unix)]
// Round trips of modes, owners, xattrs, devices and symlink refusals: what
// a Unix file system holds. The Windows extractor has its own tests.

use kiln_oci::{
    entries_from_dir, extract_layer, write_layer, Compression, Digest, ExtractOptions, LayerEntry,
    LayerOptions,
};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

/// Everything observable about a tree, one line per path.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes = std::collections::HashMap::new();
    fn rec(
        root: &Path,
        dir: &Path,
        out: &mut Vec<String>,
        inodes: &mut std::collections::HashMap<u64, String>,
    ) {
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
                format!("rdev {}", md.rdev())
            };
            let mut xattrs: Vec<String> = Vec::new();
            if !md.file_type().is_symlink() {
                for (k, v) in list_xattrs(&p) {
                    xattrs.push(format!("{k}={v:?}"));
                }
            }
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
    rec(root, root, &mut out, &mut inodes);
    out
}

fn list_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    let mut out = Vec::new();
    for raw in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 4096];
        let m = rustix::fs::lgetxattr(p, raw, &mut v[..]).unwrap();
        out.push((String::from_utf8_lossy(raw).into_owned(), v[..m].to_vec()));
    }
    out.sort();
    out
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/app"), b"binary").unwrap();
    fs::set_permissions(root.join("usr/bin/app"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::hard_link(root.join("usr/bin/app"), root.join("usr/bin/app2")).unwrap();
    symlink("/usr/bin/app", root.join("usr/bin/abs")).unwrap();
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(
        root.join(format!("{}-long-name.txt", "n".repeat(110))),
        b"x",
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("tmp"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    if is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::lchown(root.join("usr/bin/app"), Some(1000), Some(50)).unwrap();
        fs::set_permissions(root.join("usr/bin/app"), fs::Permissions::from_mode(0o2755)).unwrap();
        let cap = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rustix::fs::lsetxattr(
            root.join("usr/bin/app"),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    for p in [
        "usr/bin/app",
        "usr/bin/abs",
        "pipe",
        "tmp",
        "usr/bin",
        "usr",
    ] {
        let t = rustix::fs::Timespec {
            tv_sec: 1_234_567_890,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            root.join(p),
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

#[test]
fn round_trip_reproduces_the_tree_exactly() {
    for compression in [
        Compression::Gzip(6),
        Compression::Zstd(3),
        Compression::None,
    ] {
        let src = tempfile::tempdir().unwrap();
        make_tree(src.path());
        let options = LayerOptions {
            compression,
            threads: 2,
            ..LayerOptions::default()
        };
        let (desc, blob) =
            write_layer(entries_from_dir(src.path()).unwrap(), &options, Vec::new()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        extract_layer(
            &blob[..],
            dst.path(),
            &desc.digest,
            &ExtractOptions::default(),
        )
        .unwrap();
        let (a, b) = (snapshot(src.path()), snapshot(dst.path()));
        assert_eq!(a, b, "{compression}");
        assert!(a.iter().any(|l| l.contains("=link:usr/bin/app")), "{a:?}");
    }
}

#[test]
fn whiteouts_apply_to_lower_layers() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("etc/sub")).unwrap();
    fs::write(r.join("etc/gone"), b"").unwrap();
    fs::write(r.join("etc/kept"), b"").unwrap();
    fs::create_dir_all(r.join("cache/deep/er")).unwrap();
    fs::write(r.join("cache/old"), b"").unwrap();
    let entries = vec![
        LayerEntry::whiteout("etc/gone"),
        LayerEntry::whiteout("etc/sub"),
        LayerEntry::dir("cache"),
        LayerEntry::new("cache", kiln_oci::EntryKind::Opaque),
        LayerEntry::file("cache/new", "n"),
    ];
    let options = LayerOptions {
        compression: Compression::None,
        threads: 1,
        ..LayerOptions::default()
    };
    let (desc, blob) = write_layer(entries, &options, Vec::new()).unwrap();
    extract_layer(&blob[..], r, &desc.digest, &ExtractOptions::default()).unwrap();
    let mut left: Vec<String> = snapshot(r)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["cache", "cache/new", "etc", "etc/kept"]);
}

/// A raw tar from (name, type, link target) triples, bypassing the writer's
/// checks the way a hostile registry would.
fn evil_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"pwned"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn refused(entries: &[(&str, tar::EntryType, &str)]) -> String {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let layer = Digest::of(b"evil");
    let err = extract_layer(
        &evil_tar(entries)[..],
        &root,
        &layer,
        &ExtractOptions::default(),
    )
    .unwrap_err();
    // Nothing was written outside the root.
    let outside: Vec<_> = fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["root"]);
    assert!(!Path::new("/x").exists() && !Path::new("/etc/x").exists());
    assert_eq!(
        fs::read("/etc/passwd")
            .unwrap()
            .windows(5)
            .filter(|w| w == b"pwned")
            .count(),
        0
    );
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("layer {layer}: entry ")), "{msg}");
    msg[format!("layer {layer}: ").len()..].to_string()
}

#[test]
fn path_traversal_is_refused() {
    use tar::EntryType::*;
    assert_eq!(
        refused(&[("../x", Regular, "")]),
        r#"entry "../x": path contains "..", which would escape the layer root"#
    );
    assert_eq!(
        refused(&[("a/../../x", Regular, "")]),
        r#"entry "a/../../x": path contains "..", which would escape the layer root"#
    );
}

#[test]
fn absolute_names_are_relative_to_the_layer_root() {
    // As containerd and docker read them: `/etc/x` is the layer's `etc/x`.
    let root = tempfile::tempdir().unwrap();
    let tar = evil_tar(&[("/etc/x", tar::EntryType::Regular, "")]);
    extract_layer(
        &tar[..],
        root.path(),
        &Digest::of(b"x"),
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(root.path().join("etc/x")).unwrap(), b"pwned");
    assert!(!Path::new("/etc/x").exists());
}

#[test]
fn writes_through_symlinks_are_refused() {
    use tar::EntryType::*;
    assert_eq!(
        refused(&[("l", Symlink, "/"), ("l/etc/passwd", Regular, "")]),
        r#"entry "l/etc/passwd": parent "l" is a symlink; writing through symlinks is refused"#
    );
    assert_eq!(
        refused(&[("l", Symlink, "../.."), ("l/x", Regular, "")]),
        r#"entry "l/x": parent "l" is a symlink; writing through symlinks is refused"#
    );
    // A directory replaced by a symlink, then written through.
    assert_eq!(
        refused(&[
            ("d/", Directory, ""),
            ("d/f", Regular, ""),
            ("d", Symlink, "/etc"),
            ("d/passwd", Regular, "")
        ]),
        r#"entry "d/passwd": parent "d" is a symlink; writing through symlinks is refused"#
    );
    // A symlink inside the tree is refused too.
    assert_eq!(
        refused(&[
            ("real/", Directory, ""),
            ("alias", Symlink, "real"),
            ("alias/f", Regular, "")
        ]),
        r#"entry "alias/f": parent "alias" is a symlink; writing through symlinks is refused"#
    );
    assert_eq!(
        refused(&[("f", Regular, ""), ("f/g", Regular, "")]),
        r#"entry "f/g": parent "f" is not a directory"#
    );
}

#[test]
fn hard_link_escapes_are_refused() {
    use tar::EntryType::*;
    assert_eq!(
        refused(&[("h", Link, "../../etc/passwd")]),
        r#"entry "h": hard link target "../../etc/passwd": path contains "..", which would escape the layer root"#
    );
    assert_eq!(
        refused(&[("l", Symlink, "/"), ("h", Link, "l/etc/passwd")]),
        r#"entry "h": hard link target "l/etc/passwd" is not a file written earlier in this layer"#
    );
    assert_eq!(
        refused(&[("h", Link, "missing")]),
        r#"entry "h": hard link target "missing" is not a file written earlier in this layer"#
    );
}

#[test]
fn symlinks_pointing_out_are_created_but_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let tar = evil_tar(&[
        ("passwd", tar::EntryType::Symlink, "/etc/passwd"),
        ("passwd", tar::EntryType::Regular, ""),
    ]);
    extract_layer(
        &tar[..],
        root.path(),
        &Digest::of(b"x"),
        &ExtractOptions::default(),
    )
    .unwrap();
    // The second entry replaced the link rather than writing through it.
    assert_eq!(fs::read(root.path().join("passwd")).unwrap(), b"pwned");
    assert!(!fs::read("/etc/passwd").unwrap().ends_with(b"pwned"));
}

#[test]
fn replace_in_the_way_makes_directories_where_a_file_or_symlink_stood() {
    // A local output written into a directory a previous build filled:
    // a file or symlink where the image has a directory is removed (the
    // symlink itself, never what it points to) and the directory made.
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let elsewhere = outer.path().join("elsewhere");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(root.join("a"), "a file").unwrap();
    symlink(&elsewhere, root.join("b")).unwrap();
    fs::write(root.join("keep"), "kept").unwrap();
    let tar = evil_tar(&[
        ("a/x", tar::EntryType::Regular, ""),
        ("b/y", tar::EntryType::Regular, ""),
    ]);
    let layer = Digest::of(b"layer");
    let err = extract_layer(&tar[..], &root, &layer, &ExtractOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("parent \"a\" is not a directory"),
        "{err}"
    );
    let options = ExtractOptions {
        replace_in_the_way: true,
        ..ExtractOptions::default()
    };
    extract_layer(&tar[..], &root, &layer, &options).unwrap();
    assert_eq!(fs::read(root.join("a/x")).unwrap(), b"pwned");
    assert_eq!(fs::read(root.join("b/y")).unwrap(), b"pwned");
    assert!(fs::symlink_metadata(root.join("b")).unwrap().is_dir());
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through the symlink"
    );
    assert_eq!(fs::read(root.join("keep")).unwrap(), b"kept");
}
