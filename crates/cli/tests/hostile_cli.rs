//! Hostile images and contexts through the built `kiln`: what an outside
//! attack run found, end to end. Each build fails with an error naming the
//! entry, and nothing beside the output or the store is touched.

// Shared with store_cli.rs, which uses the rest of it.
#[allow(dead_code)]
mod common {
    pub mod store_image;
}

use common::store_image::{kiln, make_image, Entry, Kind};
use std::fs;
use std::path::Path;

fn entry(path: &str, kind: Kind) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        xattrs: Vec::new(),
    }
}

/// A directory `P` holding a context (with a Dockerfile), a precious file,
/// and the store; returns P.
fn workspace(dockerfile: &str) -> tempfile::TempDir {
    let p = tempfile::tempdir().unwrap();
    let ctx = p.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    fs::write(p.path().join("precious"), "keep me").unwrap();
    p
}

fn assert_untouched(p: &Path) {
    assert_eq!(fs::read_to_string(p.join("precious")).unwrap(), "keep me");
    assert!(p.join("ctx/Dockerfile").exists());
}

#[test]
fn an_image_layer_with_a_dotdot_whiteout_cannot_empty_the_output_s_parent() {
    // The attack: a layer holding `.wh.../x` made `-o type=local,dest=P/out`
    // wipe P, and `-o type=tar` wipe $KILN_ROOT/tmp.
    for output in ["type=local,dest=OUT/out", "type=tar,dest=OUT/out.tar"] {
        let p = workspace("FROM evil:1\n");
        let root = p.path().join("store");
        make_image(
            &root,
            "evil:1",
            &[
                entry(".wh...", Kind::Dir),
                entry(".wh.../x", Kind::File(b"x".to_vec())),
            ],
            "2024-01-01T00:00:00Z",
        );
        let output = output.replace("OUT", &p.path().display().to_string());
        let ctx = p.path().join("ctx");
        let out = kiln(&root, &["build", "-o", &output, ctx.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{output}: {stderr}");
        assert!(
            stderr.contains(r#"entry ".wh.../": invalid whiteout name ".wh...": it names no file"#),
            "{output}: {stderr}"
        );
        assert_untouched(p.path());
        assert!(root.join("tmp").is_dir());
    }
}

#[test]
fn a_run_on_an_image_with_a_dot_whiteout_is_refused_before_unpacking_it() {
    let p = workspace("FROM evil:1\nRUN true\n");
    let root = p.path().join("store");
    make_image(
        &root,
        "evil:1",
        &[entry("etc/.wh..", Kind::File(Vec::new()))],
        "2024-01-01T00:00:00Z",
    );
    let out = kiln(&root, &["build", p.path().join("ctx").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(r#"entry "etc/.wh..": invalid whiteout name ".wh..": it names no file"#),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    assert_untouched(p.path());
}

#[test]
fn a_context_file_named_like_a_whiteout_is_refused_naming_it() {
    let p = workspace("FROM scratch\nCOPY . /app/\n");
    let ctx = p.path().join("ctx");
    fs::create_dir(ctx.join(".wh...")).unwrap();
    fs::write(ctx.join(".wh.../x"), "x").unwrap();
    let out_dir = p.path().join("out");
    let out = kiln(
        &p.path().join("store"),
        &[
            "build",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    assert!(
        stderr
            .contains(r#"layer entry "app/.wh...": names starting with ".wh." mark OCI whiteouts"#),
        "{stderr}"
    );
    assert_untouched(p.path());
    assert!(ctx.join(".wh.../x").exists());
}

/// An image whose config claims `diff_id` for a layer of `entries`.
fn make_lying_image(root: &Path, tag: &str, entries: &[Entry], diff_id: kiln_oci::Digest) {
    use kiln_oci::reference::Reference;
    use kiln_store::{media_type, Descriptor, Store};
    let store = Store::open(root).unwrap();
    let layer = store
        .put_bytes(&common::store_image::layer_tar(entries))
        .unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = store.put_bytes(config.to_string().as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": Descriptor::new(media_type::OCI_CONFIG, config.digest, config.size),
        "layers": [Descriptor::new(media_type::OCI_LAYER, layer.digest, layer.size)],
    });
    let m = store.put_bytes(manifest.to_string().as_bytes()).unwrap();
    let desc = Descriptor::new(media_type::OCI_MANIFEST, m.digest, m.size);
    store.tag(&Reference::parse(tag).unwrap(), &desc).unwrap();
}

#[test]
fn a_layer_that_is_not_its_claimed_diff_id_is_never_unpacked_for_run() {
    // The attack: a config claiming busybox's diff_id for another layer
    // poisoned every later RUN on the real busybox.
    let p = workspace("FROM liar:1\nRUN true\n");
    let root = p.path().join("store");
    let claimed = kiln_oci::Digest::of(b"the real base's layer");
    make_lying_image(
        &root,
        "liar:1",
        &[entry("etc/passwd", Kind::File(b"evil\n".to_vec()))],
        claimed,
    );
    let out = kiln(&root, &["build", p.path().join("ctx").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the layer blob does not match its diff_id: the image config says {claimed}"
        )),
        "{stderr}"
    );
    let layers = root.join("snapshots/layers");
    assert!(!layers.join(claimed.hex()).exists());
    assert_eq!(fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn fsck_reports_snapshot_layers_never_checked_against_their_diff_id() {
    let p = tempfile::tempdir().unwrap();
    let root = p.path().join("store");
    assert!(kiln(&root, &["fsck"]).status.success());
    // What a kiln that did not verify diff_ids left behind.
    let hex = kiln_oci::Digest::of(b"old").hex();
    fs::create_dir_all(root.join("snapshots/layers").join(&hex).join("etc")).unwrap();
    let out = kiln(&root, &["fsck"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "was never checked against its diff_id sha256:{hex}"
        )),
        "{stderr}"
    );
}
