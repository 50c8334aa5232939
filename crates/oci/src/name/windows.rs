//! The Windows side of [`crate::name`]: a name is UTF-16.

use super::{from_bytes, reserved, ReservedCharacter};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// For an error message only: the bytes of a layer name that is not UTF-8
/// are shown lossily, as Windows has no name for them.
pub(super) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

pub(super) fn from_os(name: &OsStr) -> Result<Cow<'_, str>, ReservedCharacter> {
    let Some(text) = name.to_str() else {
        // Only an unpaired surrogate makes UTF-16 no text: no layer name
        // can carry it, and replacing it would name another file.
        return Err(ReservedCharacter {
            name: PathBuf::from(name),
        });
    };
    if text.chars().any(reserved) {
        return Err(ReservedCharacter {
            name: PathBuf::from(name),
        });
    }
    // Valid UTF-8 without the reserved characters: the same text.
    from_bytes(text.as_bytes())
}

pub(super) fn to_path(name: &str) -> Cow<'_, Path> {
    Cow::Borrowed(Path::new(name))
}

pub(super) fn unspellable(name: &Path) -> Option<&'static str> {
    name.to_str().is_none().then_some(
        "the name holds an unpaired UTF-16 surrogate, which no layer (UTF-8) name can spell",
    )
}

#[cfg(test)]
mod tests {
    use super::super::{from_os, from_os_string, to_bytes, to_path};
    use std::ffi::OsString;
    use std::os::windows::ffi::{OsStrExt, OsStringExt};

    #[test]
    fn unpaired_surrogates_are_refused_with_their_reason() {
        // "a", a lone high surrogate, "b".
        let name = OsString::from_wide(&[0x61, 0xD800, 0x62]);
        let err = from_os(&name).unwrap_err();
        assert!(
            err.to_string().contains("unpaired UTF-16 surrogate"),
            "{err}"
        );
        assert!(from_os_string(name).is_err());
        // A pair is an ordinary character.
        let pair = OsString::from_wide(&[0xD83D, 0xDE00]);
        assert_eq!(from_os(&pair).unwrap(), "\u{1F600}");
    }

    #[test]
    fn names_are_their_own_spelling() {
        for name in ["a\\b.txt", "naïve café", "日本語"] {
            let os = OsString::from(name);
            assert_eq!(from_os(&os).unwrap(), name);
            assert_eq!(to_path(name).as_os_str(), name);
            let wide: Vec<u16> = to_path(name).as_os_str().encode_wide().collect();
            assert_eq!(wide, name.encode_utf16().collect::<Vec<_>>());
        }
        // A Linux name's stray byte keeps its stand-in character, a name
        // Windows can hold, which reads back as the reserved character.
        let spelled = super::super::from_bytes(b"caf\xe9").unwrap().into_owned();
        assert_eq!(&*to_bytes(&spelled), b"caf\xe9");
        assert_eq!(to_path(&spelled).to_str(), Some(spelled.as_str()));
        let err = from_os(to_path(&spelled).as_os_str()).unwrap_err();
        assert!(err.to_string().contains("U+10FF80"), "{err}");
    }
}
