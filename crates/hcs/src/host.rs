//! The calls into HCS on a Windows host (`cfg(windows)`).
//!
//! **Never run against HCS.** kiln has no Windows runner: `scripts/test`
//! lints this module for `x86_64-pc-windows-gnu` and runs its tests under
//! wine, which has neither HCS DLL, so what runs there is the loading and
//! its errors, not one HCS call. The calls and their order follow hcsshim
//! (`internal/wclayer/*.go`, `internal/vmcompute`, `internal/hcs`) and
//! `shared/design/windows-images.md` §3.1; the `vmcompute.dll` signatures
//! are written from hcsshim's `zsyscall_windows.go` (the Windows SDK's
//! metadata, and so windows-sys, does not have them), the
//! `computecore.dll` ones from windows-sys's.
//!
//! Both DLLs are loaded when first needed ([`available`]), never imported:
//! they exist only where the Containers feature is installed, and an
//! import would stop any program holding this code from starting at all
//! elsewhere, not just its Windows RUN steps.
//!
//! Known gaps, each failing with HCS's own error rather than building
//! something else: the compute system gets no network endpoint (a RUN
//! that downloads fails), and imports hand HCS the transport folder with
//! `tombstones.txt` in the 2016-2018 writer's form rather than applying
//! tombstones after `ImportLayer` as current hcsshim does. Importing,
//! exporting and removing layers enable `SeBackupPrivilege` and
//! `SeRestorePrivilege` on the process token first, as hcsshim's
//! `wclayer` tool does; a process that does not hold them (kiln not run
//! elevated) gets an error saying so before HCS is asked.

#![allow(unsafe_code)]

use crate::{compute_system, exit_code, process_parameters, Guid, Lines, ProcessSpec};
use std::ffi::{c_void, CString};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;
use windows_sys::core::{HRESULT, PCWSTR, PWSTR};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, ERROR_NOT_ALL_ASSIGNED, HANDLE, HMODULE, LUID,
};
use windows_sys::Win32::Security::{
    AdjustTokenPrivileges, LookupPrivilegeValueW, LUID_AND_ATTRIBUTES, SECURITY_DESCRIPTOR,
    SE_PRIVILEGE_ENABLED, TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES, TOKEN_QUERY,
};
use windows_sys::Win32::Storage::FileSystem::ReadFile;
use windows_sys::Win32::System::HostComputeSystem::{
    HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_PROCESS, HCS_PROCESS_INFORMATION, HCS_SYSTEM,
};
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

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

/// What a host without HCS lacks, for every error that says it is missing.
const NEEDS: &str = "HCS needs Windows 10 1809 / Windows Server 2019 or later with the \
                     Containers feature (Enable-WindowsOptionalFeature -Online -FeatureName \
                     Containers)";

/// Declares [`Api`], one typed pointer per function, and its loader.
/// Each function is named as its DLL exports it, so the field, the symbol
/// looked up and hcsshim's declaration all read the same.
macro_rules! hcs_api {
    ($($dll:literal { $($name:ident: fn($($arg:ty),* $(,)?) $(-> $ret:ty)?;)* })*) => {
        /// The HCS functions kiln calls, resolved from their DLLs.
        #[allow(non_snake_case)]
        struct Api {
            $($($name: unsafe extern "system" fn($($arg),*) $(-> $ret)?,)*)*
        }

        impl Api {
            #[allow(non_snake_case)]
            fn load() -> Result<Api, String> {
                $(
                    let module = load_library($dll)?;
                    $(
                        let $name = symbol(module, $dll, stringify!($name))?;
                        // SAFETY: the target type is the export's own
                        // signature (hcsshim's or windows-sys's); only the
                        // pointer's type changes.
                        let $name = unsafe {
                            std::mem::transmute::<
                                unsafe extern "system" fn() -> isize,
                                unsafe extern "system" fn($($arg),*) $(-> $ret)?,
                            >($name)
                        };
                    )*
                )*
                Ok(Api { $($($name,)*)* })
            }
        }
    };
}

