//! The [`ComputeHost`] of a Windows host: HCS through `vmcompute.dll`
//! (layers) and `computecore.dll` (compute systems and processes).
//!
//! **Unverified.** This module is compiled only on Windows (`cfg(windows)`
//! on its `mod` line) and kiln has no Windows runner, so it has never been
//! compiled, let alone run; everything else of the HCS backend is tested
//! on Linux against a fake host. The calls and their order follow hcsshim
//! (`internal/wclayer/*.go`, `internal/vmcompute`, `internal/hcs`) and
//! `shared/design/windows-images.md` §3.1; the declarations are written from
//! hcsshim's `zsyscall_windows.go` and the Windows SDK's `computecore.h`.
//!
//! Known gaps, each of which fails with HCS's own error rather than
//! building something else: the process needs `SeBackupPrivilege` and
//! `SeRestorePrivilege` enabled (run kiln elevated; this host does not
//! adjust its token), the compute system gets no network endpoint (a RUN
//! that downloads fails), and imports hand HCS the transport folder with
//! `tombstones.txt` in the 2016-2018 writer's form rather than applying
//! tombstones after `ImportLayer` as current hcsshim does. Importing a base
//! layer (an image's bottom one) is not implemented and answers
//! NotSupported, so on a real host RUN stops there until it is.

#![allow(unsafe_code)]

use super::{ComputeHost, ProcessSpec};
use kiln_backend::Unavailable;
use kiln_oci::windows::transport::ImportedFolder;
use std::ffi::c_void;
use std::io::Read;
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

type Hresult = i32;
type Handle = *mut c_void;
type Pcwstr = *const u16;
type Pwstr = *mut u16;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Guid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

/// hcsshim's `driverInfo`: flavour 1 (the filter driver), an empty home
/// directory (layer ids are full paths).
#[repr(C)]
struct DriverInfo {
    flavour: i32,
    home_dir: Pcwstr,
}

/// `WC_LAYER_DESCRIPTOR`.
#[repr(C)]
struct LayerDescriptor {
    layer_id: Guid,
    flags: u32,
    path: Pcwstr,
}

/// `HCS_PROCESS_INFORMATION`.
#[repr(C)]
struct ProcessInformation {
    process_id: u32,
    reserved: u32,
    std_input: Handle,
    std_output: Handle,
    std_error: Handle,
}

