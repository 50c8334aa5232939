//! The Unix side of [`crate::name`]: a name is bytes.

use super::{from_bytes, to_bytes, ReservedCharacter};
use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

pub(super) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

pub(super) fn from_os(name: &OsStr) -> Result<Cow<'_, str>, ReservedCharacter> {
    from_bytes(name.as_bytes())
}

pub(super) fn to_path(name: &str) -> Cow<'_, Path> {
    match to_bytes(name) {
        Cow::Borrowed(b) => Cow::Borrowed(Path::new(OsStr::from_bytes(b))),
        Cow::Owned(b) => Cow::Owned(PathBuf::from(OsString::from_vec(b))),
    }
}

/// Every Unix name has a spelling: only the reserved characters are
/// refused.
pub(super) fn unspellable(_name: &Path) -> Option<&'static str> {
    None
}
