//! Windows' Host Compute Service (HCS) as kiln's HCS backend calls it.
//!
//! Two halves. The documents HCS takes and gives, as JSON (the compute
//! system, the process, the process's status), the GUID text form and the
//! line splitting of a process's output are portable and tested on every
//! host. The calls themselves ([`host`], `cfg(windows)`) go to
//! `vmcompute.dll` (layers: import, scratch, activate, prepare, export,
//! destroy; a base layer's files are written by kiln, then processed) and
//! `computecore.dll` (compute systems and processes), in the order
//! hcsshim makes them (`internal/wclayer`, `internal/hcs`).
//!
//! The Windows half loads both DLLs at run time, so a program holding it
//! starts on any Windows and its HCS calls answer with an error on a host
//! without them ([`host::available`] says which). `scripts/test` lints it
//! for `x86_64-pc-windows-gnu` and runs its tests under wine, which has
//! neither DLL: the loading, its errors, the privilege calls and a base
//! layer import's directory and hard-link steps run there; no HCS call (nor
//! `BackupWrite`, a stub in wine) has ever run. `docs/windows.md` says what
//! that leaves unverified.
#![deny(missing_docs)]

#[cfg(windows)]
pub mod host;

use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The process a RUN step starts in a compute system, as HCS's process
/// parameters take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The whole command line (`cmd /S /C echo hi`): Windows passes one
    /// string, which the program splits itself.
    pub command_line: String,
    /// The environment, `NAME=value`, the image's ENV first.
    pub env: Vec<String>,
    /// The working directory, absolute (`C:\app`); never empty, since HCS
    /// would start an empty one in `C:\Windows\System32`.
    pub working_dir: String,
    /// The user the process runs as, as USER wrote it (`ContainerUser`);
    /// empty means the image's default (`ContainerAdministrator`).
    pub user: String,
}

/// A GUID as `NameToGuid` fills it (`GUID`'s layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guid {
    /// The first 4 bytes, as a number.
    pub data1: u32,
    /// The next 2, as a number.
    pub data2: u16,
    /// The next 2, as a number.
    pub data3: u16,
    /// The last 8, as bytes.
    pub data4: [u8; 8],
}

impl std::fmt::Display for Guid {
    /// The registry form HCS documents use: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            self.data1, self.data2, self.data3, self.data4[0], self.data4[1]
        )?;
        self.data4[2..]
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The compute system document (HCS schema 2.1) for a process-isolated
/// container whose root is the mounted scratch `volume`, on `layers`
/// (each layer's id and directory, nearest parent first).
pub fn compute_system(owner: &str, volume: &str, layers: &[(Guid, PathBuf)]) -> Value {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(id, path)| json!({"Id": id.to_string(), "Path": path}))
        .collect();
    json!({
        "SchemaVersion": {"Major": 2, "Minor": 1},
        "Owner": owner,
        "ShouldTerminateOnLastHandleClosed": true,
        "Container": {"Storage": {"Layers": layers, "Path": volume}},
    })
}

/// The process parameters document for `process`, with standard output
/// and error as pipes (standard input is not wanted: a build step reads
/// none).
pub fn process_parameters(process: &ProcessSpec) -> Value {
    // HCS takes the environment as an object; a later NAME wins, as it
    // does in a Windows environment block.
    let env: Map<String, Value> = process
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    let mut doc = json!({
        "CommandLine": process.command_line,
        "WorkingDirectory": process.working_dir,
        "Environment": env,
        "CreateStdOutPipe": true,
        "CreateStdErrPipe": true,
    });
    if !process.user.is_empty() {
        doc["User"] = Value::from(process.user.as_str());
    }
    doc
}

/// The exit code in a process status document (`HcsGetProcessProperties`
/// with no query), once it says the process has exited; `Ok(None)` while
/// it runs.
pub fn exit_code(status: &str) -> Result<Option<u32>, String> {
    let v: Value = serde_json::from_str(status)
        .map_err(|e| format!("the process's status {status:?}: {e}"))?;
    if v["Exited"].as_bool() != Some(true) {
        return Ok(None);
    }
    v["ExitCode"]
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .map(Some)
        .ok_or_else(|| format!("the process's status {status:?} has no exit code"))
}

