use super::*;
use crate::layer::read::Header as ReadHeader;
use crate::windows::check_layer;
use crate::Digest;

const EPOCH: i64 = 1_600_000_000;
const LATER: PaxTime = PaxTime {
    secs: 1_700_000_000,
    nanos: 250_000_000,
};

fn options(epoch: Option<i64>) -> WindowsLayerOptions {
    WindowsLayerOptions {
        compression: Compression::Gzip(6),
        threads: 2,
        source_date_epoch: epoch,
        docker_media_type: false,
    }
}

/// Writes the layer, runs the import checker over the blob, and returns
/// the descriptor and the headers.
fn build(entries: Vec<WindowsEntry>, epoch: Option<i64>) -> (LayerDescriptor, Vec<ReadHeader>) {
    let writer = WindowsLayerWriter::new(options(epoch));
    let (desc, blob) = writer.write(entries, Vec::new()).unwrap();
    assert_eq!(Digest::of(&blob), desc.digest);
    let headers = check_layer(&blob[..]).unwrap_or_else(|e| panic!("checker: {e}"));
    (desc, headers)
}

fn names(headers: &[ReadHeader]) -> Vec<String> {
    headers
        .iter()
        .map(|h| String::from_utf8_lossy(&h.name).into_owned())
        .collect()
}

fn rec<'a>(h: &'a ReadHeader, key: &str) -> Option<&'a str> {
    h.pax
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

fn sd_b64(sddl: &str) -> String {
    base64::encode(&SecurityDescriptor::parse_sddl(sddl).unwrap().to_bytes())
}

/// Design §4 test 2: `WORKDIR C:\app` over a base without it.
#[test]
fn minimal_workdir_layer() {
    let (_, headers) = build(vec![WindowsEntry::dir(&["app"], LATER)], Some(EPOCH));
    assert_eq!(names(&headers), ["Files", "Files/app", "Hives"]);
    let epoch = EPOCH.to_string();
    for h in &headers {
        assert_eq!(h.typeflag, b'5');
        assert_eq!(rec(h, "MSWINDOWS.fileattr"), Some("16"));
        assert_eq!(h.mtime, EPOCH);
        for key in ["LIBARCHIVE.creationtime", "atime", "ctime"] {
            assert_eq!(rec(h, key), Some(epoch.as_str()), "{key}");
        }
    }
    let dir_sd = sd_b64(DIR_SDDL);
    assert_eq!(rec(&headers[0], "MSWINDOWS.rawsd"), None);
    assert_eq!(rec(&headers[1], "MSWINDOWS.rawsd"), Some(dir_sd.as_str()));
    assert_eq!(rec(&headers[2], "MSWINDOWS.rawsd"), None);
}

fn hello() -> Vec<WindowsEntry> {
    vec![WindowsEntry::file(&["app", "hello.txt"], "hello\n", LATER)]
}

/// Design §4 test 3: `COPY hello.txt C:\app\`.
#[test]
fn copy_layer_is_reproducible() {
    let (first, headers) = build(hello(), Some(EPOCH));
    assert_eq!(
        names(&headers),
        ["Files", "Files/app", "Files/app/hello.txt", "Hives"]
    );
    let file = &headers[2];
    assert_eq!((file.typeflag, file.size), (b'0', 6));
    assert_eq!(rec(file, "MSWINDOWS.fileattr"), Some("32"));
    assert_eq!(
        rec(file, "MSWINDOWS.rawsd"),
        Some(sd_b64(FILE_SDDL).as_str())
    );
    assert_eq!((file.uid, file.gid), (0, 0));

    let (second, _) = build(hello(), Some(EPOCH));
    assert_eq!(first, second, "two builds, one layer");

    // Another SOURCE_DATE_EPOCH changes the times and nothing else.
    let (third, other) = build(hello(), Some(EPOCH + 1));
    assert_ne!(first.diff_id, third.diff_id);
    let strip_times = |hs: &[ReadHeader]| -> Vec<ReadHeader> {
        hs.iter()
            .map(|h| {
                let mut h = h.clone();
                h.mtime = 0;
                h.pax.retain(|(k, _)| {
                    !matches!(k.as_str(), "LIBARCHIVE.creationtime" | "atime" | "ctime")
                });
                h
            })
            .collect()
    };
    assert_eq!(strip_times(&headers), strip_times(&other));
    assert!(other.iter().all(|h| h.mtime == EPOCH + 1));

    // Without SOURCE_DATE_EPOCH the file keeps its time, nanoseconds
    // included, and the added directories get 0.
    let (_, unclamped) = build(hello(), None);
    let file = &unclamped[2];
    assert_eq!(file.mtime, LATER.secs);
    // (The PAX mtime record is consumed by the reader; the Python test
    // sees it.)
    assert_eq!(rec(file, "atime"), Some("1700000000.25"));
    assert_eq!(rec(&unclamped[1], "ctime"), Some("0"));
}

