use super::meta::{decode_eas, decode_reparse, encode_eas, encode_reparse, Reparse};
use super::stream::{BackupStreamReader, BackupStreamWriter, StreamHeader, StreamId};
use super::*;
use crate::layer::read::{Header, TarReader};
use crate::windows::sd::{SecurityDescriptor, DIR_SDDL, FILE_SDDL};
use crate::windows::{base64, check_layer, PaxTime, WindowsEntry, WindowsLayerWriter};
use crate::{Compression, Digest};
use std::fs::{self, File, FileTimes};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The fixture's file times: whole seconds plus 5 ns (500 ns on Windows,
/// which keeps file times in 100 ns steps), so the PAX `mtime` record and
/// go-winio's fraction format are exercised.
const T: PaxTime = PaxTime {
    secs: 1_700_000_000,
    nanos: if cfg!(windows) { 500 } else { 5 },
};
/// `Hives/System_Delta`'s time, which the roots take.
const DELTA: PaxTime = PaxTime {
    secs: 1_700_000_100,
    nanos: 0,
};

fn sd(sddl: &str) -> Vec<u8> {
    SecurityDescriptor::parse_sddl(sddl).unwrap().to_bytes()
}

/// A transport file: attributes, then the streams in order.
fn transport(attr: u32, streams: &[(StreamId, &str, &[u8])]) -> Vec<u8> {
    let mut w = BackupStreamWriter::new(attr.to_le_bytes().to_vec());
    for (id, name, content) in streams {
        let h = StreamHeader {
            name: name.to_string(),
            ..StreamHeader::new(*id, content.len() as u64)
        };
        w.write_header(&h).unwrap();
        std::io::Write::write_all(&mut w, content).unwrap();
    }
    w.finish().unwrap()
}

fn put(root: &Path, rel: &str, bytes: &[u8], t: PaxTime) {
    let path = root.join(rel);
    fs::write(&path, bytes).unwrap();
    set_time(&path, t);
}

fn set_time(path: &Path, t: PaxTime) {
    let when = UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos);
    let mut options = File::options();
    options.write(true);
    // Windows opens a directory only with backup semantics.
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::custom_flags(
        &mut options,
        crate::sys::FILE_FLAG_BACKUP_SEMANTICS,
    );
    let f = options.open(path).or_else(|_| File::open(path)).unwrap();
    f.set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

/// The fixture folder: a directory with a descriptor, a file with data,
/// an EA and an alternate stream, a second name of it, a symlink, a
/// junction, a hive delta and two tombstones.
fn fixture(root: &Path) {
    let file_sd = sd(FILE_SDDL);
    let dir_sd = sd(DIR_SDDL);
    fs::create_dir_all(root.join("Files/app")).unwrap();
    fs::create_dir_all(root.join("Files/j")).unwrap();
    fs::create_dir_all(root.join("Hives")).unwrap();
    put(
        root,
        "Files/app.$wcidirs$",
        &transport(0x10, &[(StreamId::Security, "", &dir_sd)]),
        T,
    );
    let eas = encode_eas(&[("KILN.TEST".into(), b"value".to_vec())]).unwrap();
    put(
        root,
        "Files/app/hello.txt",
        &transport(
            0x20,
            &[
                (StreamId::Security, "", &file_sd),
                (StreamId::EaData, "", &eas),
                (StreamId::Data, "", b"hello"),
                (StreamId::AlternateData, ":zone:$DATA", b"ZoneId=3"),
            ],
        ),
        T,
    );
    fs::hard_link(root.join("Files/app/hello.txt"), root.join("Files/app/hl")).unwrap();
    let link = encode_reparse(&Reparse {
        target: "hello.txt".into(),
        mount_point: false,
    })
    .unwrap();
    put(
        root,
        "Files/app/link",
        &transport(
            0x420,
            &[
                (StreamId::Security, "", &file_sd),
                (StreamId::ReparseData, "", &link),
            ],
        ),
        T,
    );
    let junction = encode_reparse(&Reparse {
        target: r"C:\app".into(),
        mount_point: true,
    })
    .unwrap();
    put(
        root,
        "Files/j.$wcidirs$",
        &transport(0x410, &[(StreamId::ReparseData, "", &junction)]),
        T,
    );
    put(root, "Hives/System_Delta", b"regf delta", DELTA);
    put(
        root,
        "tombstones.txt",
        "\u{feff}Version 1.0\n\\gone\n\\app\\old.txt\n".as_bytes(),
        T,
    );
    set_time(&root.join("Files/app"), T);
}

