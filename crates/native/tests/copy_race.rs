//! A context that changes between COPY's listing and the layer write
//! (issue #16: swapping `ctx/f` for a symlink to `/etc/shadow` put the host
//! file into images). The race is made deterministic by changing the
//! context after `copy` returned its entries and before they are written.

mod copy_support;

use copy_support::*;
use kiln_oci::tree::FileIdentity;
use kiln_oci::{write_tar, Compression, LayerEntry, LayerOptions};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

const MARKER: &[u8] = b"HOST-ONLY-7d41e2-must-not-reach-an-image";

/// A context with `f` and `dir/g`, and a host file outside it holding
/// the marker.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let ctx = top.path().join("ctx");
    fs::create_dir_all(ctx.join("dir")).unwrap();
    fs::write(ctx.join("f"), b"regular context file\n").unwrap();
    fs::write(ctx.join("dir/g"), b"another context file\n").unwrap();
    let host = top.path().join("host-secret");
    fs::write(&host, MARKER).unwrap();
    (top, ctx, host)
}

fn swap_for_symlink(path: &Path, target: &Path) {
    fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// Writes the entries into a buffer that is kept whatever happens.
fn write_kept(entries: Vec<LayerEntry>) -> (Result<(), String>, Vec<u8>) {
    let options = LayerOptions {
        compression: Compression::None,
        threads: 1,
        ..LayerOptions::default()
    };
    let mut out = Vec::new();
    let result = write_tar(entries, &options, &mut out)
        .map(drop)
        .map_err(|e| e.to_string());
    (result, out)
}

fn assert_refused(result: Result<(), String>, out: &[u8], name: &str) {
    let err = result.expect_err("the layer was written from a swapped file");
    assert!(
        err.contains(name) && err.contains("changed during the build"),
        "{err}"
    );
    assert!(
        !out.windows(MARKER.len()).any(|w| w == MARKER),
        "the host file's bytes went into the layer"
    );
}

#[test]
fn a_copied_file_swapped_for_a_symlink_to_a_host_file_fails_the_layer() {
    let (_top, ctx, host) = setup();
    let out = Harness::new(&ctx).copy(&cp(&["f"], "/app/")).unwrap();
    swap_for_symlink(&ctx.join("f"), &host);
    let (result, blob) = write_kept(out.entries);
    assert_refused(result, &blob, "f");
}

#[test]
fn a_file_of_a_copied_directory_swapped_for_a_symlink_fails_the_layer() {
    let (_top, ctx, host) = setup();
    let out = Harness::new(&ctx).copy(&cp(&["dir"], "/app/")).unwrap();
    swap_for_symlink(&ctx.join("dir/g"), &host);
    let (result, blob) = write_kept(out.entries);
    assert_refused(result, &blob, "dir/g");
}

#[test]
fn a_copied_directory_swapped_for_a_symlink_fails_the_layer() {
    let (top, ctx, _host) = setup();
    let elsewhere = top.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("g"), MARKER).unwrap();
    let out = Harness::new(&ctx).copy(&cp(&["dir"], "/app/")).unwrap();
    fs::rename(ctx.join("dir"), top.path().join("dir.moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, ctx.join("dir")).unwrap();
    let (result, blob) = write_kept(out.entries);
    assert_refused(result, &blob, "dir/g");
}

#[test]
fn an_added_file_rewritten_after_listing_fails_the_layer() {
    let (_top, ctx, _host) = setup();
    let out = Harness::new(&ctx).add(&add_instr(&["f"], "/app/")).unwrap();
    fs::write(ctx.join("f"), MARKER).unwrap();
    let (result, blob) = write_kept(out.entries);
    assert_refused(result, &blob, "f");
}

#[test]
fn an_unchanged_context_is_written() {
    let (_top, ctx, _host) = setup();
    let out = Harness::new(&ctx)
        .copy(&cp(&["f", "dir"], "/app/"))
        .unwrap();
    let (result, blob) = write_kept(out.entries);
    result.unwrap();
    assert!(blob.windows(8).any(|w| w == b"regular "));
}

/// The identities the build cache recorded hashing `ctx` for a step's key.
fn hashed(ctx: &Path) -> std::sync::Arc<HashMap<PathBuf, FileIdentity>> {
    let db = tempfile::tempdir().unwrap();
    let cache = kiln_cache::Cache::open(&db.path().join("index.db")).unwrap();
    let mut session = cache.stat_session(ctx).unwrap();
    session.source_digest(Path::new("")).unwrap();
    std::sync::Arc::new(session.hashed_files().clone())
}

#[test]
fn a_file_replaced_between_hashing_and_copying_fails_the_copy() {
    let (top, ctx, _host) = setup();
    let mut t = Harness::new(&ctx);
    t.hashed = Some(hashed(&ctx));
    // Same size, so only its identity tells: the layer would hold bytes
    // the step's cache key never saw, and be found by it next time.
    let other = top.path().join("other");
    fs::write(&other, b"REGULAR CONTEXT FILE\n").unwrap();
    fs::rename(&other, ctx.join("f")).unwrap();
    let err = t.copy(&cp(&["f", "dir"], "/app/")).unwrap_err().to_string();
    assert!(
        err.contains("f") && err.contains("changed during the build"),
        "{err}"
    );
    // What was not changed copies as hashed.
    t.copy(&cp(&["dir"], "/app/")).unwrap();
}
