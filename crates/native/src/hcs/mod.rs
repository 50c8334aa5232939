//! The HCS backend: the native build pipeline with RUN in Windows images
//! executed by Windows' Host Compute Service (issue #21).
//!
//! Everything HCS does for a build sits behind one narrow trait,
//! [`ComputeHost`]: import a layer (a base layer from its tar, the others
//! from transport folders), create a scratch layer on parent
//! layers, run a process in a compute system on that scratch, and export
//! the scratch's diff as a wclayer transport folder. The rest (unpacking a
//! Windows image's layers into transport folders, building the process
//! from the Dockerfile, turning the exported folder into a Windows layer
//! through [`kiln_oci::windows::transport`], the image and its history) is
//! ordinary kiln code, compiled and tested on Linux against a fake host.
//!
//! The host that calls HCS itself (`vmcompute::VmCompute`, `cfg(windows)`
//! only) hands each call to `kiln_hcs::host`, which `scripts/test` compiles
//! for Windows; neither has run: kiln has no Windows runner yet. See
//! `docs/windows.md`, "The HCS backend".

#[cfg(windows)]
pub mod vmcompute;

use crate::NativeBackend;
use kiln_backend::events::EventSink;
use kiln_backend::{BuildBackend, BuildError, BuildRequest, BuiltImage, Pushed, Unavailable};
use kiln_oci::reference::Reference;
use kiln_oci::windows::transport::ImportedFolder;
use kiln_registry::ClientOptions;
use kiln_store::Store;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use kiln_hcs::ProcessSpec;

/// What HCS does for a build, and nothing more: the seam between kiln's
/// Windows RUN step and the Windows host.
///
/// Layer directories are the host's own (on Windows, wclayer directories
/// that `ImportLayer` and `CreateSandboxLayer` fill); kiln only picks
/// their paths and passes parents **nearest parent first, base last**, as
/// containerd and moby hand them to HCS.
pub trait ComputeHost: Send + Sync {
    /// What this host runs with, or why it cannot run here, for
    /// `kiln backends`.
    fn availability(&self) -> Result<String, Unavailable>;

    /// Imports the image's bottom layer from its uncompressed tar stream
    /// `tar` as the layer directory `layer` (not yet existing). A layer
    /// without parents is a base layer, which may carry `UtilityVM/` and
    /// which hcsshim writes straight into the directory (its base-layer
    /// writer) rather than through a transport folder and `ImportLayer`.
    fn import_base_layer(&self, tar: &mut dyn Read, layer: &Path) -> Result<(), String>;

    /// Imports the transport folder `folder`, which
    /// [`kiln_oci::windows::transport::layer_to_folder`] wrote, as the
    /// layer directory `layer`, then applies `imported` to it (the
    /// tombstones, hard links and directory times that hcsshim's writer
    /// applies itself after `ImportLayer`, and which the folder lacks),
    /// (not yet existing) on `parents` (never empty: the bottom layer goes
    /// through [`ComputeHost::import_base_layer`]).
    fn import_layer(
        &self,
        folder: &Path,
        imported: &ImportedFolder,
        layer: &Path,
        parents: &[PathBuf],
    ) -> Result<(), String>;

    /// Creates a writable scratch layer in `scratch` (not yet existing)
    /// on `parents`.
    fn create_scratch(&self, scratch: &Path, parents: &[PathBuf]) -> Result<(), String>;

    /// Runs `process` in a compute system whose root is `scratch` on
    /// `parents`, passing each line it prints to `on_line`, and returns
    /// its exit code. Once `cancel` turns true the process is terminated
    /// and the call returns soon after (with whatever code it ended with,
    /// or an error).
    fn run(
        &self,
        scratch: &Path,
        parents: &[PathBuf],
        process: &ProcessSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<u32, String>;

    /// Exports what the processes run on `scratch` changed, as a wclayer
    /// transport folder written into `dest` (an existing empty directory).
    fn export_diff(&self, scratch: &Path, parents: &[PathBuf], dest: &Path) -> Result<(), String>;

    /// Removes the scratch layer `scratch` (after its diff was exported,
    /// or when the step failed).
    fn remove_scratch(&self, scratch: &Path) -> Result<(), String>;
}

/// A shared [`ComputeHost`], printable so the backend holding it can be.
#[derive(Clone)]
pub(crate) struct Host(pub(crate) Arc<dyn ComputeHost>);

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ComputeHost")
    }
}

/// kiln's [`BuildBackend`] for Windows hosts: the [`NativeBackend`]'s
/// pipeline with RUN in Windows images run by a [`ComputeHost`].
#[derive(Debug)]
pub struct HcsBackend {
    native: NativeBackend,
    host: Host,
}

impl HcsBackend {
    /// A backend writing into `store`, reaching registries with
    /// `registry`, running Windows RUN steps on `host`.
    pub fn new(store: Store, registry: ClientOptions, host: Arc<dyn ComputeHost>) -> HcsBackend {
        HcsBackend {
            native: NativeBackend::new(store, registry).with_windows_host(host.clone()),
            host: Host(host),
        }
    }

    /// The backend on this Windows host's HCS (`vmcompute::VmCompute`).
    #[cfg(windows)]
    pub fn on_this_host(store: Store, registry: ClientOptions) -> HcsBackend {
        HcsBackend::new(store, registry, Arc::new(vmcompute::VmCompute::new()))
    }

    /// The store images are built into.
    pub fn store(&self) -> &Store {
        self.native.store()
    }
}

impl BuildBackend for HcsBackend {
    fn name(&self) -> &'static str {
        "hcs"
    }

    fn is_available(&self) -> Result<String, Unavailable> {
        self.host.0.availability()
    }

    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError> {
        self.native.tag(image, new_name)
    }

    fn push(
        &self,
        image: &str,
        dest: Option<&Reference>,
        events: &EventSink,
    ) -> Result<Pushed, BuildError> {
        self.native.push(image, dest, events)
    }

    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError> {
        self.native.manifest_create(list)
    }

    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError> {
        self.native.manifest_add(list, image)
    }

    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError> {
        self.native.manifest_push(list, dest)
    }

    fn build(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError> {
        self.native.build(req, events)
    }
}

/// Whether the HCS backend runs here: only on Windows, where its host
/// calls HCS; the answer `kiln backends` gives without opening a store.
pub fn availability() -> Result<String, Unavailable> {
    if let Some(why) = kiln_backend::BackendKind::Hcs.not_implemented() {
        return Err(why);
    }
    #[cfg(windows)]
    kiln_hcs::host::available().map_err(Unavailable::new)?;
    Ok(
        "RUN in Windows images through HCS (vmcompute.dll, computecore.dll); \
         unverified: kiln has not yet run on a Windows host"
            .into(),
    )
}