/// (name, typeflag, mode, size, linkname, mtime, PAX records) of every
/// entry, and the data of each.
type Row = (
    String,
    char,
    u32,
    u64,
    String,
    (i64, u32),
    Vec<(String, String)>,
);

fn rows(tar: &[u8]) -> (Vec<Row>, Vec<Vec<u8>>) {
    let mut r = TarReader::new(tar);
    let mut rows = Vec::new();
    let mut data = Vec::new();
    while let Some(h) = r.next_header().unwrap() {
        let Header {
            name,
            linkname,
            typeflag,
            mode,
            size,
            mtime,
            mtime_nanos,
            pax,
            ..
        } = h;
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let pax = pax
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        rows.push((
            text(name),
            typeflag as char,
            mode,
            size,
            text(linkname),
            (mtime, mtime_nanos),
            pax,
        ));
        let mut d = Vec::new();
        r.read_to_end(&mut d).unwrap();
        data.push(d);
    }
    assert_eq!(r.global_headers(), 0);
    (rows, data)
}

/// The full mode of every entry (the layer reader keeps only the
/// permission bits; go-winio's exporter sets only the type bits).
fn modes(tar: &[u8]) -> Vec<u32> {
    let mut archive = ::tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().mode().unwrap())
        .collect()
}

fn records(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn options() -> FolderOptions {
    FolderOptions {
        compression: Compression::Gzip(6),
        threads: 1,
        ..FolderOptions::default()
    }
}

#[test]
fn folder_becomes_the_layer_hcsshim_would_export() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let tar = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap();
    check_layer(&tar[..]).unwrap_or_else(|e| panic!("checker: {e}"));

    let b64 = |b: &[u8]| base64::encode(b);
    let t = T.to_string();
    let d = DELTA.to_string();
    let times = |x: &str| {
        vec![
            ("LIBARCHIVE.creationtime", x.to_string()),
            ("atime", x.to_string()),
            ("ctime", x.to_string()),
        ]
    };
    let with = |mut base: Vec<(&'static str, String)>, more: Vec<(&'static str, String)>| {
        base.extend(more);
        base.sort();
        records(&base)
    };
    let attr = |a: &str| vec![("MSWINDOWS.fileattr", a.to_string())];
    let root = |name: &str| {
        (
            name.to_string(),
            '5',
            0o40000,
            0,
            String::new(),
            (DELTA.secs, 0),
            with(attr("16"), times(&d)),
        )
    };
    let bare = |name: &str| (name.to_string(), '0', 0, 0, String::new(), (0, 0), vec![]);
    let tt = (T.secs, T.nanos);
    let expected: Vec<Row> = vec![
        root("Files"),
        bare("Files/.wh.gone"),
        (
            "Files/app".into(),
            '5',
            0o40000,
            0,
            String::new(),
            tt,
            with(
                attr("16"),
                [times(&t), vec![("MSWINDOWS.rawsd", b64(&sd(DIR_SDDL)))]].concat(),
            ),
        ),
        bare("Files/app/.wh.old.txt"),
        (
            "Files/app/hello.txt".into(),
            '0',
            0o100000,
            5,
            String::new(),
            tt,
            with(
                attr("32"),
                [
                    times(&t),
                    vec![
                        ("MSWINDOWS.rawsd", b64(&sd(FILE_SDDL))),
                        ("MSWINDOWS.xattr.KILN.TEST", b64(b"value")),
                    ],
                ]
                .concat(),
            ),
        ),
        (
            "Files/app/hello.txt:zone".into(),
            '0',
            0o100000,
            8,
            String::new(),
            tt,
            records(&[("atime", t.clone()), ("ctime", t.clone())]),
        ),
        (
            "Files/app/hl".into(),
            '1',
            0o644,
            0,
            "Files/app/hello.txt".into(),
            tt,
            with(attr("32"), times(&t)),
        ),
        (
            "Files/app/link".into(),
            '2',
            0o120000,
            0,
            "hello.txt".into(),
            tt,
            with(
                attr("1056"),
                [times(&t), vec![("MSWINDOWS.rawsd", b64(&sd(FILE_SDDL)))]].concat(),
            ),
        ),
        (
            "Files/j".into(),
            '2',
            0o160000,
            0,
            r"C:\app".into(),
            tt,
            with(
                attr("1040"),
                [times(&t), vec![("MSWINDOWS.mountpoint", "1".into())]].concat(),
            ),
        ),
        root("Hives"),
        (
            "Hives/System_Delta".into(),
            '0',
            0o100000,
            10,
            String::new(),
            (DELTA.secs, 0),
            with(attr("32"), times(&d)),
        ),
    ];
    let (got, data) = rows(&tar);
    assert_eq!(
        modes(&tar),
        expected.iter().map(|e| e.2).collect::<Vec<_>>()
    );
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            g,
            &(
                e.0.clone(),
                e.1,
                e.2 & 0o7777,
                e.3,
                e.4.clone(),
                e.5,
                e.6.clone()
            )
        );
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(data[4], b"hello");
    assert_eq!(data[5], b"ZoneId=3");
    assert_eq!(data[10], b"regf delta");

    // The blob is the same tar, hashed and compressed in one pass.
    let (desc, blob) = folder_to_layer(dir.path(), &options(), Vec::new()).unwrap();
    assert_eq!(desc.diff_id, Digest::of(&tar));
    assert_eq!(desc.digest, Digest::of(&blob));
    check_layer(&blob[..]).unwrap();
}