#[test]
fn media_type_follows_the_base_manifest() {
    let docker = WindowsLayerOptions {
        docker_media_type: true,
        ..options(None)
    };
    let (desc, blob) = WindowsLayerWriter::new(docker)
        .write(hello(), Vec::new())
        .unwrap();
    check_layer(&blob[..]).unwrap();
    assert_eq!(
        desc.media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let (desc, _) = build(hello(), None);
    assert_eq!(
        desc.media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}

/// Design §4 test 5: an ancestor that exists in the base keeps the base's
/// records; a new one gets the default directory descriptor.
#[test]
fn existing_ancestors_replay_the_base_records() {
    let custom_sd = sd_b64("O:SYG:SYD:P(A;OICI;FA;;;SY)");
    let base = vec![
        (
            "LIBARCHIVE.creationtime".to_string(),
            b"1500000000.1".to_vec(),
        ),
        ("MSWINDOWS.fileattr".to_string(), b"8208".to_vec()),
        (
            "MSWINDOWS.rawsd".to_string(),
            custom_sd.clone().into_bytes(),
        ),
        ("atime".to_string(), b"1500000001".to_vec()),
        ("ctime".to_string(), b"1500000002".to_vec()),
        ("SCHILY.xattr.user.x".to_string(), b"dropped".to_vec()),
    ];
    let base_mtime = PaxTime::from_secs(1_500_000_003);
    let entries = vec![
        WindowsEntry::existing_dir(&["Windows"], base.clone(), base_mtime),
        WindowsEntry::file(&["Windows", "Temp", "x"], "x", LATER),
    ];
    let (_, headers) = build(entries, Some(EPOCH));
    assert_eq!(
        names(&headers),
        [
            "Files",
            "Files/Windows",
            "Files/Windows/Temp",
            "Files/Windows/Temp/x",
            "Hives"
        ]
    );
    let windows = &headers[1];
    assert_eq!(windows.pax, base[..5].to_vec(), "replayed byte for byte");
    assert_eq!(windows.mtime, base_mtime.secs, "not clamped");
    let temp = &headers[2];
    assert_eq!(
        rec(temp, "MSWINDOWS.rawsd"),
        Some(sd_b64(DIR_SDDL).as_str())
    );
    assert_eq!(rec(temp, "atime"), Some(EPOCH.to_string().as_str()));

    // A base without times or attributes still gets all of them.
    let bare = vec![WindowsEntry::existing_dir(
        &["Windows"],
        vec![("MSWINDOWS.rawsd".to_string(), custom_sd.into_bytes())],
        base_mtime,
    )];
    let (_, headers) = build(bare, Some(EPOCH));
    assert_eq!(rec(&headers[1], "MSWINDOWS.fileattr"), Some("16"));
    assert_eq!(rec(&headers[1], "ctime"), Some("1500000003"));

    // Writing through a junction, or over a base file, is refused.
    for records in [
        vec![("MSWINDOWS.mountpoint".to_string(), b"1".to_vec())],
        vec![("MSWINDOWS.fileattr".to_string(), b"32".to_vec())],
        vec![("MSWINDOWS.fileattr".to_string(), b"1040".to_vec())],
    ] {
        let entries = vec![WindowsEntry::existing_dir(
            &["Users", "All Users"],
            records,
            base_mtime,
        )];
        let err = WindowsLayerWriter::new(options(None))
            .write(entries, Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().starts_with(r"C:\Users\All Users: "),
            "{err}"
        );
    }
}

/// Design §4 test 7.
#[test]
fn symlinks_use_windows_targets() {
    let entries = vec![
        WindowsEntry::symlink(&["app", "lib"], "../x", false, LATER),
        WindowsEntry::symlink(&["app", "opt"], "/opt/y", true, LATER),
    ];
    let (_, headers) = build(entries, Some(EPOCH));
    assert_eq!(
        names(&headers),
        [
            "Files",
            "Files/app",
            "Files/app/lib",
            "Files/app/opt",
            "Hives"
        ]
    );
    let (lib, opt) = (&headers[2], &headers[3]);
    assert_eq!((lib.typeflag, &lib.linkname[..]), (b'2', &br"..\x"[..]));
    assert_eq!(rec(lib, "MSWINDOWS.fileattr"), Some("1056"));
    assert_eq!(
        rec(lib, "MSWINDOWS.rawsd"),
        Some(sd_b64(FILE_SDDL).as_str())
    );
    assert_eq!(&opt.linkname[..], br"C:\opt\y");
    assert_eq!(rec(opt, "MSWINDOWS.fileattr"), Some("1040"));
    assert_eq!(rec(opt, "MSWINDOWS.rawsd"), Some(sd_b64(DIR_SDDL).as_str()));
}

#[test]
fn linux_entries_convert() {
    let entries = vec![
        LayerEntry::dir("app/data"),
        LayerEntry::file("app/a.txt", "a").with_mtime(7),
        LayerEntry::new("app/b.txt", EntryKind::Hardlink("app/a.txt".into())),
        LayerEntry::symlink("app/d", "data"),
        LayerEntry::symlink("app/f", "/app/a.txt"),
        LayerEntry::whiteout("app/old"),
    ];
    let converted = entries_from_layer(entries).unwrap();
    assert_eq!(converted[1].mtime, PaxTime::from_secs(7));
    assert_eq!(converted[2].kind, converted[1].kind, "hard link copied");
    let link = |i: usize| match &converted[i].kind {
        WindowsKind::Symlink { is_dir, .. } => *is_dir,
        k => panic!("{k:?}"),
    };
    assert!(link(3) && !link(4));
    let (_, headers) = build(converted, None);
    assert_eq!(
        names(&headers),
        [
            "Files",
            "Files/app",
            "Files/app/.wh.old",
            "Files/app/a.txt",
            "Files/app/b.txt",
            "Files/app/d",
            "Files/app/data",
            "Files/app/f",
            "Hives"
        ]
    );
    let whiteout = &headers[2];
    assert!(whiteout.pax.is_empty(), "a bare header");
    assert_eq!(
        (whiteout.typeflag, whiteout.size, whiteout.mtime),
        (b'0', 0, 0)
    );
    assert_eq!(&headers[7].linkname[..], br"C:\app\a.txt");

    for (entry, why) in [
        (
            LayerEntry::new("dev/null", EntryKind::CharDevice { major: 1, minor: 3 }),
            "devices",
        ),
        (LayerEntry::new("p", EntryKind::Fifo), "fifos"),
        (LayerEntry::new("d", EntryKind::Opaque), "opaque"),
        (
            LayerEntry::new("l", EntryKind::Hardlink("missing".into())),
            "not a file earlier",
        ),
    ] {
        let err = entries_from_layer(vec![entry]).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn order_is_pre_order_in_byte_order_and_last_wins() {
    let entries = vec![
        WindowsEntry::file(&["b"], "old", LATER),
        WindowsEntry::file(&["a", "z"], "z", LATER),
        WindowsEntry::file(&["B"], "B", LATER),
        WindowsEntry::file(&["a", "Y"], "Y", LATER),
        WindowsEntry::file(&["a-b"], "-", LATER),
        WindowsEntry::file(&["b"], "new", LATER),
    ];
    let writer = WindowsLayerWriter::new(options(None));
    let err = writer.write(entries.clone(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("case-insensitive"), "{err}");

    let entries: Vec<_> = entries.into_iter().filter(|e| e.path != ["B"]).collect();
    let (_, headers) = build(entries, None);
    assert_eq!(
        names(&headers),
        [
            "Files",
            "Files/a",
            "Files/a/Y",
            "Files/a/z",
            "Files/a-b",
            "Files/b",
            "Hives"
        ]
    );
    assert_eq!(headers[5].size, 3, "the last entry for a path wins");
}

#[test]
fn long_and_non_ascii_names_survive() {
    let long = format!("{}.txt", "n".repeat(150));
    let entries = vec![
        WindowsEntry::file(&["Prögram Files", &long], "x", LATER),
        WindowsEntry::symlink(
            &["app", "l"],
            &format!("../{}", "t".repeat(120)),
            false,
            LATER,
        ),
    ];
    let (_, headers) = build(entries, Some(EPOCH));
    assert_eq!(
        names(&headers)[1..3],
        [
            "Files/Prögram Files".to_string(),
            format!("Files/Prögram Files/{long}")
        ]
    );
    assert_eq!(
        headers[4].linkname,
        format!("..\\{}", "t".repeat(120)).into_bytes()
    );
}

#[test]
fn unusable_entries_are_refused() {
    let writer = WindowsLayerWriter::new(options(None));
    for (entries, why) in [
        (vec![WindowsEntry::file(&["CON"], "", LATER)], "DOS device"),
        (
            vec![WindowsEntry::file(&["a:b"], "", LATER)],
            "alternate data stream",
        ),
        (
            vec![WindowsEntry::file(&["a."], "", LATER)],
            "dot or a space",
        ),
        (vec![WindowsEntry::file(&[".wh.x"], "", LATER)], "whiteouts"),
        (vec![WindowsEntry::dir(&[], LATER)], "cannot be an entry"),
        (
            vec![
                WindowsEntry::file(&["f"], "", LATER),
                WindowsEntry::file(&["f", "g"], "", LATER),
            ],
            "not a directory",
        ),
        (
            vec![
                WindowsEntry::file(&["f", "g"], "", LATER),
                WindowsEntry::whiteout(&["f"]),
            ],
            "not a directory",
        ),
        (
            vec![WindowsEntry::symlink(&["l"], "", false, LATER)],
            "target",
        ),
    ] {
        let err = writer.write(entries, Vec::new()).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

/// An independent reader: Python's `tarfile` sees the same entries, in
/// the same order, with exactly the PAX records the recipe prescribes
/// and no global header.
#[test]
#[cfg_attr(
    windows,
    ignore = "runs python3, which a Windows test host (or Wine) seldom has; the Linux run covers it"
)]
fn python_tarfile_reads_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tool.exe");
    std::fs::write(&src, b"MZ\x90\0").unwrap();
    let entries = vec![
        WindowsEntry::new(
            &["app", "tool.exe"],
            WindowsKind::File(FileSource::Path(src)),
            LATER,
        ),
        WindowsEntry::symlink(&["app", "cur"], "/app", true, LATER),
        WindowsEntry::whiteout(&["app", "gone"]),
    ];
    let writer = WindowsLayerWriter::new(options(None));
    let tar = writer.write_tar(entries, Vec::new()).unwrap();
    check_layer(&tar[..]).unwrap();
    let path = dir.path().join("layer.tar");
    std::fs::write(&path, &tar).unwrap();
    let script = r#"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    out = {"global": dict(tf.pax_headers), "entries": [
        {"name": m.name, "type": m.type.decode(), "mode": m.mode, "uid": m.uid,
         "gid": m.gid, "uname": m.uname, "gname": m.gname, "size": m.size,
         "linkname": m.linkname, "pax": m.pax_headers}
        for m in tf.getmembers()]}
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let times = |t: &str| serde_json::json!({"LIBARCHIVE.creationtime": t, "atime": t, "ctime": t});
    let with = |mut base: serde_json::Value, extra: serde_json::Value| {
        let map = base.as_object_mut().unwrap();
        for (k, v) in extra.as_object().unwrap() {
            map.insert(k.clone(), v.clone());
        }
        base
    };
    let dir_sd = sd_b64(DIR_SDDL);
    let file_sd = sd_b64(FILE_SDDL);
    let root = with(times("0"), serde_json::json!({"MSWINDOWS.fileattr": "16"}));
    let later = "1700000000.25";
    let expected = serde_json::json!([
        ["Files", "5", 0o40755, "", 0, root],
        [
            "Files/app",
            "5",
            0o40755,
            "",
            0,
            with(
                times("0"),
                serde_json::json!({"MSWINDOWS.fileattr": "16", "MSWINDOWS.rawsd": dir_sd})
            )
        ],
        ["Files/app/.wh.gone", "0", 0, "", 0, {}],
        [
            "Files/app/cur",
            "2",
            0o120777,
            r"C:\app",
            0,
            with(
                times(later),
                serde_json::json!({"MSWINDOWS.fileattr": "1040", "MSWINDOWS.rawsd": dir_sd, "mtime": later})
            )
        ],
        [
            "Files/app/tool.exe",
            "0",
            0o100644,
            "",
            4,
            with(
                times(later),
                serde_json::json!({"MSWINDOWS.fileattr": "32", "MSWINDOWS.rawsd": file_sd, "mtime": later})
            )
        ],
        ["Hives", "5", 0o40755, "", 0, root],
    ]);
    assert_eq!(got["global"], serde_json::json!({}));
    let entries = got["entries"].as_array().unwrap();
    assert_eq!(entries.len(), expected.as_array().unwrap().len());
    for (e, want) in entries.iter().zip(expected.as_array().unwrap()) {
        let seen = serde_json::json!([
            e["name"],
            e["type"],
            e["mode"],
            e["linkname"],
            e["size"],
            e["pax"]
        ]);
        assert_eq!(&seen, want);
        assert_eq!(
            (&e["uid"], &e["gid"], &e["uname"], &e["gname"]),
            (
                &serde_json::json!(0),
                &serde_json::json!(0),
                &serde_json::json!(""),
                &serde_json::json!("")
            )
        );
    }
}
