//! The import simulator: reads a layer as hcsshim's importer
//! (`pkg/ociwclayer/import.go` over go-winio's `backuptar` and the legacy
//! layer writer) would, and refuses what it would fail on or, worse,
//! silently import as something else.
//!
//! Global PAX headers, which [`TarReader`] skips, are counted and refused:
//! hcsshim would `Add()` one as a file outside `Files/`.

use super::path::{fold_case, validate_name};
use super::sd;
use super::{base64, PaxTime};
use crate::compression::decompress;
use crate::layer::read::{Header, TarError, TarReader};
use std::collections::{HashMap, HashSet};
use std::io::Read;

const ATTR_DIRECTORY: u32 = 0x10;
const ATTR_REPARSE_POINT: u32 = 0x400;

/// A layer the importer would reject or misread.
#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
pub struct CheckError {
    /// The entry's name in the tar, when the problem is one entry.
    pub entry: Option<String>,
    /// What is wrong, and what the importer would do.
    pub reason: String,
}

/// Reads the layer blob `blob` (gzip, zstd or plain tar) and checks every
/// entry against the importer's rules, returning the headers in order.
pub fn check_layer<R: Read + Send>(blob: R) -> Result<Vec<Header>, CheckError> {
    let stream = decompress(blob).map_err(|e| CheckError {
        entry: None,
        reason: format!("reading the layer: {e}"),
    })?;
    let mut tar = TarReader::new(stream);
    let mut state = State::default();
    let mut headers = Vec::new();
    loop {
        let h = match tar.next_header() {
            Ok(Some(h)) => h,
            Ok(None) if tar.global_headers() > 0 => {
                return Err(stream_error(
                    "a PAX global header: Windows importers read it as a file outside Files/"
                        .into(),
                ))
            }
            Ok(None) => break,
            Err(TarError::Io(e)) => return Err(stream_error(format!("reading the layer: {e}"))),
            Err(TarError::Format(m)) => return Err(stream_error(format!("corrupt tar: {m}"))),
        };
        if tar.global_headers() > 0 {
            return Err(CheckError {
                entry: Some(String::from_utf8_lossy(&h.name).into_owned()),
                reason: "a PAX global header comes before this entry: Windows importers read it as a file outside Files/".into(),
            });
        }
        state.check(&h).map_err(|reason| CheckError {
            entry: Some(String::from_utf8_lossy(&h.name).into_owned()),
            reason,
        })?;
        headers.push(h);
    }
    state.finish().map_err(stream_error)?;
    Ok(headers)
}

fn stream_error(reason: String) -> CheckError {
    CheckError {
        entry: None,
        reason,
    }
}

/// The importer's per-entry rules, for code that reads or writes a
/// Windows layer one header at a time (the transport folder conversion)
/// and must refuse exactly what [`check_layer`] refuses.
#[derive(Default)]
pub(super) struct State {
    /// Directory names written so far.
    dirs: HashSet<String>,
    /// Non-directory names written so far (hard-link targets).
    files: HashSet<String>,
    /// Case-folded name → the name as first written.
    folded: HashMap<String, String>,
    /// The entry an alternate data stream may follow: the last entry
    /// imported through `Add`.
    stream_owner: Option<String>,
}

