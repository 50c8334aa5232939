//! What RUN needs from the machine: layers unpacked into snapshots
//! ([`kiln_snapshot`]) and an OCI runtime ([`kiln_runtime`]), both found
//! the first time a build runs a RUN step, so builds without one never
//! probe overlayfs or runc.
//!
//! Disk layout under `KILN_ROOT`: `snapshots/` (unpacked layers keyed by
//! diff_id, and the writable snapshots of running steps), `runtime/` (the
//! runtime's state, so kiln's containers can be found and removed after a
//! killed build) and `cache-mounts/` (`RUN --mount=type=cache` directories).

pub(crate) mod mounts;
mod ssh;

use kiln_oci::Digest;
use kiln_runtime::Runtime;
use kiln_snapshot::{Active, DriverKind, Snapshotter};
use kiln_store::{Descriptor, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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

/// Kills and removes the RUN containers and snapshots that killed kiln
/// processes left under the store root `root`: containers whose lease is
/// dead (through the runtime that ran them), the secret files their steps
/// had on `/dev/shm`, then snapshots whose owner is gone, unmounting their
/// overlays. Nothing is probed or created, and
/// nothing of a live process is touched; what cannot be removed now is
/// tried again next time.
pub fn reclaim(root: &Path) -> Reclaimed {
    // Containers first: they may still run on the snapshots removed next.
    let containers =
        Runtime::cleanup_stale_under(&root.join("runtime"), CONTAINER_PREFIX, &|lease| {
            Store::lease_is_live(root, lease)
        });
    let secrets = mounts::reclaim_secrets(root);
    let snapshots = root.join("snapshots");
    let snapshot_bytes = if snapshots.is_dir() {
        Snapshotter::remove_stale(&snapshots)
    } else {
        0
    };
    Reclaimed {
        containers,
        snapshot_bytes,
        secrets,
    }
}

/// The snapshotter and runtime of a build, opened on first use.
pub(crate) struct Exec {
    root: PathBuf,
    /// The store's lease, which names this process's containers.
    lease: String,
    runtime: Option<String>,
    ready: OnceLock<Result<Ready, String>>,
}

struct Ready {
    snapshots: Snapshotter,
    runtime: Runtime,
}

/// The prefix of every container id kiln creates, so stale ones can be
/// told apart from anything else using the same runtime state.
const CONTAINER_PREFIX: &str = "kiln-";

impl Exec {
    /// RUN support for `store`, with the runtime `--runtime` named (if any).
    pub(crate) fn new(store: &Store, runtime: Option<String>) -> Exec {
        Exec {
            root: store.root().to_path_buf(),
            lease: store.lease_id().to_string(),
            runtime,
            ready: OnceLock::new(),
        }
    }

    fn ready(&self) -> Result<&Ready, String> {
        self.ready
            .get_or_init(|| {
                let driver = match std::env::var("KILN_SNAPSHOTTER").ok().as_deref() {
                    None | Some("") => None,
                    Some("overlay" | "overlayfs") => Some(DriverKind::Overlay),
                    Some("copy" | "native") => Some(DriverKind::Copy),
                    Some(other) => {
                        return Err(format!(
                            "KILN_SNAPSHOTTER={other:?} is not a snapshotter; use overlay or copy"
                        ))
                    }
                };
                // Containers a killed build left go first: they may still
                // run on the snapshots the snapshotter then removes.
                let detected = Runtime::detect(self.runtime.as_deref(), &self.root.join("runtime"))
                    .map_err(|e| e.to_string())?;
                detected.runtime.cleanup_stale(CONTAINER_PREFIX, &|lease| {
                    Store::lease_is_live(&self.root, lease)
                });
                let snapshots = Snapshotter::open(&self.root.join("snapshots"), driver)
                    .map_err(|e| e.to_string())?;
                Ok(Ready {
                    snapshots,
                    runtime: detected.runtime,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The runtime RUN steps use.
    pub(crate) fn runtime(&self) -> Result<&Runtime, String> {
        Ok(&self.ready()?.runtime)
    }

    /// A fresh container id, `kiln-LEASE-N`: the store's lease tells any
    /// later kiln whether the container's owner is still alive.
    pub(crate) fn container_id(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "{CONTAINER_PREFIX}{}-{}",
            self.lease,
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Unpacks `layers` (bottom first) where not done yet and prepares a
    /// writable root on top of them.
    pub(crate) fn prepare(&self, store: &Store, layers: &[Layer]) -> Result<Active, String> {
        let snapshots = &self.ready()?.snapshots;
        for layer in layers {
            if snapshots.has_layer(&layer.diff_id) {
                continue;
            }
            let blob = store
                .open_blob(&layer.blob.digest)
                .map_err(|e| format!("layer {}: {e}", layer.blob.digest))?;
            snapshots
                .ensure_layer(&layer.diff_id, blob)
                .map_err(|e| format!("unpacking layer {}: {e}", layer.blob.digest))?;
        }
        let parents: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
        snapshots.prepare(&parents).map_err(|e| e.to_string())
    }

    /// Where `RUN --mount=type=cache` directories live.
    pub(crate) fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join("cache-mounts")
    }
}
