//! ADD: local archives in every compression, downloads from a server in
//! the test, and git checkouts served by `git daemon`.

mod copy_support;

use std::io::{Read, Write};
use std::net::TcpListener;

use copy_support::*;
use kiln_testsupport::{git, GitServer};

/// A tar with a directory, a file owned by 1000, a symlink and a hard link.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_mtime(100);
    h.set_size(0);
    b.append_data(&mut h, "pkg/", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(101);
    h.set_size(3);
    b.append_data(&mut h, "pkg/run", &b"RUN"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_mtime(102);
    h.set_size(0);
    b.append_link(&mut h, "pkg/ln", "run").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o755);
    h.set_mtime(101);
    h.set_size(0);
    b.append_link(&mut h, "pkg/hard", "pkg/run").unwrap();
    b.into_inner().unwrap()
}

const SAMPLE_LISTING: [&str; 5] = [
    "x dir 755 0:0 @1700000000",
    "x/pkg dir 750 0:0 @100",
    "x/pkg/hard hardlink(x/pkg/run) 755 0:0 @101",
    "x/pkg/ln symlink(run) 777 0:0 @102",
    "x/pkg/run file(RUN) 755 1000:1000 @101",
];

#[test]
fn local_archives_are_extracted_in_every_compression() {
    let context = tempfile::tempdir().unwrap();
    let tar = sample_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
    let archives = [
        ("a.tar", tar.clone()),
        ("a.tgz", gz.finish().unwrap()),
        ("a.tbz", bz.finish().unwrap()),
        ("a.txz", xz),
        ("a.tzst", zstd::encode_all(&tar[..], 1).unwrap()),
    ];
    let t = Harness::new(context.path());
    for (name, data) in archives {
        std::fs::write(context.path().join(name), data).unwrap();
        // The chown applies to the directory ADD creates, not the contents.
        let mut instr = add_instr(&[name], "/x");
        instr.chown = Some("7".into());
        let out = t.add(&instr).unwrap();
        let mut want = SAMPLE_LISTING.map(String::from).to_vec();
        want[0] = "x dir 755 7:7 @1700000000".into();
        assert_eq!(list(&out.entries), want, "{name}");
    }
    // --unpack=false copies the archive as a file.
    let mut instr = add_instr(&["a.tar"], "/x/");
    instr.unpack = Some(false);
    let out = t.add(&instr).unwrap();
    assert_eq!(out.entries[1].path, "x/a.tar");
    assert!(matches!(out.entries[1].kind, kiln_oci::EntryKind::File(_)));
    // Something that only looks compressed is copied as it is.
    file(context.path(), "fake.gz", "\u{1f}not gzip", 0o644, 5);
    let out = t.add(&add_instr(&["fake.gz"], "/y")).unwrap();
    assert_eq!(list(&out.entries), ["y file(\u{1f}not gzip) 644 0:0 @5"]);
}

#[test]
fn archive_entries_may_not_leave_the_destination() {
    let context = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    {
        // Written by hand: the tar crate refuses `..` in names.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_mode(0o644);
        h.set_size(1);
        h.set_cksum();
        data.extend_from_slice(h.as_bytes());
        data.extend_from_slice(&[b'x'; 512][..512]);
        data.extend_from_slice(&[0; 1024]);
    }
    std::fs::write(context.path().join("evil.tar"), data).unwrap();
    let t = Harness::new(context.path());
    assert_eq!(
        t.add(&add_instr(&["evil.tar"], "/x"))
            .unwrap_err()
            .to_string(),
        "ADD failed: extracting evil.tar: entry \"../escape\" points outside the destination"
    );
}