impl State {
    /// Checks the next header in tar order; the error says what is wrong.
    pub(super) fn check(&mut self, h: &Header) -> Result<(), String> {
        let name = std::str::from_utf8(&h.name).map_err(|_| "the name is not UTF-8".to_string())?;
        let comps: Vec<&str> = name.split('/').collect();
        if comps
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
        {
            return Err("names must be relative, without empty, `.` or `..` components and without a trailing `/`".into());
        }
        let (parent, last) = match name.rsplit_once('/') {
            Some((p, l)) => (Some(p), l),
            None => (None, name),
        };
        if !matches!(comps[0], "Files" | "Hives" | "UtilityVM") {
            return Err("outside `Files/`, `Hives/` and `UtilityVM/`: hcsshim's legacy writer has nowhere to put it".into());
        }
        for c in comps.iter().take(comps.len() - 1).skip(1) {
            validate_name(c).map_err(|e| e.to_string())?;
        }
        let owner = self.stream_owner.take();

        if let Some(deleted) = last.strip_prefix(".wh.") {
            if deleted == ".wh..opq" {
                return Err("an opaque whiteout: hcsshim records a tombstone for a file named `.wh..opq` and deletes nothing; list each deleted path".into());
            }
            validate_name(deleted).map_err(|e| format!("whiteout of {e}"))?;
            let under_files = name.starts_with("Files/") || name.starts_with("UtilityVM/Files/");
            if !under_files {
                return Err("a whiteout outside `Files/` and `UtilityVM/Files/`: hcsshim's legacy writer fails with \"invalid tombstone\"".into());
            }
            return self.parent_exists(parent);
        }

        if let Some((file, stream)) = last.split_once(':') {
            let base = match parent {
                Some(p) => format!("{p}/{file}"),
                None => file.to_string(),
            };
            if owner.as_deref() != Some(base.as_str()) || !matches!(h.typeflag, b'0' | 0) {
                return Err(format!(
                    "`:` makes this an alternate data stream of {base:?}, which must be a regular-file entry right after {base:?} (or after its other streams); otherwise hcsshim imports a file with `:` in its name, which NTFS refuses"
                ));
            }
            if stream.is_empty() || stream.contains(':') {
                return Err("invalid alternate data stream name".into());
            }
            self.stream_owner = owner;
            return Ok(());
        }
        if comps.len() > 1 {
            validate_name(last).map_err(|e| e.to_string())?;
        }
        let key = fold_case(name);
        if let Some(first) = self.folded.get(&key) {
            return Err(if first == name {
                "a duplicate path: layers must not repeat a path, and hcsshim's FILE_CREATE fails on the second".into()
            } else {
                format!("collides with {first:?}: Windows file names are case-insensitive, so the second create fails")
            });
        }
        self.folded.insert(key, name.to_string());
        self.parent_exists(parent)?;

        let attr = match record(h, "MSWINDOWS.fileattr") {
            Some(v) => Some(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or("MSWINDOWS.fileattr is not a decimal 32-bit number; go-winio fails the import")?,
            ),
            None => None,
        };
        for key in ["LIBARCHIVE.creationtime", "atime", "ctime"] {
            if let Some(v) = record(h, key) {
                let text = std::str::from_utf8(v).unwrap_or("\u{fffd}");
                text.parse::<PaxTime>()
                    .map_err(|e| format!("{key}: {e}; the importer fails on it"))?;
            }
        }
        if let Some(v) = record(h, "MSWINDOWS.rawsd") {
            let bytes = base64::decode(v).ok_or("MSWINDOWS.rawsd is not standard base64")?;
            sd::check_self_relative(&bytes).map_err(|e| format!("MSWINDOWS.rawsd: {e}"))?;
        }
        let is_dir_attr = attr.map(|a| a & ATTR_DIRECTORY != 0);
        let is_reparse = attr.map(|a| a & ATTR_REPARSE_POINT != 0);
        match h.typeflag {
            b'5' => {
                if is_dir_attr == Some(false) {
                    return Err("a directory entry whose MSWINDOWS.fileattr lacks 0x10: hcsshim imports it as a file".into());
                }
                if is_reparse == Some(true) {
                    return Err("a directory entry with the reparse-point attribute but no reparse data (that needs typeflag 2)".into());
                }
                self.dirs.insert(name.to_string());
            }
            b'0' | 0 => {
                if comps.len() == 1 {
                    return Err("the root must be a directory".into());
                }
                if is_dir_attr == Some(true) {
                    return Err("a regular file whose MSWINDOWS.fileattr has 0x10: hcsshim imports it as a directory".into());
                }
                if is_reparse == Some(true) {
                    return Err("a regular file with the reparse-point attribute but no reparse data (that needs typeflag 2)".into());
                }
                self.files.insert(name.to_string());
            }
            b'2' => {
                if h.linkname.is_empty() {
                    return Err("a symlink without a target".into());
                }
                if is_reparse == Some(false) {
                    return Err("a symlink whose MSWINDOWS.fileattr lacks the reparse-point bit 0x400".into());
                }
                if record(h, "MSWINDOWS.mountpoint").is_some() {
                    let t = &h.linkname;
                    let absolute = t.len() >= 3 && t[0].is_ascii_alphabetic() && t[1] == b':' && matches!(t[2], b'\\' | b'/');
                    if is_dir_attr == Some(false) || !absolute {
                        return Err("a junction (MSWINDOWS.mountpoint) must be a directory with an absolute drive-letter target".into());
                    }
                }
                self.files.insert(name.to_string());
            }
            b'1' => {
                let target = String::from_utf8_lossy(&h.linkname);
                let in_files = |p: &str| p.starts_with("Files/") || p.starts_with("UtilityVM/Files/");
                if !in_files(name) || !in_files(&target) {
                    return Err(format!("hard link to {target:?}: both paths must be under `Files/` (or `UtilityVM/Files/`), or hcsshim fails with \"invalid hard link in layer\""));
                }
                if self.dirs.contains(target.as_ref()) {
                    return Err(format!("hard link to the directory {target:?}"));
                }
                self.files.insert(name.to_string());
                return Ok(());
            }
            other => {
                return Err(format!(
                    "typeflag {:?}: hcsshim imports anything but 0, 1, 2 and 5 as an empty regular file",
                    other as char
                ))
            }
        }
        self.stream_owner = Some(name.to_string());
        Ok(())
    }