hcs_api! {
    "vmcompute.dll" {
        NameToGuid: fn(PCWSTR, *mut Guid) -> HRESULT;
        ImportLayer: fn(*const DriverInfo, PCWSTR, PCWSTR, *const LayerDescriptor, u32) -> HRESULT;
        CreateSandboxLayer: fn(
            *const DriverInfo,
            PCWSTR,
            PCWSTR,
            *const LayerDescriptor,
            u32,
        ) -> HRESULT;
        ExportLayer: fn(*const DriverInfo, PCWSTR, PCWSTR, *const LayerDescriptor, u32) -> HRESULT;
        ActivateLayer: fn(*const DriverInfo, PCWSTR) -> HRESULT;
        DeactivateLayer: fn(*const DriverInfo, PCWSTR) -> HRESULT;
        PrepareLayer: fn(*const DriverInfo, PCWSTR, *const LayerDescriptor, u32) -> HRESULT;
        UnprepareLayer: fn(*const DriverInfo, PCWSTR) -> HRESULT;
        DestroyLayer: fn(*const DriverInfo, PCWSTR) -> HRESULT;
        GetLayerMountPath: fn(*const DriverInfo, PCWSTR, *mut usize, *mut u16) -> HRESULT;
    }
    "computecore.dll" {
        HcsCreateOperation: fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
        HcsWaitForOperationResult: fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
        HcsWaitForOperationResultAndProcessInfo: fn(
            HCS_OPERATION,
            u32,
            *mut HCS_PROCESS_INFORMATION,
            *mut PWSTR,
        ) -> HRESULT;
        HcsCloseOperation: fn(HCS_OPERATION);
        HcsCreateComputeSystem: fn(
            PCWSTR,
            PCWSTR,
            HCS_OPERATION,
            *const SECURITY_DESCRIPTOR,
            *mut HCS_SYSTEM,
        ) -> HRESULT;
        HcsStartComputeSystem: fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
        HcsTerminateComputeSystem: fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
        HcsCloseComputeSystem: fn(HCS_SYSTEM);
        HcsCreateProcess: fn(
            HCS_SYSTEM,
            PCWSTR,
            HCS_OPERATION,
            *const SECURITY_DESCRIPTOR,
            *mut HCS_PROCESS,
        ) -> HRESULT;
        HcsGetProcessProperties: fn(HCS_PROCESS, HCS_OPERATION, PCWSTR) -> HRESULT;
        HcsTerminateProcess: fn(HCS_PROCESS, HCS_OPERATION, PCWSTR) -> HRESULT;
        HcsCloseProcess: fn(HCS_PROCESS);
    }
}

/// Loads `dll` from System32 only: HCS's DLLs live nowhere else, and a
/// copy beside kiln or in the working directory must never be the one run.
/// The module stays loaded for the life of the process, since [`Api`]
/// keeps pointers into it.
fn load_library(dll: &str) -> Result<HMODULE, String> {
    let name = wide(dll);
    let module = unsafe {
        LoadLibraryExW(
            name.as_ptr(),
            std::ptr::null_mut(),
            LOAD_LIBRARY_SEARCH_SYSTEM32,
        )
    };
    if module.is_null() {
        let why = io::Error::last_os_error();
        return Err(format!("{dll} is not on this host ({why}): {NEEDS}"));
    }
    Ok(module)
}

/// The function `name` exported by `module`, loaded from `dll`.
fn symbol(
    module: HMODULE,
    dll: &str,
    name: &str,
) -> Result<unsafe extern "system" fn() -> isize, String> {
    let c_name = CString::new(name).map_err(|e| format!("{name:?}: {e}"))?;
    unsafe { GetProcAddress(module, c_name.as_ptr().cast()) }.ok_or_else(|| {
        let why = io::Error::last_os_error();
        format!(
            "{dll} has no {name} ({why}): this Windows is older than kiln's calls need; {NEEDS}"
        )
    })
}

/// HCS's functions, loaded on first use and kept for the process; a host
/// without them gets the same error from every call.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
}

/// Whether this host has HCS as kiln calls it: both DLLs load and export
/// every function kiln uses. The error names what is missing and how to
/// get it; every other call in this module fails with the same one.
pub fn available() -> Result<(), String> {
    api().map(|_| ())
}

/// A kernel handle, closed on drop.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe { CloseHandle(self.0) };
    }
}

