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
//! A base layer ([`import_base_layer`]) is written file by file as
//! hcsshim's base-layer writer does, from the entries and backup streams
//! kiln-oci's `BaseLayerReader` reads from its tar: each entry created
//! with `NtCreateFile` relative to the layer directory's handle under
//! `OBJ_DONT_REPARSE` (never through a reparse point), hard links made
//! with `NtSetInformationFile`, the streams written with `BackupWrite`
//! (security included), then `ProcessBaseImage` and
//! `ProcessUtilityImage`. Under wine the directory and hard-link steps
//! run; `BackupWrite` is a stub there, and the HCS calls are missing.
//!
//! Any other layer ([`import_layer`]) goes through HCS's `ImportLayer`
//! from the transport folder kiln-oci's `layer_to_folder` wrote, which
//! holds neither tombstones nor hard links; then, as hcsshim's
//! `legacyLayerWriterWrapper.Close` does, `apply_imported` removes the
//! tombstoned paths from the imported layer, makes the hard links and sets
//! the directories' times again, with the same relative calls. Under wine
//! those steps run on a plain directory; `ImportLayer` is missing.
//!
//! Known gap, failing with HCS's own error rather than building
//! something else: the compute system gets no network endpoint (a RUN
//! that downloads fails). A base layer
//! whose import fails midway is left as far as it was written, for the
//! caller to remove, as hcsshim's importer leaves it. Importing,
//! exporting and removing layers enable `SeBackupPrivilege` and
//! `SeRestorePrivilege` on the process token first, as hcsshim's
//! `wclayer` tool does; a process that does not hold them (kiln not run
//! elevated) gets an error saying so before HCS is asked.

#![allow(unsafe_code)]

use crate::{compute_system, exit_code, process_parameters, Guid, Lines, ProcessSpec};
use kiln_oci::windows::transport::{self, BaseEntry, BaseLayerReader, ImportedFolder};
use std::ffi::{c_void, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;
use windows_sys::core::{HRESULT, PCWSTR, PWSTR};
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{
    FileLinkInformation, NtCreateFile, NtSetInformationFile, FILE_CREATE, FILE_DIRECTORY_FILE,
    FILE_LINK_INFORMATION, FILE_OPEN, FILE_OPEN_FOR_BACKUP_INTENT, FILE_OPEN_REPARSE_POINT,
    FILE_SYNCHRONOUS_IO_NONALERT,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, RtlNtStatusToDosError, ERROR_ACCESS_DENIED,
    ERROR_NOT_ALL_ASSIGNED, GENERIC_READ, GENERIC_WRITE, HANDLE, HMODULE, LUID, NTSTATUS,
    OBJ_DONT_REPARSE, STATUS_REPARSE_POINT_ENCOUNTERED, UNICODE_STRING,
};
use windows_sys::Win32::Security::{
    AdjustTokenPrivileges, LookupPrivilegeValueW, LUID_AND_ATTRIBUTES, SECURITY_DESCRIPTOR,
    SE_PRIVILEGE_ENABLED, TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES, TOKEN_QUERY,
};
use windows_sys::Win32::Storage::FileSystem::{
    BackupWrite, FileBasicInfo, FileDispositionInfo, GetFileInformationByHandleEx, ReadFile,
    SetFileInformationByHandle, DELETE, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_BASIC_INFO, FILE_DISPOSITION_INFO,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FILE_WRITE_ATTRIBUTES, SYNCHRONIZE, WRITE_DAC, WRITE_OWNER,
};
use windows_sys::Win32::System::HostComputeSystem::{
    HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_PROCESS, HCS_PROCESS_INFORMATION, HCS_SYSTEM,
};
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32,
};
use windows_sys::Win32::System::SystemServices::ACCESS_SYSTEM_SECURITY;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

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
        ProcessBaseImage: fn(PCWSTR) -> HRESULT;
        ProcessUtilityImage: fn(PCWSTR) -> HRESULT;
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