    /// Checks what the whole layer needs, after its last header.
    pub(super) fn finish(&self) -> Result<(), String> {
        for root in ["Files", "Hives"] {
            if !self.dirs.contains(root) {
                return Err(format!(
                    "no {root:?} directory entry: hcsshim needs `Files` before anything under it, and every working Linux-built layer has an (empty) `Hives`"
                ));
            }
        }
        Ok(())
    }

    /// Checks what a base layer needs, after its last header: `Files`,
    /// which HCS's `ProcessBaseImage` reads. No `Hives`: base layers carry
    /// none, since processing the base makes it (hcsshim's CimFS writer
    /// creates it, failing if it exists).
    pub(super) fn finish_base(&self) -> Result<(), String> {
        if !self.dirs.contains("Files") {
            return Err(
                "no \"Files\" directory entry: HCS processes a base layer's `Files`".into(),
            );
        }
        Ok(())
    }

    /// Whether `name` is a non-directory entry checked so far: what a hard
    /// link within the layer may name.
    pub(super) fn is_file(&self, name: &str) -> bool {
        self.files.contains(name)
    }

    /// hcsshim creates each entry in a fresh folder without creating its
    /// parents: the parent must be an earlier directory entry.
    fn parent_exists(&self, parent: Option<&str>) -> Result<(), String> {
        match parent {
            Some(p) if !self.dirs.contains(p) => Err(format!(
                "its directory {p:?} has no entry before it: hcsshim creates entries without their parents (\"path not found\")"
            )),
            _ => Ok(()),
        }
    }
}

