//! Build contexts that are not a local directory, as docker's CLI takes
//! them: a tar archive on standard input (plain or compressed), a
//! Dockerfile on standard input, a git repository, and a URL of a tarball
//! or of a Dockerfile. kiln once read an archive on standard input as a
//! Dockerfile and looked for `URL/Dockerfile` on disk.

use kiln_testsupport::{base_images, git, FileServer, GitServer};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bb() -> String {
    format!("bb=oci-layout://{}:latest", base_images().busybox.display())
}

/// `kiln build --build-context bb=… ARGS…` in `dir`, with `stdin` piped in.
fn build(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let bb = bb();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--progress", "plain", "--build-context", &bb])
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", dir.join("store"))
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tar of `files` (path, contents), directories made as needed.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(contents.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, contents.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

const APP: &[(&str, &str)] = &[
    ("Dockerfile", "FROM bb\nCOPY app.txt /app.txt\n"),
    ("app.txt", "from the archive\n"),
    ("sub/Other.Dockerfile", "FROM bb\nCOPY app.txt /other.txt\n"),
];

#[test]
fn an_archive_on_standard_input_is_the_context() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let plain = tar_of(APP);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    for (name, bytes) in [("plain", &plain), ("gzip", &gz)] {
        let dest = format!("type=local,dest=out-{name}");
        ok(build(d, &["-o", &dest, "-"], bytes));
        assert_eq!(
            std::fs::read_to_string(d.join(format!("out-{name}/app.txt"))).unwrap(),
            "from the archive\n"
        );
    }
    // -f names a file inside the archive.
    ok(build(
        d,
        &[
            "-f",
            "sub/Other.Dockerfile",
            "-o",
            "type=local,dest=out-f",
            "-",
        ],
        &plain,
    ));
    assert!(d.join("out-f/other.txt").is_file());
}

#[test]
fn a_dockerfile_on_standard_input_builds_without_a_context() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(build(
        d,
        &["-o", "type=local,dest=out", "-"],
        b"FROM bb\nRUN echo ran > /ran\n",
    ));
    assert_eq!(std::fs::read_to_string(d.join("out/ran")).unwrap(), "ran\n");
    // Without a context, COPY has nothing to read.
    let out = build(d, &["-"], b"FROM bb\nCOPY app.txt /\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("<stdin>:2"), "{}", stderr(&out));

    // `-f FILE -` with nothing piped in: no context, the Dockerfile from -f.
    std::fs::write(d.join("Local.Dockerfile"), "FROM bb\nRUN echo local > /l\n").unwrap();
    ok(build(
        d,
        &["-f", "Local.Dockerfile", "-o", "type=local,dest=out-l", "-"],
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("out-l/l")).unwrap(),
        "local\n"
    );

    // Standard input cannot be both.
    let out = build(d, &["-f", "-", "-"], &tar_of(APP));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot both read standard input"),
        "{}",
        stderr(&out)
    );
    // -f next to a Dockerfile on standard input has no context to look in.
    let out = build(d, &["-f", "Local.Dockerfile", "-"], b"FROM bb\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is a Dockerfile"), "{}", stderr(&out));
}

#[test]
fn a_git_repository_is_the_context() {
    let server = GitServer::start(|work| {
        std::fs::create_dir(work.join("app")).unwrap();
        std::fs::write(
            work.join("app/Dockerfile"),
            "FROM bb\nCOPY hello.txt /hello.txt\n",
        )
        .unwrap();
        std::fs::write(work.join("app/hello.txt"), "v1\n").unwrap();
        git(work, &["add", "."]);
        git(work, &["commit", "-q", "-m", "one"]);
        git(work, &["tag", "v1"]);
        std::fs::write(work.join("app/hello.txt"), "v2\n").unwrap();
        git(work, &["commit", "-q", "-am", "two"]);
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(build(
        d,
        &[
            "-o",
            "type=local,dest=out",
            &format!("{}#main:app", server.url),
        ],
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("out/hello.txt")).unwrap(),
        "v2\n"
    );
    ok(build(
        d,
        &[
            "-o",
            "type=local,dest=out-v1",
            &format!("{}#v1:app", server.url),
        ],
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("out-v1/hello.txt")).unwrap(),
        "v1\n"
    );
    let out = build(d, &[&format!("{}#nosuchref", server.url)], b"");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("the build context {}#nosuchref", server.url)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_url_gives_a_tarball_context_or_a_dockerfile() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_of(APP)).unwrap();
    let server = FileServer::start(vec![
        ("/ctx.tar.gz".to_string(), gz.finish().unwrap()),
        (
            "/Dockerfile".to_string(),
            b"FROM bb\nRUN echo remote > /r\n".to_vec(),
        ),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(build(
        d,
        &["-o", "type=local,dest=out", &server.url("/ctx.tar.gz")],
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("out/app.txt")).unwrap(),
        "from the archive\n"
    );
    ok(build(
        d,
        &["-o", "type=local,dest=out-df", &server.url("/Dockerfile")],
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("out-df/r")).unwrap(),
        "remote\n"
    );
    let out = build(d, &[&server.url("/missing.tar")], b"");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

/// A context that is a file or is missing is named as such, not as a
/// Dockerfile that cannot be read below it.
#[test]
fn a_context_that_is_a_file_or_missing_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("Dockerfile"), "FROM bb\n").unwrap();
    let out = build(d, &["Dockerfile"], b"");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "the build context Dockerfile is a file, not a directory: give the directory (`kiln build -f Dockerfile DIR`)"
        ),
        "{}",
        stderr(&out)
    );
    let out = build(d, &["missing"], b"");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: the build context missing does not exist"),
        "{}",
        stderr(&out)
    );
}

/// An archive on standard input whose entry would land outside the
/// context is refused naming the entry, and nothing is written outside;
/// unpacking it whole would have skipped the entry without a word.
#[test]
fn a_context_archive_entry_outside_the_context_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut b = tar::Builder::new(Vec::new());
    for (path, contents) in [("Dockerfile", "FROM bb\n"), ("x", "x")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(contents.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, contents.as_bytes()).unwrap();
    }
    // `append_data` refuses `..`, so the name goes into the header as is.
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..14].copy_from_slice(b"../escaped.txt");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"esc"[..]).unwrap();
    let out = build(d, &["-"], &b.into_inner().unwrap());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("entry \"../escaped.txt\" points outside the context"),
        "{}",
        stderr(&out)
    );
    assert!(!std::env::temp_dir().join("escaped.txt").exists());
}
