//! What RUN needs from the machine, behind one seam: a [`StepExecutor`]
//! prepares a writable root on an image's layers, runs the step's process
//! in it, and gives back what changed. The Linux executor ([`Exec`]) is
//! layers unpacked into snapshots ([`kiln_snapshot`]) and an OCI runtime
//! ([`kiln_runtime`]), both found the first time a build runs a RUN step,
//! so builds without one never probe overlayfs or runc. An image for an OS
//! this host cannot run gets `ForeignOs`, which answers NotSupported and
//! says where such a step can run ([`foreign_os`]); on the HCS backend a Windows image's
//! steps go to [`windows::WindowsExec`] instead, whose result is a finished
//! Windows layer rather than a list of changes.
//!
//! Disk layout under `KILN_ROOT`: `snapshots/` (unpacked layers keyed by
//! diff_id, and the writable snapshots of running steps), `runtime/` (the
//! runtime's state, so kiln's containers can be found and removed after a
//! killed build) and `cache-mounts/` (`RUN --mount=type=cache` directories).

#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub(crate) mod mounts;
#[cfg(unix)]
mod ssh;
pub(crate) mod windows;

use kiln_oci::Digest;
use kiln_store::Descriptor;
#[cfg(unix)]
pub use linux::reclaim;
#[cfg(unix)]
pub(crate) use linux::{executor_for, Exec, StepExecutor};

/// Why an executor cannot run a step, and where it can run, for the
/// step's NotSupported error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// What cannot be done here.
    pub(crate) message: String,
    /// Where or how it can be done.
    pub(crate) help: String,
}

/// Why RUN in an image for `os` cannot run on this host, and where it can.
pub(crate) fn foreign_os(os: &str) -> Unsupported {
    Unsupported {
        message: format!(
            "RUN in a {os} image needs a {os} host: a {} host cannot run its programs",
            std::env::consts::OS
        ),
        help: format!(
            "build this Dockerfile with kiln on a {os} host{} or hand it to a remote kiln \
             daemon running on one; steps that need no container (COPY, ADD, ENV, WORKDIR, …) \
             build here",
            if os == "windows" {
                " (its HCS backend)"
            } else {
                ""
            }
        ),
    }
}

/// What [`reclaim`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// The ids of the RUN containers killed and deleted.
    pub containers: Vec<String>,
    /// The bytes of the snapshots removed (what the killed RUN steps wrote).
    pub snapshot_bytes: u64,
    /// Secret directories (on `/dev/shm`) of killed RUN steps removed.
    pub secrets: usize,
}

/// What a killed build left to reclaim: nothing on this OS, where RUN of
/// a Windows image (HCS) leaves layer directories kiln does not track yet
/// and no Linux step runs.
#[cfg(not(unix))]
pub fn reclaim(_root: &std::path::Path) -> Reclaimed {
    Reclaimed::default()
}

/// A layer of a file system to run on: its blob and its diff_id.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) blob: Descriptor,
    pub(crate) diff_id: Digest,
}

/// Pairs a stage's or image's layer blobs with the diff_ids of its config.
pub(crate) fn layers(
    blobs: &[Descriptor],
    config: &kiln_oci::ImageConfig,
) -> Result<Vec<Layer>, String> {
    let diff_ids = config
        .diff_ids()
        .map_err(|e| format!("reading the image's diff_ids: {e}"))?;
    if diff_ids.len() != blobs.len() {
        return Err(format!(
            "the image has {} layers but its config lists {} diff_ids",
            blobs.len(),
            diff_ids.len()
        ));
    }
    Ok(blobs
        .iter()
        .zip(diff_ids)
        .map(|(blob, diff_id)| Layer {
            blob: blob.clone(),
            diff_id,
        })
        .collect())
}
