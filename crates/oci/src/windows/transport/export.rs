//! Transport folder → OCI Windows layer: what hcsshim's
//! `legacyLayerReader` (`internal/wclayer/legacy.go`) and
//! `writeTarFromLayer` (`pkg/ociwclayer/export.go`) do on Windows, over
//! go-winio's `WriteTarFileFromBackupStream` (`backuptar/tar.go`).
//!
//! Entries come in the reader's order: `Files`, then the `Files/` tree in
//! pre-order with siblings in byte order (Go's `filepath.Walk`), each
//! directory's tombstones right after the directory, each file's alternate
//! data streams right after the file, then `Hives` and its files. Every
//! header goes through the import simulator's rules before it is written,
//! so what comes out passes [`check_layer`](crate::windows::check_layer).

use super::meta::{decode_eas, decode_reparse, Ea, Reparse};
use super::stream::{BackupStreamReader, StreamId, STREAM_SPARSE_ATTRIBUTE};
use super::{TransportError, DIR_SUFFIX, TOMBSTONES_HEADER};
use crate::layer::read::Header as ReadHeader;
use crate::layer::tar::{write_header, write_padding, write_trailer, Header};
use crate::layer::write::{write_blob, write_data};
use crate::tree::TreeRoot;
use crate::windows::check::State;
use crate::windows::path::{fold_case, validate_name};
use crate::windows::writer::{header, times};
use crate::windows::{base64, sd, PaxTime};
use crate::{Compression, LayerDescriptor};
use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

const ATTR_DIRECTORY: u32 = 0x10;
const ATTR_ARCHIVE: u32 = 0x20;
const ATTR_REPARSE_POINT: u32 = 0x400;
/// go-winio's `cISDIR`, `cISREG`, `cISLNK`: the only mode bits its
/// exporter sets.
const MODE_DIR: u32 = 0o40000;
const MODE_REG: u32 = 0o100000;
const MODE_LNK: u32 = 0o120000;
/// Windows caps a security descriptor's ACLs at 64 KiB each.
const MAX_SD: u64 = 3 * 65536;
/// NTFS caps a file's EAs at 64 KiB.
const MAX_EA: u64 = 65536;
/// `MAXIMUM_REPARSE_DATA_BUFFER_SIZE`.
const MAX_REPARSE: u64 = 16 * 1024;
/// The longest `tombstones.txt` line: a Win32 long path.
const MAX_TOMBSTONE_LINE: u64 = 4 * 32767;

/// Where the four Win32 times of a folder entry come from when the folder
/// sits on a Unix file system, which has no creation or settable change
/// time. (On Windows the backend reads them with `GetFileBasicInfo`; read
/// here on Windows, [`TimeSource::Metadata`]'s change time is the last
/// write, as `std` reports no change time.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// All four are the file's mtime: the one time a folder written on
    /// Linux can carry faithfully, and reproducible.
    #[default]
    LastWrite,
    /// LastWrite from mtime, LastAccess from atime, Change from ctime and
    /// Creation from the birth time (mtime where the file system has none):
    /// faithful to the files, but ctime is when the folder was written.
    Metadata,
}

/// How to convert a transport folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Blob compression.
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub threads: usize,
    /// Report Docker's layer media type rather than OCI's.
    pub docker_media_type: bool,
    /// Where times come from.
    pub times: TimeSource,
    /// `SOURCE_DATE_EPOCH`: no time written is later (HCS exports carry
    /// the times of the run, which a reproducible build clamps).
    pub source_date_epoch: Option<i64>,
}

impl Default for FolderOptions {
    fn default() -> FolderOptions {
        FolderOptions {
            compression: Compression::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            docker_media_type: false,
            times: TimeSource::default(),
            source_date_epoch: None,
        }
    }
}

/// Converts the transport folder `folder` to a layer blob written to
/// `dest`, hashing and compressing in the one pass, and returns its
/// descriptor and `dest`.
pub fn folder_to_layer<W: Write>(
    folder: &Path,
    options: &FolderOptions,
    dest: W,
) -> Result<(LayerDescriptor, W), TransportError> {
    let (mut descriptor, dest) = write_blob(options.compression, options.threads, dest, |out| {
        Export::open(folder, options)?.run(out)
    })?;
    if options.docker_media_type {
        descriptor.media_type = options.compression.docker_media_type();
    }
    Ok((descriptor, dest))
}

