//! What the stat cache reads differently on Unix and Windows hosts: a
//! file's identity, how a listed file is opened, what an entry records
//! besides its content, and paths as bytes, behind one crate-private
//! interface, so the modules that use them hold no platform conditionals
//! of their own.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// What an entry records besides its kind and content.
pub(crate) struct Attributes {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}
