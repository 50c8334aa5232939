//! What hcsshim's importer reads from one layer tar header, shared by the
//! transport folder import and the base-layer reader so that both build
//! the same metadata and the same backup stream: go-winio's
//! `FileInfoFromHeader` (attributes and times) and the streams
//! `WriteBackupStreamFromTarFile` writes before an entry's data
//! (security descriptor, EAs, reparse data), then its data and alternate
//! data streams.
//!
//! Every function here takes a header the import simulator's rules have
//! already accepted.

use super::meta::{encode_eas, encode_reparse, Reparse};
use super::stream::{BackupStreamWriter, StreamHeader, StreamId};
use super::TransportError;
use crate::layer::read::{Header, TarError, TarReader};
use crate::windows::check::record;
use crate::windows::sd::SecurityDescriptor;
use crate::windows::{base64, PaxTime};
use std::io::Read;

/// `FILE_ATTRIBUTE_DIRECTORY`.
pub(super) const ATTR_DIRECTORY: u32 = 0x10;

/// The seconds from 1601-01-01, where a `FILETIME` counts from, to the
/// Unix epoch.
const FILETIME_EPOCH_SECS: i128 = 11_644_473_600;

/// An entry's Win32 attributes and times, as go-winio's
/// `FileInfoFromHeader` reads them and `SetFileBasicInfo` applies them
/// (`FILE_BASIC_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileBasicInfo {
    /// `LIBARCHIVE.creationtime`, else the write time.
    pub creation: PaxTime,
    /// The PAX `atime`, else the write time.
    pub last_access: PaxTime,
    /// The tar mtime.
    pub last_write: PaxTime,
    /// The PAX `ctime`, else the write time.
    pub change: PaxTime,
    /// `MSWINDOWS.fileattr`; without it, `FILE_ATTRIBUTE_DIRECTORY` for a
    /// directory entry and 0 for anything else.
    pub attributes: u32,
}

impl FileBasicInfo {
    /// Whether the entry is created as a directory (hcsshim passes
    /// `FILE_DIRECTORY_FILE` on this bit alone, whatever the typeflag).
    pub fn is_directory(&self) -> bool {
        self.attributes & ATTR_DIRECTORY != 0
    }

    /// The four times as `FILETIME` values (100 ns steps since 1601), in
    /// `FILE_BASIC_INFO`'s order: creation, last access, last write,
    /// change. A time before 1601 becomes the earliest a `FILETIME` can
    /// set, since 0 and -1 there mean "leave it" and "stop updating it".
    pub fn filetimes(&self) -> [i64; 4] {
        [
            self.creation,
            self.last_access,
            self.last_write,
            self.change,
        ]
        .map(|t| {
            let ticks =
                (i128::from(t.secs) + FILETIME_EPOCH_SECS) * 10_000_000 + i128::from(t.nanos / 100);
            ticks.clamp(1, i128::from(i64::MAX)) as i64
        })
    }
}

/// go-winio's `FileInfoFromHeader`. Where go-winio would convert an absent
/// `atime` or `ctime` (Go's zero time, whose Unix nanoseconds overflow) to
/// a meaningless date, the write time stands in.
pub(super) fn basic_info(h: &Header) -> FileBasicInfo {
    let attributes = match record(h, "MSWINDOWS.fileattr") {
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .expect("the rules checked it"),
        None if h.typeflag == b'5' => ATTR_DIRECTORY,
        None => 0,
    };
    let write = PaxTime::new(h.mtime, h.mtime_nanos);
    let time = |key: &str| -> PaxTime {
        record(h, key)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(write)
    };
    FileBasicInfo {
        creation: time("LIBARCHIVE.creationtime"),
        last_access: time("atime"),
        last_write: write,
        change: time("ctime"),
        attributes,
    }
}

