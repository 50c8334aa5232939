//! A full disk: `KILN_ROOT` on a small tmpfs. A COPY or RUN that fills it
//! fails with the file, line and the system's reason; what was stored
//! before stays, and the store checks clean. Needs root to mount.

use kiln_testsupport::base_images;
use std::path::Path;
use std::process::{Command, Output};

/// A tmpfs of `size` mounted at a fresh directory; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn kiln(root: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(cwd)
        .env("KILN_ROOT", root)
        .env("HOME", cwd)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_copy_that_fills_the_disk_fails_clearly_and_keeps_the_store() {
    if !is_root() {
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let disk = SmallDisk::mount("3m");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("ctx")).unwrap();
    std::fs::write(w.join("ctx/small.txt"), "small\n").unwrap();
    std::fs::write(w.join("ctx/big.bin"), kiln_testsupport::noise(8 << 20)).unwrap();
    std::fs::write(
        w.join("small.Dockerfile"),
        "FROM scratch\nCOPY small.txt /\n",
    )
    .unwrap();
    std::fs::write(w.join("big.Dockerfile"), "FROM scratch\nCOPY big.bin /\n").unwrap();
    let out = kiln(
        disk.path(),
        w,
        &["build", "-f", "small.Dockerfile", "-t", "small", "ctx"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kiln(
        disk.path(),
        w,
        &["build", "-f", "big.Dockerfile", "-t", "big", "ctx"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: big.Dockerfile:2: writing the layer: No space left on device"),
        "{stderr}"
    );
    let images = text(&kiln(disk.path(), w, &["images"]).stdout);
    assert!(images.contains("small "), "{images}");
    assert!(!images.contains("big "), "{images}");
    let fsck = kiln(disk.path(), w, &["fsck"]);
    assert!(fsck.status.success(), "{}", text(&fsck.stderr));
    // The half-written blob went with the failed build.
    assert_eq!(
        std::fs::read_dir(disk.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn a_run_that_fills_the_disk_fails_with_its_exit_code_and_leaves_no_snapshot() {
    if !is_root() {
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let disk = SmallDisk::mount("12m");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("ctx")).unwrap();
    std::fs::write(
        w.join("ctx/Dockerfile"),
        "FROM bb\nRUN dd if=/dev/zero of=/fill bs=1M count=30\n",
    )
    .unwrap();
    let bb = format!("bb=oci-layout://{}:latest", base_images().busybox.display());
    let out = kiln(disk.path(), w, &["build", "--build-context", &bb, "ctx"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ctx/Dockerfile:2:1: process \"/bin/sh -c dd if=/dev/zero of=/fill bs=1M count=30\" did not complete successfully: exit code: 1"),
        "{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let active = std::fs::read_dir(disk.path().join("snapshots/active"))
        .unwrap()
        .count();
    assert_eq!(active, 0);
    let fsck = kiln(disk.path(), w, &["fsck"]);
    assert!(fsck.status.success(), "{}", text(&fsck.stderr));
}
