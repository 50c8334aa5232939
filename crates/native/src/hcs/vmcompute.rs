//! The [`ComputeHost`] of a Windows host: each call handed to
//! [`kiln_hcs::host`], which calls HCS (`vmcompute.dll` for layers,
//! `computecore.dll` for compute systems and processes).
//!
//! **Unverified.** kiln has no Windows runner: this module and
//! `kiln_hcs::host` are compiled into kiln.exe by `scripts/test`, whose
//! tests run it under wine (which has no HCS), but no HCS call has run;
//! this module only forwards. Everything else of the HCS backend is tested on Linux
//! against a fake host. Importing a base layer (an image's bottom one) is
//! not implemented and answers NotSupported, so on a real host RUN stops
//! there until it is.

use super::{ComputeHost, ProcessSpec};
use kiln_backend::Unavailable;
use kiln_hcs::host;
use kiln_oci::windows::transport::ImportedFolder;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// HCS on this Windows host.
#[derive(Debug, Default)]
pub struct VmCompute;

impl VmCompute {
    /// The host's HCS.
    pub fn new() -> VmCompute {
        VmCompute
    }
}

impl ComputeHost for VmCompute {
    fn availability(&self) -> Result<String, Unavailable> {
        super::availability()
    }

    /// NotSupported: hcsshim writes a base layer file by file with
    /// `BackupWrite` and then has HCS process it (`ProcessBaseImage`, and
    /// `ProcessUtilityImage` for `UtilityVM/`); kiln's host does not, so a
    /// RUN needs a base layer this host already has, which kiln cannot yet
    /// name either. The error says so rather than importing it wrongly.
    fn import_base_layer(&self, _tar: &mut dyn Read, layer: &Path) -> Result<(), String> {
        Err(format!(
            "NotSupported: {}: importing a Windows base layer (files written with BackupWrite, \
             then ProcessBaseImage and ProcessUtilityImage, as hcsshim's base-layer writer does) \
             is not implemented by kiln's HCS host",
            layer.display()
        ))
    }

    fn import_layer(
        &self,
        folder: &Path,
        _imported: &ImportedFolder,
        layer: &Path,
        parents: &[PathBuf],
    ) -> Result<(), String> {
        host::import_layer(folder, layer, parents)
    }

    fn create_scratch(&self, scratch: &Path, parents: &[PathBuf]) -> Result<(), String> {
        host::create_scratch(scratch, parents)
    }

    fn run(
        &self,
        scratch: &Path,
        parents: &[PathBuf],
        process: &ProcessSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<u32, String> {
        host::run(scratch, parents, process, cancel, on_line)
    }

    fn export_diff(&self, scratch: &Path, parents: &[PathBuf], dest: &Path) -> Result<(), String> {
        host::export_layer(scratch, parents, dest)
    }

    fn remove_scratch(&self, scratch: &Path) -> Result<(), String> {
        host::destroy_layer(scratch)
    }
}
