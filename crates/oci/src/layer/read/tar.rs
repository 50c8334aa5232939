//! A streaming tar reader for untrusted archives.
//!
//! kiln reads layers with this rather than the `tar` crate, which reads GNU
//! long names and PAX headers whole into memory however large they claim to
//! be (a 1 MB gzip declaring a 1 GiB long name took 7 GB) and splits PAX
//! records at newlines, although a record is framed by its length prefix and
//! its value may hold any byte (a `security.capability` xattr often does).
//! This reader follows POSIX and Go's `archive/tar`: records are read by
//! their length, extension headers are capped at [`MAX_EXTENSION`] (Go's
//! limit), header-only entry types carry no data whatever their size field
//! says, and nothing but the current header is ever held in memory.

use crate::layer::PaxTime;
use std::io::{self, Read};

/// The tar block size.
const BLOCK: usize = 512;

/// The largest GNU long name or link, PAX header or global PAX header
/// accepted, as Go's `archive/tar` caps them (`maxSpecialFileSize`).
pub const MAX_EXTENSION: u64 = 1 << 20;

/// One header, with its GNU long name/link and PAX records applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The entry's name as written (no cleaning).
    pub name: Vec<u8>,
    /// The link target of a symlink or hard link.
    pub linkname: Vec<u8>,
    /// The type flag byte (`b'0'`, `b'5'`, …).
    pub typeflag: u8,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Bytes of data that follow the header (0 for header-only types).
    pub size: u64,
    /// Modification time, whole seconds (floored, as Go's `Unix()`).
    pub mtime: i64,
    /// Nanoseconds after `mtime`, from a fractional PAX `mtime` (Windows
    /// layers carry them; their importer reads them).
    pub mtime_nanos: u32,
    /// Device numbers of character and block devices.
    pub devmajor: u32,
    /// Minor device number.
    pub devminor: u32,
    /// PAX records other than those applied to the fields above, in order
    /// (`SCHILY.xattr.*`, `MSWINDOWS.*`, `LIBARCHIVE.*`, …).
    pub pax: Vec<(String, Vec<u8>)>,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading the underlying stream failed (decompression errors included).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The archive is malformed; the text says how.
    #[error("{0}")]
    Format(String),
}

fn format_err(msg: impl Into<String>) -> TarError {
    TarError::Format(msg.into())
}

/// Reads headers one after another; the data of the current entry is read
/// through [`Read`] on the reader itself, and whatever is left of it is
/// skipped by the next [`TarReader::next_header`].
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    done: bool,
    /// PAX global headers skipped so far.
    globals: u64,
}

