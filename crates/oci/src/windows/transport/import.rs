//! OCI Windows layer → transport folder: what hcsshim's importer
//! (`pkg/ociwclayer/import.go` over go-winio's `FileInfoFromHeader` and
//! `WriteBackupStreamFromTarFile`) has its `legacyLayerWriter`
//! (`internal/wclayer/legacy.go`) write for `ImportLayer`.
//!
//! Every header is first checked by the import simulator's rules, so
//! anything `check_layer` refuses is refused here, by name. Every file is
//! created exclusively beneath the destination, through directories opened
//! without following symlinks: nothing is written outside it, and nothing
//! already in it is followed or replaced.
//!
//! As in hcsshim since 2018, tombstones and hard links never reach the
//! folder: `ImportLayer` gets neither a `tombstones.txt` nor the links'
//! names, and the caller applies both to the imported layer afterwards
//! (`importlayer.go`'s `legacyLayerWriterWrapper.Close`), from
//! [`ImportedFolder`].

use super::header::{
    alternate_stream, basic_info, data_header, is_regular, metadata_streams, next_header,
    FileBasicInfo,
};
use super::stream::BackupStreamWriter;
use super::{TransportError, DIR_SUFFIX};
use crate::compression::decompress;
use crate::layer::read::{Header, TarReader};
use crate::tree::TreeRoot;
use crate::windows::check::State;
use crate::windows::PaxTime;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

/// What a caller following hcsshim's current writer does to the layer
/// directory itself after `ImportLayer`, in this order: remove each
/// tombstone, make each hard link, then set each directory's times again
/// (removing and linking change them). Every path is relative to the
/// layer directory and `\`-separated (`Files\dir\name`), as hcsshim
/// hands them to its `safefile` calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportedFolder {
    /// The paths the layer deletes (its whiteouts), in layer order; none
    /// is in the folder.
    pub tombstones: Vec<String>,
    /// Hard links as (name, target), in layer order. Each target is a
    /// file the layer added earlier (a link to a parent layer's file is
    /// refused), so it is in the imported layer, or is a link made before
    /// it; no name is in the folder.
    pub links: Vec<(String, String)>,
    /// Every directory of the layer (`Files` and `Hives` too), in layer
    /// order, with the attributes and times the layer gives it: hcsshim's
    /// `reapplyDirectoryTimes` sets them again, last first.
    pub dirs: Vec<(String, FileBasicInfo)>,
}

/// Writes the layer blob `blob` (gzip, zstd or plain tar) as a transport
/// folder into `dest`, an existing empty directory.
///
/// Refused, each with the entry and the reason: anything the import
/// simulator refuses (entries under a directory reparse point among them:
/// it is no directory entry); `UtilityVM/` (base layers only); hard links
/// to a file of a parent layer (the folder cannot name one); Hives entries other than plain files, or with
/// EAs or streams, which a folder on Linux cannot hold; names ending in
/// `.$wcidirs$`, which the format reserves.
pub fn layer_to_folder<R: Read + Send>(
    blob: R,
    dest: &Path,
) -> Result<ImportedFolder, TransportError> {
    let fail = |e: io::Error| TransportError::at(dest.display().to_string(), e.to_string());
    if std::fs::read_dir(dest).map_err(fail)?.next().is_some() {
        return Err(TransportError::at(
            dest.display().to_string(),
            "the destination must be an empty directory",
        ));
    }
    let root = TreeRoot::open(dest).map_err(fail)?;
    let stream = decompress(blob).map_err(|e| TransportError {
        entry: None,
        reason: format!("reading the layer: {e}"),
    })?;
    let mut import = Import {
        root,
        tar: TarReader::new(stream),
        rules: State::default(),
        result: ImportedFolder::default(),
        files: HashSet::new(),
        dirs: Vec::new(),
    };
    import.run()?;
    Ok(import.result)
}

struct Import<R> {
    root: TreeRoot,
    tar: TarReader<R>,
    rules: State,
    result: ImportedFolder,
    /// Non-directory entries written so far: the targets a hard link may
    /// name (hcsshim's `addedFiles`).
    files: HashSet<String>,
    /// Directories made, with their times, set once their contents are
    /// written (hcsshim's `reapplyDirectoryTimes`).
    dirs: Vec<(String, Times)>,
}

#[derive(Clone, Copy)]
struct Times {
    access: PaxTime,
    write: PaxTime,
}

