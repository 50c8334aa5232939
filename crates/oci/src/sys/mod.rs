//! The few file-system facts and steps that differ between Unix and
//! Windows hosts, behind one crate-private interface, so the modules
//! that use them hold no platform conditionals of their own.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// A time as seconds and nanoseconds since the Unix epoch.
pub(crate) type UnixTime = (i64, u32);

/// The times a file's metadata reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatTimes {
    /// Last write.
    pub modified: UnixTime,
    /// Last access.
    pub accessed: UnixTime,
    /// Last change of data or metadata.
    pub changed: UnixTime,
}
