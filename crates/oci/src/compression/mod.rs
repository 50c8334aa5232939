//! Layer compression: gzip (parallel, thread-count independent), zstd
//! (libzstd's multithreading) or none.

mod pgzip;

pub use pgzip::ParallelGzipWriter;

use crate::manifest::{DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::str::FromStr;

/// How a layer blob is compressed, with the level to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip at level 0–9 (docker and BuildKit use 6).
    Gzip(u32),
    /// zstd at level 1–22 (BuildKit uses 3).
    Zstd(i32),
    /// A plain tar.
    None,
}

/// What a stream's first bytes say it is compressed with: the one place
/// kiln reads compression magic (layers, archives, ADD's auto-extraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// `1f 8b`.
    Gzip,
    /// `28 b5 2f fd`.
    Zstd,
    /// `BZh`.
    Bzip2,
    /// `fd 37 7a 58 5a 00`.
    Xz,
    /// None of them: plain data.
    None,
}

impl Magic {
    /// The compression `head`, a stream's first bytes (six suffice), says.
    pub fn of(head: &[u8]) -> Magic {
        if head.starts_with(&[0x1f, 0x8b]) {
            Magic::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Magic::Zstd
        } else if head.starts_with(b"BZh") {
            Magic::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Magic::Xz
        } else {
            Magic::None
        }
    }
}

/// Decompresses a blob by its magic bytes: gzip (every member, each
/// member's CRC and length checked when read to the end), zstd, or
/// anything else as it is (a plain tar). Layers are never bzip2 or xz.
pub fn decompress<'a, R: Read + Send + 'a>(blob: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, blob);
    let head = buf.fill_buf()?;
    Ok(match Magic::of(head) {
        Magic::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Magic::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        Magic::Bzip2 | Magic::Xz | Magic::None => Box::new(buf),
    })
}

/// The default gzip level, Go's `gzip.DefaultCompression`.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// The default zstd level, libzstd's and BuildKit's.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Default for Compression {
    fn default() -> Compression {
        Compression::Gzip(DEFAULT_GZIP_LEVEL)
    }
}

/// Why `--compression` / `--compression-level` values were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressionError {
    /// An unknown algorithm name.
    #[error("unknown compression {0:?}: use gzip, zstd or uncompressed")]
    UnknownKind(String),
    /// A level that is not a number or is out of range.
    #[error(
        "invalid --compression-level {level:?} for {kind}: use a whole number from {min} to {max}"
    )]
    BadLevel {
        /// The algorithm.
        kind: &'static str,
        /// The value given.
        level: String,
        /// Smallest level.
        min: i32,
        /// Largest level.
        max: i32,
    },
    /// A level given with `uncompressed`.
    #[error("--compression-level {0:?} has no effect with uncompressed layers; drop it or choose gzip or zstd")]
    LevelWithoutCompression(String),
}

impl Compression {
    /// Parses the CLI's `--compression KIND` and optional
    /// `--compression-level N`.
    pub fn parse(kind: &str, level: Option<&str>) -> Result<Compression, CompressionError> {
        let base: Compression = kind.parse()?;
        let Some(level) = level else { return Ok(base) };
        let bad = |kind, min, max| CompressionError::BadLevel {
            kind,
            level: level.to_string(),
            min,
            max,
        };
        let n: Result<i32, _> = level.trim().parse::<i32>().map_err(|_| match base {
            Compression::Gzip(_) => bad("gzip", 0, 9),
            _ => bad("zstd", 1, 22),
        });
        match base {
            Compression::Gzip(_) => match n {
                Ok(n @ 0..=9) => Ok(Compression::Gzip(n as u32)),
                _ => Err(bad("gzip", 0, 9)),
            },
            Compression::Zstd(_) => match n {
                Ok(n @ 1..=22) => Ok(Compression::Zstd(n)),
                _ => Err(bad("zstd", 1, 22)),
            },
            Compression::None => Err(CompressionError::LevelWithoutCompression(level.to_string())),
        }
    }

    /// The OCI layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip(_) => OCI_LAYER_GZIP,
            Compression::Zstd(_) => OCI_LAYER_ZSTD,
            Compression::None => OCI_LAYER,
        }
    }

    /// The media type in a docker schema 2 manifest (docker has no zstd
    /// type; BuildKit writes the OCI one there too).
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::Gzip(_) => DOCKER_LAYER_GZIP,
            Compression::Zstd(_) => OCI_LAYER_ZSTD,
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
        }
    }

    /// A writer that compresses into `inner` on up to `threads` threads.
    pub fn encoder<W: Write>(self, inner: W, threads: usize) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::Gzip(level) => {
                Encoder::Gzip(ParallelGzipWriter::new(inner, level, threads)?)
            }
            Compression::Zstd(level) => {
                let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
                // Any worker count >= 1 gives the same bytes, so always use
                // zstdmt's framing even for one thread.
                enc.multithread(threads.max(1) as u32)?;
                Encoder::Zstd(enc)
            }
            Compression::None => Encoder::None(inner),
        })
    }
}

impl FromStr for Compression {
    type Err = CompressionError;

    /// `gzip`, `zstd`, or `uncompressed` (also `none`), at the default level.
    fn from_str(s: &str) -> Result<Compression, CompressionError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip(DEFAULT_GZIP_LEVEL)),
            "zstd" => Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
            "uncompressed" | "none" => Ok(Compression::None),
            _ => Err(CompressionError::UnknownKind(s.to_string())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip(l) => write!(f, "gzip (level {l})"),
            Compression::Zstd(l) => write!(f, "zstd (level {l})"),
            Compression::None => f.write_str("uncompressed"),
        }
    }
}

/// A compressing writer from [`Compression::encoder`].
pub enum Encoder<W: Write> {
    /// Parallel gzip.
    Gzip(ParallelGzipWriter<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Pass-through.
    None(W),
}

impl<W: Write> Encoder<W> {
    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_values() {
        assert_eq!(Compression::parse("gzip", None), Ok(Compression::Gzip(6)));
        assert_eq!(
            Compression::parse("zstd", Some("19")),
            Ok(Compression::Zstd(19))
        );
        assert_eq!(
            Compression::parse("uncompressed", None),
            Ok(Compression::None)
        );
        assert_eq!(
            Compression::parse("brotli", None).unwrap_err().to_string(),
            "unknown compression \"brotli\": use gzip, zstd or uncompressed"
        );
        assert_eq!(
            Compression::parse("gzip", Some("12"))
                .unwrap_err()
                .to_string(),
            "invalid --compression-level \"12\" for gzip: use a whole number from 0 to 9"
        );
        assert_eq!(
            Compression::parse("zstd", Some("fast"))
                .unwrap_err()
                .to_string(),
            "invalid --compression-level \"fast\" for zstd: use a whole number from 1 to 22"
        );
        assert_eq!(
            Compression::parse("uncompressed", Some("3")).unwrap_err().to_string(),
            "--compression-level \"3\" has no effect with uncompressed layers; drop it or choose gzip or zstd"
        );
        assert_eq!(Compression::Zstd(3).media_type(), OCI_LAYER_ZSTD);
        assert_eq!(Compression::Gzip(6).docker_media_type(), DOCKER_LAYER_GZIP);
    }
}
