//! What the store does differently on Unix and Windows hosts: locks, the
//! making of a lease, what leases leave behind, file modes, the default
//! root and archive names, behind one crate-private interface, so the
//! modules that use them hold no platform conditionals of their own.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// How to take a lock (here, not in `fsutil`, which uses this module).
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// A lease's file of blob digests (here, not in `lease`, which uses this
/// module: the Windows side removes it).
pub(crate) const BLOBS: &str = "blobs";
/// The prefix of a lease directory not yet placed (Unix makes leases so).
pub(crate) const NEW: &str = ".new-";