/// Splits bytes read from a pipe into lines (without `\r\n` or `\n`),
/// holding a partial line until its end arrives.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Adds `bytes`, calling `line` for each line they complete.
    pub fn push(&mut self, bytes: &[u8], line: &mut dyn FnMut(String)) {
        self.pending.extend_from_slice(bytes);
        while let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
            let done: Vec<u8> = self.pending.drain(..=at).collect();
            let text = String::from_utf8_lossy(&done);
            line(text.trim_end_matches(['\r', '\n']).to_string());
        }
    }

    /// The last line, when the output did not end with a newline.
    pub fn finish(self) -> Option<String> {
        (!self.pending.is_empty()).then(|| String::from_utf8_lossy(&self.pending).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_in_registry_form() {
        let g = Guid {
            data1: 0x0a1b2c3d,
            data2: 0x4e5f,
            data3: 0x0607,
            data4: [0x08, 0x09, 0xa0, 0xb1, 0xc2, 0xd3, 0xe4, 0xf5],
        };
        assert_eq!(g.to_string(), "0a1b2c3d-4e5f-0607-0809-a0b1c2d3e4f5");
        assert_eq!(
            Guid::default().to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn the_compute_system_lists_layers_nearest_parent_first() {
        let one = Guid {
            data1: 1,
            ..Guid::default()
        };
        let two = Guid {
            data1: 2,
            ..Guid::default()
        };
        let doc = compute_system(
            "kiln",
            r"\\?\Volume{x}\",
            &[
                (one, PathBuf::from(r"C:\kiln\layers\top")),
                (two, PathBuf::from(r"C:\kiln\layers\base")),
            ],
        );
        assert_eq!(doc["SchemaVersion"], json!({"Major": 2, "Minor": 1}));
        assert_eq!(doc["Owner"], "kiln");
        let storage = &doc["Container"]["Storage"];
        assert_eq!(storage["Path"], r"\\?\Volume{x}\");
        assert_eq!(
            storage["Layers"],
            json!([
                {"Id": "00000001-0000-0000-0000-000000000000", "Path": r"C:\kiln\layers\top"},
                {"Id": "00000002-0000-0000-0000-000000000000", "Path": r"C:\kiln\layers\base"},
            ])
        );
    }

    #[test]
    fn process_parameters_take_the_environment_as_an_object() {
        let mut p = ProcessSpec {
            command_line: "cmd /S /C echo hi".into(),
            env: vec![
                "PATH=C:\\Windows".into(),
                "A=1=2".into(),
                "A=3".into(),
                "JUNK".into(),
            ],
            working_dir: r"C:\app".into(),
            user: String::new(),
        };
        let doc = process_parameters(&p);
        assert_eq!(doc["CommandLine"], "cmd /S /C echo hi");
        assert_eq!(doc["WorkingDirectory"], r"C:\app");
        assert_eq!(doc["Environment"], json!({"PATH": "C:\\Windows", "A": "3"}));
        assert_eq!(doc["CreateStdOutPipe"], true);
        assert_eq!(doc["CreateStdErrPipe"], true);
        assert!(
            doc.get("User").is_none(),
            "the image's default user: no User"
        );
        p.user = "ContainerUser".into();
        assert_eq!(process_parameters(&p)["User"], "ContainerUser");
    }

    #[test]
    fn exit_codes_come_from_an_exited_status_only() {
        assert_eq!(exit_code(r#"{"ProcessId":4,"Exited":false}"#), Ok(None));
        assert_eq!(
            exit_code(r#"{"ProcessId":4,"Exited":true,"ExitCode":3}"#),
            Ok(Some(3))
        );
        assert!(exit_code(r#"{"Exited":true}"#).is_err());
        assert!(exit_code("not json").unwrap_err().contains("not json"));
    }

    #[test]
    fn lines_are_split_across_reads_and_lose_their_endings() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        lines.push(b"one\r\ntw", &mut |l| got.push(l));
        lines.push(b"o\nthr", &mut |l| got.push(l));
        assert_eq!(got, ["one", "two"]);
        assert_eq!(lines.finish().as_deref(), Some("thr"));
        assert_eq!(Lines::default().finish(), None);
    }
}