/// What the imported layer would hold after hcsshim's post-import steps,
/// in the folder's form: `imported`'s tombstones written back as
/// `tombstones.txt` and its links as second names, so that the folder
/// reads back as the whole layer.
fn as_exported(folder: &Path, imported: &ImportedFolder) {
    let mut text = format!("{TOMBSTONES_HEADER}\n");
    for t in &imported.tombstones {
        text.push_str(t.strip_prefix("Files").unwrap());
        text.push('\n');
    }
    fs::write(folder.join("tombstones.txt"), text).unwrap();
    let path = |rel: &str| folder.join(rel.replace('\\', "/"));
    for (name, target) in &imported.links {
        fs::hard_link(path(target), path(name)).unwrap();
    }
}

#[test]
fn layer_to_folder_and_back_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let tar = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap();
    let (_, blob) = folder_to_layer(dir.path(), &options(), Vec::new()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let imported = layer_to_folder(&blob[..], out.path()).unwrap();
    // Relative to the layer directory, as hcsshim applies them after
    // ImportLayer; neither reaches the folder.
    assert_eq!(imported.tombstones, [r"Files\gone", r"Files\app\old.txt"]);
    assert_eq!(
        imported.links,
        [(
            r"Files\app\hl".to_string(),
            r"Files\app\hello.txt".to_string()
        )]
    );
    assert!(!out.path().join("tombstones.txt").exists());
    assert!(!out.path().join("Files/app/hl").exists());
    let dirs: Vec<(&str, u32, PaxTime)> = imported
        .dirs
        .iter()
        .map(|(name, info)| (name.as_str(), info.attributes, info.last_write))
        .collect();
    assert_eq!(
        dirs,
        [
            ("Files", 0x10, DELTA),
            (r"Files\app", 0x10, T),
            (r"Files\j", 0x410, T),
            ("Hives", 0x10, DELTA),
        ]
    );
    as_exported(out.path(), &imported);
    // Streams in go-winio's order come out as they went in.
    for rel in [
        "Files/app/hello.txt",
        "Files/app.$wcidirs$",
        "Files/app/link",
        "Files/j.$wcidirs$",
        "Hives/System_Delta",
        "tombstones.txt",
    ] {
        assert_eq!(
            fs::read(out.path().join(rel)).unwrap(),
            fs::read(dir.path().join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(out.path().join("Files.$wcidirs$").is_file());
    assert!(out.path().join("Hives.$wcidirs$").is_file());

    let again = folder_to_tar(out.path(), &options(), Vec::new()).unwrap();
    assert_eq!(Digest::of(&again), Digest::of(&tar));
}

#[test]
fn a_kiln_written_layer_survives_the_folder() {
    let writer = WindowsLayerWriter::new(crate::windows::WindowsLayerOptions {
        compression: Compression::None,
        threads: 1,
        source_date_epoch: Some(1_600_000_000),
        docker_media_type: false,
    });
    let t = PaxTime::from_secs(1_500_000_000);
    let entries = vec![
        WindowsEntry::file(&["app", "x.txt"], "data", t),
        WindowsEntry::symlink(&["app", "l"], "/app/x.txt", false, t),
        WindowsEntry::whiteout(&["old"]),
    ];
    let tar = writer.write_tar(entries, Vec::new()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let imported = layer_to_folder(&tar[..], out.path()).unwrap();
    assert_eq!(imported.tombstones, [r"Files\old"]);
    as_exported(out.path(), &imported);
    let back = folder_to_tar(out.path(), &options(), Vec::new()).unwrap();
    check_layer(&back[..]).unwrap();
    let (got, data) = rows(&back);
    let names: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/.wh.old",
            "Files/app",
            "Files/app/l",
            "Files/app/x.txt",
            "Hives"
        ]
    );
    assert_eq!(got[3].4, r"C:\app\x.txt");
    assert_eq!(data[4], b"data");
    // The writer's records survive; only the mode is go-winio's.
    let (orig, _) = rows(&tar);
    assert_eq!(orig[4].6, got[4].6);
    assert_eq!(modes(&back)[4], 0o100000);
}

#[test]
fn sparse_files_are_densified() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("Files")).unwrap();
    fs::create_dir_all(dir.path().join("Hives")).unwrap();
    put(
        dir.path(),
        "tombstones.txt",
        "\u{feff}Version 1.0\r\n".as_bytes(),
        T,
    );
    let mut w = BackupStreamWriter::new(0x220u32.to_le_bytes().to_vec());
    let sparse = |offset: u64, size: u64| StreamHeader {
        offset,
        ..StreamHeader::new(StreamId::SparseBlock, size)
    };
    w.write_header(&StreamHeader {
        attributes: stream::STREAM_SPARSE_ATTRIBUTE,
        ..StreamHeader::new(StreamId::Data, 0)
    })
    .unwrap();
    w.write_header(&sparse(2, 3)).unwrap();
    std::io::Write::write_all(&mut w, b"abc").unwrap();
    w.write_header(&sparse(8, 1)).unwrap();
    std::io::Write::write_all(&mut w, b"z").unwrap();
    w.write_header(&sparse(12, 0)).unwrap();
    put(dir.path(), "Files/s", &w.finish().unwrap(), T);
    let tar = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap();
    let (got, data) = rows(&tar);
    assert_eq!(got[1].0, "Files/s");
    assert_eq!(got[1].3, 12);
    assert_eq!(data[1], b"\0\0abc\0\0\0z\0\0\0");
}

