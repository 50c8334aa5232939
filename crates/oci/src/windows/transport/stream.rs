//! The Win32 backup stream that `BackupRead` produces and `BackupWrite`
//! consumes, framed as go-winio frames it (`backup.go`,
//! `BackupStreamReader`/`BackupStreamWriter`): each stream is a packed
//! 20-byte `WIN32_STREAM_ID` (id, attributes, 64-bit size, name size, all
//! little-endian), the UTF-16LE name, then `size` bytes of content, and
//! the next header follows at once. go-winio applies no alignment or
//! padding anywhere, so neither does this codec. A sparse block's size
//! counts the 8-byte file offset that precedes its content.
//!
//! Both directions stream: content goes through [`Read`] and [`Write`],
//! never held whole. Sizes and name lengths are checked against limits and,
//! when the input's length is known, against what is left of it, so a
//! hostile header fails at once rather than after gigabytes.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes of a `WIN32_STREAM_ID` before its name.
pub const HEADER_LEN: u64 = 20;

/// The longest stream name accepted, in bytes of UTF-16: NTFS names hold
/// 255 units, and `:name:$DATA` adds 7.
pub const MAX_NAME_BYTES: u32 = 2 * (255 + 7);

/// `STREAM_SPARSE_ATTRIBUTE`: the data stream is followed by sparse
/// blocks rather than holding the contents.
pub const STREAM_SPARSE_ATTRIBUTE: u32 = 8;

/// The stream ids of `winbase.h` (`BACKUP_DATA` … `BACKUP_TXFS_DATA`), as
/// go-winio lists them; anything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamId {
    /// `BACKUP_DATA`: the unnamed data stream, the file's contents.
    Data = 1,
    /// `BACKUP_EA_DATA`: extended attributes (`FILE_FULL_EA_INFORMATION`).
    EaData = 2,
    /// `BACKUP_SECURITY_DATA`: a self-relative security descriptor.
    Security = 3,
    /// `BACKUP_ALTERNATE_DATA`: a named data stream (`:name:$DATA`).
    AlternateData = 4,
    /// `BACKUP_LINK`: hard-link information.
    Link = 5,
    /// `BACKUP_PROPERTY_DATA`.
    PropertyData = 6,
    /// `BACKUP_OBJECT_ID`.
    ObjectId = 7,
    /// `BACKUP_REPARSE_DATA`: a `REPARSE_DATA_BUFFER`.
    ReparseData = 8,
    /// `BACKUP_SPARSE_BLOCK`: one allocated range of a sparse file.
    SparseBlock = 9,
    /// `BACKUP_TXFS_DATA`.
    TxfsData = 10,
}

impl StreamId {
    /// The id for `code`, if Windows defines one go-winio knows.
    pub fn from_code(code: u32) -> Option<StreamId> {
        use StreamId::*;
        Some(match code {
            1 => Data,
            2 => EaData,
            3 => Security,
            4 => AlternateData,
            5 => Link,
            6 => PropertyData,
            7 => ObjectId,
            8 => ReparseData,
            9 => SparseBlock,
            10 => TxfsData,
            _ => return None,
        })
    }

    /// The numeric id written in the header.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// One stream's header, as go-winio's `BackupHeader` has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// What the stream holds.
    pub id: StreamId,
    /// `dwStreamAttributes` (e.g. [`STREAM_SPARSE_ATTRIBUTE`]).
    pub attributes: u32,
    /// Bytes of content, not counting a sparse block's offset.
    pub size: u64,
    /// The stream's name; only alternate data streams have one.
    pub name: String,
    /// A sparse block's offset in the file; 0 for other streams.
    pub offset: u64,
}

impl StreamHeader {
    /// A header without name or attributes.
    pub fn new(id: StreamId, size: u64) -> StreamHeader {
        StreamHeader {
            id,
            attributes: 0,
            size,
            name: String::new(),
            offset: 0,
        }
    }

