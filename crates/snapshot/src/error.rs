//! What can go wrong, worded for the person running the build.

use kiln_oci::{Digest, ExtractError};
use rustix::io::Errno;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A snapshot operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer blob's uncompressed contents are not the layer the image
    /// claims: its config names a diff_id the blob does not hash to.
    #[error(
        "the layer blob does not match its diff_id: the image config says {expected}, but the \
         uncompressed blob is {got}; the image is corrupt or forged, so nothing was unpacked"
    )]
    DiffIdMismatch {
        /// The diff_id the image config claims.
        expected: Digest,
        /// The digest of the blob's uncompressed contents.
        got: Digest,
    },
    /// A file-system call on a snapshot path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`"creating the directory"`).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The kernel refused the overlay mount.
    #[error(
        "mounting overlay on {}: {}{}{}",
        target.display(),
        MountErrno(source),
        option.as_ref().map(|o| format!(", setting {o}")).unwrap_or_default(),
        kernel_log(source, log)
    )]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The option being set when the kernel refused it (`upperdir=/…`),
        /// when the refusal came then rather than at the mount.
        option: Option<String>,
        /// The error of the call that failed.
        source: io::Error,
        /// Overlayfs' own explanation, when the kernel gave one.
        log: Vec<String>,
    },
    /// The classic mount(2) call cannot carry this many layers.
    #[error(
        "mounting overlay on {}: the options naming {layers} layers are {len} bytes, more than \
         the {max} bytes mount(2) accepts; this kernel lacks fsconfig's lowerdir+ (Linux 6.8), \
         which has no such limit, so use fewer layers or a shorter snapshot root",
        target.display()
    )]
    OptionsTooLong {
        /// The mount point.
        target: PathBuf,
        /// How many lower layers.
        layers: usize,
        /// The length of the option string.
        len: usize,
        /// The most the kernel takes.
        max: usize,
    },
    /// A path that the classic mount(2) option string cannot carry.
    #[error(
        "mounting overlay on {}: {} contains a comma or NUL byte, which mount(2)'s option \
         string cannot carry, and this kernel lacks fsconfig's lowerdir+ (Linux 6.8); use a snapshot root \
         without commas",
        target.display(),
        path.display()
    )]
    UnmountablePath {
        /// The mount point.
        target: PathBuf,
        /// The offending path.
        path: PathBuf,
    },
    /// Unmounting a snapshot failed.
    #[error(
        "unmounting {}: {source} (a process started by the build may still be using it)",
        target.display()
    )]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `prepare` named a layer that `ensure_layer` never unpacked.
    #[error("layer {diff_id} is not unpacked in {}: ensure_layer must come before prepare", layers.display())]
    MissingLayer {
        /// The layer's diff_id.
        diff_id: Digest,
        /// Where unpacked layers live.
        layers: PathBuf,
    },
    /// A layer blob could not be unpacked.
    #[error("unpacking into {}: {source}", path.display())]
    Extract {
        /// The directory it was being unpacked into.
        path: PathBuf,
        /// The error.
        source: ExtractError,
    },
    /// The snapshot root keeps overlay markers in xattrs this process cannot use.
    #[error(
        "{}: its layers mark opaque directories with {stored}.overlay.* xattrs, but this process \
         {why} and can only use {needed}.overlay.*; use another snapshot root (KILN_ROOT) here",
        root.display()
    )]
    XattrNamespace {
        /// The snapshot root.
        root: PathBuf,
        /// The namespace its layers use (`trusted` or `user`).
        stored: String,
        /// The namespace this process needs.
        needed: &'static str,
        /// Why this process needs it.
        why: &'static str,
    },
    /// The overlay driver was asked for but does not work here.
    #[error(
        "the overlay snapshotter cannot be used in {}: {source}; the copy snapshotter \
         (KILN_SNAPSHOTTER=copy) works everywhere, more slowly",
        root.display()
    )]
    OverlayUnavailable {
        /// The snapshot root.
        root: PathBuf,
        /// Why the probe mount failed.
        source: Box<Error>,
    },
    /// A changed file's name holds a character kiln uses to carry names
    /// that are not UTF-8 (see `kiln_oci::name`).
    #[error(transparent)]
    ReservedName(#[from] kiln_oci::name::ReservedCharacter),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// An errno as its name and what it usually means for an overlay mount.
struct MountErrno<'a>(&'a io::Error);

impl fmt::Display for MountErrno<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match Errno::from_io_error(self.0) {
            Some(Errno::INVAL) => Some(("EINVAL", "the kernel refused the options")),
            Some(Errno::PERM) => Some((
                "EPERM",
                "mounting needs CAP_SYS_ADMIN in this mount namespace",
            )),
            Some(Errno::ACCESS) => Some(("EACCES", "a layer directory is not accessible")),
            Some(Errno::NOENT) => Some(("ENOENT", "a layer or snapshot directory is missing")),
            Some(Errno::NODEV) => Some(("ENODEV", "this kernel has no overlay file system")),
            Some(Errno::BUSY) => Some(("EBUSY", "the directories are in use by another overlay")),
            Some(Errno::OPNOTSUPP) => Some((
                "EOPNOTSUPP",
                "the file system under the snapshot root cannot hold an overlay's upper layer",
            )),
            _ => None,
        };
        match hint {
            Some((name, why)) => write!(f, "{name} ({why})"),
            None => write!(f, "{}", self.0),
        }
    }
}

fn kernel_log(source: &io::Error, log: &[String]) -> String {
    if !log.is_empty() {
        format!("; the kernel said: {}", log.join("; "))
    } else if Errno::from_io_error(source) == Some(Errno::INVAL) {
        // Overlayfs explains most refusals only in the kernel log.
        "; `dmesg` shows overlayfs' reason".to_string()
    } else {
        String::new()
    }
}
