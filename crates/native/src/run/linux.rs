//! The Linux executor: layers unpacked into snapshots ([`kiln_snapshot`])
//! and an OCI runtime ([`kiln_runtime`]), behind the [`StepExecutor`] seam.

use super::{foreign_os, mounts, Layer, Reclaimed, Unsupported};
use kiln_oci::{Digest, ImageOs, LayerEntry, Platform};
use kiln_runtime::{ContainerSpec, RunOutcome, Runtime, Stream};
use kiln_snapshot::{Active, DriverKind, Snapshotter};
use kiln_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Runs RUN steps: the seam between the native backend's stages and a
/// machine that can execute an image's programs.
pub(crate) trait StepExecutor: Send + Sync {
    /// `Ok` when this executor runs steps of images for `platform`.
    fn supports(&self, platform: &Platform) -> Result<(), Unsupported>;

    /// A writable root on `layers` (bottom first), unpacking what is not
    /// unpacked yet.
    fn prepare(&self, store: &Store, layers: &[Layer]) -> Result<Box<dyn StepRoot>, String>;

    /// Runs the step's process, streaming its output lines to `on_line`.
    fn run(
        &self,
        spec: &ContainerSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, String>;

    /// A fresh, unique id for a step's container.
    fn container_id(&self) -> String;

    /// Where `RUN --mount=type=cache` directories live.
    fn cache_mounts_dir(&self) -> PathBuf;
}

/// A prepared root: where the step runs, and what it changed.
pub(crate) trait StepRoot: Send {
    /// The root file system to run in.
    fn rootfs(&self) -> &Path;

    /// What the step changed, as layer entries.
    fn changes(&self) -> Result<Vec<LayerEntry>, String>;

    /// Keeps the changes as the unpacked layer `diff_id` (written from
    /// [`StepRoot::changes`]), so the next step needs no unpacking.
    fn commit(self: Box<Self>, diff_id: &Digest) -> Result<(), String>;
}

impl StepRoot for Active {
    fn rootfs(&self) -> &Path {
        Active::rootfs(self)
    }

    fn changes(&self) -> Result<Vec<LayerEntry>, String> {
        Active::changes(self).map_err(|e| e.to_string())
    }

    fn commit(self: Box<Self>, diff_id: &Digest) -> Result<(), String> {
        Active::commit(*self, diff_id).map_err(|e| e.to_string())
    }
}

/// The executor for a step of an image for `platform`: the Linux one for
/// Linux images, [`ForeignOs`] for the rest.
pub(crate) fn executor_for<'a>(linux: &'a Exec, platform: &Platform) -> &'a dyn StepExecutor {
    match platform.image_os() {
        ImageOs::Linux => linux,
        _ => &ForeignOs,
    }
}

/// Steps of an image whose OS this host cannot run (a Windows image on
/// Linux): every call answers NotSupported, saying where such a step can
/// run; the steps that need no container still build here.
pub(crate) struct ForeignOs;

impl StepExecutor for ForeignOs {
    fn supports(&self, platform: &Platform) -> Result<(), Unsupported> {
        Err(foreign_os(&platform.os))
    }

    fn prepare(&self, _: &Store, _: &[Layer]) -> Result<Box<dyn StepRoot>, String> {
        Err(foreign_os("foreign").message)
    }

    fn run(
        &self,
        _: &ContainerSpec,
        _: &AtomicBool,
        _: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, String> {
        Err(foreign_os("foreign").message)
    }

    fn container_id(&self) -> String {
        String::new()
    }

    fn cache_mounts_dir(&self) -> PathBuf {
        PathBuf::new()
    }
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
    driver: Option<DriverKind>,
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
    /// RUN support for `store`, with the runtime `--runtime` named (if
    /// any) and the snapshotter `driver` forces (if any).
    pub(crate) fn new(store: &Store, runtime: Option<String>, driver: Option<DriverKind>) -> Exec {
        Exec {
            root: store.root().to_path_buf(),
            lease: store.lease_id().to_string(),
            runtime,
            driver,
            ready: OnceLock::new(),
        }
    }

    fn ready(&self) -> Result<&Ready, String> {
        self.ready
            .get_or_init(|| {
                // Containers a killed build left go first: they may still
                // run on the snapshots the snapshotter then removes.
                let detected = Runtime::detect(self.runtime.as_deref(), &self.root.join("runtime"))
                    .map_err(|e| e.to_string())?;
                detected.runtime.cleanup_stale(CONTAINER_PREFIX, &|lease| {
                    Store::lease_is_live(&self.root, lease)
                });
                let snapshots = Snapshotter::open(&self.root.join("snapshots"), self.driver)
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
}

impl StepExecutor for Exec {
    /// Linux images of this host's architecture, or of one binfmt_misc
    /// hands to an emulator.
    fn supports(&self, platform: &Platform) -> Result<(), Unsupported> {
        let host = Platform::host();
        if platform.os != host.os {
            return Err(foreign_os(&platform.os));
        }
        if platform.architecture == host.architecture || emulated(&platform.architecture) {
            return Ok(());
        }
        Err(Unsupported {
            message: format!(
                "RUN for linux/{} needs an emulator: no binfmt_misc handler for it is registered on this host",
                platform.architecture
            ),
            help: "install qemu-user-static (Debian registers its handlers through binfmt-support), or build on a matching host".into(),
        })
    }

    fn prepare(&self, store: &Store, layers: &[Layer]) -> Result<Box<dyn StepRoot>, String> {
        let snapshots = &self.ready()?.snapshots;
        // Each layer unpacks into a directory of its own, so the missing
        // ones unpack at once, as many as there are cores (a base of five
        // layers is otherwise five decompressions in a row).
        let missing: Vec<&Layer> = layers
            .iter()
            .filter(|l| !snapshots.has_layer(&l.diff_id))
            .collect();
        let unpack = |layer: &Layer| -> Result<(), String> {
            let blob = store
                .open_blob(&layer.blob.digest)
                .map_err(|e| format!("layer {}: {e}", layer.blob.digest))?;
            snapshots
                .ensure_layer(&layer.diff_id, blob)
                .map_err(|e| format!("unpacking layer {}: {e}", layer.blob.digest))
        };
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        for batch in missing.chunks(workers.max(1)) {
            let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|layer| scope.spawn(|| unpack(layer)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("unpacking a layer panicked".into()))
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<(), String>>()?;
        }
        let parents: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
        let active = snapshots.prepare(&parents).map_err(|e| e.to_string())?;
        Ok(Box::new(active))
    }

    fn run(
        &self,
        spec: &ContainerSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, String> {
        self.runtime()?
            .run(spec, cancel, on_line)
            .map_err(|e| e.to_string())
    }

    /// `kiln-LEASE-N`: the store's lease tells any later kiln whether the
    /// container's owner is still alive.
    fn container_id(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "{CONTAINER_PREFIX}{}-{}",
            self.lease,
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join("cache-mounts")
    }
}

/// True when binfmt_misc has an enabled qemu handler for `arch`.
fn emulated(arch: &str) -> bool {
    let qemu = match arch {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        other => other,
    };
    std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/qemu-{qemu}"))
        .is_ok_and(|s| s.lines().next() == Some("enabled"))
}