/// Imports the transport folder `folder`, which kiln-oci's
/// `layer_to_folder` wrote and described as `imported`, as the layer
/// directory `layer` on `parents` (nearest parent first), as hcsshim's
/// `legacyLayerWriterWrapper.Close` does: HCS's `ImportLayer`, then
/// `apply_imported` on the imported layer. hcsshim then has HCS process
/// a utility VM image the layer carries; `layer_to_folder` refuses
/// `UtilityVM/` in all but base layers, so none is here.
pub fn import_layer(
    folder: &Path,
    imported: &ImportedFolder,
    layer: &Path,
    parents: &[PathBuf],
) -> Result<(), String> {
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
    })?;
    let root = open_root(&long_abs(layer)?)?;
    apply_imported(&root, imported)
}

/// What hcsshim's writer does to a layer `ImportLayer` made, beneath
/// `root` (the layer directory, opened), none of it following a reparse
/// point: removes each tombstoned path (one already absent is fine: the
/// deletion is of a parent layer's file, which the layer may not hold),
/// makes each hard link (removing whatever `ImportLayer` left under its
/// name), then gives each directory, children first, the attributes and
/// times the layer gave it, which the removals and links changed.
fn apply_imported(root: &File, imported: &ImportedFolder) -> Result<(), String> {
    let absent_is_fine = |r: io::Result<()>| match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    for name in &imported.tombstones {
        absent_is_fine(remove_relative(root, name))
            .map_err(|e| format!("{name}: removing it (a tombstone): {e}"))?;
    }
    for (name, target) in &imported.links {
        absent_is_fine(remove_relative(root, name))
            .map_err(|e| format!("{name}: removing it for a hard link: {e}"))?;
        link_relative(root, target, name)
            .map_err(|e| format!("{name}: hard link to {target}: {e}"))?;
    }
    reapply_directory_times(root, &imported.dirs)
}

/// Imports a base layer (an image's bottom one) from its uncompressed tar
/// `tar` as the layer directory `layer`, which must not exist yet, as
/// hcsshim's base-layer writer (`internal/wclayer/baselayerwriter.go`, fed
/// by `pkg/ociwclayer/import.go`) does: every entry created beneath
/// `layer` and written with `BackupWrite`, directory times set again once
/// all entries are in, then HCS's `ProcessBaseImage` on the layer and,
/// when the layer has a utility VM image, `ProcessUtilityImage` on its
/// `UtilityVM`. What the tar may hold is [`BaseLayerReader`]'s to decide;
/// its errors name the entry.
pub fn import_base_layer(tar: &mut dyn Read, layer: &Path) -> Result<(), String> {
    let api = api()?;
    enable_backup_privileges()?;
    std::fs::create_dir(layer).map_err(|e| format!("{}: {e}", layer.display()))?;
    let layer = long_abs(layer)?;
    let root = open_root(&layer)?;
    let utility_vm = write_base_layer(tar, &layer, &root)?;
    check("ProcessBaseImage", unsafe {
        (api.ProcessBaseImage)(wide_path(&layer).as_ptr())
    })?;
    if utility_vm {
        // hcsshim's EnsureNotReparsePointRelative: HCS must process the
        // layer's own UtilityVM, not wherever a reparse point leads.
        open_relative(
            &root,
            "UtilityVM",
            0,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            FILE_OPEN,
            0,
        )
        .map_err(|e| format!("UtilityVM: {e}"))?;
        check("ProcessUtilityImage", unsafe {
            (api.ProcessUtilityImage)(wide_path(&layer.join("UtilityVM")).as_ptr())
        })?;
    }
    Ok(())
}

/// The path in the NT long form hcsshim hands HCS (`longpath.LongAbs`):
/// absolute, behind `\\?\` (`\\?\UNC\` for a share).
fn long_abs(path: &Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = abs
        .to_str()
        .ok_or_else(|| format!("{}: the path is not Unicode", abs.display()))?;
    Ok(PathBuf::from(
        if text.starts_with(r"\\?\") || text.starts_with(r"\\.\") {
            text.to_string()
        } else if let Some(share) = text.strip_prefix(r"\\") {
            format!(r"\\?\UNC\{share}")
        } else {
            format!(r"\\?\{text}")
        },
    ))
}

