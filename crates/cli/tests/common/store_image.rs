//! Test images for the store CLI tests: a layer tar written with the `tar`
//! crate, and config and manifest ingested through the store API.

use flate2::write::GzEncoder;
use kiln_oci::reference::Reference;
use kiln_oci::Digest;
use kiln_store::{media_type, Descriptor, Store};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// One entry of a test layer, and what an unpacker must recreate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// `user.*` extended attributes, sorted.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// What an entry is, with its content or target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// A small tree with modes, owners, a symlink and an xattr.
pub fn sample_tree() -> Vec<Entry> {
    let e = |path: &str, kind, mode, uid, gid| Entry {
        path: path.to_string(),
        kind,
        mode,
        uid,
        gid,
        xattrs: Vec::new(),
    };
    let mut secret = e(
        "data/secret",
        Kind::File(b"s3cret\n".to_vec()),
        0o600,
        123,
        456,
    );
    secret.xattrs = vec![("user.kiln".to_string(), b"yes".to_vec())];
    vec![
        e("bin", Kind::Dir, 0o755, 0, 0),
        e("bin/link", Kind::Symlink("tool".into()), 0o777, 0, 0),
        e(
            "bin/tool",
            Kind::File(b"#!/bin/sh\necho hi\n".to_vec()),
            0o755,
            1000,
            1000,
        ),
        e("data", Kind::Dir, 0o750, 123, 456),
        secret,
        e("etc", Kind::Dir, 0o755, 0, 0),
        e(
            "etc/hello.txt",
            Kind::File(b"hello\n".to_vec()),
            0o644,
            0,
            0,
        ),
    ]
}

/// The entries as an uncompressed tar, xattrs as PAX `SCHILY.xattr.` records.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.xattrs.is_empty() {
            let mut pax = Vec::new();
            for (k, v) in &e.xattrs {
                pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_size(pax.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, format!("PaxHeaders/{}", e.path), &pax[..])
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_700_000_000);
        match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{}/", e.path), &[][..])
                    .unwrap();
            }
            Kind::File(data) => {
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &e.path, &data[..]).unwrap();
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &e.path, target).unwrap();
            }
        }
    }
    tar.into_inner().unwrap()
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// An image in the store at `root` with one gzipped layer of `entries`,
/// tagged `tag`; returns the manifest descriptor and the config digest.
pub fn make_image(
    root: &Path,
    tag: &str,
    entries: &[Entry],
    created: &str,
) -> (Descriptor, Digest) {
    let store = Store::open(root).unwrap();
    let tar = layer_tar(entries);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = store.put_bytes(&gz.finish().unwrap()).unwrap();
    let config = serde_json::json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/tool"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&tar)]},
    });
    let config = store.put_bytes(config.to_string().as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": Descriptor::new(media_type::OCI_CONFIG, config.digest, config.size),
        "layers": [Descriptor::new(media_type::OCI_LAYER_GZIP, layer.digest, layer.size)],
    });
    let m = store.put_bytes(manifest.to_string().as_bytes()).unwrap();
    let desc = Descriptor::new(media_type::OCI_MANIFEST, m.digest, m.size);
    store.tag(&Reference::parse(tag).unwrap(), &desc).unwrap();
    (desc, config.digest)
}

/// Runs the built `kiln` with `KILN_ROOT=root`.
pub fn kiln(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_ROOT", root)
        .output()
        .unwrap()
}

/// stdout of a `kiln` run that must succeed.
pub fn kiln_ok(root: &Path, args: &[&str]) -> String {
    let out = kiln(root, args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails the test when a client tool is missing: these tests check kiln's
/// output with real clients and must not pass without them.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed; run scripts/test (or scripts/install-deps), which installs skopeo, umoci and podman"
    );
}

/// Runs a client tool; returns stdout, failing the test with its stderr.
pub fn run_tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
