//! Extraction with `Whiteouts::Overlay`: OCI whiteouts kept in overlayfs'
//! on-disk format instead of being applied.
#![cfg(unix)]
// overlayfs exists only on Linux.

use kiln_oci::{
    extract_layer, write_layer, Compression, EntryKind, ExtractOptions, LayerEntry, LayerOptions,
    Whiteouts,
};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn extract(entries: Vec<LayerEntry>, root: &Path, userxattr: bool) {
    let options = LayerOptions {
        compression: Compression::Gzip(1),
        threads: 1,
        ..LayerOptions::default()
    };
    let (desc, blob) = write_layer(entries, &options, Vec::new()).unwrap();
    let options = ExtractOptions {
        whiteouts: Whiteouts::Overlay { userxattr },
        ..ExtractOptions::default()
    };
    extract_layer(&blob[..], root, &desc.digest, &options).unwrap();
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("{}: {e}", p.display()),
    }
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|md| md.file_type().is_char_device() && md.rdev() == 0)
}

/// Trusted xattrs need CAP_SYS_ADMIN; user ones work for anyone on ext4.
fn can_use(userxattr: bool) -> bool {
    userxattr || rustix::process::geteuid().is_root()
}

#[test]
fn whiteouts_become_devices_and_opaque_markers() {
    for userxattr in [false, true] {
        if !can_use(userxattr) {
            eprintln!("skipping trusted.overlay.* checks: not root");
            continue;
        }
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        extract(
            vec![
                LayerEntry::whiteout("etc/gone"),
                LayerEntry::dir("cache"),
                LayerEntry::new("cache", EntryKind::Opaque),
                LayerEntry::file("cache/new", "n"),
                LayerEntry::file("kept", "k"),
            ],
            r,
            userxattr,
        );
        let (mine, other) = if userxattr {
            ("user.overlay.opaque", "trusted.overlay.opaque")
        } else {
            ("trusted.overlay.opaque", "user.overlay.opaque")
        };
        assert!(is_whiteout(&r.join("etc/gone")));
        assert!(!r.join("etc/.wh.gone").exists());
        assert_eq!(xattr(&r.join("cache"), mine).as_deref(), Some(&b"y"[..]));
        assert_eq!(xattr(&r.join("cache"), other), None);
        assert!(!r.join("cache/.wh..wh..opq").exists());
        assert_eq!(fs::read(r.join("cache/new")).unwrap(), b"n");
        assert_eq!(xattr(&r.join("etc"), mine), None);
        assert_eq!(fs::read(r.join("kept")).unwrap(), b"k");
    }
}

#[test]
fn a_whiteout_never_hides_the_layers_own_paths() {
    if !can_use(false) {
        eprintln!("skipping: trusted.overlay.* xattrs need root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // `.wh.d` sorts before `d/`, `.wh.f` before `f`: the layer's own
    // entries come after the whiteout and must win over it.
    extract(
        vec![
            LayerEntry::whiteout("d"),
            LayerEntry::file("d/inside", "i"),
            LayerEntry::whiteout("f"),
            LayerEntry::file("f", "f"),
            LayerEntry::whiteout("implicit"),
            LayerEntry::file("implicit/x/y", "y"),
        ],
        r,
        false,
    );
    for dir in ["d", "implicit"] {
        let p = r.join(dir);
        assert!(fs::symlink_metadata(&p).unwrap().is_dir(), "{dir}");
        assert_eq!(
            xattr(&p, "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{dir}"
        );
    }
    assert_eq!(fs::read(r.join("d/inside")).unwrap(), b"i");
    assert_eq!(fs::read(r.join("implicit/x/y")).unwrap(), b"y");
    assert_eq!(xattr(&r.join("implicit/x"), "trusted.overlay.opaque"), None);
    assert_eq!(fs::read(r.join("f")).unwrap(), b"f");
}

#[test]
fn a_whiteout_after_the_layers_own_directory_makes_it_opaque() {
    if !can_use(false) {
        eprintln!("skipping: trusted.overlay.* xattrs need root");
        return;
    }
    // Another writer's order: the directory first, its whiteout later.
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in [
        ("d/", tar::EntryType::Directory),
        ("d/x", tar::EntryType::Regular),
        (".wh.d", tar::EntryType::Regular),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    let blob = b.into_inner().unwrap();
    let root = tempfile::tempdir().unwrap();
    let options = ExtractOptions {
        whiteouts: Whiteouts::Overlay { userxattr: false },
        ..ExtractOptions::default()
    };
    extract_layer(
        &blob[..],
        root.path(),
        &kiln_oci::Digest::of(&blob),
        &options,
    )
    .unwrap();
    let d = root.path().join("d");
    assert!(d.join("x").exists());
    assert_eq!(
        xattr(&d, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn overlay_xattrs_in_the_tar_are_dropped_in_overlay_mode_only() {
    if !can_use(false) {
        eprintln!("skipping: trusted.* xattrs need root");
        return;
    }
    let entries = || {
        vec![LayerEntry::dir("d")
            .with_xattr("trusted.overlay.redirect", "/elsewhere")
            .with_xattr("user.kept", "v")]
    };
    let root = tempfile::tempdir().unwrap();
    extract(entries(), root.path(), false);
    let d = root.path().join("d");
    assert_eq!(xattr(&d, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&d, "user.kept").as_deref(), Some(&b"v"[..]));

    let (desc, blob) = write_layer(
        entries(),
        &LayerOptions {
            compression: Compression::None,
            threads: 1,
            ..LayerOptions::default()
        },
        Vec::new(),
    )
    .unwrap();
    let plain = tempfile::tempdir().unwrap();
    extract_layer(
        &blob[..],
        plain.path(),
        &desc.digest,
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(
        xattr(&plain.path().join("d"), "trusted.overlay.redirect").as_deref(),
        Some(&b"/elsewhere"[..])
    );
}