impl<R: Read> TarReader<R> {
    /// Reads the archive in `inner`.
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
            globals: 0,
        }
    }

    /// How many PAX global headers were skipped so far: a Windows importer
    /// would take each for a file outside `Files/`.
    pub fn global_headers(&self) -> u64 {
        self.globals
    }

    /// The stream after the end-of-archive marker (or where reading
    /// stopped), so a caller can drain it.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry's header, or `None` at the end of the archive: two zero
    /// blocks, or the stream ending exactly between entries, as Go accepts.
    pub fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        if self.done {
            return Ok(None);
        }
        let skip = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        skip_exact(&mut self.inner, skip)?;

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<(String, Vec<u8>)>> = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(format_err(
                        "the archive ends after an extended header, before its entry",
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                let mut second = [0u8; BLOCK];
                if read_block(&mut self.inner, &mut second)? && second.iter().any(|b| *b != 0) {
                    return Err(format_err(
                        "a zero block in the middle of the archive (a corrupt or concatenated tar)",
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let typeflag = block[156];
            let size = numeric(&block[124..136], "size")?;
            match typeflag {
                b'L' | b'K' | b'x' | b'g' => {
                    let what = match typeflag {
                        b'L' => "GNU long name",
                        b'K' => "GNU long link name",
                        b'x' => "PAX header",
                        _ => "PAX global header",
                    };
                    if size > MAX_EXTENSION {
                        return Err(format_err(format!(
                            "{what} of {size} bytes; at most {MAX_EXTENSION} are accepted"
                        )));
                    }
                    let mut body = vec![0u8; size as usize];
                    read_data(&mut self.inner, &mut body, what)?;
                    skip_exact(&mut self.inner, padding(size))?;
                    match typeflag {
                        b'L' => long_name = Some(trim_nuls(body)),
                        b'K' => long_link = Some(trim_nuls(body)),
                        b'x' => pax = Some(parse_pax(&body)?),
                        // Global records describe the archive, not an entry;
                        // layers have no use for them, as containerd ignores
                        // them (Windows importers do not: see
                        // `global_headers`).
                        _ => self.globals += 1,
                    }
                }
                _ => {
                    let mut h = parse_header(&block, typeflag, size)?;
                    if let Some(name) = long_name {
                        h.name = name;
                    }
                    if let Some(link) = long_link {
                        h.linkname = link;
                    }
                    if let Some(records) = pax {
                        apply_pax(&mut h, records)?;
                    }
                    if is_header_only(h.typeflag) {
                        h.size = 0;
                    }
                    self.remaining = h.size;
                    self.padding = padding(h.size);
                    return Ok(Some(h));
                }
            }
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry's data (truncated)",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Types whose size field does not describe data that follows (Go's
/// `isHeaderOnlyType`).
fn is_header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Fills `block`; false at a clean end of stream (no byte read).
fn read_block<R: Read>(r: &mut R, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
    let mut filled = 0;
    while filled < BLOCK {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(format_err("the archive ends inside a header (truncated)")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn read_data<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), TarError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            format_err(format!("the archive ends inside a {what} (truncated)"))
        } else {
            e.into()
        }
    })
}

fn skip_exact<R: Read>(r: &mut R, n: u64) -> Result<(), TarError> {
    if n == 0 {
        return Ok(());
    }
    let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
    if copied < n {
        return Err(format_err(
            "the archive ends inside an entry's data (truncated)",
        ));
    }
    Ok(())
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// The header checksum, accepting the signed sum some old tars wrote, as
/// Go does.
fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), TarError> {
    let stored = numeric(&block[148..156], "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(format_err(format!(
            "header checksum {stored:o} does not match the header's bytes ({unsigned:o}): not a tar archive, or a corrupt one"
        )))
    }
}

/// A numeric field: octal (space or NUL terminated), or base-256 when the
/// top bit of the first byte is set (GNU, for values octal cannot hold).
fn numeric(field: &[u8], what: &str) -> Result<u64, TarError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return Err(format_err(format!("negative {what} field")));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or_else(|| format_err(format!("{what} field overflows 64 bits")))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .filter(|b| *b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s =
        std::str::from_utf8(&text).map_err(|_| format_err(format!("{what} field is not octal")))?;
    u64::from_str_radix(s, 8).map_err(|_| format_err(format!("{what} field {s:?} is not octal")))
}

