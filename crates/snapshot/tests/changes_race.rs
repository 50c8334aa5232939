//! A RUN step's files changed after its changes were listed (say, by a
//! process it left behind): the layer written from the list must not
//! follow a symlink put in a file's place to a host file (issue #16).

use kiln_oci::{write_tar, Compression, LayerError, LayerOptions};
use kiln_snapshot::{DriverKind, Snapshotter};
use std::fs;

const MARKER: &[u8] = b"HOST-FILE-MARKER-a91f07-not-for-layers";

#[test]
fn a_changed_file_swapped_for_a_host_symlink_fails_the_layer() {
    let mut drivers = vec![DriverKind::Copy];
    if rustix::process::geteuid().is_root() {
        drivers.push(DriverKind::Overlay);
    }
    for driver in drivers {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("host-secret");
        fs::write(&host, MARKER).unwrap();
        let snaps = Snapshotter::open(&root.path().join("snaps"), Some(driver)).unwrap();
        let active = snaps.prepare(&[]).unwrap();
        let made = active.rootfs().join("made-by-run");
        fs::write(&made, b"written by the step\n").unwrap();
        let entries = active.changes().unwrap();

        fs::remove_file(&made).unwrap();
        std::os::unix::fs::symlink(&host, &made).unwrap();
        let options = LayerOptions {
            compression: Compression::None,
            threads: 1,
            ..LayerOptions::default()
        };
        let mut out = Vec::new();
        let err = write_tar(entries, &options, &mut out).unwrap_err();
        assert!(matches!(err, LayerError::Tree(_)), "{driver:?}: {err}");
        assert!(
            err.to_string().contains("changed during the build"),
            "{err}"
        );
        assert!(
            !out.windows(MARKER.len()).any(|w| w == MARKER),
            "{driver:?}: the host file went into the layer"
        );
    }
}