/// A file being written: its stream, and the times to give it once its
/// alternate data streams are in.
struct Current {
    name: String,
    stream: Option<BackupStreamWriter<BufWriter<File>>>,
    times: Times,
}

impl<R: Read> Import<R> {
    fn run(&mut self) -> Result<(), TransportError> {
        let mut next = self.next_header()?;
        while let Some(h) = next.take() {
            let name = String::from_utf8_lossy(&h.name).into_owned();
            self.rules
                .check(&h)
                .map_err(|reason| TransportError::at(&name, reason))?;
            let (parent, last) = name.rsplit_once('/').unwrap_or(("", &name));
            if let Some(deleted) = last.strip_prefix(".wh.") {
                self.tombstone(&name, parent, deleted)?;
                next = self.next_header()?;
                continue;
            }
            if h.typeflag == b'1' {
                self.link(&name, &h)?;
                next = self.next_header()?;
                continue;
            }
            let mut current = self.add(&name, &h)?;
            loop {
                next = self.next_header()?;
                let Some(stream_name) = next.as_ref().and_then(|h| alternate_stream(&name, h))
                else {
                    break;
                };
                let ads = next.take().expect("checked above");
                let ads_name = String::from_utf8_lossy(&ads.name).into_owned();
                self.rules
                    .check(&ads)
                    .map_err(|reason| TransportError::at(&ads_name, reason))?;
                let Some(stream) = current.stream.as_mut() else {
                    return Err(TransportError::at(
                        &ads_name,
                        "alternate data streams of a hive file cannot be kept in a folder on this host",
                    ));
                };
                stream
                    .write_header(&data_header(Some(stream_name), ads.size))
                    .map_err(|e| TransportError::at(&ads_name, e.to_string()))?;
                self.copy_data(&ads_name, ads.size, stream)?;
            }
            self.finish(current)?;
        }
        self.rules.finish().map_err(|reason| TransportError {
            entry: None,
            reason,
        })?;
        for (rel, t) in self.dirs.iter().rev() {
            let (parent, last) = rel.rsplit_once('/').unwrap_or(("", rel));
            let dir = self.dir(parent)?;
            sys::set_times_at(&dir, last, t.access, t.write)
                .map_err(|e| TransportError::at(rel, format!("setting times: {e}")))?;
        }
        Ok(())
    }

    fn next_header(&mut self) -> Result<Option<Header>, TransportError> {
        next_header(&mut self.tar)
    }

    /// hcsshim's `Remove`: a tombstone under `Files\`, kept for after
    /// `ImportLayer`.
    fn tombstone(&mut self, name: &str, parent: &str, deleted: &str) -> Result<(), TransportError> {
        if parent != "Files" && !parent.starts_with("Files/") {
            return Err(not_supported(name, "deletions in the utility VM image"));
        }
        self.result
            .tombstones
            .push(format!("{}\\{deleted}", windows_path(parent)));
        Ok(())
    }

    /// hcsshim's `AddLink`: nothing in the folder, the link kept for after
    /// `ImportLayer`.
    fn link(&mut self, name: &str, h: &Header) -> Result<(), TransportError> {
        let target = String::from_utf8_lossy(&h.linkname).into_owned();
        if name.starts_with("UtilityVM/") {
            return Err(not_supported(name, "hard links in the utility VM image"));
        }
        if !self.files.contains(&target) {
            return Err(TransportError::at(
                name,
                format!("hard link to {target:?}, which is not a file earlier in this layer: a transport folder cannot name a parent layer's file (hcsshim links it from the parent layer after ImportLayer)"),
            ));
        }
        self.files.insert(name.to_string());
        self.result
            .links
            .push((windows_path(name), windows_path(&target)));
        Ok(())
    }

