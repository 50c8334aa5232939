//! A tree that changes between its listing and the layer write (issue #16:
//! a context file swapped for a symlink to a host file put the host file in
//! the image). The race is made deterministic by changing the tree between
//! `entries_from_dir` and `write_tar`.
#![cfg(unix)]
// The races are staged with Unix symlinks; crate::tree has the Windows
// equivalents as unit tests.

use kiln_oci::tree::TreeFileError;
use kiln_oci::{entries_from_dir, write_tar, Compression, LayerError, LayerOptions};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

const MARKER: &[u8] = b"HOST-SECRET-0f3c9a-never-in-a-layer";

fn plain() -> LayerOptions {
    LayerOptions {
        compression: Compression::None,
        threads: 1,
        ..LayerOptions::default()
    }
}

/// A context `ctx/` with `d/f` and a host directory beside it holding a
/// file of the same name with the marker.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let ctx = top.path().join("ctx");
    let host = top.path().join("host");
    fs::create_dir_all(ctx.join("d")).unwrap();
    fs::create_dir_all(&host).unwrap();
    fs::write(ctx.join("d/f"), b"context file\n").unwrap();
    fs::write(ctx.join("a"), b"first\n").unwrap();
    fs::write(host.join("f"), MARKER).unwrap();
    (top, ctx, host)
}

/// Writes the tar into a buffer kept whatever happens, so the test can
/// look at every byte that was produced before the failure.
fn write_kept(ctx: &Path, change: impl FnOnce()) -> (Result<(), LayerError>, Vec<u8>) {
    let entries = entries_from_dir(ctx).unwrap();
    change();
    let mut out = Vec::new();
    let result = write_tar(entries, &plain(), &mut out).map(drop);
    (result, out)
}

fn assert_changed(result: Result<(), LayerError>, out: &[u8], name: &str) {
    match result {
        Err(LayerError::Tree(TreeFileError::Changed { path, .. })) => {
            assert!(path.ends_with(name), "{}", path.display())
        }
        other => panic!("expected a changed-during-the-build error, got {other:?}"),
    }
    let err = LayerError::Tree(TreeFileError::Changed {
        path: name.into(),
        reason: String::new(),
    });
    assert!(
        err.to_string().contains("changed during the build"),
        "{err}"
    );
    assert!(
        !out.windows(MARKER.len()).any(|w| w == MARKER),
        "the host file's bytes went into the layer"
    );
}

#[test]
fn a_file_swapped_for_a_symlink_to_a_host_file_fails_the_write() {
    let (_top, ctx, host) = setup();
    let (result, out) = write_kept(&ctx, || {
        fs::remove_file(ctx.join("d/f")).unwrap();
        symlink(host.join("f"), ctx.join("d/f")).unwrap();
    });
    assert_changed(result, &out, "d/f");
}

#[test]
fn a_parent_directory_swapped_for_a_symlink_fails_the_write() {
    let (_top, ctx, host) = setup();
    let (result, out) = write_kept(&ctx, || {
        fs::rename(ctx.join("d"), ctx.join("d.old")).unwrap();
        symlink(&host, ctx.join("d")).unwrap();
    });
    assert_changed(result, &out, "d/f");
}

#[test]
fn a_file_replaced_by_another_fails_the_write() {
    let (_top, ctx, host) = setup();
    let (result, out) = write_kept(&ctx, || {
        fs::remove_file(ctx.join("d/f")).unwrap();
        fs::copy(host.join("f"), ctx.join("d/f")).unwrap();
    });
    assert_changed(result, &out, "d/f");
}

#[test]
fn a_file_that_grows_or_shrinks_fails_the_write() {
    for new in [&b"context file, and then some more\n"[..], b"c"] {
        let (_top, ctx, _host) = setup();
        let (result, out) = write_kept(&ctx, || fs::write(ctx.join("d/f"), new).unwrap());
        assert_changed(result, &out, "d/f");
    }
}

#[test]
fn an_unchanged_tree_is_written() {
    let (_top, ctx, _host) = setup();
    let (result, out) = write_kept(&ctx, || {});
    result.unwrap();
    let mut archive = tar::Archive::new(&out[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a", "d/", "d/f"]);
}