/// Whether the entry carries data (go-winio writes a data stream for
/// `TypeReg` only, which Go's reader also makes of the old `\0`).
pub(super) fn is_regular(h: &Header) -> bool {
    matches!(h.typeflag, b'0' | 0)
}

/// The streams `WriteBackupStreamFromTarFile` writes before the data, in
/// its order and framing: the security descriptor (`MSWINDOWS.rawsd`, else
/// the legacy SDDL `MSWINDOWS.sd`), the EAs (`MSWINDOWS.xattr.*`), and a
/// symlink's or junction's reparse data. The error says what is wrong.
pub(super) fn metadata_streams(h: &Header) -> Result<Vec<u8>, String> {
    let mut out = BackupStreamWriter::new(Vec::new());
    let mut put =
        |id: StreamId, content: &[u8]| out.write_stream(id, content).map_err(|e| e.to_string());
    let sd = match (record(h, "MSWINDOWS.rawsd"), record(h, "MSWINDOWS.sd")) {
        (Some(raw), _) => base64::decode(raw),
        (None, Some(sddl)) => {
            let sddl = std::str::from_utf8(sddl).map_err(|_| "MSWINDOWS.sd is not UTF-8")?;
            let sd =
                SecurityDescriptor::parse_sddl(sddl).map_err(|e| format!("MSWINDOWS.sd: {e}"))?;
            Some(sd.to_bytes())
        }
        (None, None) => None,
    };
    if let Some(sd) = sd.filter(|sd| !sd.is_empty()) {
        put(StreamId::Security, &sd)?;
    }
    let mut eas = Vec::new();
    for (k, v) in &h.pax {
        if let Some(ea) = k.strip_prefix("MSWINDOWS.xattr.") {
            let value = base64::decode(v).ok_or_else(|| format!("{k} is not standard base64"))?;
            eas.push((ea.to_string(), value));
        }
    }
    if !eas.is_empty() {
        put(StreamId::EaData, &encode_eas(&eas)?)?;
    }
    if h.typeflag == b'2' {
        let rp = Reparse {
            target: String::from_utf8_lossy(&h.linkname).replace('/', "\\"),
            mount_point: record(h, "MSWINDOWS.mountpoint").is_some(),
        };
        put(StreamId::ReparseData, &encode_reparse(&rp)?)?;
    }
    out.finish().map_err(|e| e.to_string())
}

/// The header of the data stream of a regular entry, or of the alternate
/// data stream `stream` (`:name:$DATA`), holding `size` bytes.
pub(super) fn data_header(stream: Option<String>, size: u64) -> StreamHeader {
    match stream {
        Some(name) => StreamHeader {
            name,
            ..StreamHeader::new(StreamId::AlternateData, size)
        },
        None => StreamHeader::new(StreamId::Data, size),
    }
}

/// When `h` is an alternate data stream of the entry `owner` (a regular
/// entry named `<owner>:<stream>`, go-winio's test), its backup stream
/// name, `:<stream>:$DATA`.
pub(super) fn alternate_stream(owner: &str, h: &Header) -> Option<String> {
    let stream = h.name.strip_prefix(owner.as_bytes())?.strip_prefix(b":")?;
    is_regular(h).then(|| format!(":{}:$DATA", String::from_utf8_lossy(stream)))
}

/// The next header of a Windows layer, refusing PAX global headers, which
/// Windows importers read as a file outside `Files/`.
pub(super) fn next_header<R: Read>(
    tar: &mut TarReader<R>,
) -> Result<Option<Header>, TransportError> {
    let h = tar.next_header().map_err(|e| TransportError {
        entry: None,
        reason: match e {
            TarError::Io(e) => format!("reading the layer: {e}"),
            TarError::Format(m) => format!("corrupt tar: {m}"),
        },
    })?;
    if tar.global_headers() > 0 {
        return Err(TransportError {
            entry: None,
            reason: "a PAX global header: Windows importers read it as a file outside Files/"
                .into(),
        });
    }
    Ok(h)
}