/// Enables `SeBackupPrivilege` and `SeRestorePrivilege` on the process
/// token, as hcsshim's `wclayer` tool does before importing, exporting or
/// removing a layer (go-winio's `EnableProcessPrivileges`): HCS reads and
/// writes layer files with backup semantics and refuses without them. They
/// stay enabled, which is harmless: only an elevated process holds them.
fn enable_backup_privileges() -> Result<(), String> {
    let mut token: HANDLE = std::ptr::null_mut();
    let opened = unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
            &mut token,
        )
    };
    if opened == 0 {
        return Err(format!(
            "opening the process token: {}",
            io::Error::last_os_error()
        ));
    }
    let token = Handle(token);
    for name in ["SeBackupPrivilege", "SeRestorePrivilege"] {
        let mut luid = LUID::default();
        if unsafe { LookupPrivilegeValueW(std::ptr::null(), wide(name).as_ptr(), &mut luid) } == 0 {
            return Err(format!("{name}: {}", io::Error::last_os_error()));
        }
        let state = TOKEN_PRIVILEGES {
            PrivilegeCount: 1,
            Privileges: [LUID_AND_ATTRIBUTES {
                Luid: luid,
                Attributes: SE_PRIVILEGE_ENABLED,
            }],
        };
        let adjusted = unsafe {
            AdjustTokenPrivileges(
                token.0,
                0,
                &state,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if adjusted == 0 {
            return Err(format!("enabling {name}: {}", io::Error::last_os_error()));
        }
        // AdjustTokenPrivileges succeeds for a privilege the token does
        // not hold; only the last error tells.
        if unsafe { GetLastError() } == ERROR_NOT_ALL_ASSIGNED {
            return Err(format!(
                "this process does not hold {name}, which HCS needs to read and write layers: \
                 run kiln elevated (as Administrator)"
            ));
        }
    }
    Ok(())
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
    let api = api()?;
    let name = layer
        .file_name()
        .map(|n| wide(&n.to_string_lossy()))
        .ok_or_else(|| format!("{}: a layer path needs a name", layer.display()))?;
    let mut guid = Guid::default();
    check("NameToGuid", unsafe {
        (api.NameToGuid)(name.as_ptr(), &mut guid)
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
    let api = api()?;
    enable_backup_privileges()?;
    std::fs::create_dir_all(layer).map_err(|e| format!("{}: {e}", layer.display()))?;
    let chain = Chain::new(parents)?;
    let (id, path) = (wide_path(layer), wide_path(folder));
    check("ImportLayer", unsafe {
        (api.ImportLayer)(
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
    let api = api()?;
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let chain = Chain::new(parents)?;
    let id = wide_path(scratch);
    // No parent id: hcsshim passes none, the chain names the parents.
    check("CreateSandboxLayer", unsafe {
        (api.CreateSandboxLayer)(
            &info(),
            id.as_ptr(),
            std::ptr::null(),
            chain.ptr(),
            chain.len(),
        )
    })
}

/// Exports what changed in `scratch` as a transport folder in `dest`.
pub fn export_layer(scratch: &Path, parents: &[PathBuf], dest: &Path) -> Result<(), String> {
    let api = api()?;
    enable_backup_privileges()?;
    let chain = Chain::new(parents)?;
    let (id, path) = (wide_path(scratch), wide_path(dest));
    check("ExportLayer", unsafe {
        (api.ExportLayer)(
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
    let api = api()?;
    enable_backup_privileges()?;
    let id = wide_path(layer);
    check("DestroyLayer", unsafe {
        (api.DestroyLayer)(&info(), id.as_ptr())
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
    let api = api()?;
    let volume = mount(api, scratch, parents)?;
    let result = run_in(api, &volume, parents, process, cancel, on_line);
    let unmounted = unmount(api, scratch);
    let code = result?;
    unmounted?;
    Ok(code)
}

/// The scratch's volume path while it is activated and prepared on
/// `parents`, as the compute system's storage names it.
fn mount(api: &Api, scratch: &Path, parents: &[PathBuf]) -> Result<String, String> {
    let info = info();
    let id = wide_path(scratch);
    let chain = Chain::new(parents)?;
    unsafe {
        check("ActivateLayer", (api.ActivateLayer)(&info, id.as_ptr()))?;
        check(
            "PrepareLayer",
            (api.PrepareLayer)(&info, id.as_ptr(), chain.ptr(), chain.len()),
        )?;
        let mut len = 0usize;
        check(
            "GetLayerMountPath",
            (api.GetLayerMountPath)(&info, id.as_ptr(), &mut len, std::ptr::null_mut()),
        )?;
        let mut buf = vec![0u16; len];
        check(
            "GetLayerMountPath",
            (api.GetLayerMountPath)(&info, id.as_ptr(), &mut len, buf.as_mut_ptr()),
        )?;
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        Ok(String::from_utf16_lossy(&buf[..end]))
    }
}

fn unmount(api: &Api, scratch: &Path) -> Result<(), String> {
    let info = info();
    let id = wide_path(scratch);
    unsafe {
        check("UnprepareLayer", (api.UnprepareLayer)(&info, id.as_ptr()))?;
        check("DeactivateLayer", (api.DeactivateLayer)(&info, id.as_ptr()))
    }
}

/// One HCS operation, closed on drop.
struct Operation {
    api: &'static Api,
    handle: HCS_OPERATION,
}

impl Operation {
    fn new(api: &'static Api) -> Result<Operation, String> {
        let handle = unsafe { (api.HcsCreateOperation)(std::ptr::null(), None) };
        if handle.is_null() {
            return Err("HcsCreateOperation returned no operation".into());
        }
        Ok(Operation { api, handle })
    }

    fn wait(&self, what: &str) -> Result<String, String> {
        let mut doc: PWSTR = std::ptr::null_mut();
        let hr = unsafe {
            (self.api.HcsWaitForOperationResult)(self.handle, OPERATION_TIMEOUT_MS, &mut doc)
        };
        let text = unsafe { take_document(doc) };
        check(what, hr).map_err(|e| format!("{e} {text}"))?;
        Ok(text)
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        unsafe { (self.api.HcsCloseOperation)(self.handle) }
    }
}

/// A compute system handle, closed on drop.
struct System {
    api: &'static Api,
    handle: HCS_SYSTEM,
}

impl Drop for System {
    fn drop(&mut self) {
        unsafe { (self.api.HcsCloseComputeSystem)(self.handle) }
    }
}

/// A process handle, closed on drop.
struct Process {
    api: &'static Api,
    handle: HCS_PROCESS,
}

impl Drop for Process {
    fn drop(&mut self) {
        unsafe { (self.api.HcsCloseProcess)(self.handle) }
    }
}

/// A pipe handle moved to the thread that reads it.
struct Pipe(HANDLE);

// SAFETY: a pipe handle may be used from any thread; only its reader
// thread uses it after the move.
unsafe impl Send for Pipe {}

fn run_in(
    api: &'static Api,
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

    let mut handle: HCS_SYSTEM = std::ptr::null_mut();
    let op = Operation::new(api)?;
    check("HcsCreateComputeSystem", unsafe {
        (api.HcsCreateComputeSystem)(
            id.as_ptr(),
            config.as_ptr(),
            op.handle,
            std::ptr::null(),
            &mut handle,
        )
    })?;
    op.wait("creating the compute system")?;
    let system = System { api, handle };
    let op = Operation::new(api)?;
    check("HcsStartComputeSystem", unsafe {
        (api.HcsStartComputeSystem)(system.handle, op.handle, std::ptr::null())
    })?;
    op.wait("starting the compute system")?;

    let mut handle: HCS_PROCESS = std::ptr::null_mut();
    let op = Operation::new(api)?;
    check("HcsCreateProcess", unsafe {
        (api.HcsCreateProcess)(
            system.handle,
            params.as_ptr(),
            op.handle,
            std::ptr::null(),
            &mut handle,
        )
    })?;
    let mut info = HCS_PROCESS_INFORMATION::default();
    let mut doc: PWSTR = std::ptr::null_mut();
    let hr = unsafe {
        (api.HcsWaitForOperationResultAndProcessInfo)(
            op.handle,
            OPERATION_TIMEOUT_MS,
            &mut info,
            &mut doc,
        )
    };
    let text = unsafe { take_document(doc) };
    check("starting the process", hr).map_err(|e| format!("{e} {text}"))?;
    let proc = Process { api, handle };

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
            let op = Operation::new(api)?;
            unsafe { (api.HcsTerminateProcess)(proc.handle, op.handle, std::ptr::null()) };
            let _ = op.wait("terminating the process");
        }
        let op = Operation::new(api)?;
        check("HcsGetProcessProperties", unsafe {
            (api.HcsGetProcessProperties)(proc.handle, op.handle, query.as_ptr())
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
    let op = Operation::new(api)?;
    unsafe { (api.HcsTerminateComputeSystem)(system.handle, op.handle, std::ptr::null()) };
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

#[cfg(test)]
mod tests {
    use super::{enable_backup_privileges, load_library, symbol};

    /// An older Windows has `vmcompute.dll` without every function kiln
    /// calls; kernel32 stands in for it, since wine has no HCS DLL.
    #[test]
    fn a_missing_function_is_named_with_its_dll() {
        let kernel32 = load_library("kernel32.dll").unwrap();
        assert!(symbol(kernel32, "kernel32.dll", "GetLastError").is_ok());
        let e = symbol(kernel32, "kernel32.dll", "NameToGuid").unwrap_err();
        assert!(e.starts_with("kernel32.dll has no NameToGuid ("), "{e}");
        assert!(e.contains("Windows Server 2019"), "{e}");
    }

    /// Wine's process holds both privileges, as an elevated kiln does; a
    /// run that is not elevated must get the error that says so, not
    /// another one from a call made wrongly.
    #[test]
    fn backup_privileges_are_enabled_or_refused_as_not_elevated() {
        if let Err(e) = enable_backup_privileges() {
            assert!(e.ends_with("run kiln elevated (as Administrator)"), "{e}");
        }
    }
}