#[test]
fn stream_framing_is_go_winio_s() {
    // An alternate stream ":a:$DATA" of two bytes, then a sparse block,
    // written out by hand: packed 20-byte headers, no padding.
    let mut raw = Vec::new();
    raw.extend_from_slice(&4u32.to_le_bytes());
    raw.extend_from_slice(&0u32.to_le_bytes());
    raw.extend_from_slice(&2u64.to_le_bytes());
    raw.extend_from_slice(&16u32.to_le_bytes());
    for u in ":a:$DATA".encode_utf16() {
        raw.extend_from_slice(&u.to_le_bytes());
    }
    raw.extend_from_slice(b"xy");
    raw.extend_from_slice(&9u32.to_le_bytes());
    raw.extend_from_slice(&8u32.to_le_bytes());
    raw.extend_from_slice(&9u64.to_le_bytes());
    raw.extend_from_slice(&0u32.to_le_bytes());
    raw.extend_from_slice(&7u64.to_le_bytes());
    raw.push(b'q');

    let mut w = BackupStreamWriter::new(Vec::new());
    w.write_header(&StreamHeader {
        name: ":a:$DATA".into(),
        ..StreamHeader::new(StreamId::AlternateData, 2)
    })
    .unwrap();
    std::io::Write::write_all(&mut w, b"xy").unwrap();
    let block = StreamHeader {
        attributes: 8,
        offset: 7,
        ..StreamHeader::new(StreamId::SparseBlock, 1)
    };
    w.write_header(&block).unwrap();
    std::io::Write::write_all(&mut w, b"q").unwrap();
    assert_eq!(w.finish().unwrap(), raw);

    let mut r = BackupStreamReader::with_len(&raw[..], raw.len() as u64);
    let h = r.next_header().unwrap().unwrap();
    assert_eq!(
        (h.id, h.name.as_str(), h.size),
        (StreamId::AlternateData, ":a:$DATA", 2)
    );
    // Left unread: skipped by the next header.
    assert_eq!(r.next_header().unwrap().unwrap(), block);
    let mut q = Vec::new();
    r.read_to_end(&mut q).unwrap();
    assert_eq!(q, b"q");
    assert!(r.next_header().unwrap().is_none());
}

