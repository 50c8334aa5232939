//! kiln-hcs on a Windows without HCS: every call answers with an error
//! naming what is missing, and a program holding it still starts. Run as
//! Windows programs under wine by `scripts/test`; wine has neither
//! `vmcompute.dll` nor `computecore.dll`, which is exactly such a host.
#![cfg(windows)]

use kiln_hcs::host;
use kiln_hcs::ProcessSpec;
use kiln_oci::windows::transport::ImportedFolder;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A directory of this test's own, which no call may create.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kiln-hcs-{}-{name}", std::process::id()))
}

#[test]
fn available_names_the_missing_dll_and_what_to_install() {
    let e = host::available().unwrap_err();
    assert!(e.starts_with("vmcompute.dll is not on this host"), "{e}");
    assert!(e.contains("Windows Server 2019"), "{e}");
    assert!(
        e.contains("Enable-WindowsOptionalFeature -Online -FeatureName Containers"),
        "{e}"
    );
}

#[test]
fn every_call_fails_with_that_error_and_touches_nothing() {
    let missing = host::available().unwrap_err();
    let (layer, folder) = (scratch("layer"), scratch("folder"));
    let parents = [scratch("parent")];
    let process = ProcessSpec {
        command_line: "cmd /S /C echo hi".into(),
        env: Vec::new(),
        working_dir: r"C:\".into(),
        user: String::new(),
    };
    let mut lines = Vec::new();
    let results = [
        ("layer_id", host::layer_id(&layer).map(|_| ())),
        (
            "import_base_layer",
            host::import_base_layer(&mut std::io::empty(), &layer),
        ),
        (
            "import_layer",
            host::import_layer(&folder, &ImportedFolder::default(), &layer, &parents),
        ),
        ("create_scratch", host::create_scratch(&layer, &parents)),
        (
            "export_layer",
            host::export_layer(&layer, &parents, &folder),
        ),
        ("destroy_layer", host::destroy_layer(&layer)),
        (
            "run",
            host::run(
                &layer,
                &parents,
                &process,
                &AtomicBool::new(false),
                &mut |l: &str| lines.push(l.to_string()),
            )
            .map(|_| ()),
        ),
    ];
    for (call, result) in results {
        assert_eq!(result.as_ref(), Err(&missing), "{call}");
    }
    assert!(lines.is_empty());
    for dir in [&layer, &folder] {
        assert!(!Path::new(dir).exists(), "{} was created", dir.display());
    }
}
