//! Real `kiln build`s while another thread keeps swapping a context file
//! between a regular file and a symlink to a host file (issue #16: the
//! host's `/etc/shadow` went into 4 of 40 images). Every build must either
//! fail saying the file changed (or that its symlink leads out of the
//! context) or copy the regular file; no image may hold the host file.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MARKER: &[u8] = b"HOST-FILE-MARKER-3b8e51c0-never-in-an-image";
const REGULAR: &[u8] = b"regular context file\n";
const BUILDS: usize = 30;

/// Swaps `ctx/f` by renames (so it always exists) until told to stop:
/// mostly the regular file, so that builds get past listing it, and for a
/// few milliseconds at a time, at uneven intervals, the symlink.
/// Swaps `ctx/f` between the file and a symlink to the host's secret until
/// `stop`, counting the swaps in `swaps` as it goes.
fn swapper(
    top: &Path,
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<std::io::Result<usize>> {
    let (f, host) = (top.join("ctx/f"), top.join("host-secret"));
    let (link_tmp, file_tmp) = (top.join("tmp-link"), top.join("tmp-file"));
    std::thread::spawn(move || {
        let mut seed = 0x2545_f491_u32;
        let mut jitter = |max: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            Duration::from_millis(u64::from(seed % max))
        };
        while !stop.load(Ordering::Relaxed) {
            std::fs::write(&file_tmp, REGULAR)?;
            std::fs::rename(&file_tmp, &f)?;
            std::thread::sleep(Duration::from_millis(10) + jitter(150));
            std::os::unix::fs::symlink(&host, &link_tmp)?;
            std::fs::rename(&link_tmp, &f)?;
            std::thread::sleep(Duration::from_millis(2) + jitter(5));
            swaps.fetch_add(2, Ordering::Relaxed);
        }
        Ok(swaps.load(Ordering::Relaxed))
    })
}

/// Every blob in the store, decompressed where it is gzip.
fn blobs(store: &Path) -> Vec<Vec<u8>> {
    let dir = store.join("content/blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let mut plain = Vec::new();
        if flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut plain)
            .is_ok()
        {
            out.push(plain);
        }
        out.push(raw);
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_context_file_swapped_with_a_host_symlink_never_reaches_an_image() {
    let top = tempfile::tempdir().unwrap();
    let d = top.path();
    let ctx = d.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(d.join("host-secret"), MARKER).unwrap();
    std::fs::write(ctx.join("f"), REGULAR).unwrap();
    // A large file written into the layer before `f` widens the window
    // between listing `f` and reading it, where the swap lands.
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(ctx.join("a-big"), big).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a-big f /\n").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let swaps = swapper(d, Arc::clone(&stop), Arc::clone(&count));
    let (mut built, mut refused) = (0, 0);
    // At least BUILDS builds, and on until the context has changed under
    // them more than BUILDS times: a fast build may see few swaps.
    for i in 0..BUILDS * 10 {
        if i >= BUILDS && count.load(Ordering::Relaxed) > BUILDS {
            break;
        }
        let rootfs = d.join(format!("rootfs-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--no-cache", "-f", "ctx/Dockerfile", "-o"])
            .arg(format!("type=local,dest={}", rootfs.display()))
            .arg("ctx")
            .current_dir(d)
            .env("KILN_ROOT", d.join("store"))
            .env("HOME", d)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            built += 1;
            let f = rootfs.join("f");
            let kind = std::fs::symlink_metadata(&f).unwrap().file_type();
            assert!(kind.is_file(), "build {i} copied a {kind:?}, not the file");
            assert_eq!(std::fs::read(&f).unwrap(), REGULAR, "build {i}");
        } else {
            refused += 1;
            assert!(
                stderr.contains("changed during the build")
                    || stderr.contains("points outside the build context"),
                "build {i} failed without saying the context changed:\n{stderr}"
            );
            assert!(!contains(stderr.as_bytes(), MARKER), "{stderr}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swaps.join().unwrap().unwrap();
    assert!(
        swaps > BUILDS,
        "the context was hardly changed: {swaps} swaps"
    );
    eprintln!("{built} builds copied the regular file, {refused} were refused, {swaps} swaps");

    for blob in blobs(&d.join("store")) {
        assert!(
            !contains(&blob, MARKER),
            "a stored blob holds the host file"
        );
    }
}
