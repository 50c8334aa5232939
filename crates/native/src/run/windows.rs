//! RUN in a Windows image, on a [`ComputeHost`]: the portable half of the
//! HCS backend.
//!
//! A step's parents are the image's layers, each imported once into a
//! layer directory of the host (`KILN_ROOT/hcs/layers/<diff_id>`): the
//! bottom (base) layer from its tar, the others from the transport folder
//! [`layer_to_folder`] writes; the host creates a
//! scratch layer on them, runs the process and exports the scratch's diff
//! as a transport folder, which [`folder_to_layer`] turns into the step's
//! Windows layer in one pass. Unlike the Linux executor's
//! `StepRoot`, whose result is a list of POSIX entries written
//! into a layer afterwards, a Windows step's result is a finished layer:
//! the folder format already says everything a Windows layer holds
//! (security descriptors, attributes, hive deltas).

use super::Layer;
use crate::hcs::{ComputeHost, ProcessSpec};
use kiln_oci::compression::decompress;
use kiln_oci::windows::transport::{folder_to_layer, layer_to_folder, FolderOptions};
use kiln_oci::{Compression, Digest, ImageOs, LayerDescriptor, Platform};
use kiln_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Runs RUN steps of Windows images on a [`ComputeHost`].
pub(crate) struct WindowsExec {
    host: Arc<dyn ComputeHost>,
    /// Where imported layers live, by diff_id.
    layers: PathBuf,
    /// Where scratch layers and exported folders are made.
    tmp: PathBuf,
}

impl WindowsExec {
    /// RUN on `host` for builds writing into `store`.
    pub(crate) fn new(store: &Store, host: Arc<dyn ComputeHost>) -> WindowsExec {
        WindowsExec {
            host,
            layers: store.root().join("hcs").join("layers"),
            tmp: store.tmp_dir().to_path_buf(),
        }
    }

    /// Whether this executor runs steps of `platform`'s images: Windows
    /// ones only.
    pub(crate) fn supports(platform: &Platform) -> bool {
        platform.image_os() == ImageOs::Windows
    }

    /// A scratch layer on `layers` (bottom first), importing the layers
    /// not imported yet.
    pub(crate) fn prepare(&self, store: &Store, layers: &[Layer]) -> Result<WindowsRoot, String> {
        std::fs::create_dir_all(&self.layers)
            .map_err(|e| format!("creating {}: {e}", self.layers.display()))?;
        // Bottom first, so each layer is imported on its own parents.
        let mut below: Vec<PathBuf> = Vec::new();
        for layer in layers {
            let dir = self.layer_dir(&layer.diff_id);
            if !dir.exists() {
                self.import(store, layer, &dir, &nearest_first(&below))
                    .map_err(|e| format!("importing layer {} ({e}", layer.blob.digest))?;
            }
            below.push(dir);
        }
        let parents = nearest_first(&below);
        let work = tempfile::Builder::new()
            .prefix("hcs-step-")
            .tempdir_in(&self.tmp)
            .map_err(|e| format!("creating a step directory in {}: {e}", self.tmp.display()))?;
        let scratch = work.path().join("scratch");
        self.host.create_scratch(&scratch, &parents)?;
        Ok(WindowsRoot {
            host: self.host.clone(),
            work,
            scratch,
            parents,
        })
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(diff_id.to_string().replace(':', "-"))
    }

    /// Imports `layer` as `dir` on `parents`: the bottom layer from its
    /// tar, the others from the transport folder [`layer_to_folder`]
    /// writes; the host imports beside `dir`, then a rename, so a killed
    /// build never leaves a half-imported layer under its final name.
    /// Errors end in `)`, after the step that failed.
    fn import(
        &self,
        store: &Store,
        layer: &Layer,
        dir: &Path,
        parents: &[PathBuf],
    ) -> Result<(), String> {
        let work = tempfile::Builder::new()
            .prefix("hcs-import-")
            .tempdir_in(&self.tmp)
            .map_err(|e| format!("temporary directory): {e}"))?;
        let blob = store
            .open_blob(&layer.blob.digest)
            .map_err(|e| format!("reading the blob): {e}"))?;
        let staged = work.path().join("layer");
        if parents.is_empty() {
            let mut tar = decompress(blob).map_err(|e| format!("reading the blob): {e}"))?;
            self.host
                .import_base_layer(&mut tar, &staged)
                .map_err(|e| format!("base layer): {e}"))?;
        } else {
            let folder = work.path().join("folder");
            std::fs::create_dir(&folder).map_err(|e| format!("transport folder): {e}"))?;
            let imported =
                layer_to_folder(blob, &folder).map_err(|e| format!("transport folder): {e}"))?;
            self.host
                .import_layer(&folder, &imported, &staged, parents)
                .map_err(|e| format!("host import): {e}"))?;
        }
        match std::fs::rename(&staged, dir) {
            Ok(()) => Ok(()),
            // Another stage of this build imported it meanwhile.
            Err(_) if dir.exists() => Ok(()),
            Err(e) => Err(format!("keeping the layer): {e}")),
        }
    }
}

/// `below` (bottom first) as HCS takes parents: nearest first.
fn nearest_first(below: &[PathBuf]) -> Vec<PathBuf> {
    below.iter().rev().cloned().collect()
}

/// A Windows step's scratch layer: where its process runs, and, after it
/// ran, the layer it made.
pub(crate) struct WindowsRoot {
    host: Arc<dyn ComputeHost>,
    /// Holds the scratch and the exported folder; removed on drop.
    work: tempfile::TempDir,
    scratch: PathBuf,
    parents: Vec<PathBuf>,
}

impl WindowsRoot {
    /// Runs `process` on the scratch layer; its exit code.
    pub(crate) fn run(
        &self,
        process: &ProcessSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<u32, String> {
        self.host
            .run(&self.scratch, &self.parents, process, cancel, on_line)
    }

    /// The step's layer: the host exports the scratch's diff as a transport
    /// folder, written into the store as a Windows layer blob.
    pub(crate) fn layer(
        &self,
        store: &Store,
        compression: Compression,
        epoch: Option<i64>,
    ) -> Result<LayerDescriptor, String> {
        let folder = self.work.path().join("diff");
        std::fs::create_dir(&folder).map_err(|e| format!("creating {}: {e}", folder.display()))?;
        self.host
            .export_diff(&self.scratch, &self.parents, &folder)
            .map_err(|e| format!("exporting the step's changes: {e}"))?;
        let options = FolderOptions {
            compression,
            source_date_epoch: epoch,
            ..FolderOptions::default()
        };
        let ingest = store.ingest_prehashed().map_err(|e| e.to_string())?;
        let (layer, ingest) = folder_to_layer(&folder, &options, ingest)
            .map_err(|e| format!("the exported changes: {e}"))?;
        ingest
            .commit(Some(layer.digest))
            .map_err(|e| e.to_string())?;
        Ok(layer)
    }
}

impl Drop for WindowsRoot {
    fn drop(&mut self) {
        // The scratch is the host's (on Windows a sandbox.vhdx that may be
        // mounted), so the host removes it; a failure leaves it for the
        // store's tmp cleanup and must not hide the step's own error.
        let _ = self.host.remove_scratch(&self.scratch);
    }
}