#[test]
fn hostile_streams_fail_clearly() {
    let header = |id: u32, size: u64, name_len: u32| {
        let mut raw = Vec::new();
        raw.extend_from_slice(&id.to_le_bytes());
        raw.extend_from_slice(&0u32.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&name_len.to_le_bytes());
        raw
    };
    let first = |raw: &[u8], known: bool| -> String {
        let mut r = if known {
            BackupStreamReader::with_len(raw, raw.len() as u64)
        } else {
            BackupStreamReader::new(raw)
        };
        match r.next_header() {
            Err(e) => e.to_string(),
            Ok(Some(_)) => {
                let mut sink = Vec::new();
                match r.read_to_end(&mut sink) {
                    Err(e) => e.to_string(),
                    Ok(_) => match r.next_header() {
                        Err(e) => e.to_string(),
                        Ok(_) => "no error".into(),
                    },
                }
            }
            Ok(None) => "no error".into(),
        }
    };
    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (
            header(1, 5, 0)[..12].to_vec(),
            false,
            "inside a stream header",
        ),
        (
            [header(1, 5, 0), b"ab".to_vec()].concat(),
            true,
            "only 2 bytes remain",
        ),
        (
            [header(1, 5, 0), b"ab".to_vec()].concat(),
            false,
            "3 bytes before the end",
        ),
        (header(1, 0, 0xFFFF_FFF0), false, "stream name length"),
        (header(4, 0, 3), false, "stream name length"),
        (header(42, 0, 0), false, "unknown backup stream id 42"),
        (header(9, 4, 0), false, "no room for its 8-byte offset"),
        (header(1, u64::MAX, 0), false, "past what Windows can hold"),
        (
            [header(4, 0, 4), vec![0, 0xd8, 0x41, 0]].concat(),
            false,
            "not valid UTF-16",
        ),
    ];
    for (raw, known, words) in cases {
        let err = first(&raw, known);
        assert!(err.contains(words), "want {words:?}, got {err}");
    }
    let mut w = BackupStreamWriter::new(Vec::new());
    w.write_header(&StreamHeader::new(StreamId::Data, 2))
        .unwrap();
    assert!(std::io::Write::write_all(&mut w, b"abc").is_err());
    assert!(w
        .finish()
        .unwrap_err()
        .to_string()
        .contains("missing 2 bytes"));
}