/// A hand-written ustar header (the tar crate will not write some of
/// these), checksum set.
fn raw_header(name: &str, typeflag: u8, size: u64, link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
    h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h.as_mut_bytes()[156] = typeflag;
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn an_archive_hard_link_to_a_file_not_in_it_is_refused() {
    // The attack: `hl -> /etc/passwd`, absent from the archive, was
    // committed as a dangling link that broke the next RUN.
    let context = tempfile::tempdir().unwrap();
    let mut data = raw_header("hl", b'1', 0, "/etc/passwd");
    data.extend_from_slice(&[0; 1024]);
    std::fs::write(context.path().join("evil.tar"), data).unwrap();
    let t = Harness::new(context.path());
    assert_eq!(
        t.add(&add_instr(&["evil.tar"], "/"))
            .unwrap_err()
            .to_string(),
        "ADD failed: extracting evil.tar: hard link \"hl\" points at \"/etc/passwd\", which is not a file earlier in the archive"
    );
}

#[test]
fn an_archive_with_a_huge_long_name_is_refused_without_reading_it() {
    let context = tempfile::tempdir().unwrap();
    // First, as BuildKit, a file whose first header cannot be read is no
    // archive: it is copied as it is.
    let mut first = raw_header("././@LongLink", b'L', 1 << 30, "");
    first.extend_from_slice(&[0; 4096]);
    std::fs::write(context.path().join("first.tar"), &first).unwrap();
    let t = Harness::new(context.path());
    let out = t.add(&add_instr(&["first.tar"], "/x")).unwrap();
    assert_eq!(out.entries.len(), 1);
    assert_eq!(out.entries[0].path, "x");
    // Later in an archive, it fails the ADD.
    let mut data = raw_header("ok", b'0', 0, "");
    data.extend(first);
    std::fs::write(context.path().join("evil.tar"), data).unwrap();
    let err = t
        .add(&add_instr(&["evil.tar"], "/x"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("GNU long name of 1073741824 bytes; at most 1048576 are accepted"),
        "{err}"
    );
}

#[test]
fn archive_symlinks_are_0777_whatever_their_header_says() {
    let context = tempfile::tempdir().unwrap();
    let mut data = raw_header("f", b'0', 0, "");
    data.extend(raw_header("ln", b'2', 0, "f"));
    data.extend_from_slice(&[0; 1024]);
    std::fs::write(context.path().join("links.tar"), data).unwrap();
    let t = Harness::new(context.path());
    let listing = list(&t.add(&add_instr(&["links.tar"], "/x")).unwrap().entries);
    assert!(
        listing
            .iter()
            .any(|l| l.starts_with("x/ln symlink(f) 777 ")),
        "{listing:?}"
    );
}

#[test]
fn an_archives_destination_is_0755_whatever_chmod_says() {
    // BuildKit's unpack makes the destination with MkdirAll(dest, 0755),
    // where a COPY's parents take an octal --chmod.
    let context = tempfile::tempdir().unwrap();
    let mut data = raw_header("f", b'0', 0, "");
    data.extend_from_slice(&[0; 1024]);
    std::fs::write(context.path().join("one.tar"), data).unwrap();
    let t = Harness::new(context.path());
    let mut instr = add_instr(&["one.tar"], "/x/y/");
    instr.chmod = Some("700".into());
    let listing = list(&t.add(&instr).unwrap().entries);
    assert!(listing[0].starts_with("x dir 755 0:0"), "{listing:?}");
    assert!(listing[1].starts_with("x/y dir 755 0:0"), "{listing:?}");
}

#[test]
fn an_archive_entry_of_an_unknown_type_is_named() {
    let context = tempfile::tempdir().unwrap();
    let mut data = raw_header("odd", b'Z', 0, "");
    data.extend_from_slice(&[0; 1024]);
    std::fs::write(context.path().join("evil.tar"), data).unwrap();
    let t = Harness::new(context.path());
    assert_eq!(
        t.add(&add_instr(&["evil.tar"], "/x"))
            .unwrap_err()
            .to_string(),
        "ADD failed: extracting evil.tar: entry \"odd\" has tar type 'Z' (0x5a), which ADD cannot extract"
    );
}

/// Serves `body` once per connection on 127.0.0.1 with `Last-Modified`
/// (not for `/undated`); `/missing` answers 404.
fn serve(body: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut req = [0u8; 2048];
            let n = stream.read(&mut req).unwrap_or(0);
            let line = String::from_utf8_lossy(&req[..n]).to_string();
            let response = if line.starts_with("GET /missing") {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            } else {
                let dated = if line.starts_with("GET /undated") {
                    ""
                } else {
                    "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                };
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{dated}Content-Disposition: attachment; filename=\"other.bin\"\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{addr}")
}

#[test]
fn urls_are_downloaded_with_their_last_modified_time() {
    let base = serve(b"payload");
    let context = tempfile::tempdir().unwrap();
    let t = Harness::new(context.path());
    let out = t
        .add(&add_instr(
            &[&format!("{base}/files/tool.bin?v=1")],
            "/opt/",
        ))
        .unwrap();
    assert_eq!(
        list(&out.entries),
        [
            "opt dir 755 0:0 @1700000000",
            "opt/tool.bin file(payload) 600 0:0 @784111777"
        ]
    );
    // Without Last-Modified, BuildKit's 1970-01-01, not the time of the
    // download.
    assert_eq!(
        list(
            &t.add(&add_instr(&[&format!("{base}/undated")], "/u"))
                .unwrap()
                .entries
        ),
        ["u file(payload) 600 0:0 @0"]
    );
    // --checksum: the right digest passes, a wrong one names both.
    let good = "sha256:239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5";
    let mut instr = add_instr(&[&format!("{base}/t")], "/t");
    instr.checksum = Some(good.into());
    instr.chmod = Some("755".into());
    assert_eq!(
        list(&t.add(&instr).unwrap().entries),
        ["t file(payload) 755 0:0 @784111777"]
    );
    let bad = format!("sha256:{}", "0".repeat(64));
    instr.checksum = Some(bad.clone());
    assert_eq!(
        t.add(&instr).unwrap_err().to_string(),
        format!("ADD failed: checksum mismatch for {base}/t: --checksum is {bad} but the download is {good}")
    );
    assert_eq!(
        t.add(&add_instr(&[&format!("{base}/missing")], "/m"))
            .unwrap_err()
            .to_string(),
        format!("ADD failed: downloading {base}/missing: the server answered 404 Not Found")
    );
    let mut local = add_instr(&["x"], "/");
    local.checksum = Some(good.into());
    assert_eq!(
        t.add(&local).unwrap_err().to_string(),
        "ADD failed: checksum can't be specified for non-HTTP(S) sources"
    );
}

/// A served repository with `main` (README, docs/guide.md) and tag v1.
fn git_server() -> GitServer {
    GitServer::start(|work| {
        std::fs::write(work.join("README"), "v1\n").unwrap();
        git(work, &["add", "."]);
        git(work, &["commit", "-q", "-m", "one"]);
        git(work, &["tag", "v1"]);
        std::fs::create_dir(work.join("docs")).unwrap();
        std::fs::write(work.join("docs/guide.md"), "guide\n").unwrap();
        std::fs::write(work.join("README"), "v2\n").unwrap();
        git(work, &["add", "."]);
        git(work, &["commit", "-q", "-m", "two"]);
    })
}

/// Entries without times: a checkout's files get the time they were
/// written.
fn shape(entries: &[kiln_oci::LayerEntry]) -> Vec<String> {
    list(entries)
        .into_iter()
        .map(|l| l.split(" @").next().unwrap().to_string())
        .collect()
}

#[test]
fn git_repositories_are_checked_out() {
    let server = git_server();
    let context = tempfile::tempdir().unwrap();
    let t = Harness::new(context.path());
    let out = t.add(&add_instr(&[&server.url], "/src")).unwrap();
    assert_eq!(
        shape(&out.entries),
        [
            "src dir 755 0:0",
            "src/README file(v2\n) 644 0:0",
            "src/docs dir 755 0:0",
            "src/docs/guide.md file(guide\n) 644 0:0",
        ]
    );
    let out = t
        .add(&add_instr(&[&format!("{}#v1", server.url)], "/src"))
        .unwrap();
    assert_eq!(
        shape(&out.entries),
        ["src dir 755 0:0", "src/README file(v1\n) 644 0:0"]
    );
    let mut instr = add_instr(&[&format!("{}#main:docs", server.url)], "/d/");
    instr.chown = Some("5:6".into());
    let out = t.add(&instr).unwrap();
    assert_eq!(
        shape(&out.entries),
        ["d dir 755 5:6", "d/guide.md file(guide\n) 644 5:6"]
    );
    let mut instr = add_instr(&[&format!("{}#v1", server.url)], "/k");
    instr.keep_git_dir = true;
    let out = t.add(&instr).unwrap();
    assert!(out.entries.iter().any(|e| e.path == "k/.git/HEAD"));
    let err = t
        .add(&add_instr(&[&format!("{}#nope", server.url)], "/n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "ADD failed: fetching git repository {}: git fetch failed: ",
            server.url
        )),
        "{err}"
    );
}