#[link(name = "vmcompute")]
extern "system" {
    fn NameToGuid(name: Pcwstr, guid: *mut Guid) -> Hresult;
    fn ImportLayer(
        info: *const DriverInfo,
        id: Pcwstr,
        path: Pcwstr,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> Hresult;
    fn CreateSandboxLayer(
        info: *const DriverInfo,
        id: Pcwstr,
        parent: Pcwstr,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> Hresult;
    fn ExportLayer(
        info: *const DriverInfo,
        id: Pcwstr,
        path: Pcwstr,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> Hresult;
    fn ActivateLayer(info: *const DriverInfo, id: Pcwstr) -> Hresult;
    fn DeactivateLayer(info: *const DriverInfo, id: Pcwstr) -> Hresult;
    fn PrepareLayer(
        info: *const DriverInfo,
        id: Pcwstr,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> Hresult;
    fn UnprepareLayer(info: *const DriverInfo, id: Pcwstr) -> Hresult;
    fn DestroyLayer(info: *const DriverInfo, id: Pcwstr) -> Hresult;
    fn GetLayerMountPath(
        info: *const DriverInfo,
        id: Pcwstr,
        length: *mut usize,
        buffer: *mut u16,
    ) -> Hresult;
}

#[link(name = "computecore")]
extern "system" {
    fn HcsCreateOperation(context: *const c_void, callback: *const c_void) -> Handle;
    fn HcsCloseOperation(operation: Handle);
    fn HcsWaitForOperationResult(operation: Handle, timeout_ms: u32, result: *mut Pwstr)
        -> Hresult;
    fn HcsWaitForOperationResultAndProcessInfo(
        operation: Handle,
        timeout_ms: u32,
        info: *mut ProcessInformation,
        result: *mut Pwstr,
    ) -> Hresult;
    fn HcsCreateComputeSystem(
        id: Pcwstr,
        configuration: Pcwstr,
        operation: Handle,
        security: *const c_void,
        system: *mut Handle,
    ) -> Hresult;
    fn HcsStartComputeSystem(system: Handle, operation: Handle, options: Pcwstr) -> Hresult;
    fn HcsTerminateComputeSystem(system: Handle, operation: Handle, options: Pcwstr) -> Hresult;
    fn HcsCloseComputeSystem(system: Handle);
    fn HcsCreateProcess(
        system: Handle,
        parameters: Pcwstr,
        operation: Handle,
        security: *const c_void,
        process: *mut Handle,
    ) -> Hresult;
    fn HcsGetProcessProperties(process: Handle, operation: Handle, query: Pcwstr) -> Hresult;
    fn HcsTerminateProcess(process: Handle, operation: Handle, options: Pcwstr) -> Hresult;
    fn HcsCloseProcess(process: Handle);
}

#[link(name = "kernel32")]
extern "system" {
    fn ReadFile(
        file: Handle,
        buffer: *mut u8,
        len: u32,
        read: *mut u32,
        overlapped: *mut c_void,
    ) -> i32;
    fn CloseHandle(handle: Handle) -> i32;
    fn LocalFree(mem: *mut c_void) -> *mut c_void;
}

/// How long one HCS operation may take before kiln gives up on it.
const OPERATION_TIMEOUT_MS: u32 = 5 * 60 * 1000;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn wide_path(p: &Path) -> Vec<u16> {
    p.as_os_str().encode_wide().chain(Some(0)).collect()
}

fn check(what: &str, hr: Hresult) -> Result<(), String> {
    if hr < 0 {
        Err(format!("{what}: HRESULT 0x{:08x}", hr as u32))
    } else {
        Ok(())
    }
}

/// Takes (and frees) a result document HCS allocated.
unsafe fn take_document(doc: Pwstr) -> String {
    if doc.is_null() {
        return String::new();
    }
    let mut len = 0;
    while *doc.add(len) != 0 {
        len += 1;
    }
    let text = String::from_utf16_lossy(std::slice::from_raw_parts(doc, len));
    LocalFree(doc.cast());
    text
}

/// The layer chain as HCS takes it; the wide strings must outlive the
/// descriptors, so both are kept together.
struct Chain {
    _paths: Vec<Vec<u16>>,
    descriptors: Vec<LayerDescriptor>,
}

fn chain(parents: &[PathBuf]) -> Result<Chain, String> {
    let paths: Vec<Vec<u16>> = parents.iter().map(|p| wide_path(p)).collect();
    let mut descriptors = Vec::with_capacity(parents.len());
    for (parent, path) in parents.iter().zip(&paths) {
        // hcsshim's layer id: NameToGuid of the directory's name.
        let name = parent
            .file_name()
            .map(|n| wide(&n.to_string_lossy()))
            .ok_or_else(|| format!("{}: a layer path needs a name", parent.display()))?;
        let mut guid = Guid::default();
        check("NameToGuid", unsafe {
            NameToGuid(name.as_ptr(), &mut guid)
        })?;
        descriptors.push(LayerDescriptor {
            layer_id: guid,
            flags: 0,
            path: path.as_ptr(),
        });
    }
    Ok(Chain {
        _paths: paths,
        descriptors,
    })
}

fn guid_string(g: &Guid) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        g.data1,
        g.data2,
        g.data3,
        g.data4[0],
        g.data4[1],
        g.data4[2..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// One HCS operation, closed on drop.
struct Operation(Handle);

impl Operation {
    fn new() -> Operation {
        Operation(unsafe { HcsCreateOperation(std::ptr::null(), std::ptr::null()) })
    }

    fn wait(&self, what: &str) -> Result<String, String> {
        let mut doc: Pwstr = std::ptr::null_mut();
        let hr = unsafe { HcsWaitForOperationResult(self.0, OPERATION_TIMEOUT_MS, &mut doc) };
        let text = unsafe { take_document(doc) };
        check(what, hr).map_err(|e| format!("{e} {text}"))?;
        Ok(text)
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        unsafe { HcsCloseOperation(self.0) }
    }
}

/// HCS on this Windows host.
#[derive(Debug, Default)]
pub struct VmCompute;

impl VmCompute {
    /// The host's HCS.
    pub fn new() -> VmCompute {
        VmCompute
    }

    fn info() -> DriverInfo {
        static EMPTY: u16 = 0;
        DriverInfo {
            flavour: 1,
            home_dir: &EMPTY,
        }
    }

    /// The scratch's volume path while it is activated and prepared on
    /// `parents`, as the compute system's storage names it.
    fn mount(&self, scratch: &Path, parents: &[PathBuf]) -> Result<String, String> {
        let info = VmCompute::info();
        let id = wide_path(scratch);
        let chain = chain(parents)?;
        unsafe {
            check("ActivateLayer", ActivateLayer(&info, id.as_ptr()))?;
            check(
                "PrepareLayer",
                PrepareLayer(
                    &info,
                    id.as_ptr(),
                    chain.descriptors.as_ptr(),
                    chain.descriptors.len() as u32,
                ),
            )?;
            let mut len = 0usize;
            check(
                "GetLayerMountPath",
                GetLayerMountPath(&info, id.as_ptr(), &mut len, std::ptr::null_mut()),
            )?;
            let mut buf = vec![0u16; len];
            check(
                "GetLayerMountPath",
                GetLayerMountPath(&info, id.as_ptr(), &mut len, buf.as_mut_ptr()),
            )?;
            let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
            Ok(String::from_utf16_lossy(&buf[..end]))
        }
    }

    fn unmount(&self, scratch: &Path) -> Result<(), String> {
        let info = VmCompute::info();
        let id = wide_path(scratch);
        unsafe {
            check("UnprepareLayer", UnprepareLayer(&info, id.as_ptr()))?;
            check("DeactivateLayer", DeactivateLayer(&info, id.as_ptr()))
        }
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
        std::fs::create_dir_all(layer).map_err(|e| format!("{}: {e}", layer.display()))?;
        let chain = chain(parents)?;
        let (id, path) = (wide_path(layer), wide_path(folder));
        check("ImportLayer", unsafe {
            ImportLayer(
                &VmCompute::info(),
                id.as_ptr(),
                path.as_ptr(),
                chain.descriptors.as_ptr(),
                chain.descriptors.len() as u32,
            )
        })
    }

    fn create_scratch(&self, scratch: &Path, parents: &[PathBuf]) -> Result<(), String> {
        std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let chain = chain(parents)?;
        let id = wide_path(scratch);
        let none = wide("");
        check("CreateSandboxLayer", unsafe {
            CreateSandboxLayer(
                &VmCompute::info(),
                id.as_ptr(),
                none.as_ptr(),
                chain.descriptors.as_ptr(),
                chain.descriptors.len() as u32,
            )
        })
    }

    fn run(
        &self,
        scratch: &Path,
        parents: &[PathBuf],
        process: &ProcessSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<u32, String> {
        let volume = self.mount(scratch, parents)?;
        let result = run_in(&volume, parents, process, cancel, on_line);
        let unmounted = self.unmount(scratch);
        let code = result?;
        unmounted?;
        Ok(code)
    }

    fn export_diff(&self, scratch: &Path, parents: &[PathBuf], dest: &Path) -> Result<(), String> {
        let chain = chain(parents)?;
        let (id, path) = (wide_path(scratch), wide_path(dest));
        check("ExportLayer", unsafe {
            ExportLayer(
                &VmCompute::info(),
                id.as_ptr(),
                path.as_ptr(),
                chain.descriptors.as_ptr(),
                chain.descriptors.len() as u32,
            )
        })
    }

    fn remove_scratch(&self, scratch: &Path) -> Result<(), String> {
        let id = wide_path(scratch);
        check("DestroyLayer", unsafe {
            DestroyLayer(&VmCompute::info(), id.as_ptr())
        })
    }
}

/// A process-isolated compute system on `volume` (the mounted scratch),
/// `process` run in it to its end or until `cancel`.
fn run_in(
    volume: &str,
    parents: &[PathBuf],
    process: &ProcessSpec,
    cancel: &AtomicBool,
    on_line: &mut dyn FnMut(&str),
) -> Result<u32, String> {
    let chain = chain(parents)?;
    let layers: Vec<serde_json::Value> = chain
        .descriptors
        .iter()
        .zip(parents)
        .map(|(d, p)| serde_json::json!({"Id": guid_string(&d.layer_id), "Path": p}))
        .collect();
    let config = serde_json::json!({
        "SchemaVersion": {"Major": 2, "Minor": 1},
        "Owner": "kiln",
        "ShouldTerminateOnLastHandleClosed": true,
        "Container": {"Storage": {"Layers": layers, "Path": volume}},
    });
    let env: serde_json::Map<String, serde_json::Value> = process
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
        .collect();
    let params = serde_json::json!({
        "CommandLine": process.command_line,
        "WorkingDirectory": process.working_dir,
        "User": process.user,
        "Environment": env,
        "CreateStdOutPipe": true,
        "CreateStdErrPipe": true,
    });
    let id = wide(&format!("kiln-{}", std::process::id()));
    let (config, params) = (wide(&config.to_string()), wide(&params.to_string()));

    let mut system: Handle = std::ptr::null_mut();
    let op = Operation::new();
    check("HcsCreateComputeSystem", unsafe {
        HcsCreateComputeSystem(
            id.as_ptr(),
            config.as_ptr(),
            op.0,
            std::ptr::null(),
            &mut system,
        )
    })?;
    op.wait("creating the compute system")?;
    let system = System(system);
    let op = Operation::new();
    check("HcsStartComputeSystem", unsafe {
        HcsStartComputeSystem(system.0, op.0, std::ptr::null())
    })?;
    op.wait("starting the compute system")?;

    let mut proc_handle: Handle = std::ptr::null_mut();
    let op = Operation::new();
    check("HcsCreateProcess", unsafe {
        HcsCreateProcess(
            system.0,
            params.as_ptr(),
            op.0,
            std::ptr::null(),
            &mut proc_handle,
        )
    })?;
    let mut info = ProcessInformation {
        process_id: 0,
        reserved: 0,
        std_input: std::ptr::null_mut(),
        std_output: std::ptr::null_mut(),
        std_error: std::ptr::null_mut(),
    };
    let mut doc: Pwstr = std::ptr::null_mut();
    let hr = unsafe {
        HcsWaitForOperationResultAndProcessInfo(op.0, OPERATION_TIMEOUT_MS, &mut info, &mut doc)
    };
    let text = unsafe { take_document(doc) };
    check("starting the process", hr).map_err(|e| format!("{e} {text}"))?;
    let proc = Process(proc_handle);

    // Pipes are read on threads of their own: ReadFile blocks, and the
    // loop below must keep polling for the exit and for cancellation.
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [info.std_output, info.std_error]
        .into_iter()
        .filter(|h| !h.is_null())
        .map(|h| {
            let pipe = h as usize;
            let tx = tx.clone();
            std::thread::spawn(move || read_lines(pipe as Handle, &tx))
        })
        .collect();
    drop(tx);
    if !info.std_input.is_null() {
        unsafe { CloseHandle(info.std_input) };
    }
    let query = wide("");
    let code = loop {
        while let Ok(line) = rx.try_recv() {
            on_line(&line);
        }
        if cancel.load(Ordering::SeqCst) {
            let op = Operation::new();
            unsafe { HcsTerminateProcess(proc.0, op.0, std::ptr::null()) };
            let _ = op.wait("terminating the process");
        }
        let op = Operation::new();
        check("HcsGetProcessProperties", unsafe {
            HcsGetProcessProperties(proc.0, op.0, query.as_ptr())
        })?;
        let status: serde_json::Value = serde_json::from_str(&op.wait("the process's status")?)
            .map_err(|e| format!("the process's status: {e}"))?;
        if status["Exited"].as_bool() == Some(true) {
            break status["ExitCode"].as_u64().unwrap_or(1) as u32;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for reader in readers {
        let _ = reader.join();
    }
    for line in rx.try_iter() {
        on_line(&line);
    }
    let op = Operation::new();
    unsafe { HcsTerminateComputeSystem(system.0, op.0, std::ptr::null()) };
    let _ = op.wait("stopping the compute system");
    Ok(code)
}

/// Sends each line read from `pipe` (closed at the end) to `tx`.
fn read_lines(pipe: Handle, tx: &mpsc::Sender<String>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut read = 0u32;
        let ok = unsafe {
            ReadFile(
                pipe,
                buf.as_mut_ptr(),
                buf.len() as u32,
                &mut read,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || read == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..read as usize]);
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line);
            let _ = tx.send(text.trim_end_matches(['\r', '\n']).to_string());
        }
    }
    if !pending.is_empty() {
        let _ = tx.send(String::from_utf8_lossy(&pending).into_owned());
    }
    unsafe { CloseHandle(pipe) };
}

/// A compute system handle, closed on drop.
struct System(Handle);

impl Drop for System {
    fn drop(&mut self) {
        unsafe { HcsCloseComputeSystem(self.0) }
    }
}

/// A process handle, closed on drop.
struct Process(Handle);

impl Drop for Process {
    fn drop(&mut self) {
        unsafe { HcsCloseProcess(self.0) }
    }
}