    /// The header as it precedes the content in a stream (with a sparse
    /// block's offset), for a reader that hands out a stream piecewise
    /// rather than through [`BackupStreamWriter`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, StreamError> {
        let name: Vec<u16> = self.name.encode_utf16().collect();
        let name_len = name.len() * 2;
        if name_len > MAX_NAME_BYTES as usize {
            return Err(format_err(format!(
                "stream name {:?} is longer than {MAX_NAME_BYTES} bytes of UTF-16",
                self.name
            )));
        }
        let sparse = self.id == StreamId::SparseBlock;
        let size = if sparse {
            self.size.checked_add(8)
        } else {
            Some(self.size)
        };
        let size = size
            .filter(|s| *s <= i64::MAX as u64)
            .ok_or_else(|| format_err(format!("stream size {} is too large", self.size)))?;
        let mut raw = Vec::with_capacity(HEADER_LEN as usize + name_len + 8);
        raw.extend_from_slice(&self.id.code().to_le_bytes());
        raw.extend_from_slice(&self.attributes.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&(name_len as u32).to_le_bytes());
        for unit in name {
            raw.extend_from_slice(&unit.to_le_bytes());
        }
        if sparse {
            raw.extend_from_slice(&self.offset.to_le_bytes());
        }
        Ok(raw)
    }
}

/// A backup stream that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The underlying reader or writer failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The stream is malformed; the text says how.
    #[error("{0}")]
    Format(String),
}

fn format_err(msg: impl Into<String>) -> StreamError {
    StreamError::Format(msg.into())
}

/// Reads the headers of a backup stream one by one; the current stream's
/// content is read through [`Read`], and what is left of it is skipped by
/// the next [`BackupStreamReader::next_header`].
#[derive(Debug)]
pub struct BackupStreamReader<R> {
    inner: R,
    /// Content bytes of the current stream not read yet.
    left: u64,
    /// Bytes consumed from `inner`.
    pos: u64,
    /// The input's length, when known: no stream may claim more.
    len: Option<u64>,
}

impl<R: Read> BackupStreamReader<R> {
    /// Reads the stream in `inner`, of unknown length.
    pub fn new(inner: R) -> BackupStreamReader<R> {
        BackupStreamReader {
            inner,
            left: 0,
            pos: 0,
            len: None,
        }
    }

    /// Reads the stream in `inner`, which holds exactly `len` bytes (a
    /// file's size less what precedes the stream): a header claiming more
    /// than is left fails before anything is read.
    pub fn with_len(inner: R, len: u64) -> BackupStreamReader<R> {
        BackupStreamReader {
            len: Some(len),
            ..BackupStreamReader::new(inner)
        }
    }

