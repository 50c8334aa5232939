//! kiln's OCI runtime driver: runs one command (a Dockerfile `RUN` step) in a container through
//! `runc` or `crun`.
//!
//! The build engine owns the root file system (usually an overlay mount) and hands it over as a
//! [`ContainerSpec`]; [`Runtime::run`] writes the bundle's `config.json` (built with `oci-spec`'s
//! runtime types), creates the mount points the rootfs lacks, sets up the network, runs the
//! container to completion while streaming its output line by line, and then undoes everything
//! it added to the rootfs, so the layer taken from the rootfs afterwards holds only what the
//! command itself changed.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use kiln_runtime::{ContainerSpec, Runtime};
//!
//! # fn main() -> Result<(), kiln_runtime::Error> {
//! let detection = Runtime::detect(None, "/var/lib/kiln/runtime".as_ref())?;
//! for skipped in &detection.skipped {
//!     eprintln!("warning: {skipped}");
//! }
//! let spec = ContainerSpec::new(
//!     "kiln-1234-0",
//!     "/var/lib/kiln/tmp/bundle-1234",
//!     "/var/lib/kiln/tmp/rootfs-1234",
//!     ["/bin/sh", "-c", "echo hello"],
//! );
//! let cancel = AtomicBool::new(false);
//! let outcome = detection.runtime.run(&spec, &cancel, &mut |stream, line| {
//!     println!("{stream:?}: {line}");
//! })?;
//! assert!(outcome.status.success());
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//!
//! Root may lack CAP_SYS_RESOURCE (it does in some CI sandboxes), and then asking for an rlimit
//! above the host's hard limit fails with EPERM; the spec never asks for more than the host
//! allows.
//!
//! # Networking
//!
//! [`Network::Private`] gives the container its own network namespace connected to the outside
//! through `pasta` (preferred) or `slirp4netns`. With pasta the namespace gets a copy of the
//! host's address and routes, and connections to the default gateway's address are forwarded to
//! the host's loopback: a server listening on the host's `127.0.0.1:PORT` is reachable from the
//! container as `GATEWAY:PORT` (see [`RunOutcome::host_address`]). With slirp4netns the
//! namespace is `10.0.2.100/24`, the host's loopback is `10.0.2.2` and DNS is `10.0.2.3`. With
//! neither installed the step runs in the host's network namespace and
//! [`RunOutcome::warning`] says so.

#![deny(missing_docs)]

// Describing a run is portable (a Windows kiln builds the same requests and
// hands Linux steps elsewhere); running one needs Linux.
#[cfg(unix)]
mod config;
mod error;
#[cfg(unix)]
mod network;
mod outcome;
mod rlimit;
#[cfg(unix)]
mod runtime;
#[cfg(unix)]
mod seccomp;
mod spec;
#[cfg(unix)]
mod stubs;

pub use error::{Error, ProbeFailure};
pub use outcome::{ExitStatus, NetworkTool, RunOutcome, Stream};
pub use rlimit::{Rlimit, RlimitKind};
#[cfg(unix)]
pub use runtime::{Detection, Runtime, RuntimeKind};
pub use spec::{ContainerSpec, MountSpec, Network};