/// The layer directory, opened as hcsshim's `safefile.OpenRoot` opens it:
/// every entry is created relative to this handle.
fn open_root(layer: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(layer)
        .map_err(|e| format!("{}: {e}", layer.display()))
}

/// Writes every entry of the base layer `tar` beneath `root` (the layer
/// directory `layer`, opened); returns whether it has a utility VM image.
fn write_base_layer(tar: &mut dyn Read, layer: &Path, root: &File) -> Result<bool, String> {
    let mut reader = BaseLayerReader::new(tar);
    // Directories in tar order with what to set once their children are
    // in: creating a child changes a directory's times.
    let mut dirs: Vec<(String, transport::FileBasicInfo)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(entry) = reader.next_entry().map_err(|e| e.to_string())? {
        let file = match entry {
            BaseEntry::Link { name, target } => {
                link_relative(root, &target, &name)
                    .map_err(|e| format!("{name}: hard link to {target}: {e}"))?;
                continue;
            }
            BaseEntry::Create(file) => file,
        };
        let at = |what: &str, e: io::Error| format!("{}: {what}: {e}", file.name);
        let directory = file.info.is_directory();
        let info = basic_info(&file.info);
        let handle = open_relative(
            root,
            &file.name,
            GENERIC_READ | GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | ACCESS_SYSTEM_SECURITY,
            FILE_SHARE_READ,
            FILE_CREATE,
            if directory { FILE_DIRECTORY_FILE } else { 0 },
        )
        .map_err(|e| at("creating it", e))?;
        set_basic_info(&handle, &info).map_err(|e| at("setting its attributes and times", e))?;
        if directory {
            dirs.push((file.name.clone(), file.info));
        }
        let copy = match file.backup_copy {
            Some(copy) => Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(layer.join(copy))
                    .map_err(|e| at(&format!("creating its copy {copy}"), e))?,
            ),
            None => None,
        };
        let mut out = BackupWriter::new(handle.as_handle(), true);
        let mut copy_out = copy
            .as_ref()
            .map(|f| BackupWriter::new(f.as_handle(), false));
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            out.write(&buf[..n]).map_err(|e| at("BackupWrite", e))?;
            if let Some(copy_out) = copy_out.as_mut() {
                copy_out
                    .write(&buf[..n])
                    .map_err(|e| at("BackupWrite to its copy", e))?;
            }
        }
    }
    reapply_directory_times(root, &dirs)?;
    Ok(reader.utility_vm())
}

/// hcsshim's `reapplyDirectoryTimes`: each directory of `dirs` (in layer
/// order, so parents first) beneath `root` gets its attributes and times
/// again, children first, since a change inside a directory changes its
/// times.
fn reapply_directory_times(
    root: &File,
    dirs: &[(String, transport::FileBasicInfo)],
) -> Result<(), String> {
    for (name, info) in dirs.iter().rev() {
        let dir = open_relative(
            root,
            name,
            GENERIC_READ | GENERIC_WRITE,
            FILE_SHARE_READ,
            FILE_OPEN,
            FILE_DIRECTORY_FILE | FILE_OPEN_REPARSE_POINT,
        )
        .map_err(|e| format!("{name}: opening it again: {e}"))?;
        set_basic_info(&dir, &basic_info(info))
            .map_err(|e| format!("{name}: setting its times: {e}"))?;
    }
    Ok(())
}

/// The entry's `FILE_BASIC_INFO`.
fn basic_info(info: &transport::FileBasicInfo) -> FILE_BASIC_INFO {
    let [creation, access, write, change] = info.filetimes();
    FILE_BASIC_INFO {
        CreationTime: creation,
        LastAccessTime: access,
        LastWriteTime: write,
        ChangeTime: change,
        FileAttributes: info.attributes,
    }
}

