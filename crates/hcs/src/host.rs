//! The calls into HCS on a Windows host (`cfg(windows)`).
//!
//! **Compiled, never run.** `scripts/test` checks this module for
//! `x86_64-pc-windows-gnu`, so the declarations agree with windows-sys
//! and the compiler, but kiln has no Windows runner. The calls and their
//! order follow hcsshim (`internal/wclayer/*.go`, `internal/vmcompute`,
//! `internal/hcs`) and `shared/design/windows-images.md` §3.1; the
//! `vmcompute.dll` declarations are written from hcsshim's
//! `zsyscall_windows.go` (the Windows SDK's metadata, and so windows-sys,
//! does not have them), the `computecore.dll` ones come from windows-sys.
//!
//! Known gaps, each failing with HCS's own error rather than building
//! something else: the process needs `SeBackupPrivilege` and
//! `SeRestorePrivilege` enabled (run kiln elevated; this module does not
//! adjust its token), the compute system gets no network endpoint (a RUN
//! that downloads fails), and imports hand HCS the transport folder with
//! `tombstones.txt` in the 2016-2018 writer's form rather than applying
//! tombstones after `ImportLayer` as current hcsshim does.

#![allow(unsafe_code)]

use crate::{compute_system, exit_code, process_parameters, Guid, Lines, ProcessSpec};
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use windows_sys::core::{HRESULT, PCWSTR, PWSTR};
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
use windows_sys::Win32::Storage::FileSystem::ReadFile;
use windows_sys::Win32::System::HostComputeSystem::{
    HcsCloseComputeSystem, HcsCloseOperation, HcsCloseProcess, HcsCreateComputeSystem,
    HcsCreateOperation, HcsCreateProcess, HcsGetProcessProperties, HcsStartComputeSystem,
    HcsTerminateComputeSystem, HcsTerminateProcess, HcsWaitForOperationResult,
    HcsWaitForOperationResultAndProcessInfo, HCS_OPERATION, HCS_PROCESS, HCS_PROCESS_INFORMATION,
    HCS_SYSTEM,
};

/// hcsshim's `driverInfo`: flavour 1 (the filter driver), an empty home
/// directory (layer ids are full paths).
#[repr(C)]
struct DriverInfo {
    flavour: i32,
    home_dir: PCWSTR,
}

/// `WC_LAYER_DESCRIPTOR`.
#[repr(C)]
struct LayerDescriptor {
    layer_id: Guid,
    flags: u32,
    path: PCWSTR,
}

