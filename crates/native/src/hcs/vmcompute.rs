//! The [`ComputeHost`] of a Windows host: each call handed to
//! [`kiln_hcs::host`], which calls HCS (`vmcompute.dll` for layers,
//! `computecore.dll` for compute systems and processes).
//!
//! **Unverified.** kiln has no Windows runner: this module and
//! `kiln_hcs::host` are compiled into kiln.exe by `scripts/test`, whose
//! tests run it under wine (which has no HCS), but no HCS call has run;
//! this module only forwards.

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

    fn import_base_layer(&self, tar: &mut dyn Read, layer: &Path) -> Result<(), String> {
        host::import_base_layer(tar, layer)
    }

    fn import_layer(
        &self,
        folder: &Path,
        imported: &ImportedFolder,
        layer: &Path,
        parents: &[PathBuf],
    ) -> Result<(), String> {
        host::import_layer(folder, imported, layer, parents)
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
