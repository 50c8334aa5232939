//! The two file-system steps the registry client takes differently on
//! Unix and Windows hosts (a private credentials file, a positioned read),
//! behind one crate-private interface.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
