use super::*;
use crate::windows::sd::{SecurityDescriptor, DIR_SDDL, FILE_SDDL};
use crate::windows::transport::layer_to_folder;
use crate::windows::transport::meta::{encode_eas, encode_reparse, Reparse};
use crate::windows::transport::stream::{BackupStreamReader, StreamId};
use crate::windows::transport::tests::{tar_of, E};
use crate::windows::{base64, PaxTime};

const DIR: &[(&str, &str)] = &[("MSWINDOWS.fileattr", "16")];

fn sd(sddl: &str) -> Vec<u8> {
    SecurityDescriptor::parse_sddl(sddl).unwrap().to_bytes()
}

/// Every entry and the backup stream read after it, read a few bytes at
/// a time as a host copying through a small buffer would.
fn read_all(tar: &[u8]) -> (Vec<(BaseEntry, Vec<u8>)>, bool) {
    let mut r = BaseLayerReader::new(tar);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut stream = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            stream.extend_from_slice(&buf[..n]);
        }
        out.push((e, stream));
    }
    (out, r.utility_vm())
}

/// A backup stream's (id, name, content) in order.
fn streams(bytes: &[u8]) -> Vec<(StreamId, String, Vec<u8>)> {
    let mut r = BackupStreamReader::with_len(bytes, bytes.len() as u64);
    let mut out = Vec::new();
    while let Some(h) = r.next_header().unwrap() {
        let mut content = Vec::new();
        r.read_to_end(&mut content).unwrap();
        out.push((h.id, h.name, content));
    }
    out
}

fn file(entry: &BaseEntry) -> &BaseFile {
    match entry {
        BaseEntry::Create(f) => f,
        BaseEntry::Link { .. } => panic!("{entry:?} is a link"),
    }
}

/// The fixture base layer: `Files` with all four times, a directory and a
/// file with security descriptors, the file's EA and alternate data
/// stream, a hard link and a symlink to it, and a utility VM with its BCD
/// store; no `Hives`, which base layers lack.
fn fixture() -> (Vec<u8>, String, String, String) {
    let dir_sd = base64::encode(&sd(DIR_SDDL));
    let file_sd = base64::encode(&sd(FILE_SDDL));
    let ea = base64::encode(b"value");
    let files_records: &[(&str, &str)] = &[
        ("MSWINDOWS.fileattr", "16"),
        ("mtime", "1700000000.5"),
        ("LIBARCHIVE.creationtime", "1600000000"),
        ("atime", "1650000000.25"),
        ("ctime", "1690000000"),
    ];
    let app: &[(&str, &str)] = &[("MSWINDOWS.fileattr", "16"), ("MSWINDOWS.rawsd", &dir_sd)];
    let hello: &[(&str, &str)] = &[
        ("MSWINDOWS.fileattr", "32"),
        ("MSWINDOWS.rawsd", &file_sd),
        ("MSWINDOWS.xattr.KILN.TEST", &ea),
    ];
    let entries: Vec<E> = vec![
        ("Files", b'5', "", files_records, b""),
        ("Files/app", b'5', "", app, b""),
        ("Files/app/hello.txt", b'0', "", hello, b"hello world"),
        ("Files/app/hello.txt:zone", b'0', "", &[], b"ZoneId=3"),
        ("Files/app/hl", b'1', "Files/app/hello.txt", &[], b""),
        (
            "Files/app/link",
            b'2',
            "hello.txt",
            &[("MSWINDOWS.fileattr", "1056")],
            b"",
        ),
        ("UtilityVM", b'5', "", DIR, b""),
        ("UtilityVM/Files", b'5', "", DIR, b""),
        ("UtilityVM/Files/EFI", b'5', "", DIR, b""),
        ("UtilityVM/Files/EFI/Microsoft", b'5', "", DIR, b""),
        ("UtilityVM/Files/EFI/Microsoft/Boot", b'5', "", DIR, b""),
        (
            "UtilityVM/Files/EFI/Microsoft/Boot/BCD",
            b'0',
            "",
            &[("MSWINDOWS.fileattr", "32")],
            b"bcd",
        ),
    ];
    (tar_of(&entries), dir_sd, file_sd, ea)
}