/// Converts the transport folder `folder` to an uncompressed layer tar
/// written to `out`.
pub fn folder_to_tar<W: Write>(
    folder: &Path,
    options: &FolderOptions,
    mut out: W,
) -> Result<W, TransportError> {
    Export::open(folder, options)?.run(&mut out)?;
    Ok(out)
}

/// The four times of `FILE_BASIC_INFO`.
#[derive(Clone, Copy, Debug)]
struct Times {
    creation: PaxTime,
    access: PaxTime,
    write: PaxTime,
    change: PaxTime,
}

impl Times {
    /// hcsshim's rule for everything outside `Files\`: creation and access
    /// are reset to the last write.
    fn outside_files(mut self) -> Times {
        self.creation = self.write;
        self.access = self.write;
        self
    }

    /// The records go-winio's `BasicInfoHeader` writes for them.
    fn records(&self, pax: &mut Vec<(String, Vec<u8>)>) {
        times(pax, self.creation, self.access, self.change, self.write);
    }
}

struct Export<'a> {
    root: TreeRoot,
    options: &'a FolderOptions,
    rules: State,
    /// Tombstones by the tar name of their directory, in file order.
    tombstones: HashMap<String, Vec<String>>,
    /// Files with several names, by (device, inode), or on Windows
    /// (volume, file index): the tar name of the first, which later names
    /// link to.
    links: HashMap<(u64, u64), String>,
}

impl<'a> Export<'a> {
    fn open(folder: &Path, options: &'a FolderOptions) -> Result<Export<'a>, TransportError> {
        let root = TreeRoot::open(folder)
            .map_err(|e| TransportError::at(folder.display().to_string(), e.to_string()))?;
        let mut export = Export {
            root,
            options,
            rules: State::default(),
            tombstones: HashMap::new(),
            links: HashMap::new(),
        };
        export.read_tombstones()?;
        Ok(export)
    }

    fn run(mut self, out: &mut dyn Write) -> Result<(), TransportError> {
        let names = self.list("")?;
        let mut have = HashSet::new();
        for name in &names {
            let kind = self.metadata(name)?;
            match name.as_str() {
                "Files" | "Hives" if kind.is_dir() => {}
                "tombstones.txt" if kind.is_file() => {}
                n if n.ends_with(DIR_SUFFIX) => continue,
                "UtilityVM" => {
                    return Err(TransportError::at(
                        name.as_str(),
                        "a utility VM image is only in base layers, which kiln does not convert",
                    ))
                }
                _ => {
                    return Err(TransportError::at(
                        name.as_str(),
                        "not part of a transport folder (Files/, Hives/, tombstones.txt)",
                    ))
                }
            }
            have.insert(name.as_str());
        }
        for needed in ["Files", "Hives"] {
            if !have.contains(needed) {
                return Err(TransportError::at(
                    needed,
                    "missing: every exported layer has it, and importers need it",
                ));
            }
        }
        let delta = self.system_delta()?;
        let t = self.root_time(delta, "Files")?;
        self.root_entry(out, "Files", t)?;
        self.whiteouts(out, "Files")?;
        self.walk_files(out, "Files")?;
        let t = self.root_time(delta, "Hives")?;
        self.root_entry(out, "Hives", t)?;
        self.walk_hives(out)?;
        write_trailer(out)?;
        self.rules.finish().map_err(|reason| TransportError {
            entry: None,
            reason,
        })?;
        let mut left: Vec<_> = self.tombstones.into_iter().collect();
        left.sort();
        if let Some((dir, names)) = left.first() {
            return Err(TransportError::at(
                "tombstones.txt",
                format!(
                    "tombstone for {dir}/{}: its directory is not in the folder (hcsshim's reader would drop it silently)",
                    names[0]
                ),
            ));
        }
        Ok(())
    }

    /// hcsshim's `readTombstones`: the header line, then `\path` lines,
    /// grouped by directory. Paths are checked as file names, so none can
    /// climb out of `Files` (hcsshim `filepath.Join`s them unchecked).
    fn read_tombstones(&mut self) -> Result<(), TransportError> {
        let entry = "tombstones.txt";
        let fail = |reason: String| TransportError::at(entry, reason);
        let file = self
            .root
            .open_file(Path::new(entry))
            .map_err(|e| fail(e.to_string()))?;
        let mut lines = BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = (&mut lines)
                .take(MAX_TOMBSTONE_LINE + 2)
                .read_until(b'\n', &mut line)
                .map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.len() as u64 > MAX_TOMBSTONE_LINE {
                return Err(fail(format!("line {number} is longer than a Windows path")));
            }
            // Go's bufio.ScanLines drops the newline and a CR before it.
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let text = std::str::from_utf8(&line)
                .map_err(|_| fail(format!("line {number} is not UTF-8")))?;
            if number == 1 {
                if text != TOMBSTONES_HEADER {
                    return Err(fail(
                        "the first line is not a UTF-8 BOM and \"Version 1.0\" (hcsshim: invalid tombstones file)".into(),
                    ));
                }
                continue;
            }
            let bad = |why: String| fail(format!("line {number} ({text:?}): {why}"));
            let rest = text
                .strip_prefix('\\')
                .ok_or_else(|| bad("a tombstone is a path starting with `\\`".into()))?;
            let comps: Vec<&str> = rest.split('\\').collect();
            for c in &comps {
                validate_name(c).map_err(|e| bad(e.to_string()))?;
            }
            let (name, parents) = comps.split_last().expect("split yields one item");
            let mut dir = String::from("Files");
            for p in parents {
                dir.push('/');
                dir.push_str(p);
            }
            self.tombstones
                .entry(dir)
                .or_default()
                .push(name.to_string());
        }
        if number == 0 {
            return Err(fail("empty (hcsshim: invalid tombstones file)".into()));
        }
        Ok(())
    }