    /// Bytes of the input consumed so far: where the current stream's
    /// unread content starts.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Content bytes of the current stream not read yet.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    /// The reader, positioned wherever reading stopped.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next stream's header, or `None` where the input ends cleanly
    /// between streams. Content not read of the previous stream is
    /// skipped.
    pub fn next_header(&mut self) -> Result<Option<StreamHeader>, StreamError> {
        if self.left > 0 {
            let left = self.left;
            let skipped = io::copy(&mut self.by_ref().take(left), &mut io::sink())?;
            if skipped != left {
                return Err(self.truncated());
            }
        }
        let mut raw = [0u8; HEADER_LEN as usize];
        let got = read_full(&mut self.inner, &mut raw)?;
        self.pos += got as u64;
        if got == 0 {
            return Ok(None);
        }
        if got < raw.len() {
            return Err(format_err(format!(
                "the backup stream ends inside a stream header ({got} of {HEADER_LEN} bytes)"
            )));
        }
        let u32_at = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().unwrap());
        let code = u32_at(0);
        let attributes = u32_at(4);
        let mut size = u64::from_le_bytes(raw[8..16].try_into().unwrap());
        let name_len = u32_at(16);
        let id = StreamId::from_code(code)
            .ok_or_else(|| format_err(format!("unknown backup stream id {code}")))?;
        if name_len > MAX_NAME_BYTES || name_len % 2 != 0 {
            return Err(format_err(format!(
                "stream name length {name_len} is not an even number of bytes up to {MAX_NAME_BYTES}"
            )));
        }
        if size > i64::MAX as u64 {
            return Err(format_err(format!(
                "stream size {size} is past what Windows can hold (2^63 - 1)"
            )));
        }
        if let Some(len) = self.len {
            let rest = len.saturating_sub(self.pos);
            if u64::from(name_len) + size > rest {
                return Err(format_err(format!(
                    "a {id:?} stream claims {size} bytes and a {name_len}-byte name, but only {rest} bytes remain"
                )));
            }
        }
        let mut name_raw = vec![0u8; name_len as usize];
        if read_full(&mut self.inner, &mut name_raw)? != name_raw.len() {
            return Err(format_err("the backup stream ends inside a stream name"));
        }
        self.pos += u64::from(name_len);
        let units = name_raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        let name = char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| format_err("stream name is not valid UTF-16"))?;
        let mut offset = 0;
        if id == StreamId::SparseBlock {
            if size < 8 {
                return Err(format_err(format!(
                    "sparse block of {size} bytes has no room for its 8-byte offset"
                )));
            }
            let mut raw = [0u8; 8];
            if read_full(&mut self.inner, &mut raw)? != 8 {
                return Err(format_err(
                    "the backup stream ends inside a sparse block offset",
                ));
            }
            self.pos += 8;
            offset = u64::from_le_bytes(raw);
            if offset > i64::MAX as u64 {
                return Err(format_err(format!(
                    "sparse block offset {offset} is negative"
                )));
            }
            size -= 8;
        }
        self.left = size;
        Ok(Some(StreamHeader {
            id,
            attributes,
            size,
            name,
            offset,
        }))
    }

    /// The current stream's whole content, which must be at most `limit`
    /// bytes: for metadata (descriptors, EAs, reparse data), never data.
    pub fn read_small(&mut self, limit: u64, what: &str) -> Result<Vec<u8>, StreamError> {
        if self.left > limit {
            return Err(format_err(format!(
                "{what} stream of {} bytes is larger than the {limit} bytes Windows allows",
                self.left
            )));
        }
        let mut out = vec![0u8; self.left as usize];
        self.read_exact(&mut out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => self.truncated(),
            _ => StreamError::Io(e),
        })?;
        Ok(out)
    }

    fn truncated(&self) -> StreamError {
        format_err(format!(
            "the backup stream ends {} bytes before the end of a stream",
            self.left
        ))
    }
}

impl<R: Read + Seek> BackupStreamReader<R> {
    /// Skips the rest of the current stream by seeking, so a large data
    /// stream is passed over without being read.
    pub fn skip_stream(&mut self) -> io::Result<()> {
        if self.left > 0 {
            let left = i64::try_from(self.left).expect("sizes are checked below 2^63");
            self.inner.seek(SeekFrom::Current(left))?;
            self.pos += self.left;
            self.left = 0;
        }
        Ok(())
    }
}

impl<R: Read> Read for BackupStreamReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the backup stream ends {} bytes before the end of a stream",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes a backup stream: a header, then exactly as many content bytes
/// as it declares, through [`Write`].
#[derive(Debug)]
pub struct BackupStreamWriter<W> {
    inner: W,
    left: u64,
}

impl<W: Write> BackupStreamWriter<W> {
    /// Writes into `inner`.
    pub fn new(inner: W) -> BackupStreamWriter<W> {
        BackupStreamWriter { inner, left: 0 }
    }

    /// Starts the next stream; the previous one must be complete.
    pub fn write_header(&mut self, h: &StreamHeader) -> Result<(), StreamError> {
        if self.left != 0 {
            return Err(format_err(format!(
                "the previous stream is missing {} bytes",
                self.left
            )));
        }
        self.inner.write_all(&h.to_bytes()?)?;
        self.left = h.size;
        Ok(())
    }

    /// Writes a whole stream whose content is in memory.
    pub fn write_stream(&mut self, id: StreamId, content: &[u8]) -> Result<(), StreamError> {
        self.write_header(&StreamHeader::new(id, content.len() as u64))?;
        self.write_all(content)?;
        Ok(())
    }

    /// Checks the last stream is complete and returns the writer.
    pub fn finish(self) -> Result<W, StreamError> {
        if self.left != 0 {
            return Err(format_err(format!(
                "the last stream is missing {} bytes",
                self.left
            )));
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for BackupStreamWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes more than the stream header declared",
                    buf.len() as u64 - self.left
                ),
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