/// hcsshim's `safefile.OpenRelative`: `NtCreateFile` of `name` (relative,
/// `\`-separated) beneath `root` with `OBJ_DONT_REPARSE`, so the open
/// fails rather than follow a reparse point anywhere on the way, and with
/// backup intent, so the privileges enabled before grant the access.
fn open_relative(
    root: &impl AsRawHandle,
    name: &str,
    access: u32,
    share: u32,
    disposition: u32,
    options: u32,
) -> io::Result<OwnedHandle> {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let len = u16::try_from(units.len() * 2)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the name is too long"))?;
    let object_name = UNICODE_STRING {
        Length: len,
        MaximumLength: len,
        Buffer: units.as_mut_ptr(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: std::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: root.as_raw_handle(),
        ObjectName: &object_name,
        Attributes: OBJ_DONT_REPARSE,
        SecurityDescriptor: std::ptr::null(),
        SecurityQualityOfService: std::ptr::null(),
    };
    let mut handle: HANDLE = std::ptr::null_mut();
    let mut status_block = IO_STATUS_BLOCK::default();
    // SAFETY: every pointer is to a live local; the name is not
    // NUL-terminated, as UNICODE_STRING needs none.
    let status = unsafe {
        NtCreateFile(
            &mut handle,
            access | SYNCHRONIZE,
            &attributes,
            &mut status_block,
            std::ptr::null(),
            0,
            share,
            disposition,
            FILE_OPEN_FOR_BACKUP_INTENT | FILE_SYNCHRONOUS_IO_NONALERT | options,
            std::ptr::null(),
            0,
        )
    };
    nt_result(status)?;
    // SAFETY: NtCreateFile succeeded, so `handle` is a handle we own.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

fn nt_result(status: NTSTATUS) -> io::Result<()> {
    if status < 0 {
        let code = unsafe { RtlNtStatusToDosError(status) };
        return Err(io::Error::from_raw_os_error(code as i32));
    }
    Ok(())
}

/// go-winio's `SetFileBasicInfo`: times and attributes. hcsshim sets them
/// before writing the data, relying on the file system not to update a
/// time set explicitly through a handle for that handle's later writes.
fn set_basic_info(handle: &impl AsRawHandle, info: &FILE_BASIC_INFO) -> io::Result<()> {
    let ok = unsafe {
        SetFileInformationByHandle(
            handle.as_raw_handle(),
            FileBasicInfo,
            (info as *const FILE_BASIC_INFO).cast(),
            std::mem::size_of::<FILE_BASIC_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The attributes and times of the file behind `handle`.
fn get_basic_info(handle: &impl AsRawHandle) -> io::Result<FILE_BASIC_INFO> {
    let mut info = FILE_BASIC_INFO::default();
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle.as_raw_handle(),
            FileBasicInfo,
            (&mut info as *mut FILE_BASIC_INFO).cast(),
            std::mem::size_of::<FILE_BASIC_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// hcsshim's `safefile.RemoveRelative`: `name` beneath `root` (a file, an
/// empty directory, or a reparse point itself, never its target) deleted
/// when its handle closes. Windows refuses to delete a read-only file, so
/// that attribute is cleared first when it is what stands in the way.
fn remove_relative(root: &File, name: &str) -> io::Result<()> {
    let handle = open_relative(
        root,
        name,
        FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | DELETE,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        FILE_OPEN,
        FILE_OPEN_REPARSE_POINT,
    )?;
    match delete_on_close(&handle) {
        Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) => {
            let attributes = get_basic_info(&handle)?.FileAttributes;
            if attributes & FILE_ATTRIBUTE_READONLY == 0 {
                return Err(e);
            }
            let rest = attributes & !FILE_ATTRIBUTE_READONLY;
            // Zero times leave the times as they are.
            let writable = FILE_BASIC_INFO {
                FileAttributes: if rest == 0 {
                    FILE_ATTRIBUTE_NORMAL
                } else {
                    rest
                },
                ..FILE_BASIC_INFO::default()
            };
            set_basic_info(&handle, &writable)?;
            delete_on_close(&handle)
        }
        result => result,
    }
}

/// Marks the file behind `handle` for deletion once its last handle closes.
fn delete_on_close(handle: &impl AsRawHandle) -> io::Result<()> {
    let disposition = FILE_DISPOSITION_INFO { DeleteFile: true };
    let ok = unsafe {
        SetFileInformationByHandle(
            handle.as_raw_handle(),
            FileDispositionInfo,
            (&disposition as *const FILE_DISPOSITION_INFO).cast(),
            std::mem::size_of::<FILE_DISPOSITION_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// hcsshim's `safefile.LinkRelative`: `name` made a second name of
/// `target`, both beneath `root`, through `NtSetInformationFile`, which
/// opens no further directory; a reparse point as `name`'s parent is
/// refused.
fn link_relative(root: &File, target: &str, name: &str) -> io::Result<()> {
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    let old = open_relative(root, target, FILE_WRITE_ATTRIBUTES, share, FILE_OPEN, 0)?;
    let parent;
    let (dir, base) = match name.rsplit_once('\\') {
        Some((dir, base)) => {
            parent = open_relative(
                root,
                dir,
                GENERIC_READ,
                share,
                FILE_OPEN,
                FILE_DIRECTORY_FILE,
            )?;
            if get_basic_info(&parent)?.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                return Err(io::Error::from_raw_os_error(unsafe {
                    RtlNtStatusToDosError(STATUS_REPARSE_POINT_ENCOUNTERED)
                } as i32));
            }
            (parent.as_raw_handle(), base)
        }
        None => (root.as_raw_handle(), name),
    };
    let units: Vec<u16> = base.encode_utf16().collect();
    let offset = std::mem::offset_of!(FILE_LINK_INFORMATION, FileName);
    // Never less than the whole structure, which NtSetInformationFile
    // may require (wine does) even when a one-letter name ends before it.
    let size = (offset + units.len() * 2).max(std::mem::size_of::<FILE_LINK_INFORMATION>());
    // u64s, so the buffer is aligned for the structure's handle.
    let mut buf = vec![0u64; size.div_ceil(8)];
    let info = buf.as_mut_ptr().cast::<FILE_LINK_INFORMATION>();
    // SAFETY: the buffer holds the structure and the name after its
    // FileName offset; fields are written through the raw pointer.
    unsafe {
        (*info).RootDirectory = dir;
        (*info).FileNameLength = (units.len() * 2) as u32;
        std::ptr::copy_nonoverlapping(
            units.as_ptr(),
            std::ptr::addr_of_mut!((*info).FileName).cast::<u16>(),
            units.len(),
        );
    }
    let mut status_block = IO_STATUS_BLOCK::default();
    nt_result(unsafe {
        NtSetInformationFile(
            old.as_raw_handle(),
            &mut status_block,
            buf.as_ptr().cast(),
            size as u32,
            FileLinkInformation,
        )
    })
}

/// go-winio's `BackupFileWriter`: `BackupWrite` calls on one file sharing
/// a context, which is released (an aborting call) on drop.
struct BackupWriter<'a> {
    file: BorrowedHandle<'a>,
    process_security: bool,
    context: *mut c_void,
}

impl<'a> BackupWriter<'a> {
    /// `process_security` applies the stream's security descriptor, which
    /// needs the rights `WRITE_DAC`, `WRITE_OWNER` and
    /// `ACCESS_SYSTEM_SECURITY` on `file`.
    fn new(file: BorrowedHandle<'a>, process_security: bool) -> BackupWriter<'a> {
        BackupWriter {
            file,
            process_security,
            context: std::ptr::null_mut(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).expect("a 64 KiB buffer");
        let mut written = 0u32;
        let ok = unsafe {
            BackupWrite(
                self.file.as_raw_handle(),
                bytes.as_ptr(),
                len,
                &mut written,
                0,
                i32::from(self.process_security),
                &mut self.context,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        if written != len {
            return Err(io::Error::other(format!("wrote {written} of {len} bytes")));
        }
        Ok(())
    }
}

impl Drop for BackupWriter<'_> {
    fn drop(&mut self) {
        if !self.context.is_null() {
            let mut written = 0u32;
            unsafe {
                BackupWrite(
                    self.file.as_raw_handle(),
                    std::ptr::null(),
                    0,
                    &mut written,
                    1,
                    0,
                    &mut self.context,
                )
            };
        }
    }
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
    use super::{
        apply_imported, enable_backup_privileges, link_relative, load_library, long_abs, open_root,
        symbol, write_base_layer,
    };
    use kiln_oci::windows::transport::{FileBasicInfo, ImportedFolder};
    use kiln_oci::windows::{PaxTime, WindowsEntry, WindowsLayerOptions, WindowsLayerWriter};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, UNIX_EPOCH};

    /// A hard link is made by `NtSetInformationFile` relative to the
    /// directory it goes in; its target must exist beneath the layer.
    #[test]
    fn hard_links_are_made_beneath_the_layer() {
        let layer = std::env::temp_dir().join(format!("kiln-hcs-link-{}", std::process::id()));
        std::fs::create_dir_all(layer.join("d")).unwrap();
        std::fs::write(layer.join("a"), b"x").unwrap();
        let root = open_root(&layer).unwrap();
        let made = link_relative(&root, "a", r"d\b");
        let missing = link_relative(&root, "missing", r"d\c");
        drop(root);
        let linked = std::fs::read(layer.join(r"d\b"));
        std::fs::remove_dir_all(&layer).unwrap();
        made.unwrap();
        assert_eq!(linked.unwrap(), b"x");
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn hcs_gets_layer_paths_in_long_form() {
        let long = |p: &str| long_abs(Path::new(p)).unwrap();
        assert_eq!(long(r"C:\kiln\layer"), PathBuf::from(r"\\?\C:\kiln\layer"));
        assert_eq!(
            long(r"\\srv\share\layer"),
            PathBuf::from(r"\\?\UNC\srv\share\layer")
        );
        assert_eq!(long(r"\\?\C:\layer"), PathBuf::from(r"\\?\C:\layer"));
    }

    /// The file-system half of a base layer import, on a layer of
    /// directories without descriptors: no stream, so no `BackupWrite`,
    /// which wine does not implement. Each directory is created beneath
    /// the layer, and its last write time survives the creation of its
    /// children (wine keeps no creation time to check).
    #[test]
    fn a_base_layer_of_directories_is_written_with_their_times() {
        let at = |secs| PaxTime::from_secs(secs);
        let dir = vec![("MSWINDOWS.fileattr".to_string(), b"16".to_vec())];
        let entries = vec![
            WindowsEntry::existing_dir(&["app"], dir.clone(), at(1_700_000_000)),
            WindowsEntry::existing_dir(&["app", "sub"], dir, at(1_650_000_000)),
        ];
        let tar = WindowsLayerWriter::new(WindowsLayerOptions::default())
            .write_tar(entries, Vec::new())
            .unwrap();
        let layer = std::env::temp_dir().join(format!("kiln-hcs-base-{}", std::process::id()));
        std::fs::create_dir(&layer).unwrap();
        let root = open_root(&layer).unwrap();
        let result = write_base_layer(&mut &tar[..], &layer, &root);
        drop(root);
        let modified = |rel: &str| {
            let md = std::fs::metadata(layer.join(rel)).unwrap();
            assert!(md.is_dir(), "{rel}");
            md.modified().unwrap()
        };
        let got = result.map(|utility_vm| {
            (
                utility_vm,
                modified(r"Files\app"),
                modified(r"Files\app\sub"),
                modified("Hives"),
            )
        });
        std::fs::remove_dir_all(&layer).unwrap();
        let secs = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            got.unwrap(),
            (false, secs(1_700_000_000), secs(1_650_000_000), secs(0))
        );
    }

    /// What follows `ImportLayer`, on a directory standing in for the
    /// layer it made: tombstoned paths go (a read-only file too, a missing
    /// one is no error), links replace what was under their names (a link
    /// to a link too), and the directories get the layer's times back
    /// after all that changed them.
    #[test]
    fn tombstones_links_and_directory_times_are_applied_after_import() {
        let layer = std::env::temp_dir().join(format!("kiln-hcs-import-{}", std::process::id()));
        for dir in [r"Files\app", r"Files\empty", "Hives"] {
            std::fs::create_dir_all(layer.join(dir)).unwrap();
        }
        for (file, data) in [
            (r"Files\gone", "parent's"),
            (r"Files\ro", "parent's"),
            (r"Files\app\hello.txt", "hello"),
            (r"Files\app\hl", "placeholder"),
        ] {
            std::fs::write(layer.join(file), data).unwrap();
        }
        let ro = layer.join(r"Files\ro");
        let mut perms = std::fs::metadata(&ro).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&ro, perms).unwrap();
        let dir = |name: &str, secs| {
            let t = PaxTime::from_secs(secs);
            let info = FileBasicInfo {
                creation: t,
                last_access: t,
                last_write: t,
                change: t,
                attributes: 0x10,
            };
            (name.to_string(), info)
        };
        let imported = ImportedFolder {
            tombstones: [r"Files\gone", r"Files\ro", r"Files\empty", r"Files\absent"]
                .map(String::from)
                .to_vec(),
            links: vec![
                (r"Files\app\hl".into(), r"Files\app\hello.txt".into()),
                (r"Files\hl2".into(), r"Files\app\hl".into()),
            ],
            dirs: vec![
                dir("Files", 1_600_000_000),
                dir(r"Files\app", 1_650_000_000),
                dir("Hives", 1_700_000_000),
            ],
        };
        let root = open_root(&layer).unwrap();
        let applied = apply_imported(&root, &imported);
        // A tombstone beneath a path that is not there is no error either.
        let missing_dir = apply_imported(
            &root,
            &ImportedFolder {
                tombstones: vec![r"Files\nowhere\x".into()],
                ..ImportedFolder::default()
            },
        );
        drop(root);
        let exists = |rel: &str| layer.join(rel).exists();
        let read = |rel: &str| std::fs::read_to_string(layer.join(rel)).ok();
        let modified = |rel: &str| {
            std::fs::metadata(layer.join(rel))
                .unwrap()
                .modified()
                .unwrap()
        };
        let got = (
            [r"Files\gone", r"Files\ro", r"Files\empty"].map(exists),
            read(r"Files\app\hl"),
            read(r"Files\hl2"),
            [modified("Files"), modified(r"Files\app"), modified("Hives")],
        );
        std::fs::remove_dir_all(&layer).unwrap();
        applied.unwrap();
        missing_dir.unwrap();
        let secs = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            got,
            (
                [false; 3],
                Some("hello".to_string()),
                Some("hello".to_string()),
                [
                    secs(1_600_000_000),
                    secs(1_650_000_000),
                    secs(1_700_000_000)
                ],
            )
        );
    }

    /// A tombstone the import cannot apply fails the import, naming it:
    /// here a directory that still has something in it.
    #[test]
    fn a_tombstone_that_cannot_be_removed_is_named() {
        let layer = std::env::temp_dir().join(format!("kiln-hcs-full-{}", std::process::id()));
        std::fs::create_dir_all(layer.join(r"Files\full")).unwrap();
        std::fs::write(layer.join(r"Files\full\x"), b"x").unwrap();
        let root = open_root(&layer).unwrap();
        let result = apply_imported(
            &root,
            &ImportedFolder {
                tombstones: vec![r"Files\full".into()],
                ..ImportedFolder::default()
            },
        );
        drop(root);
        let kept = layer.join(r"Files\full\x").exists();
        std::fs::remove_dir_all(&layer).unwrap();
        let e = result.unwrap_err();
        assert!(
            e.starts_with(r"Files\full: removing it (a tombstone): "),
            "{e}"
        );
        assert!(kept);
    }

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
