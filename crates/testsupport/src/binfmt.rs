//! qemu's binfmt_misc handler for one architecture, registered for a test
//! and the host put back as it was afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

const MISC: &str = "/proc/sys/fs/binfmt_misc";

/// A registered handler; dropping it unregisters what it registered and
/// unmounts binfmt_misc if it mounted it.
pub struct Binfmt {
    registered: Option<PathBuf>,
    mounted: bool,
}

impl Binfmt {
    /// Makes `qemu-NAME` (`aarch64`, `x86_64`, …) handle that
    /// architecture's binaries, from qemu-user-static's
    /// `/usr/lib/binfmt.d/qemu-NAME.conf` (whose `F` flag opens the
    /// interpreter now, so it also works inside containers). A handler
    /// already registered is left alone.
    pub fn qemu(name: &str) -> Result<Binfmt, String> {
        let conf = PathBuf::from(format!("/usr/lib/binfmt.d/qemu-{name}.conf"));
        let line = std::fs::read_to_string(&conf).map_err(|e| {
            format!(
                "reading {}: {e}; apt-get install qemu-user-static",
                conf.display()
            )
        })?;
        let mut guard = Binfmt {
            registered: None,
            mounted: false,
        };
        if !Path::new(MISC).join("register").exists() {
            run(Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", MISC]))?;
            guard.mounted = true;
        }
        let entry = Path::new(MISC).join(format!("qemu-{name}"));
        if !entry.exists() {
            std::fs::write(Path::new(MISC).join("register"), line.trim())
                .map_err(|e| format!("registering qemu-{name} with binfmt_misc: {e}"))?;
            guard.registered = Some(entry);
        }
        Ok(guard)
    }
}

impl Drop for Binfmt {
    fn drop(&mut self) {
        if let Some(entry) = &self.registered {
            let _ = std::fs::write(entry, "-1");
        }
        if self.mounted {
            let _ = Command::new("umount").arg(MISC).status();
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
