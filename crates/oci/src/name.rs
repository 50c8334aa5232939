//! File names that are not UTF-8, carried through kiln's `String` paths
//! without loss.
//!
//! A Linux file name is any bytes but `/` and NUL, and a layer tar carries
//! them as they are (Go's `archive/tar`, and so BuildKit, writes a name's
//! bytes into its PAX `path` record unchecked). kiln names files with
//! `String`s everywhere a path is cleaned, matched or compared, so a name
//! that is not UTF-8 is spelled in them with each byte that is not part of
//! valid UTF-8 (0x80–0xFF) as one character of the last private-use block,
//! U+10FF80–U+10FFFF, and turned back into those bytes wherever the name
//! meets a file system or a tar header. A UTF-8 name, the usual case, is
//! the same text both ways, with no copy.
//!
//! The one cost: a name that is valid UTF-8 yet holds a character of that
//! block (private use, no font draws them) would read back as other bytes;
//! [`from_bytes`] refuses such names rather than change them.
//!
//! A Windows file name is UTF-16, so every name is text except one holding
//! an unpaired surrogate, which no UTF-8 layer name can spell: [`from_os`]
//! refuses such a name (as a [`ReservedCharacter`] whose message says so)
//! rather than carry it changed, as it refuses the reserved characters. The
//! other way, [`to_path`] on Windows gives the spelling itself: any bytes a
//! Linux layer's name had that are not UTF-8 stay the private-use characters
//! that stand for them, a valid Windows name that no other name maps to.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

/// The first character standing for a byte: byte `b` is `BASE + b`.
const BASE: u32 = 0x10_FF00;

/// A name holding a character that kiln uses to spell bytes; see the
/// module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedCharacter {
    /// The name, with the bytes it had.
    pub name: PathBuf,
}

impl std::fmt::Display for ReservedCharacter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(why) = sys::unspellable(&self.name) {
            return write!(f, "{}: {why}; rename the file", self.name.display());
        }
        write!(
            f,
            "{}: the name holds a character of U+10FF80–U+10FFFF, which kiln uses to carry names that are not UTF-8; rename the file",
            self.name.display()
        )
    }
}

impl std::error::Error for ReservedCharacter {}

fn reserved(c: char) -> bool {
    (BASE + 0x80..=BASE + 0xFF).contains(&(c as u32))
}

/// The `String` spelling of a name or path given as bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Cow<'_, str>, ReservedCharacter> {
    let fail = || ReservedCharacter {
        name: sys::bytes_to_path(bytes),
    };
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().any(reserved) => Err(fail()),
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                let valid = chunk.valid();
                if valid.chars().any(reserved) {
                    return Err(fail());
                }
                out.push_str(valid);
                for &b in chunk.invalid() {
                    out.push(char::from_u32(BASE + u32::from(b)).expect("a private-use character"));
                }
            }
            Ok(Cow::Owned(out))
        }
    }
}

/// The `String` spelling of an OS name or path.
pub fn from_os(name: &OsStr) -> Result<Cow<'_, str>, ReservedCharacter> {
    sys::from_os(name)
}

/// [`from_os`] for an owned name.
pub fn from_os_string(name: OsString) -> Result<String, ReservedCharacter> {
    match name.into_string() {
        Ok(s) if s.chars().any(reserved) => Err(ReservedCharacter { name: s.into() }),
        Ok(s) => Ok(s),
        Err(name) => from_os(&name).map(Cow::into_owned),
    }
}

/// The bytes a `String` spelling stands for.
pub fn to_bytes(name: &str) -> Cow<'_, [u8]> {
    if !name.chars().any(reserved) {
        return Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    let mut buf = [0u8; 4];
    for c in name.chars() {
        if reserved(c) {
            out.push((c as u32 - BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The path a `String` spelling stands for, to hand to the file system.
pub fn to_path(name: &str) -> Cow<'_, Path> {
    sys::to_path(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_are_the_same_text_without_a_copy() {
        for name in ["", "a/b.txt", "naïve café", "日本語", "new\nline"] {
            let s = from_bytes(name.as_bytes()).unwrap();
            assert!(matches!(s, Cow::Borrowed(_)));
            assert_eq!(s, name);
            assert!(matches!(to_bytes(name), Cow::Borrowed(_)));
        }
    }

    #[cfg(unix)]
    #[test]
    fn other_bytes_round_trip() {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let cases: &[&[u8]] = &[
            b"caf\xe9",
            b"\xff\xfe",
            b"dir/\x80x/\xc3",
            b"mixed \xc3\xa9 and \xe9",
            b"\xf0\x9f\x98", // a cut-off four-byte sequence
        ];
        for &bytes in cases {
            let s = from_bytes(bytes).unwrap().into_owned();
            assert!(!s.contains('\u{FFFD}'), "{s:?}");
            assert_eq!(&*to_bytes(&s), bytes, "{s:?}");
            assert_eq!(to_path(&s).as_os_str().as_bytes(), bytes);
            let owned = from_os_string(OsString::from_vec(bytes.to_vec())).unwrap();
            assert_eq!(owned, s);
        }
        // Each byte is one character, so names keep their order and length.
        assert_eq!(from_bytes(b"a\xe9b").unwrap().chars().count(), 3);
    }

    #[test]
    fn names_holding_the_reserved_characters_are_refused() {
        let name = "x\u{10FFE9}y";
        let err = from_bytes(name.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("U+10FF80"), "{err}");
        assert!(from_os_string(OsString::from(name)).is_err());
        let mut mixed = name.as_bytes().to_vec();
        mixed.push(0xff);
        assert!(from_bytes(&mixed).is_err());
        // The rest of the private-use plane is an ordinary name.
        assert!(from_bytes("\u{10FF7F}".as_bytes()).is_ok());
    }
}