#[test]
fn metadata_codecs_follow_go_winio() {
    let eas = vec![
        ("A".to_string(), b"1".to_vec()),
        ("LONGER".to_string(), vec![]),
    ];
    let raw = encode_eas(&eas).unwrap();
    // 8 + 1 + 1 + 1 = 11, padded to 12; the last entry is padded too.
    assert_eq!(&raw[..4], &12u32.to_le_bytes());
    assert_eq!(raw.len(), 12 + 16);
    assert_eq!(decode_eas(&raw).unwrap(), eas);
    assert!(decode_eas(&raw[..10]).is_err());

    for (target, mount) in [("..\\x", false), (r"C:\x", false), (r"C:\y", true)] {
        let rp = Reparse {
            target: target.into(),
            mount_point: mount,
        };
        let raw = encode_reparse(&rp).unwrap();
        assert_eq!(decode_reparse(&raw).unwrap(), rp);
    }
    // A relative symlink carries SYMLINK_FLAG_RELATIVE, an absolute one not.
    let flags = |t: &str| {
        let raw = encode_reparse(&Reparse {
            target: t.into(),
            mount_point: false,
        })
        .unwrap();
        u32::from_le_bytes(raw[16..20].try_into().unwrap())
    };
    assert_eq!((flags("x"), flags(r"C:\x")), (1, 0));
    let mut other = encode_reparse(&Reparse {
        target: "x".into(),
        mount_point: false,
    })
    .unwrap();
    other[..4].copy_from_slice(&0x8000_0017u32.to_le_bytes());
    assert!(decode_reparse(&other)
        .unwrap_err()
        .contains("unsupported reparse point"));
    assert!(decode_reparse(&[0; 20]).is_err());
}

/// A minimal valid folder with one `Files/` transport file `bytes`.
fn folder_with(bytes: &[u8], tombstones: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("Files")).unwrap();
    fs::create_dir_all(dir.path().join("Hives")).unwrap();
    put(dir.path(), "tombstones.txt", tombstones.as_bytes(), T);
    put(dir.path(), "Files/x", bytes, T);
    dir
}

#[test]
fn hostile_folders_fail_clearly() {
    const OK: &str = "\u{feff}Version 1.0\n";
    let data = |size: u64, content: &[u8]| {
        let mut raw = 0x20u32.to_le_bytes().to_vec();
        raw.extend_from_slice(&1u32.to_le_bytes());
        raw.extend_from_slice(&0u32.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&0u32.to_le_bytes());
        raw.extend_from_slice(content);
        raw
    };
    let cases: Vec<(Vec<u8>, String, &str)> = vec![
        (
            data(100, b"short"),
            OK.into(),
            "Files/x: a Data stream claims 100 bytes",
        ),
        (
            data(5, b"hello")[..20].to_vec(),
            OK.into(),
            "inside a stream header",
        ),
        (
            vec![0x20, 0],
            OK.into(),
            "shorter than its 4-byte attributes",
        ),
        (
            transport(0x10, &[]),
            OK.into(),
            "have FILE_ATTRIBUTE_DIRECTORY, but the folder holds a file",
        ),
        (
            transport(0x20, &[(StreamId::Security, "", b"junk")]),
            OK.into(),
            "security descriptor",
        ),
        (
            transport(0x20, &[(StreamId::AlternateData, ":a:b:$DATA", b"")]),
            OK.into(),
            "is not `:name:$DATA`",
        ),
        (
            data(0, b""),
            format!("{OK}\\..\\etc\\passwd\n"),
            "not a file name",
        ),
        (
            data(0, b""),
            format!("{OK}\\a/b\n"),
            "tombstones.txt: line 2",
        ),
        (data(0, b""), format!("{OK}rel\n"), "starting with `\\`"),
        (data(0, b""), format!("{OK}\n"), "line 2"),
        (
            data(0, b""),
            "Version 1.0\n".into(),
            "invalid tombstones file",
        ),
        (
            data(0, b""),
            format!("{OK}\\x\n"),
            "both present in the folder and listed",
        ),
        (
            data(0, b""),
            format!("{OK}\\nodir\\y\n"),
            "its directory is not in the folder",
        ),
    ];
    for (bytes, tombstones, words) in cases {
        let dir = folder_with(&bytes, &tombstones);
        let err = folder_to_tar(dir.path(), &options(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "want {words:?}, got {err}");
    }

    let dir = folder_with(&data(0, b""), OK);
    fs::create_dir(dir.path().join("Files/d")).unwrap();
    let err = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("d.$wcidirs$ holding its metadata"),
        "{err}"
    );

    let dir = folder_with(&data(0, b""), OK);
    if symlink_file("/etc/passwd", &dir.path().join("Files/y")) {
        let err = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap_err();
        assert!(
            err.to_string().starts_with("Files/y: neither a file"),
            "{err}"
        );
    }

    let dir = folder_with(&data(0, b""), OK);
    fs::create_dir(dir.path().join("UtilityVM")).unwrap();
    let err = folder_to_tar(dir.path(), &options(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("utility VM"), "{err}");
}

/// A tar entry: name, typeflag, linkname, PAX records, data.
pub(super) type E<'a> = (&'a str, u8, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);

