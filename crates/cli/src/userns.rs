//! Rootless builds: a user who is not root but has subordinate id ranges
//! (`/etc/subuid`, `/etc/subgid`) builds inside a user namespace where it
//! is root, with the ranges mapped to the ids above 0, as `buildah unshare`
//! and rootless podman do. There, layers unpack with their owners, kernel
//! overlayfs mounts with `userxattr`, and the OCI runtime runs containers;
//! on disk everything belongs to the user and its ranges.
//!
//! kiln re-executes itself through util-linux's `unshare --map-auto`,
//! which calls the setuid `newuidmap`/`newgidmap` for the ranges: writing a
//! multi-id map needs them, and `unshare` is already on every Debian
//! system.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Set in the re-executed kiln, so it does not try again.
const MARKER: &str = "KILN_USERNS";

/// For a user that is not root and has subordinate ranges: replaces this
/// process with kiln in a new user and mount namespace, keeping the store
/// the user would have had outside. Returns (and the build goes on as
/// the user, without RUN) when the user has no ranges or is root; returns
/// the error when the re-execution itself failed.
pub fn enter_if_rootless() -> Result<(), String> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 || std::env::var_os(MARKER).is_some() {
        return Ok(());
    }
    let gid = rustix::process::getegid().as_raw();
    let name = user_name(uid);
    let has = |file: &str, id: u32| {
        std::fs::read_to_string(file).is_ok_and(|text| has_range(&text, name.as_deref(), id))
    };
    if !has("/etc/subuid", uid) || !has("/etc/subgid", gid) {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding the kiln binary: {e}"))?;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--map-auto",
        "--mount",
        "--propagation",
        "private",
        "--",
    ])
    .arg(&exe)
    .args(std::env::args_os().skip(1))
    .env(MARKER, "1");
    // Inside, kiln is root and would pick root's default store.
    if std::env::var_os("KILN_ROOT").is_none() {
        if let Ok(root) = crate::env::store_root() {
            cmd.env("KILN_ROOT", root);
        }
    }
    let err = cmd.exec();
    Err(format!(
        "cannot enter a user namespace with `unshare --map-auto` for a rootless build ({err}); \
         apt-get install util-linux uidmap, or run kiln as root"
    ))
}

/// Whether `/etc/subuid`-style `text` gives `name` (or the numeric `id`) a
/// range.
fn has_range(text: &str, name: Option<&str>, id: u32) -> bool {
    let id = id.to_string();
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next().unwrap_or_default();
        let count = fields.nth(1).and_then(|c| c.parse::<u64>().ok());
        (Some(owner) == name || owner == id) && count.is_some_and(|c| c > 0)
    })
}

/// The name `/etc/passwd` gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/etc/passwd")).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_found_by_name_or_id() {
        let text = "alice:100000:65536\n1002:300000:65536\nbob:200000:0\n";
        assert!(has_range(text, Some("alice"), 1001));
        assert!(has_range(text, None, 1002));
        assert!(has_range(text, Some("carol"), 1002));
        // An empty range is none.
        assert!(!has_range(text, Some("bob"), 1003));
        assert!(!has_range(text, Some("dave"), 1004));
    }
}
