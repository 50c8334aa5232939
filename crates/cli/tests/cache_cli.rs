//! The build cache through the binary: CACHED and cache-miss progress
//! lines, `kiln du`, `kiln prune` (what it keeps, `--filter`,
//! `--keep-storage`, `--all`), `kiln fsck`, and builds at once.

use std::path::Path;
use std::process::{Command, Output};

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = kiln(dir, args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A context with two COPY layers; returns the tempdir.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    write(&ctx.join("app/main.rs"), "fn main() {}\n");
    // 100 kB that gzip cannot shrink (an LCG's high bytes).
    let mut x: u64 = 1;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(ctx.join("big.bin"), noise).unwrap();
    write(
        &ctx.join("Dockerfile"),
        "FROM scratch\nCOPY big.bin /\nCOPY app/ /app/\nCMD [\"/app\"]\n",
    );
    dir
}

fn build(dir: &Path) -> String {
    ok(dir, &["build", "-t", "app", "ctx"]).1
}

fn cached_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.ends_with(" CACHED")).count()
}

#[test]
fn a_rebuild_prints_cached_and_a_change_prints_why_it_missed() {
    let dir = setup();
    let first = build(dir.path());
    assert_eq!(cached_lines(&first), 0, "{first}");
    let second = build(dir.path());
    // Both COPYs and the CMD.
    assert_eq!(cached_lines(&second), 3, "{second}");
    assert!(!second.contains("cache miss"), "{second}");
    write(
        &dir.path().join("ctx/app/main.rs"),
        "fn main() { edited() }\n",
    );
    let third = build(dir.path());
    assert_eq!(cached_lines(&third), 1, "{third}");
    assert!(
        third.contains(" cache miss: COPY app/ /app/: app/main.rs changed"),
        "{third}"
    );
    let (_, nocache) = ok(dir.path(), &["build", "--no-cache", "ctx"]);
    assert_eq!(cached_lines(&nocache), 0);
    // The miss --no-cache asked for is not worth a line.
    assert!(!nocache.contains(" cache miss"), "{nocache}");
}

#[test]
fn du_lists_records_and_prune_keeps_the_cache_unless_told() {
    let dir = setup();
    build(dir.path());
    let (du, _) = ok(dir.path(), &["du"]);
    let lines: Vec<&str> = du.lines().collect();
    assert!(lines[0].starts_with("ID "), "{du}");
    assert!(du.contains("COPY big.bin /"), "{du}");
    assert!(du.contains("COPY app/ /app/"), "{du}");
    // 100,000 random bytes in a tar, stored uncompressed inside the gzip.
    assert!(du.contains(" 102kB "), "{du}");
    // Config-only steps take no space: only --verbose lists them.
    assert!(!du.contains("CMD"), "{du}");
    let (verbose, _) = ok(dir.path(), &["du", "--verbose"]);
    assert!(verbose.contains("CMD [\"/app\"]"), "{verbose}");
    assert!(du.contains("Build cache: "), "{du}");
    assert!(du.contains("(0B used by no image;"), "{du}");

    // The image gone, its layers stay for the cache; a plain prune keeps
    // them and the next build is all hits.
    ok(dir.path(), &["rm", "app"]);
    let (du, _) = ok(dir.path(), &["du"]);
    assert!(!du.contains("(0B used by no image;"), "{du}");
    let (pruned, _) = ok(dir.path(), &["prune", "-f"]);
    assert!(!pruned.contains("build cache records"), "{pruned}");
    let again = build(dir.path());
    assert_eq!(cached_lines(&again), 3, "{again}");

    // Records used within the hour stay under until=1h.
    let (pruned, _) = ok(dir.path(), &["prune", "-f", "--filter", "until=1h"]);
    assert!(!pruned.contains("build cache records"), "{pruned}");
    // A size limit evicts the least recently used records first.
    ok(dir.path(), &["rm", "app"]);
    let (pruned, _) = ok(dir.path(), &["prune", "-f", "--keep-storage", "50kB"]);
    // The big layer's record goes, with records that hold no layer and
    // were used before it.
    assert!(
        pruned.contains(" build cache records (1 layers no record uses"),
        "{pruned}"
    );
    let (du, _) = ok(dir.path(), &["du"]);
    assert!(!du.contains("COPY big.bin"), "{du}");
    assert!(du.contains("COPY app/ /app/"), "{du}");
    let rebuilt = build(dir.path());
    assert!(rebuilt.contains("#2 DONE"), "{rebuilt}");
    assert!(rebuilt.contains("#3 CACHED"), "{rebuilt}");

    ok(dir.path(), &["rm", "app"]);
    let (pruned, _) = ok(dir.path(), &["prune", "-f", "--all"]);
    assert!(
        !pruned.starts_with("Deleted 0 build cache records"),
        "{pruned}"
    );
    assert!(!pruned.contains("Deleted 0 blobs"), "{pruned}");
    let cold = build(dir.path());
    assert_eq!(cached_lines(&cold), 0, "{cold}");
    let (fsck, _) = ok(dir.path(), &["fsck"]);
    assert!(fsck.ends_with("no problems\n"), "{fsck}");
}

