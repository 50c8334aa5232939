//! Layers an attacker would push: each is refused with an error naming the
//! entry, or read back exactly, and nothing outside the target directory
//! is touched. Every case here was found by an outside attack run.

use flate2::write::GzEncoder;
use kiln_oci::layer::read::{LayerReader, Node, MAX_EXTENSION};
use kiln_oci::{
    extract_layer, write_layer, Compression, Digest, ExtractOptions, LayerEntry, LayerOptions,
    Whiteouts,
};
use std::fs;
use std::io::Write;

/// One raw 512-byte header, any type flag and size, checksum set.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..name.len()].copy_from_slice(name);
    b[100..107].copy_from_slice(b"0000644");
    b[108..115].copy_from_slice(b"0000000");
    b[116..123].copy_from_slice(b"0000000");
    let size = format!("{size:011o}");
    b[124..135].copy_from_slice(size.as_bytes());
    b[136..147].copy_from_slice(b"00000000000");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// One entry for [`tar`]: name, type flag, data, link target.
type Raw<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

/// A tar of raw entries and the end marker.
fn tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, t, data, link) in entries {
        out.extend(header(name, *t, data.len() as u64, link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend([0u8; 1024]);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A directory holding `root/` (the extraction target, seeded with a file)
/// and a sibling that must survive; returns the error text.
fn extract_err(blob: &[u8], options: ExtractOptions) -> String {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("keep")).unwrap();
    fs::write(outer.path().join("sibling"), b"precious").unwrap();
    fs::write(root.join("keep/file"), b"lower").unwrap();
    let err = extract_layer(blob, &root, &Digest::of(b"evil"), &options).unwrap_err();
    assert_eq!(
        fs::read(outer.path().join("sibling")).unwrap(),
        b"precious",
        "the parent of the target was changed"
    );
    assert!(root.exists());
    err.to_string()
}

fn overlay() -> ExtractOptions {
    ExtractOptions {
        whiteouts: Whiteouts::Overlay { userxattr: false },
        ..ExtractOptions::default()
    }
}

#[test]
fn whiteouts_naming_dot_or_dotdot_are_refused_and_touch_nothing() {
    for name in [&b".wh..."[..], b".wh..", b".wh.", b"x/.wh...", b"etc/.wh.."] {
        let blob = tar(&[(b"x/", b'5', b"", b""), (name, b'0', b"", b"")]);
        // Windows refuses overlay-format whiteouts before reading a layer.
        let overlay = cfg!(unix).then(overlay);
        for options in [Some(ExtractOptions::default()), overlay]
            .into_iter()
            .flatten()
        {
            let msg = extract_err(&blob, options);
            assert!(
                msg.contains("invalid whiteout name") && msg.contains("it names no file"),
                "{name:?}: {msg}"
            );
        }
    }
}

#[test]
fn the_dotdot_whiteout_in_a_directory_is_refused_before_anything_is_removed() {
    // The attack: `.wh.../x` made the old code strip `.wh.` and empty `..`.
    let blob = tar(&[(b".wh.../x", b'5', b"", b"")]);
    let msg = extract_err(&blob, ExtractOptions::default());
    assert!(
        msg.ends_with(
            r#"entry ".wh.../x": ".wh..." is a whiteout name, so nothing can be under it"#
        ),
        "{msg}"
    );
}

#[test]
fn kiln_never_writes_a_file_named_like_a_whiteout() {
    for path in ["a/.wh.b", ".wh...", ".wh..wh..opq", ".wh.x/y"] {
        let err = write_layer(
            vec![LayerEntry::file(path, "x")],
            &LayerOptions::default(),
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("mark OCI whiteouts"),
            "{path}: {err}"
        );
    }
}

#[test]
fn a_huge_gnu_long_name_is_refused_without_reading_it() {
    // Declares 1 GiB of long name; only its header is sent, so a reader that
    // tried to allocate it would fail the test by running out of memory or
    // reporting truncation instead of the cap.
    for typeflag in [b'L', b'K', b'x', b'g'] {
        let mut blob = header(b"././@LongLink", typeflag, 1 << 30, b"");
        blob.extend(vec![0u8; 4096]);
        let msg = extract_err(&gzip(&blob), ExtractOptions::default());
        assert!(
            msg.contains(&format!(
                "of {} bytes; at most {MAX_EXTENSION} are accepted",
                1u64 << 30
            )),
            "{}: {msg}",
            typeflag as char
        );
    }
}

// Names with control characters, `:` and the like, and xattrs: what only a
// Unix file system holds.
#[cfg(unix)]
#[test]
fn pax_values_with_newlines_round_trip_through_kilns_own_layers() {
    // Every byte value in an xattr (security.capability often holds 0x0a),
    // and names with newlines and every printable and UTF-8 byte.
    let all: Vec<u8> = (0..=255u8).collect();
    let mut weird_name = String::from("dir/new\nline\ttab ");
    weird_name.extend((1..=0x7fu8).filter(|b| *b != b'/').map(char::from));
    weird_name.push_str("é€𝄞");
    let entries = vec![
        LayerEntry::file("plain", "x").with_xattr("user.all", all.clone()),
        LayerEntry::file(&weird_name, "weird"),
        LayerEntry::symlink("link\nname", "target\nwith newline"),
    ];
    let (desc, blob) = write_layer(entries, &LayerOptions::default(), Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let diff_id = extract_layer(
        &blob[..],
        dir.path(),
        &desc.digest,
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(diff_id, desc.diff_id);
    assert_eq!(fs::read(dir.path().join(&weird_name)).unwrap(), b"weird");
    assert_eq!(
        fs::read_link(dir.path().join("link\nname")).unwrap(),
        std::path::Path::new("target\nwith newline")
    );
    let mut reader = LayerReader::new(&blob[..]).unwrap();
    let mut seen = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        if e.path == b"plain" {
            assert_eq!(e.xattrs, [("user.all".to_string(), all.clone())]);
        }
        seen.push(e.path);
    }
    assert!(seen.contains(&weird_name.as_bytes().to_vec()));
    assert_eq!(reader.finish().unwrap().0, desc.diff_id);
}

#[test]
fn an_unknown_type_flag_is_named_plainly() {
    let msg = extract_err(&tar(&[(b"z", b'Z', b"", b"")]), ExtractOptions::default());
    assert!(
        msg.ends_with(r#"entry "z": unsupported tar entry type 'Z' (0x5a)"#),
        "{msg}"
    );
}

#[test]
fn a_gzip_with_a_bad_crc_or_no_trailer_is_refused() {
    let good = gzip(&tar(&[(b"f", b'0', b"hello", b"")]));
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let msg = extract_err(&bad_crc, ExtractOptions::default());
    assert!(msg.contains("reading the end of the layer"), "{msg}");
    let no_trailer = &good[..good.len() - 8];
    let msg = extract_err(no_trailer, ExtractOptions::default());
    assert!(msg.contains("reading the end of the layer"), "{msg}");
}

#[test]
fn hard_links_must_name_a_file_of_the_same_layer() {
    // A link to a lower layer's file: what RUN's per-layer snapshots and
    // the image view must agree on, so both refuse it.
    let msg = extract_err(
        &tar(&[(b"hl", b'1', b"", b"keep/file")]),
        ExtractOptions::default(),
    );
    assert!(
        msg.ends_with(
            r#"entry "hl": hard link target "keep/file" is not a file written earlier in this layer"#
        ),
        "{msg}"
    );
    // And one to a file of this layer works.
    let dir = tempfile::tempdir().unwrap();
    let blob = tar(&[(b"f", b'0', b"data", b""), (b"hl", b'1', b"", b"/f")]);
    extract_layer(
        &blob[..],
        dir.path(),
        &Digest::of(b""),
        &ExtractOptions::default(),
    )
    .unwrap();
    let (a, b) = (
        fs::metadata(dir.path().join("f")).unwrap(),
        fs::metadata(dir.path().join("hl")).unwrap(),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(a.ino(), b.ino());
    }
    assert_eq!((a.len(), b.len()), (4, 4));
    // One file under two names: a write through one shows through the other.
    fs::write(dir.path().join("f"), b"changed").unwrap();
    assert_eq!(fs::read(dir.path().join("hl")).unwrap(), b"changed");
}

#[test]
fn the_reader_reports_whiteouts_with_the_path_they_delete() {
    let blob = tar(&[
        (b"a/.wh.b", b'0', b"", b""),
        (b"/c/.wh..wh..opq", b'0', b"", b""),
        (b"d/.wh..wh.plnk", b'0', b"", b""),
    ]);
    let mut reader = LayerReader::new(&blob[..]).unwrap();
    let mut got = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        got.push((String::from_utf8(e.path).unwrap(), e.node));
    }
    assert_eq!(
        got,
        [
            ("a/b".to_string(), Node::Whiteout),
            ("c".to_string(), Node::Opaque)
        ]
    );
}

#[test]
fn truncated_and_corrupt_headers_are_refused() {
    let good = tar(&[(b"f", b'0', b"hello", b"")]);
    let msg = extract_err(&good[..700], ExtractOptions::default());
    assert!(msg.contains("truncated"), "{msg}");
    let mut bad = good.clone();
    bad[0] = b'g';
    let msg = extract_err(&bad, ExtractOptions::default());
    assert!(msg.contains("header checksum"), "{msg}");
}

#[test]
fn the_diff_id_is_the_digest_of_the_uncompressed_stream() {
    let plain = tar(&[(b"f", b'0', b"hello", b"")]);
    for blob in [plain.clone(), gzip(&plain)] {
        let dir = tempfile::tempdir().unwrap();
        let got = extract_layer(
            &blob[..],
            dir.path(),
            &Digest::of(b""),
            &ExtractOptions::default(),
        )
        .unwrap();
        assert_eq!(got, Digest::of(&plain));
    }
    let _ = Compression::None;
}