#[link(name = "vmcompute", kind = "raw-dylib")]
extern "system" {
    fn NameToGuid(name: PCWSTR, guid: *mut Guid) -> HRESULT;
    fn ImportLayer(
        info: *const DriverInfo,
        id: PCWSTR,
        path: PCWSTR,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> HRESULT;
    fn CreateSandboxLayer(
        info: *const DriverInfo,
        id: PCWSTR,
        parent: PCWSTR,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> HRESULT;
    fn ExportLayer(
        info: *const DriverInfo,
        id: PCWSTR,
        path: PCWSTR,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> HRESULT;
    fn ActivateLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
    fn DeactivateLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
    fn PrepareLayer(
        info: *const DriverInfo,
        id: PCWSTR,
        layers: *const LayerDescriptor,
        count: u32,
    ) -> HRESULT;
    fn UnprepareLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
    fn DestroyLayer(info: *const DriverInfo, id: PCWSTR) -> HRESULT;
    fn GetLayerMountPath(
        info: *const DriverInfo,
        id: PCWSTR,
        length: *mut usize,
        buffer: *mut u16,
    ) -> HRESULT;
}

/// How long one HCS operation may take before kiln gives up on it.
const OPERATION_TIMEOUT_MS: u32 = 5 * 60 * 1000;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn wide_path(p: &Path) -> Vec<u16> {
    p.as_os_str().encode_wide().chain(Some(0)).collect()
}

fn check(what: &str, hr: HRESULT) -> Result<(), String> {
    if hr < 0 {
        Err(format!("{what}: HRESULT 0x{:08x}", hr as u32))
    } else {
        Ok(())
    }
}

/// Takes (and frees) a result document HCS allocated.
///
/// # Safety
/// `doc` is null or a NUL-terminated string HCS allocated with
/// `LocalAlloc`, not used again.
unsafe fn take_document(doc: PWSTR) -> String {
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

fn info() -> DriverInfo {
    static EMPTY: u16 = 0;
    DriverInfo {
        flavour: 1,
        home_dir: &EMPTY,
    }
}

/// hcsshim's layer id: `NameToGuid` of the layer directory's name.
pub fn layer_id(layer: &Path) -> Result<Guid, String> {
    let name = layer
        .file_name()
        .map(|n| wide(&n.to_string_lossy()))
        .ok_or_else(|| format!("{}: a layer path needs a name", layer.display()))?;
    let mut guid = Guid::default();
    check("NameToGuid", unsafe {
        NameToGuid(name.as_ptr(), &mut guid)
    })?;
    Ok(guid)
}

/// The layer chain as HCS takes it; the wide strings must outlive the
/// descriptors, so both are kept together.
struct Chain {
    _paths: Vec<Vec<u16>>,
    descriptors: Vec<LayerDescriptor>,
}

impl Chain {
    fn new(parents: &[PathBuf]) -> Result<Chain, String> {
        let paths: Vec<Vec<u16>> = parents.iter().map(|p| wide_path(p)).collect();
        let mut descriptors = Vec::with_capacity(parents.len());
        for (parent, path) in parents.iter().zip(&paths) {
            descriptors.push(LayerDescriptor {
                layer_id: layer_id(parent)?,
                flags: 0,
                path: path.as_ptr(),
            });
        }
        Ok(Chain {
            _paths: paths,
            descriptors,
        })
    }

    fn ptr(&self) -> *const LayerDescriptor {
        self.descriptors.as_ptr()
    }

    fn len(&self) -> u32 {
        self.descriptors.len() as u32
    }
}

/// Imports the transport folder `folder` as the layer directory `layer`
/// on `parents` (nearest parent first).
pub fn import_layer(folder: &Path, layer: &Path, parents: &[PathBuf]) -> Result<(), String> {
    std::fs::create_dir_all(layer).map_err(|e| format!("{}: {e}", layer.display()))?;
    let chain = Chain::new(parents)?;
    let (id, path) = (wide_path(layer), wide_path(folder));
    check("ImportLayer", unsafe {
        ImportLayer(
            &info(),
            id.as_ptr(),
            path.as_ptr(),
            chain.ptr(),
            chain.len(),
        )
    })
}

/// Creates a writable scratch layer in `scratch` on `parents`.
pub fn create_scratch(scratch: &Path, parents: &[PathBuf]) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let chain = Chain::new(parents)?;
    let (id, none) = (wide_path(scratch), wide(""));
    check("CreateSandboxLayer", unsafe {
        CreateSandboxLayer(
            &info(),
            id.as_ptr(),
            none.as_ptr(),
            chain.ptr(),
            chain.len(),
        )
    })
}

/// Exports what changed in `scratch` as a transport folder in `dest`.
pub fn export_layer(scratch: &Path, parents: &[PathBuf], dest: &Path) -> Result<(), String> {
    let chain = Chain::new(parents)?;
    let (id, path) = (wide_path(scratch), wide_path(dest));
    check("ExportLayer", unsafe {
        ExportLayer(
            &info(),
            id.as_ptr(),
            path.as_ptr(),
            chain.ptr(),
            chain.len(),
        )
    })
}

/// Removes the layer directory `layer`.
pub fn destroy_layer(layer: &Path) -> Result<(), String> {
    let id = wide_path(layer);
    check("DestroyLayer", unsafe {
        DestroyLayer(&info(), id.as_ptr())
    })
}

/// Runs `process` in a process-isolated compute system on `scratch` (on
/// `parents`) to its end, or until `cancel` turns true, passing each line
/// it prints to `on_line`; returns its exit code.
pub fn run(
    scratch: &Path,
    parents: &[PathBuf],
    process: &ProcessSpec,
    cancel: &AtomicBool,
    on_line: &mut dyn FnMut(&str),
) -> Result<u32, String> {
    let volume = mount(scratch, parents)?;
    let result = run_in(&volume, parents, process, cancel, on_line);
    let unmounted = unmount(scratch);
    let code = result?;
    unmounted?;
    Ok(code)
}

/// The scratch's volume path while it is activated and prepared on
/// `parents`, as the compute system's storage names it.
fn mount(scratch: &Path, parents: &[PathBuf]) -> Result<String, String> {
    let info = info();
    let id = wide_path(scratch);
    let chain = Chain::new(parents)?;
    unsafe {
        check("ActivateLayer", ActivateLayer(&info, id.as_ptr()))?;
        check(
            "PrepareLayer",
            PrepareLayer(&info, id.as_ptr(), chain.ptr(), chain.len()),
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

fn unmount(scratch: &Path) -> Result<(), String> {
    let info = info();
    let id = wide_path(scratch);
    unsafe {
        check("UnprepareLayer", UnprepareLayer(&info, id.as_ptr()))?;
        check("DeactivateLayer", DeactivateLayer(&info, id.as_ptr()))
    }
}

/// One HCS operation, closed on drop.
struct Operation(HCS_OPERATION);

impl Operation {
    fn new() -> Operation {
        Operation(unsafe { HcsCreateOperation(std::ptr::null(), None) })
    }

    fn wait(&self, what: &str) -> Result<String, String> {
        let mut doc: PWSTR = std::ptr::null_mut();
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

/// A compute system handle, closed on drop.
struct System(HCS_SYSTEM);

impl Drop for System {
    fn drop(&mut self) {
        unsafe { HcsCloseComputeSystem(self.0) }
    }
}

/// A process handle, closed on drop.
struct Process(HCS_PROCESS);

impl Drop for Process {
    fn drop(&mut self) {
        unsafe { HcsCloseProcess(self.0) }
    }
}

/// A pipe handle moved to the thread that reads it.
struct Pipe(HANDLE);

// SAFETY: a pipe handle may be used from any thread; only its reader
// thread uses it after the move.
unsafe impl Send for Pipe {}

fn run_in(
    volume: &str,
    parents: &[PathBuf],
    process: &ProcessSpec,
    cancel: &AtomicBool,
    on_line: &mut dyn FnMut(&str),
) -> Result<u32, String> {
    let layers = parents
        .iter()
        .map(|p| Ok((layer_id(p)?, p.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    let config = wide(&compute_system("kiln", volume, &layers).to_string());
    let params = wide(&process_parameters(process).to_string());
    let id = wide(&format!("kiln-{}", std::process::id()));

    let mut system: HCS_SYSTEM = std::ptr::null_mut();
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

    let mut handle: HCS_PROCESS = std::ptr::null_mut();
    let op = Operation::new();
    check("HcsCreateProcess", unsafe {
        HcsCreateProcess(
            system.0,
            params.as_ptr(),
            op.0,
            std::ptr::null(),
            &mut handle,
        )
    })?;
    let mut info = HCS_PROCESS_INFORMATION::default();
    let mut doc: PWSTR = std::ptr::null_mut();
    let hr = unsafe {
        HcsWaitForOperationResultAndProcessInfo(op.0, OPERATION_TIMEOUT_MS, &mut info, &mut doc)
    };
    let text = unsafe { take_document(doc) };
    check("starting the process", hr).map_err(|e| format!("{e} {text}"))?;
    let proc = Process(handle);

    // Pipes are read on threads of their own: ReadFile blocks, and the
    // loop below must keep polling for the exit and for cancellation.
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [info.StdOutput, info.StdError]
        .into_iter()
        .filter(|h| !h.is_null())
        .map(|h| {
            let (pipe, tx) = (Pipe(h), tx.clone());
            std::thread::spawn(move || read_lines(pipe, &tx))
        })
        .collect();
    drop(tx);
    if !info.StdInput.is_null() {
        unsafe { CloseHandle(info.StdInput) };
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
        if let Some(code) = exit_code(&op.wait("the process's status")?)? {
            break code;
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
fn read_lines(pipe: Pipe, tx: &mpsc::Sender<String>) {
    let mut lines = Lines::default();
    let mut buf = [0u8; 4096];
    loop {
        let mut read = 0u32;
        let ok = unsafe {
            ReadFile(
                pipe.0,
                buf.as_mut_ptr(),
                buf.len() as u32,
                &mut read,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || read == 0 {
            break;
        }
        lines.push(&buf[..read as usize], &mut |l| {
            let _ = tx.send(l);
        });
    }
    if let Some(last) = lines.finish() {
        let _ = tx.send(last);
    }
    unsafe { CloseHandle(pipe.0) };
}
