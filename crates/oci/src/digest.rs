//! Content digests (`sha256:<64 hex>`) and hashing while streaming.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// A sha256 content digest. Only sha256 is produced; parsing accepts only
/// sha256 too, since that is all OCI registries and kiln's store use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {reason}")]
pub struct ParseDigestError {
    input: String,
    reason: &'static str,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix; this
    /// is the blob's file name under `blobs/sha256/`.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest whose raw bytes (a finished sha256) are `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Digest, ParseDigestError> {
        let err = |reason| ParseDigestError {
            input: s.to_string(),
            reason,
        };
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| err("only sha256 digests are supported"))?;
        if hex_part.len() != 64 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("expected 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| err("expected 64 lowercase hex digits"))?;
        Ok(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts every byte on its way to `inner`.
///
/// Layer writing chains two of these (tar → diff_id hash → compressor →
/// digest hash → file) so a layer is hashed and compressed in one pass.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> DigestWriter<W> {
        DigestWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inner writer, mutably (to flush or sync it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Ends hashing: the digest and size of everything written, and `inner`.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest(self.hasher.finalize().into()), self.len, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_well_known() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_input() {
        let d = Digest::of(b"kiln");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", d.hex().to_uppercase())
            .parse::<Digest>()
            .is_err());
    }

    #[test]
    fn writer_hashes_what_passes_through() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (digest, len, inner) = w.finish();
        assert_eq!(len, 11);
        assert_eq!(inner, b"hello world");
        assert_eq!(digest, Digest::of(b"hello world"));
    }
}
