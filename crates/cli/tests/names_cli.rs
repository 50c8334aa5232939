//! File names that are not UTF-8 go through a build byte for byte, as
//! BuildKit carries them: from the context (COPY, and the cache key of
//! what COPY reads), from a RUN, from another stage, from an ADD archive
//! and from a base image. kiln once dropped such a context file from COPY
//! without a word, and failed a RUN or a COPY onto a base that had one.

use kiln_testsupport::base_images;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A path below `dir` from raw bytes.
fn raw(dir: &Path, bytes: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(bytes))
}

fn build(dir: &Path, dockerfile: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("ctx/Dockerfile"), dockerfile).unwrap();
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    let mut args = vec!["build", "--progress", "plain", "--build-context", &bb];
    args.extend_from_slice(extra);
    args.push("ctx");
    kiln(dir, &args)
}

#[test]
fn names_that_are_not_utf8_are_carried_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ctx = d.join("ctx");
    std::fs::create_dir_all(raw(&ctx, b"d\xe9r")).unwrap();
    std::fs::write(raw(&ctx, b"d\xe9r/f\xff.txt"), "ctxfile").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xe9rget"), raw(&ctx, b"l\xe9nk")).unwrap();
    // An archive whose entry's name is Latin-1 bytes.
    let mut archive = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"arch\xe9.txt\0");
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    archive.append(&h, &b"arch"[..]).unwrap();
    std::fs::write(ctx.join("a.tar"), archive.into_inner().unwrap()).unwrap();

    let dockerfile = "FROM bb AS s\n\
        RUN mkdir -p \"/out/$(printf 'st\\351ge')\" \
         && echo made > \"/out/$(printf 'st\\351ge')/file$(printf '\\377')\" \
         && ln -s \"$(printf 'x\\351y')\" /out/lnk\n\
        FROM bb\n\
        COPY . /ctx/\n\
        COPY --from=s /out/ /fromstage/\n\
        ADD a.tar /added/\n\
        RUN echo runmade > \"/run$(printf '\\351')\"\n";
    ok(build(
        d,
        dockerfile,
        &[
            "-t",
            "names",
            "-o",
            "type=image",
            "-o",
            "type=local,dest=out",
        ],
    ));
    let out = d.join("out");
    assert_eq!(
        std::fs::read_to_string(raw(&out, b"ctx/d\xe9r/f\xff.txt")).unwrap(),
        "ctxfile"
    );
    assert_eq!(
        std::fs::read_link(raw(&out, b"ctx/l\xe9nk"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"t\xe9rget"
    );
    assert_eq!(
        std::fs::read_to_string(raw(&out, b"fromstage/st\xe9ge/file\xff")).unwrap(),
        "made\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("fromstage/lnk"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"x\xe9y"
    );
    assert_eq!(
        std::fs::read_to_string(raw(&out, b"added/arch\xe9.txt")).unwrap(),
        "arch"
    );
    assert_eq!(
        std::fs::read_to_string(raw(&out, b"run\xe9")).unwrap(),
        "runmade\n"
    );

    // The image's layers hold the bytes too: a build on it as a base copies
    // onto it and out of it.
    std::fs::write(ctx.join("x"), "x").unwrap();
    let on_base = "FROM names\nCOPY x /x\nCOPY --from=names /ctx/ /again/\n";
    ok(build(d, on_base, &["-o", "type=local,dest=out2"]));
    assert_eq!(
        std::fs::read_to_string(raw(&d.join("out2"), b"again/d\xe9r/f\xff.txt")).unwrap(),
        "ctxfile"
    );
    assert_eq!(
        std::fs::read_to_string(raw(&d.join("out2"), b"run\xe9")).unwrap(),
        "runmade\n"
    );
}

/// The cache key of a COPY covers a file whose name is not UTF-8: kiln
/// once left it out, so changing it reused the old layer.
#[test]
fn a_changed_file_whose_name_is_not_utf8_misses_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ctx = d.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let file = raw(&ctx, b"caf\xe9");
    let dockerfile = "FROM bb\nCOPY . /c/\n";
    for content in ["one", "two"] {
        std::fs::write(&file, content).unwrap();
        let dest = format!("type=local,dest=out-{content}");
        ok(build(d, dockerfile, &["-o", &dest]));
        assert_eq!(
            std::fs::read_to_string(raw(&d.join(format!("out-{content}")), b"c/caf\xe9")).unwrap(),
            content
        );
    }
}

/// A name holding one of the characters kiln spells bytes with cannot be
/// carried: the build says so instead of changing the name.
#[test]
fn a_name_holding_a_reserved_character_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ctx = d.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("odd\u{10FFE9}"), "x").unwrap();
    let out = build(d, "FROM bb\nCOPY . /c/\n", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("U+10FF80–U+10FFFF") && stderr.contains("rename the file"),
        "{stderr}"
    );
}