/// A plain tar of the entries.
pub(super) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    use crate::layer::tar::{write_header, write_padding, write_trailer, Header as TarHeader};
    let mut out = Vec::new();
    for (name, typeflag, linkname, records, data) in entries {
        let pax: Vec<(String, Vec<u8>)> = records
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let h = TarHeader {
            name,
            typeflag: *typeflag,
            mode: 0,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            mtime: 0,
            linkname,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
            pax: &pax,
        };
        write_header(&mut out, &h).unwrap();
        out.extend_from_slice(data);
        write_padding(&mut out, data.len() as u64).unwrap();
    }
    write_trailer(&mut out).unwrap();
    out
}

#[test]
fn hostile_layers_fail_clearly_and_write_nothing_outside() {
    const DIR: &[(&str, &str)] = &[("MSWINDOWS.fileattr", "16")];
    const FILES: E = ("Files", b'5', "", DIR, b"");
    const HIVES: E = ("Hives", b'5', "", DIR, b"");
    let cases: Vec<(Vec<E>, &str)> = vec![
        (
            vec![FILES, ("Files/../../escape", b'0', "", &[], b"x")],
            "Files/../../escape: names must be relative",
        ),
        (
            vec![FILES, ("/etc/passwd", b'0', "", &[], b"x")],
            "names must be relative",
        ),
        (
            vec![FILES, ("etc/passwd", b'0', "", &[], b"x")],
            "outside `Files/`",
        ),
        (
            vec![FILES, ("Files/a\\..\\..\\b", b'0', "", &[], b"x")],
            "Windows does not allow",
        ),
        (
            vec![FILES, ("Files/.wh...", b'0', "", &[], b"")],
            "whiteout of",
        ),
        (
            vec![FILES, HIVES, ("Hives/.wh.x", b'0', "", &[], b"")],
            "invalid tombstone",
        ),
        (
            vec![FILES, ("Files/l", b'1', "Files/parent/file", &[], b"")],
            "not a file earlier in this layer",
        ),
        (
            vec![FILES, ("UtilityVM", b'5', "", DIR, b"")],
            "not supported",
        ),
        (
            vec![FILES, ("Files/d.$wcidirs$", b'0', "", &[], b"")],
            "reserved",
        ),
        (
            vec![
                FILES,
                ("Files/f", b'0', "", &[], b""),
                (
                    "Files/j",
                    b'2',
                    r"C:\x",
                    &[
                        ("MSWINDOWS.fileattr", "1040"),
                        ("MSWINDOWS.mountpoint", "1"),
                    ],
                    b"",
                ),
                ("Files/j/l", b'1', "Files/f", &[], b""),
            ],
            "\"Files/j\" has no entry before it",
        ),
        (
            vec![FILES, HIVES, ("Hives/sub", b'5', "", DIR, b"")],
            "only registry hive files",
        ),
        (
            vec![
                FILES,
                ("Files/f", b'0', "", &[], b""),
                ("Files/no/l", b'1', "Files/f", &[], b""),
            ],
            "\"Files/no\" has no entry before it",
        ),
        (
            vec![FILES, ("Files/null", b'3', "", &[], b"")],
            "empty regular file",
        ),
        (vec![FILES], "no \"Hives\" directory entry"),
    ];
    for (entries, words) in cases {
        let tar = tar_of(&entries);
        let dest = tempfile::tempdir().unwrap();
        let inner = dest.path().join("folder");
        fs::create_dir(&inner).unwrap();
        let err = layer_to_folder(&tar[..], &inner).unwrap_err().to_string();
        assert!(err.contains(words), "want {words:?}, got {err}");
        let outside: Vec<_> = fs::read_dir(dest.path()).unwrap().collect();
        assert_eq!(outside.len(), 1, "{words}: wrote beside the folder");
    }

    // A truncated layer.
    let mut tar = tar_of(&[FILES, ("Files/f", b'0', "", &[], &[7u8; 2000])]);
    tar.truncate(1024 + 512 + 700);
    let dest = tempfile::tempdir().unwrap();
    let err = layer_to_folder(&tar[..], dest.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Files/f"), "{err}");

    // A destination that is not empty, with a symlink someone left there.
    let dest = tempfile::tempdir().unwrap();
    if symlink_file("/tmp", &dest.path().join("Files")) {
        let tar = tar_of(&[FILES, HIVES]);
        let err = layer_to_folder(&tar[..], dest.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be an empty directory"), "{err}");
    }
}

#[test]
fn times_follow_the_chosen_source_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let clamp = 1_650_000_000;
    let opts = FolderOptions {
        source_date_epoch: Some(clamp),
        ..options()
    };
    let tar = folder_to_tar(dir.path(), &opts, Vec::new()).unwrap();
    let (got, _) = rows(&tar);
    for r in &got {
        if r.0.contains(".wh.") {
            continue;
        }
        assert_eq!(r.5, (clamp, 0), "{}", r.0);
        for (k, v) in &r.6 {
            if ["LIBARCHIVE.creationtime", "atime", "ctime"].contains(&k.as_str()) {
                assert_eq!(v, &clamp.to_string(), "{} {k}", r.0);
            }
        }
    }
    // From the file's metadata: the access time is the file's own.
    let path = dir.path().join("Files/app/link");
    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    File::open(&path)
        .unwrap()
        .set_times(
            FileTimes::new()
                .set_accessed(when)
                .set_modified(UNIX_EPOCH + Duration::new(T.secs as u64, T.nanos)),
        )
        .unwrap();
    let opts = FolderOptions {
        times: TimeSource::Metadata,
        ..options()
    };
    let tar = folder_to_tar(dir.path(), &opts, Vec::new()).unwrap();
    let (got, _) = rows(&tar);
    let link = got.iter().find(|r| r.0 == "Files/app/link").unwrap();
    assert!(
        link.6.contains(&("atime".into(), "1600000000".into())),
        "{:?}",
        link.6
    );
}

/// Makes a symlink as the host does (on Windows, a file symlink) and says
/// whether the host shows it as one. Windows needs a privilege or Developer
/// Mode to make one, and Wine 8 makes a Unix symlink that it then shows as
/// the file it points to (or not at all): there the check is skipped.
fn symlink_file(target: &str, link: &std::path::Path) -> bool {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, link).unwrap();
    #[cfg(windows)]
    if let Err(e) = std::os::windows::fs::symlink_file(target, link) {
        eprintln!("skipped: cannot create symlinks here: {e}");
        return false;
    }
    let shown = fs::symlink_metadata(link).is_ok_and(|md| md.is_symlink());
    if !shown {
        eprintln!("skipped: this host does not show symlinks as reparse points");
    }
    shown
}