#[test]
fn a_base_layer_reads_as_hcsshims_base_layer_writer_writes_it() {
    let (tar, _, _, _) = fixture();
    let (got, utility_vm) = read_all(&tar);
    assert!(utility_vm);
    let names: Vec<String> = got
        .iter()
        .map(|(e, _)| match e {
            BaseEntry::Create(f) => f.name.clone(),
            BaseEntry::Link { name, target } => format!("{name} -> {target}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "Files",
            r"Files\app",
            r"Files\app\hello.txt",
            r"Files\app\hl -> Files\app\hello.txt",
            r"Files\app\link",
            "UtilityVM",
            r"UtilityVM\Files",
            r"UtilityVM\Files\EFI",
            r"UtilityVM\Files\EFI\Microsoft",
            r"UtilityVM\Files\EFI\Microsoft\Boot",
            r"UtilityVM\Files\EFI\Microsoft\Boot\BCD",
        ]
    );

    // `Files`: every time from its own record, no stream.
    let (files, stream) = &got[0];
    let files = file(files);
    assert_eq!(
        files.info,
        FileBasicInfo {
            creation: PaxTime::from_secs(1_600_000_000),
            last_access: PaxTime::new(1_650_000_000, 250_000_000),
            last_write: PaxTime::new(1_700_000_000, 500_000_000),
            change: PaxTime::from_secs(1_690_000_000),
            attributes: 0x10,
        }
    );
    assert!(files.info.is_directory());
    assert!(stream.is_empty());
    assert_eq!(files.backup_copy, None);

    // A directory: its descriptor only; absent times are the write time.
    let (app, stream) = &got[1];
    let app = file(app);
    assert!(app.info.is_directory());
    let epoch = PaxTime::from_secs(0);
    assert_eq!(
        (app.info.creation, app.info.last_access, app.info.change),
        (epoch, epoch, epoch)
    );
    assert_eq!(
        streams(stream),
        [(StreamId::Security, String::new(), sd(DIR_SDDL))]
    );

    // A file: descriptor, EAs, data, then its alternate data stream.
    let (hello, stream) = &got[2];
    let hello = file(hello);
    assert_eq!(hello.info.attributes, 0x20);
    assert!(!hello.info.is_directory());
    let eas = encode_eas(&[("KILN.TEST".into(), b"value".to_vec())]).unwrap();
    assert_eq!(
        streams(stream),
        [
            (StreamId::Security, String::new(), sd(FILE_SDDL)),
            (StreamId::EaData, String::new(), eas),
            (StreamId::Data, String::new(), b"hello world".to_vec()),
            (
                StreamId::AlternateData,
                ":zone:$DATA".into(),
                b"ZoneId=3".to_vec()
            ),
        ]
    );

    // A hard link has no stream.
    assert!(got[3].1.is_empty());

    // A symlink: reparse data, no data stream.
    let (link, stream) = &got[4];
    assert_eq!(file(link).info.attributes, 0x420);
    let reparse = encode_reparse(&Reparse {
        target: "hello.txt".into(),
        mount_point: false,
    })
    .unwrap();
    assert_eq!(
        streams(stream),
        [(StreamId::ReparseData, String::new(), reparse)]
    );

    // The utility VM's BCD store is also saved beside the layer.
    let (bcd, stream) = &got[10];
    assert_eq!(file(bcd).backup_copy, Some("bcd.bak"));
    assert_eq!(
        streams(stream),
        [(StreamId::Data, String::new(), b"bcd".to_vec())]
    );
}

/// The same header gives the same stream as the transport folder import,
/// which writes it after the attributes: the two share one builder.
#[test]
fn streams_match_the_transport_folder_import() {
    let (tar, _, file_sd, ea) = fixture();
    let hello: &[(&str, &str)] = &[
        ("MSWINDOWS.fileattr", "32"),
        ("MSWINDOWS.rawsd", &file_sd),
        ("MSWINDOWS.xattr.KILN.TEST", &ea),
    ];
    let layer = tar_of(&[
        ("Files", b'5', "", DIR, b""),
        ("Files/hello.txt", b'0', "", hello, b"hello world"),
        ("Files/hello.txt:zone", b'0', "", &[], b"ZoneId=3"),
        ("Hives", b'5', "", DIR, b""),
    ]);
    let out = tempfile::tempdir().unwrap();
    layer_to_folder(&layer[..], out.path()).unwrap();
    let transport = std::fs::read(out.path().join("Files/hello.txt")).unwrap();
    let (got, utility_vm) = read_all(&layer);
    assert!(!utility_vm);
    assert_eq!(transport[..4], 0x20u32.to_le_bytes());
    assert_eq!(got[1].1, transport[4..]);
    let (fixture, _) = read_all(&tar);
    assert_eq!(fixture[2].1, got[1].1);
}

#[test]
fn an_unread_stream_is_skipped_with_its_alternate_data_streams() {
    let (tar, _, _, _) = fixture();
    let mut r = BaseLayerReader::new(&tar[..]);
    r.next_entry().unwrap();
    r.next_entry().unwrap();
    let hello = r.next_entry().unwrap().unwrap();
    assert_eq!(file(&hello).name, r"Files\app\hello.txt");
    let mut start = [0u8; 30];
    r.read_exact(&mut start).unwrap();
    match r.next_entry().unwrap().unwrap() {
        BaseEntry::Link { name, target } => {
            assert_eq!(
                (name.as_str(), target.as_str()),
                (r"Files\app\hl", r"Files\app\hello.txt")
            )
        }
        other => panic!("{other:?}"),
    }
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn what_a_base_layer_cannot_hold_is_refused_by_name() {
    const FILES: E = ("Files", b'5', "", DIR, b"");
    let cases: Vec<(Vec<E>, &str)> = vec![
        (
            vec![FILES, ("Files/.wh.gone", b'0', "", &[], b"")],
            "Files/.wh.gone: a whiteout in a base layer",
        ),
        (
            vec![FILES, ("Files/.wh..wh..opq", b'0', "", &[], b"")],
            "base layer cannot have tombstones",
        ),
        (
            vec![FILES, ("Files/../../escape", b'0', "", &[], b"x")],
            "Files/../../escape: names must be relative",
        ),
        (
            vec![FILES, ("Files/CON", b'0', "", &[], b"x")],
            "DOS device",
        ),
        (
            vec![FILES, ("etc/passwd", b'0', "", &[], b"x")],
            "etc/passwd: outside `Files/`",
        ),
        (
            vec![FILES, ("Files/l", b'1', "Files/elsewhere", &[], b"")],
            "Files/l: hard link to \"Files/elsewhere\", which is not a file earlier",
        ),
        (
            vec![FILES, ("Files/l", b'1', "Files/l", &[], b"")],
            "which is not a file earlier",
        ),
        (
            vec![
                FILES,
                ("Files/a", b'0', "", &[], b"a"),
                ("Files/b", b'0', "", &[], b"b"),
                ("Files/a:s", b'0', "", &[], b"s"),
            ],
            "Files/a:s: `:` makes this an alternate data stream",
        ),
        (
            vec![("UtilityVM", b'5', "", DIR, b"")],
            "no \"Files\" directory entry",
        ),
        (
            vec![FILES, ("Files/null", b'3', "", &[], b"")],
            "empty regular file",
        ),
    ];
    for (entries, words) in cases {
        let tar = tar_of(&entries);
        let mut r = BaseLayerReader::new(&tar[..]);
        let err = loop {
            match r.next_entry() {
                Ok(Some(_)) => {
                    let mut sink = Vec::new();
                    if let Err(e) = r.read_to_end(&mut sink) {
                        break e.to_string();
                    }
                }
                Ok(None) => panic!("{words}: accepted"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains(words), "want {words:?}, got {err}");
    }

    // Truncated data, while the host reads it and when it is skipped.
    let mut tar = tar_of(&[FILES, ("Files/f", b'0', "", &[], &[7u8; 2000])]);
    tar.truncate(1024 + 512 + 700);
    let mut r = BaseLayerReader::new(&tar[..]);
    r.next_entry().unwrap();
    r.next_entry().unwrap();
    let err = r.read_to_end(&mut Vec::new()).unwrap_err().to_string();
    assert!(err.starts_with("Files/f: reading the data: "), "{err}");
    let mut r = BaseLayerReader::new(&tar[..]);
    r.next_entry().unwrap();
    r.next_entry().unwrap();
    let err = r.next_entry().unwrap_err().to_string();
    assert!(err.starts_with("Files/f: reading the data: "), "{err}");
}

#[test]
fn filetimes_count_100ns_from_1601() {
    let info = |t: PaxTime| FileBasicInfo {
        creation: t,
        last_access: PaxTime::from_secs(1),
        last_write: PaxTime::new(1, 599),
        change: PaxTime::from_secs(-11_644_473_601),
        attributes: 0,
    };
    assert_eq!(
        info(PaxTime::from_secs(0)).filetimes(),
        [
            116_444_736_000_000_000,
            116_444_736_010_000_000,
            116_444_736_010_000_005,
            1
        ]
    );
    // −0.5 s, as PAX writes it.
    let half: PaxTime = "-0.5".parse().unwrap();
    assert_eq!(info(half).filetimes()[0], 116_444_735_995_000_000);
}