pub(super) fn record<'a>(h: &'a Header, key: &str) -> Option<&'a [u8]> {
    h.pax
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tar::{write_header, write_trailer, Header as TarHeader};

    /// (name, typeflag, linkname, PAX records); no data.
    type Fixture<'a> = (&'a str, u8, &'a str, &'a [(&'a str, &'a str)]);

    fn tar(entries: &[Fixture<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, typeflag, linkname, records) in entries {
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
                size: 0,
                mtime: 0,
                linkname,
                devmajor: 0,
                devminor: 0,
                xattrs: &[],
                pax: &pax,
            };
            write_header(&mut out, &h).unwrap();
        }
        write_trailer(&mut out).unwrap();
        out
    }

    const DIR: &[(&str, &str)] = &[("MSWINDOWS.fileattr", "16")];
    const FILES: Fixture = ("Files", b'5', "", DIR);
    const HIVES: Fixture = ("Hives", b'5', "", &[]);

    #[test]
    fn what_hcsshim_imports_passes() {
        let layer = tar(&[
            FILES,
            ("Files/a", b'0', "", &[("MSWINDOWS.fileattr", "32")]),
            ("Files/a:s", b'0', "", &[]),
            ("Files/a:t", b'0', "", &[]),
            ("Files/l", b'1', "Files/a", &[]),
            ("Files/p", b'1', "Files/in/parent/layer", &[]),
            (
                "Files/j",
                b'2',
                r"C:\x",
                &[
                    ("MSWINDOWS.fileattr", "1040"),
                    ("MSWINDOWS.mountpoint", "1"),
                ],
            ),
            ("Files/.wh.gone", b'0', "", &[]),
            ("Files/d", b'5', "", &[]),
            ("Files/d:s", b'0', "", &[]),
            HIVES,
            ("Hives/Software_Delta", b'0', "", &[]),
            ("UtilityVM", b'5', "", DIR),
            ("UtilityVM/Files", b'5', "", DIR),
            ("UtilityVM/Files/.wh.x", b'0', "", &[]),
        ]);
        let headers = check_layer(&layer[..]).unwrap();
        assert_eq!(headers.len(), 15);
    }

    #[test]
    fn a_pax_global_header_is_refused() {
        let layer = tar(&[("pax_global_header", b'g', "", &[]), FILES, HIVES]);
        let err = check_layer(&layer[..]).unwrap_err().to_string();
        assert!(err.contains("PAX global header"), "{err}");
    }

    /// The design's negative fixtures (§4 test 1) and the rest of the
    /// rules, each with the words its message must contain.
    #[test]
    fn negative_fixtures_fail_with_clear_messages() {
        let cases: &[(&[Fixture], &str)] = &[
            (
                &[("Files/a", b'0', "", &[]), HIVES],
                "\"Files\" has no entry before it",
            ),
            (&[HIVES], "no \"Files\" directory entry"),
            (&[FILES], "no \"Hives\" directory entry"),
            (
                &[
                    FILES,
                    ("Files/a/b", b'0', "", &[]),
                    ("Files/a", b'5', "", DIR),
                    HIVES,
                ],
                "\"Files/a\" has no entry before it",
            ),
            (
                &[FILES, ("Files/x", b'1', "foo", &[]), HIVES],
                "invalid hard link in layer",
            ),
            (
                &[FILES, HIVES, ("Hives/.wh.x", b'0', "", &[])],
                "invalid tombstone",
            ),
            (
                &[FILES, ("Files/a:b", b'0', "", &[]), HIVES],
                "alternate data stream",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[]),
                    ("Files/b", b'0', "", &[]),
                    ("Files/a:s", b'0', "", &[]),
                    HIVES,
                ],
                "alternate data stream",
            ),
            (
                &[
                    FILES,
                    ("Files/A", b'0', "", &[]),
                    ("Files/a", b'0', "", &[]),
                    HIVES,
                ],
                "case-insensitive",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[]),
                    ("Files/a", b'0', "", &[]),
                    HIVES,
                ],
                "duplicate path",
            ),
            (
                &[
                    FILES,
                    ("Files/d", b'5', "", &[("MSWINDOWS.fileattr", "32")]),
                    HIVES,
                ],
                "imports it as a file",
            ),
            (
                &[
                    FILES,
                    ("Files/f", b'0', "", &[("MSWINDOWS.fileattr", "16")]),
                    HIVES,
                ],
                "imports it as a directory",
            ),
            (
                &[FILES, ("Files/null", b'3', "", &[]), HIVES],
                "empty regular file",
            ),
            (
                &[FILES, ("Files/p", b'6', "", &[]), HIVES],
                "empty regular file",
            ),
            (
                &[
                    FILES,
                    ("Files/d", b'5', "", DIR),
                    ("Files/d/.wh..wh..opq", b'0', "", &[]),
                    HIVES,
                ],
                "opaque whiteout",
            ),
            (&[FILES, HIVES, ("etc", b'5', "", &[])], "outside `Files/`"),
            (&[FILES, ("Files/CON", b'0', "", &[]), HIVES], "DOS device"),
            (
                &[FILES, ("Files/x.", b'0', "", &[]), HIVES],
                "dot or a space",
            ),
            (&[FILES, ("Files/", b'5', "", &[]), HIVES], "trailing `/`"),
            (
                &[
                    FILES,
                    ("Files/j", b'2', r"..\x", &[("MSWINDOWS.mountpoint", "1")]),
                    HIVES,
                ],
                "junction",
            ),
            (
                &[
                    FILES,
                    ("Files/l", b'2', "x", &[("MSWINDOWS.fileattr", "32")]),
                    HIVES,
                ],
                "reparse-point bit",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[("LIBARCHIVE.creationtime", "1.x")]),
                    HIVES,
                ],
                "LIBARCHIVE.creationtime",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[("MSWINDOWS.fileattr", "-1")]),
                    HIVES,
                ],
                "decimal 32-bit",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[("MSWINDOWS.rawsd", "AQAAgA==")]),
                    HIVES,
                ],
                "MSWINDOWS.rawsd",
            ),
            (
                &[
                    FILES,
                    ("Files/a", b'0', "", &[("MSWINDOWS.rawsd", "not base64")]),
                    HIVES,
                ],
                "base64",
            ),
        ];
        for (entries, words) in cases {
            let err = check_layer(&tar(entries)[..]).unwrap_err().to_string();
            assert!(err.contains(words), "want {words:?}, got {err}");
        }
    }
}