#[test]
fn bad_prune_flags_are_errors() {
    let dir = setup();
    let out = kiln(dir.path(), &["prune", "-f", "--filter", "label=a"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --filter label=a: kiln prune takes until=DURATION (like until=24h)\n"
    );
    let out = kiln(dir.path(), &["prune", "-f", "--keep-storage", "lots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid size \"lots\""));
}

#[test]
fn fsck_reports_a_damaged_cache_index() {
    let dir = setup();
    build(dir.path());
    let db = dir.path().join("store/cache/index.db");
    // Damage every page after the header page.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() >= 8192, "{}", bytes.len());
    for b in &mut bytes[4096..] {
        *b ^= 0xa5;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = kiln(dir.path(), &["fsck"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cache/index.db"), "{stderr}");
    assert!(stderr.contains("malformed"), "{stderr}");
    // Said once, not once per error in the chain.
    assert_eq!(stderr.matches("malformed").count(), 1, "{stderr}");
}

#[test]
fn four_builds_at_once_share_the_cache_and_leave_it_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    for i in 0..400 {
        write(
            &ctx.join(format!("shared/f{i}.txt")),
            &format!("shared {i}\n").repeat(50),
        );
    }
    for n in 0..4 {
        write(&ctx.join(format!("own{n}/x.txt")), &format!("own {n}\n"));
        // Two pairs of identical first steps, all sharing the second.
        let first = if n % 2 == 0 {
            "COPY shared /s"
        } else {
            "COPY shared /t"
        };
        write(
            &ctx.join(format!("Dockerfile.{n}")),
            &format!("FROM scratch\n{first}\nCOPY shared/f1.txt /one\nCOPY own{n} /own\n"),
        );
    }
    // One after the other.
    let run = |round: usize| {
        let children: Vec<_> = (0..4)
            .map(|n| {
                Command::new(env!("CARGO_BIN_EXE_kiln"))
                    .args(["build", "-f", &format!("ctx/Dockerfile.{n}"), "-t"])
                    .arg(format!("img{n}:r{round}"))
                    .arg("ctx")
                    .current_dir(dir.path())
                    .env("KILN_ROOT", dir.path().join("store"))
                    .env("HOME", dir.path())
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .output()
                    .unwrap()
            })
            .collect();
        children
    };
    // All four at once, one thread each.
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let dir = dir.path();
                s.spawn(move || {
                    Command::new(env!("CARGO_BIN_EXE_kiln"))
                        .args(["build", "-f", &format!("ctx/Dockerfile.{n}"), "-t"])
                        .arg(format!("img{n}"))
                        .arg("ctx")
                        .current_dir(dir)
                        .env("KILN_ROOT", dir.join("store"))
                        .env("HOME", dir)
                        .env("SOURCE_DATE_EPOCH", "1700000000")
                        .output()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "build {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (fsck, _) = ok(dir.path(), &["fsck"]);
    assert!(fsck.ends_with("no problems\n"), "{fsck}");
    // A second round, sequential, is all hits and gives the same images.
    let ids = |tag: &str| -> Vec<String> {
        (0..4)
            .map(|n| {
                let (out, _) = ok(dir.path(), &["inspect", &format!("img{n}{tag}")]);
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                v[0]["Digest"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let first_ids = ids("");
    for (n, out) in run(2).iter().enumerate() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(cached_lines(&stderr), 3, "build {n}: {stderr}");
    }
    assert_eq!(ids(":r2"), first_ids);
    let (fsck, _) = ok(dir.path(), &["fsck"]);
    assert!(fsck.ends_with("no problems\n"), "{fsck}");
}

#[test]
fn cache_to_and_cache_from_a_directory_through_the_binary() {
    let first = setup();
    let cache = first.path().join("shared");
    let to = format!("type=local,dest={},mode=max", cache.display());
    ok(first.path(), &["build", "--cache-to", &to, "ctx"]);
    // Another store: every step comes from the shared cache.
    let second = setup();
    std::fs::remove_dir_all(second.path().join("ctx")).unwrap();
    std::fs::rename(first.path().join("ctx"), second.path().join("ctx")).unwrap();
    let from = format!("type=local,src={}", cache.display());
    let (_, stderr) = ok(second.path(), &["build", "--cache-from", &from, "ctx"]);
    assert_eq!(cached_lines(&stderr), 3, "{stderr}");
    let out = kiln(second.path(), &["build", "--cache-to", "type=gha", "ctx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotSupported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A cache that is not there is a warning, not a failure.
    let (_, stderr) = ok(
        second.path(),
        &[
            "build",
            "--no-cache",
            "--cache-from",
            "type=local,src=/nonexistent",
            "ctx",
        ],
    );
    assert!(
        stderr.contains(
            "warning: cannot read the cache /nonexistent: /nonexistent: no such directory"
        ),
        "{stderr}"
    );
}

/// The store's blobs that are plain tars (a layer not compressed yet).
fn tar_blobs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let blobs = dir.join("store/content/blobs/sha256");
    std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(_, bytes)| bytes.len() > 262 && &bytes[257..262] == b"ustar")
        .collect()
}

/// A step's layer is stored as a tar when the step ends (compressing it is
/// off the step's path) and compressed before an image uses it: a build
/// that fails leaves the tar for its records; the next build that needs
/// the layer in an image compresses it, records the compressed blob and
/// drops the tar.
#[test]
fn a_layer_stays_a_tar_until_an_image_needs_it_compressed() {
    let dir = setup();
    let d = dir.path();
    write(
        &d.join("ctx/Dockerfile"),
        "FROM scratch\nCOPY big.bin /\nCOPY missing /x\n",
    );
    let failed = kiln(d, &["build", "-t", "app", "ctx"]);
    assert!(!failed.status.success());
    let tars = tar_blobs(d);
    assert_eq!(tars.len(), 1, "the COPY's layer, as a tar");
    let (tar_name, tar) = &tars[0];
    assert_eq!(&tar[..7], b"big.bin");
    let (du, _) = ok(d, &["du"]);
    assert!(du.contains(" 102kB "), "{du}");

    write(&d.join("ctx/Dockerfile"), "FROM scratch\nCOPY big.bin /\n");
    let (_, stderr) = ok(
        d,
        &[
            "build",
            "--progress=plain",
            "--metadata-file",
            "meta.json",
            "-t",
            "app",
            "ctx",
        ],
    );
    assert!(stderr.contains("#2 CACHED"), "{stderr}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
    let id = meta["containerimage.digest"].as_str().unwrap();
    assert!(tar_blobs(d).is_empty(), "the tar is gone once compressed");
    let blobs = d.join("store/content/blobs/sha256");
    let read = |digest: &str| {
        std::fs::read(blobs.join(digest.trim().trim_start_matches("sha256:"))).unwrap()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read(id)).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{tar_name}")
    );
    let gz = read(layer["digest"].as_str().unwrap());
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
    assert!(back == *tar, "the compressed blob holds the tar");

    // The record now names the compressed blob: the next build takes it
    // and gives the same image.
    ok(
        d,
        &["build", "--metadata-file", "again.json", "-t", "app", "ctx"],
    );
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("again.json")).unwrap()).unwrap();
    assert_eq!(again["containerimage.digest"], id);
    let (fsck, _) = ok(d, &["fsck"]);
    assert!(fsck.ends_with("no problems\n"), "{fsck}");
}