    /// `Hives\System_Delta`'s times, which hcsshim gives `Files` and
    /// `Hives` (HCS's import leaves the roots' own non-deterministic).
    fn system_delta(&self) -> Result<Option<Times>, TransportError> {
        let rel = "Hives/System_Delta";
        match self.root.symlink_metadata(Path::new(rel)) {
            Ok(md) if md.is_file() => Ok(Some(self.times(&md))),
            Ok(_) => Err(TransportError::at(rel, "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TransportError::at(rel, e.to_string())),
        }
    }

    /// The times of the root `name`: `System_Delta`'s, or for a folder
    /// without it (a layer that changed no registry, which hcsshim's
    /// reader would refuse) the root's own.
    fn root_time(&self, delta: Option<Times>, name: &str) -> Result<Times, TransportError> {
        let t = match delta {
            Some(t) => t,
            None => self.times(&self.metadata(name)?),
        };
        Ok(t.outside_files())
    }

    fn times(&self, md: &Metadata) -> Times {
        let stat = crate::sys::stat_times(md);
        let pax = |(secs, nanos): crate::sys::UnixTime| PaxTime::new(secs, nanos);
        let mtime = pax(stat.modified);
        let t = match self.options.times {
            TimeSource::LastWrite => Times {
                creation: mtime,
                access: mtime,
                write: mtime,
                change: mtime,
            },
            TimeSource::Metadata => Times {
                creation: md
                    .created()
                    .ok()
                    .map_or(mtime, |c| match c.duration_since(UNIX_EPOCH) {
                        Ok(d) => PaxTime::new(d.as_secs() as i64, d.subsec_nanos()),
                        Err(e) => {
                            let d = e.duration();
                            let secs = -(d.as_secs() as i64);
                            match d.subsec_nanos() {
                                0 => PaxTime::from_secs(secs),
                                n => PaxTime::new(secs - 1, 1_000_000_000 - n),
                            }
                        }
                    }),
                access: pax(stat.accessed),
                write: mtime,
                change: pax(stat.changed),
            },
        };
        match self.options.source_date_epoch {
            Some(epoch) => {
                let clamp = |x: PaxTime| x.min(PaxTime::from_secs(epoch));
                Times {
                    creation: clamp(t.creation),
                    access: clamp(t.access),
                    write: clamp(t.write),
                    change: clamp(t.change),
                }
            }
            None => t,
        }
    }

    /// The names in the folder directory `rel`, in byte order as Go's
    /// `filepath.Walk` visits them.
    fn list(&self, rel: &str) -> Result<Vec<String>, TransportError> {
        let names = self
            .root
            .read_dir(Path::new(rel))
            .map_err(|e| TransportError::at(rel, e.to_string()))?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let n = n.into_string().map_err(|n| {
                TransportError::at(
                    format!("{rel}/{}", n.to_string_lossy()),
                    "the name is not UTF-8, so it is no Windows name",
                )
            })?;
            out.push(n);
        }
        out.sort();
        Ok(out)
    }

    fn metadata(&self, rel: &str) -> Result<Metadata, TransportError> {
        self.root
            .symlink_metadata(Path::new(rel))
            .map_err(|e| TransportError::at(rel, e.to_string()))
    }

    fn open_file(&self, rel: &str) -> Result<File, TransportError> {
        self.root
            .open_file(Path::new(rel))
            .map_err(|e| TransportError::at(rel, e.to_string()))
    }

    fn walk_files(&mut self, out: &mut dyn Write, dir: &str) -> Result<(), TransportError> {
        for name in self.list(dir)? {
            if name.ends_with(DIR_SUFFIX) {
                continue;
            }
            let rel = format!("{dir}/{name}");
            let md = self.metadata(&rel)?;
            if dir == "Files" && md.is_dir() && name.eq_ignore_ascii_case("$Recycle.Bin") {
                // hcsshim skips it: Go cannot convert some names in it.
                continue;
            }
            if md.is_dir() {
                let meta = format!("{rel}{DIR_SUFFIX}");
                // hcsshim reads the directory's times, like the rest of
                // its metadata, from this file.
                let (file, md) = match self.root.symlink_metadata(Path::new(&meta)) {
                    Ok(m) if m.is_file() => (self.open_file(&meta)?, m),
                    _ => {
                        return Err(TransportError::at(
                            &rel,
                            format!("a directory without a regular file {name}{DIR_SUFFIX} holding its metadata"),
                        ))
                    }
                };
                let reparse = self.entry(out, &rel, &md, file, true)?;
                self.whiteouts(out, &rel)?;
                if reparse && !self.list(&rel)?.is_empty() {
                    return Err(TransportError::at(
                        &rel,
                        "a directory reparse point with entries under it (importers remove its placeholder)",
                    ));
                }
                self.walk_files(out, &rel)?;
            } else if md.is_file() {
                let file = self.open_file(&rel)?;
                self.entry(out, &rel, &md, file, false)?;
            } else {
                return Err(TransportError::at(
                    &rel,
                    "neither a file nor a directory: a transport folder keeps links as reparse data inside a file",
                ));
            }
        }
        Ok(())
    }

    fn walk_hives(&mut self, out: &mut dyn Write) -> Result<(), TransportError> {
        for name in self.list("Hives")? {
            let rel = format!("Hives/{name}");
            let md = self.metadata(&rel)?;
            if !md.is_file() {
                return Err(TransportError::at(
                    &rel,
                    "only registry hive files belong under Hives/",
                ));
            }
            let mut pax = Vec::new();
            // Linux keeps no Win32 attributes; ARCHIVE is what Windows sets
            // on every file it writes.
            pax.push(attr_record(ATTR_ARCHIVE));
            self.times(&md).outside_files().records(&mut pax);
            let t = self.times(&md).write;
            let h = header(&rel, b'0', MODE_REG, md.len(), t, "", &pax);
            self.write_header(out, &h)?;
            let mut file = self.open_file(&rel)?;
            write_data(out, &mut file, md.len(), Some(Path::new(&rel)), &|| Ok(()))?;
        }
        Ok(())
    }

    fn root_entry(
        &mut self,
        out: &mut dyn Write,
        name: &str,
        t: Times,
    ) -> Result<(), TransportError> {
        let mut pax = vec![attr_record(ATTR_DIRECTORY)];
        t.records(&mut pax);
        self.write_header(out, &header(name, b'5', MODE_DIR, 0, t.write, "", &pax))
    }

    /// The bare whiteout headers of the tombstones in directory `dir`, in
    /// the file's order, as `writeTarFromLayer` writes them.
    fn whiteouts(&mut self, out: &mut dyn Write, dir: &str) -> Result<(), TransportError> {
        let Some(deleted) = self.tombstones.remove(dir) else {
            return Ok(());
        };
        let present: HashSet<String> = self.list(dir)?.iter().map(|n| fold_case(n)).collect();
        if let Some(both) = deleted.iter().find(|d| present.contains(&fold_case(d))) {
            return Err(TransportError::at(
                format!("{dir}/{both}"),
                "both present in the folder and listed in tombstones.txt",
            ));
        }
        for name in deleted {
            let marker = format!("{dir}/.wh.{name}");
            let h = header(&marker, b'0', 0, 0, PaxTime::default(), "", &[]);
            self.write_header(out, &h)?;
        }
        Ok(())
    }

    /// One `Files/` entry from its transport file (the `.$wcidirs$` file
    /// for a directory): the header, its data, its alternate streams.
    /// Returns whether it is a reparse point.
    fn entry(
        &mut self,
        out: &mut dyn Write,
        rel: &str,
        md: &Metadata,
        file: File,
        is_dir: bool,
    ) -> Result<bool, TransportError> {
        let fail = |reason: String| TransportError::at(rel, reason);
        let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        let link_key = if is_dir {
            None
        } else {
            crate::sys::link_key(md, &file).map_err(|e| fail(e.to_string()))?
        };
        let mut file = BufReader::new(file);
        let mut raw = [0u8; 4];
        file.read_exact(&mut raw)
            .map_err(|_| fail("shorter than its 4-byte attributes".into()))?;
        let attr = u32::from_le_bytes(raw);
        if (attr & ATTR_DIRECTORY != 0) != is_dir {
            return Err(fail(format!(
                "attributes {attr:#x} {} FILE_ATTRIBUTE_DIRECTORY, but the folder holds a {}",
                if is_dir { "lack" } else { "have" },
                if is_dir { "directory" } else { "file" }
            )));
        }
        let t = self.times(md);
        let mut pax = vec![attr_record(attr)];
        t.records(&mut pax);

        if let Some(key) = link_key {
            match self.links.get(&key) {
                Some(first) => {
                    // export.go: a later name of a file is a hard link to
                    // the first, with BasicInfoHeader's records, mode 0644.
                    let first = first.clone();
                    let h = header(rel, b'1', 0o644, 0, t.write, &first, &pax);
                    self.write_header(out, &h)?;
                    return Ok(false);
                }
                None => {
                    self.links.insert(key, rel.to_string());
                }
            }
        }

        let scan = scan(&mut file, len - 4).map_err(fail)?;
        let mut mode = if is_dir { MODE_DIR } else { 0 };
        if let Some(sd) = &scan.sd {
            pax.push(("MSWINDOWS.rawsd".into(), base64::encode(sd).into_bytes()));
        }
        for (name, value) in &scan.eas {
            pax.push((
                format!("MSWINDOWS.xattr.{name}"),
                base64::encode(value).into_bytes(),
            ));
        }
        let data_size = scan.data.as_ref().map_or(0, Data::size);
        if scan.data.is_some() {
            mode |= MODE_REG;
        }
        let mut typeflag = if is_dir { b'5' } else { b'0' };
        let mut linkname = String::new();
        if let Some(rp) = &scan.reparse {
            if attr & ATTR_REPARSE_POINT == 0 {
                return Err(fail(format!(
                    "reparse data, but attributes {attr:#x} lack FILE_ATTRIBUTE_REPARSE_POINT"
                )));
            }
            if rp.mount_point {
                pax.push(("MSWINDOWS.mountpoint".into(), b"1".to_vec()));
            }
            mode |= MODE_LNK;
            typeflag = b'2';
            linkname = rp.target.clone();
        }
        if typeflag != b'0' && data_size > 0 {
            return Err(fail(
                "a directory or reparse point with a data stream, which a tar entry cannot carry"
                    .into(),
            ));
        }
        let size = if typeflag == b'0' { data_size } else { 0 };
        self.write_header(
            out,
            &header(rel, typeflag, mode, size, t.write, &linkname, &pax),
        )?;
        match scan.data {
            Some(Data::Plain { pos, size }) if size > 0 => {
                file.seek(SeekFrom::Start(4 + pos))?;
                write_data(
                    out,
                    &mut (&mut file).take(size),
                    size,
                    Some(Path::new(rel)),
                    &|| Ok(()),
                )?;
            }
            Some(Data::Sparse { pos, size }) if size > 0 => {
                file.seek(SeekFrom::Start(4 + pos))?;
                densify(out, &mut file, size).map_err(|e| fail(e.to_string()))?;
            }
            _ => {}
        }
        for ads in &scan.ads {
            let name = format!("{rel}:{}", ads.name);
            let mut pax = Vec::new();
            // go-winio gives a stream's header the times of its file and
            // nothing else.
            pax.push(("atime".into(), t.access.to_string().into_bytes()));
            pax.push(("ctime".into(), t.change.to_string().into_bytes()));
            if t.write.nanos != 0 {
                pax.push(("mtime".into(), t.write.to_string().into_bytes()));
            }
            let h = header(&name, b'0', mode, ads.size, t.write, "", &pax);
            self.write_header(out, &h)?;
            file.seek(SeekFrom::Start(4 + ads.pos))?;
            write_data(
                out,
                &mut (&mut file).take(ads.size),
                ads.size,
                Some(Path::new(rel)),
                &|| Ok(()),
            )?;
        }
        Ok(scan.reparse.is_some())
    }

    /// Checks `h` as the importer would read it, then writes it.
    fn write_header(&mut self, out: &mut dyn Write, h: &Header<'_>) -> Result<(), TransportError> {
        let check = ReadHeader {
            name: h.name.as_bytes().to_vec(),
            linkname: h.linkname.as_bytes().to_vec(),
            typeflag: h.typeflag,
            pax: h.pax.to_vec(),
            ..ReadHeader::default()
        };
        self.rules
            .check(&check)
            .map_err(|reason| TransportError::at(h.name, reason))?;
        write_header(out, h)?;
        Ok(())
    }
}

fn attr_record(attr: u32) -> (String, Vec<u8>) {
    ("MSWINDOWS.fileattr".into(), attr.to_string().into_bytes())
}

/// Where a file's contents are in its backup stream (offsets after the
/// attributes).
enum Data {
    Plain {
        pos: u64,
        size: u64,
    },
    /// Sparse blocks from `pos` on, describing `size` bytes.
    Sparse {
        pos: u64,
        size: u64,
    },
}

impl Data {
    fn size(&self) -> u64 {
        match self {
            Data::Plain { size, .. } | Data::Sparse { size, .. } => *size,
        }
    }
}

struct Ads {
    name: String,
    pos: u64,
    size: u64,
}

#[derive(Default)]
struct Scan {
    sd: Option<Vec<u8>>,
    eas: Vec<Ea>,
    reparse: Option<Reparse>,
    data: Option<Data>,
    ads: Vec<Ads>,
}

/// The first pass over a backup stream (go-winio's reads it twice too):
/// the metadata that goes into the header, and where the data and
/// alternate streams are, which are skipped by seeking, never read.
fn scan<R: Read + Seek>(file: &mut R, len: u64) -> Result<Scan, String> {
    let mut r = BackupStreamReader::with_len(file, len);
    let mut s = Scan::default();
    // In a sparse data stream: the end of the last block, and whether the
    // final (empty) block came.
    let mut sparse: Option<(u64, bool, bool)> = None;
    let dup = |what: &str| Err(format!("more than one {what} stream"));
    while let Some(h) = r.next_header().map_err(|e| e.to_string())? {
        if let Some((_, blocks, done)) = sparse {
            if h.id != StreamId::SparseBlock && blocks && !done {
                return Err(
                    "a sparse file's blocks end without the final block giving its size".into(),
                );
            }
        }
        match h.id {
            StreamId::Data => {
                if s.data.is_some() {
                    return dup("data");
                }
                if h.size == 0 && h.attributes & STREAM_SPARSE_ATTRIBUTE != 0 {
                    s.data = Some(Data::Sparse {
                        pos: r.position(),
                        size: 0,
                    });
                    sparse = Some((0, false, false));
                } else {
                    s.data = Some(Data::Plain {
                        pos: r.position(),
                        size: h.size,
                    });
                    r.skip_stream().map_err(|e| e.to_string())?;
                }
            }
            StreamId::SparseBlock => {
                let Some((end, _, false)) = sparse else {
                    return Err("a sparse block outside a sparse data stream".into());
                };
                if h.offset < end {
                    return Err(format!(
                        "sparse blocks go backwards (offset {} after {end})",
                        h.offset
                    ));
                }
                if h.size == 0 {
                    sparse = Some((h.offset, true, true));
                    if let Some(Data::Sparse { size, .. }) = &mut s.data {
                        *size = h.offset;
                    }
                } else {
                    let next = h
                        .offset
                        .checked_add(h.size)
                        .filter(|n| *n <= i64::MAX as u64)
                        .ok_or("sparse block past the largest file size")?;
                    sparse = Some((next, true, false));
                    r.skip_stream().map_err(|e| e.to_string())?;
                }
            }
            StreamId::Security => {
                if s.sd.is_some() {
                    return dup("security");
                }
                let sd = r
                    .read_small(MAX_SD, "security descriptor")
                    .map_err(|e| e.to_string())?;
                sd::check_self_relative(&sd).map_err(|e| format!("security descriptor: {e}"))?;
                s.sd = Some(sd);
            }
            StreamId::EaData => {
                if !s.eas.is_empty() {
                    return dup("EA");
                }
                let raw = r.read_small(MAX_EA, "EA").map_err(|e| e.to_string())?;
                s.eas = decode_eas(&raw)?;
            }
            StreamId::ReparseData => {
                if s.reparse.is_some() {
                    return dup("reparse");
                }
                let raw = r
                    .read_small(MAX_REPARSE, "reparse")
                    .map_err(|e| e.to_string())?;
                s.reparse = Some(decode_reparse(&raw)?);
            }
            StreamId::AlternateData => {
                if h.attributes & STREAM_SPARSE_ATTRIBUTE != 0 {
                    return Err(format!(
                        "sparse alternate data stream {:?}: go-winio cannot tar it (its size is unknown until read)",
                        h.name
                    ));
                }
                let name = h
                    .name
                    .strip_prefix(':')
                    .and_then(|n| n.strip_suffix(":$DATA"))
                    .filter(|n| !n.is_empty() && !n.contains([':', '/', '\\', '\0']))
                    .ok_or_else(|| {
                        format!(
                            "alternate data stream name {:?} is not `:name:$DATA`",
                            h.name
                        )
                    })?;
                s.ads.push(Ads {
                    name: name.to_string(),
                    pos: r.position(),
                    size: h.size,
                });
                r.skip_stream().map_err(|e| e.to_string())?;
            }
            // go-winio ignores these: nothing in a tar header holds them.
            StreamId::Link | StreamId::PropertyData | StreamId::ObjectId | StreamId::TxfsData => {
                r.skip_stream().map_err(|e| e.to_string())?;
            }
        }
    }
    if let Some((_, true, false)) = sparse {
        return Err("a sparse file's blocks end without the final block giving its size".into());
    }
    Ok(s)
}

/// Writes a sparse file's contents densified, as go-winio's `copySparse`
/// does (a tar cannot say "hole"): zeros up to each block, the block, and
/// zeros up to the size the final empty block gives; then the padding.
fn densify<R: Read>(out: &mut dyn Write, file: &mut R, size: u64) -> Result<(), String> {
    let zeros = [0u8; 64 * 1024];
    let zero_fill = |out: &mut dyn Write, mut n: u64| -> io::Result<()> {
        while n > 0 {
            let k = n.min(zeros.len() as u64) as usize;
            out.write_all(&zeros[..k])?;
            n -= k as u64;
        }
        Ok(())
    };
    let mut r = BackupStreamReader::new(file);
    let mut at = 0u64;
    while let Some(h) = r.next_header().map_err(|e| e.to_string())? {
        if h.id != StreamId::SparseBlock {
            break;
        }
        zero_fill(out, h.offset - at).map_err(|e| e.to_string())?;
        if h.size == 0 {
            at = h.offset;
            break;
        }
        let copied = io::copy(&mut (&mut r).take(h.size), out).map_err(|e| e.to_string())?;
        if copied != h.size {
            return Err("sparse block shorter than its header says".into());
        }
        at = h.offset + h.size;
    }
    if at != size {
        return Err("sparse blocks changed while being read".into());
    }
    write_padding(out, size).map_err(|e| e.to_string())
}