    /// hcsshim's `Add` and the stream `WriteBackupStreamFromTarFile`
    /// builds from the header (security, EAs, reparse data, data).
    fn add(&mut self, name: &str, h: &Header) -> Result<Current, TransportError> {
        let fail = |reason: String| TransportError::at(name, reason);
        let comps: Vec<&str> = name.split('/').collect();
        if comps[0] == "UtilityVM" {
            return Err(not_supported(
                name,
                "a utility VM image is only in base layers, which need the parent's image",
            ));
        }
        if comps.iter().any(|c| c.ends_with(DIR_SUFFIX)) {
            return Err(fail(format!(
                "names ending in {DIR_SUFFIX:?} are reserved by the transport folder format"
            )));
        }
        let (parent, last) = name.rsplit_once('/').unwrap_or(("", name));
        let info = basic_info(h);
        let times = Times {
            access: info.last_access,
            write: info.last_write,
        };
        let is_dir = info.is_directory();
        let regular = is_regular(h);

        if comps[0] == "Hives" && comps.len() > 1 {
            // hcsshim writes hives with BackupWrite without security: the
            // data is the file, the descriptor is dropped.
            if is_dir || !regular {
                return Err(not_supported(
                    name,
                    "only registry hive files belong under Hives/",
                ));
            }
            if h.pax.iter().any(|(k, _)| k.starts_with("MSWINDOWS.xattr.")) {
                return Err(not_supported(
                    name,
                    "EAs on a hive file cannot be kept in a folder on this host",
                ));
            }
            let mut file = BufWriter::new(self.create(parent, last)?);
            self.copy_data(name, h.size, &mut file)?;
            let file = file.into_inner().map_err(|e| fail(e.to_string()))?;
            set_times(&file, times).map_err(|e| fail(format!("setting times: {e}")))?;
            return Ok(Current {
                name: name.to_string(),
                stream: None,
                times,
            });
        }

        let metadata = metadata_streams(h).map_err(fail)?;
        let file = if is_dir {
            let dir = self.dir(parent)?;
            sys::mkdir(&dir, last).map_err(|e| fail(format!("creating the directory: {e}")))?;
            self.dirs.push((name.to_string(), times));
            self.result.dirs.push((windows_path(name), info));
            self.create(parent, &format!("{last}{DIR_SUFFIX}"))?
        } else {
            self.files.insert(name.to_string());
            self.create(parent, last)?
        };
        let mut out = BufWriter::new(file);
        out.write_all(&info.attributes.to_le_bytes())
            .and_then(|()| out.write_all(&metadata))
            .map_err(|e| fail(e.to_string()))?;
        let mut stream = BackupStreamWriter::new(out);
        if regular {
            stream
                .write_header(&data_header(None, h.size))
                .map_err(|e| fail(e.to_string()))?;
            self.copy_data(name, h.size, &mut stream)?;
        }
        Ok(Current {
            name: name.to_string(),
            stream: Some(stream),
            times,
        })
    }

    /// Copies the current tar entry's `size` bytes into `out`.
    fn copy_data(
        &mut self,
        name: &str,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<(), TransportError> {
        let copied = io::copy(&mut (&mut self.tar).take(size), out)
            .map_err(|e| TransportError::at(name, format!("copying the data: {e}")))?;
        if copied != size {
            return Err(TransportError::at(
                name,
                format!("the layer ends after {copied} of the entry's {size} bytes"),
            ));
        }
        Ok(())
    }

    fn finish(&mut self, current: Current) -> Result<(), TransportError> {
        let fail = |e: String| TransportError::at(&current.name, e);
        if let Some(stream) = current.stream {
            let out = stream.finish().map_err(|e| fail(e.to_string()))?;
            let file = out.into_inner().map_err(|e| fail(e.to_string()))?;
            set_times(&file, current.times).map_err(|e| fail(format!("setting times: {e}")))?;
        }
        Ok(())
    }

    /// The folder directory `rel`, reached without following a symlink.
    fn dir(&self, rel: &str) -> Result<sys::Dir, TransportError> {
        self.root
            .open_dir(Path::new(rel))
            .map_err(|e| TransportError::at(rel, format!("opening the directory: {e}")))
    }

    /// Creates `name` in the folder directory `parent`, failing if it
    /// exists (hcsshim's `FILE_CREATE`); a symlink there is not followed.
    fn create(&self, parent: &str, name: &str) -> Result<File, TransportError> {
        let dir = self.dir(parent)?;
        sys::create(&dir, name).map_err(|e| {
            let rel = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}/{name}")
            };
            TransportError::at(rel, format!("creating the file: {e}"))
        })
    }
}

/// A tar name as a path relative to the layer directory on Windows.
fn windows_path(name: &str) -> String {
    name.replace('/', "\\")
}

fn not_supported(name: &str, what: &str) -> TransportError {
    TransportError::at(name, format!("not supported: {what}"))
}

/// The transport file's times are the entry's (hcsshim sets them with
/// `SetFileBasicInfo`); this keeps the last write and last access.
fn set_times(file: &File, t: Times) -> io::Result<()> {
    sys::set_file_times(file, t.access, t.write)
}