fn cstr(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

fn parse_header(block: &[u8; BLOCK], typeflag: u8, size: u64) -> Result<Header, TarError> {
    let mut name = cstr(&block[0..100]);
    // USTAR and POSIX put a name prefix at 345; GNU's "ustar  " magic uses
    // those bytes for other fields.
    if &block[257..263] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix;
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let id = |f: &[u8], what: &str| numeric(f, what);
    let mtime = numeric(&block[136..148], "mtime")?;
    let device = |f: &[u8], what: &str| -> Result<u32, TarError> {
        u32::try_from(numeric(f, what)?).map_err(|_| format_err(format!("{what} out of range")))
    };
    Ok(Header {
        name,
        linkname: cstr(&block[157..257]),
        typeflag,
        mode: (numeric(&block[100..108], "mode")? & 0o7777) as u32,
        uid: id(&block[108..116], "uid")?,
        gid: id(&block[116..124], "gid")?,
        size,
        mtime: i64::try_from(mtime).map_err(|_| format_err("mtime out of range"))?,
        mtime_nanos: 0,
        devmajor: device(&block[329..337], "device major")?,
        devminor: device(&block[337..345], "device minor")?,
        pax: Vec::new(),
    })
}

/// PAX records: `"%d %s=%s\n"`, where the decimal length counts the whole
/// record, newline included; the value is everything between `=` and that
/// final newline, whatever bytes it holds.
fn parse_pax(mut body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TarError> {
    let mut out = Vec::new();
    // Go stops at a NUL tail: some writers pad the body.
    while !body.is_empty() && body[0] != 0 {
        let space = body
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| format_err("PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&body[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format_err("PAX record length is not a decimal number"))?;
        if len <= space + 1 || len > body.len() {
            return Err(format_err(format!(
                "PAX record length {len} does not fit the header ({} bytes left)",
                body.len()
            )));
        }
        let record = &body[space + 1..len];
        let Some((&b'\n', record)) = record.split_last() else {
            return Err(format_err("PAX record does not end with a newline"));
        };
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| format_err("PAX record without '='"))?;
        let key = std::str::from_utf8(&record[..eq])
            .map_err(|_| format_err("PAX record key is not UTF-8"))?;
        if key.is_empty() {
            return Err(format_err("PAX record with an empty key"));
        }
        out.push((key.to_string(), record[eq + 1..].to_vec()));
        body = &body[len..];
    }
    Ok(out)
}

fn apply_pax(h: &mut Header, records: Vec<(String, Vec<u8>)>) -> Result<(), TarError> {
    let text = |key: &str, v: &[u8]| -> Result<String, TarError> {
        String::from_utf8(v.to_vec()).map_err(|_| format_err(format!("PAX {key} is not text")))
    };
    let int = |key: &str, v: &[u8]| -> Result<u64, TarError> {
        text(key, v)?
            .parse()
            .map_err(|_| format_err(format!("PAX {key} is not a number")))
    };
    for (key, value) in records {
        match key.as_str() {
            "path" => h.name = value,
            "linkpath" => h.linkname = value,
            "size" => h.size = int(&key, &value)?,
            "uid" => h.uid = int(&key, &value)?,
            "gid" => h.gid = int(&key, &value)?,
            "mtime" => {
                let t = text(&key, &value)?;
                let time: PaxTime = t
                    .parse()
                    .map_err(|_| format_err(format!("PAX mtime {t:?} is not a time")))?;
                h.mtime = time.secs;
                h.mtime_nanos = time.nanos;
            }
            k if k.starts_with("GNU.sparse.") => {
                return Err(format_err(
                    "GNU sparse files are not supported in layers (no image builder writes them)",
                ))
            }
            _ => h.pax.push((key, value)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_keep_newlines_and_every_byte() {
        let value: Vec<u8> = (0..=255u8).collect();
        let mut body = Vec::new();
        let mut rec = b"SCHILY.xattr.user.x=".to_vec();
        rec.extend_from_slice(&value);
        rec.push(b'\n');
        // Length counts its own digits and the space.
        let mut len = rec.len() + 2;
        while format!("{len} ").len() + rec.len() != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len} ").as_bytes());
        body.extend_from_slice(&rec);
        let records = parse_pax(&body).unwrap();
        assert_eq!(records, [("SCHILY.xattr.user.x".to_string(), value)]);
    }

    #[test]
    fn bad_pax_lengths_are_refused() {
        for body in [
            &b"99 path=a\n"[..],
            b"x path=a\n",
            b"3 p\n",
            b"10 path=ab\0",
        ] {
            assert!(parse_pax(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn base256_numbers_are_read() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        f[10] = 1;
        assert_eq!(numeric(&f, "size").unwrap(), 261);
        f[0] = 0xff;
        assert!(numeric(&f, "size").is_err());
    }
}
