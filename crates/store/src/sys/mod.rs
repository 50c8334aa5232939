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
