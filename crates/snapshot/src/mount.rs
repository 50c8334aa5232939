//! Mounting and unmounting the overlay of one snapshot.

use crate::Error;
use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The directories of one overlay mount.
pub(crate) struct Overlay<'a> {
    /// Lower layers, top-most first (overlayfs' order).
    pub lowers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    pub target: &'a Path,
    /// Mount with `userxattr` (required inside a user namespace).
    pub userxattr: bool,
}

/// Options turning off features whose on-disk state a layer tar cannot
/// carry: directory renames recorded as redirect xattrs, the inode index,
/// and metadata-only copy-ups. With `userxattr` the kernel refuses to
/// follow redirects (`redirect_dir=off` means "create none, follow old
/// ones" on recent kernels, which it rejects as conflicting), so there it is
/// `nofollow`: none created, none followed. Either way renaming a lower
/// directory fails with EXDEV and tools copy instead.
fn features_off(userxattr: bool) -> [(&'static str, &'static str); 3] {
    let redirect = if userxattr { "nofollow" } else { "off" };
    [
        ("redirect_dir", redirect),
        ("index", "off"),
        ("metacopy", "off"),
    ]
}

/// The most the classic mount(2) call copies from its data argument: one
/// page, including the terminating NUL.
const MOUNT_DATA_MAX: usize = 4095;

impl Overlay<'_> {
    /// Mounts the overlay, through fsconfig's `lowerdir+` (one call per
    /// layer, no length limit) where the kernel has it (6.8), else mount(2).
    pub(crate) fn mount(&self) -> Result<(), Error> {
        match self.mount_fsconfig() {
            Err(Fallback::Classic) => self.mount_classic(),
            Err(Fallback::Failed(e)) => Err(e),
            Ok(()) => Ok(()),
        }
    }

    fn mount_fsconfig(&self) -> Result<(), Fallback> {
        let fs = match rmount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
            Ok(fd) => fd,
            Err(Errno::NOSYS) => return Err(Fallback::Classic),
            Err(e) => return Err(Fallback::Failed(self.failed(e, None, None))),
        };
        for (i, lower) in self.lowers.iter().enumerate() {
            match rmount::fsconfig_set_string(&fs, "lowerdir+", lower.as_path()) {
                Ok(()) => {}
                // Kernels before 6.8 do not know the parameter.
                Err(Errno::INVAL) if i == 0 => return Err(Fallback::Classic),
                Err(e) => {
                    let option = format!("lowerdir+={}", lower.display());
                    return Err(Fallback::Failed(self.failed(e, Some(option), Some(&fs))));
                }
            }
        }
        let set = |key: &str, value: &Path| {
            rmount::fsconfig_set_string(&fs, key, value).map_err(|e| {
                let option = format!("{key}={}", value.display());
                Fallback::Failed(self.failed(e, Some(option), Some(&fs)))
            })
        };
        set("upperdir", self.upper)?;
        set("workdir", self.work)?;
        for (key, value) in features_off(self.userxattr) {
            set(key, Path::new(value))?;
        }
        if self.userxattr {
            rmount::fsconfig_set_flag(&fs, "userxattr").map_err(|e| {
                Fallback::Failed(self.failed(e, Some("userxattr".into()), Some(&fs)))
            })?;
        }
        rmount::fsconfig_create(&fs)
            .map_err(|e| Fallback::Failed(self.failed(e, None, Some(&fs))))?;
        let mnt = rmount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| Fallback::Failed(self.failed(e, None, Some(&fs))))?;
        rmount::move_mount(
            &mnt,
            "",
            CWD,
            self.target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| Fallback::Failed(self.failed(e, None, None)))
    }

    fn mount_classic(&self) -> Result<(), Error> {
        let mut data = Vec::from(&b"lowerdir="[..]);
        for (i, lower) in self.lowers.iter().enumerate() {
            if i > 0 {
                data.push(b':');
            }
            data.extend(self.escaped(lower)?);
        }
        for (key, path) in [("upperdir", self.upper), ("workdir", self.work)] {
            data.extend(format!(",{key}=").bytes());
            data.extend(self.escaped(path)?);
        }
        for (key, value) in features_off(self.userxattr) {
            data.extend(format!(",{key}={value}").bytes());
        }
        if self.userxattr {
            data.extend(b",userxattr");
        }
        if data.len() > MOUNT_DATA_MAX {
            return Err(Error::OptionsTooLong {
                target: self.target.to_path_buf(),
                layers: self.lowers.len(),
                len: data.len(),
                max: MOUNT_DATA_MAX,
            });
        }
        let data = CString::new(data).map_err(|_| Error::UnmountablePath {
            target: self.target.to_path_buf(),
            path: self.target.to_path_buf(),
        })?;
        rmount::mount(
            "overlay",
            self.target,
            "overlay",
            rmount::MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .map_err(|e| self.failed(e, None, None))
    }

    /// A path in the option string: `:` and `\` escaped as overlayfs reads
    /// them; `,` splits options and has no escape, and NUL ends the string.
    fn escaped(&self, path: &Path) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        for &b in path.as_os_str().as_bytes() {
            match b {
                b',' | b'\0' => {
                    return Err(Error::UnmountablePath {
                        target: self.target.to_path_buf(),
                        path: path.to_path_buf(),
                    })
                }
                b':' | b'\\' => out.extend([b'\\', b]),
                b => out.push(b),
            }
        }
        Ok(out)
    }

    fn failed(&self, errno: Errno, option: Option<String>, fs: Option<&OwnedFd>) -> Error {
        Error::Mount {
            target: self.target.to_path_buf(),
            source: errno.into(),
            option,
            log: fs.map(kernel_messages).unwrap_or_default(),
        }
    }
}

enum Fallback {
    /// The new mount API (or `lowerdir+`) is missing: use mount(2).
    Classic,
    Failed(Error),
}

/// The messages the kernel queued on a file-system context, which say which
/// option or directory it refused (`e overlay: failed to resolve ...`).
fn kernel_messages(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; ENODATA ends the queue.
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        let text = text
            .strip_prefix("e ")
            .or_else(|| text.strip_prefix("w "))
            .or_else(|| text.strip_prefix("i "))
            .unwrap_or(&text);
        out.push(text.trim_end().to_string());
    }
    out
}

/// Unmounts `target`; with `detach_if_busy`, a mount still in use is
/// detached instead (it goes away when its last user does).
pub(crate) fn unmount(target: &Path, detach_if_busy: bool) -> Result<(), Error> {
    let err = |e: Errno| Error::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
    };
    match rmount::unmount(target, rmount::UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(Errno::BUSY) if detach_if_busy => rmount::unmount(
            target,
            rmount::UnmountFlags::NOFOLLOW | rmount::UnmountFlags::DETACH,
        )
        .map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// Whether `path` is the root of a mount other than its parent's: its
/// device differs from its parent directory's.
pub(crate) fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else {
        return false;
    };
    match (std::fs::symlink_metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Whether this process is in the initial user namespace, where the overlay
/// may use `trusted.*` xattrs; in any other, it must be told `userxattr`.
pub(crate) fn in_initial_user_namespace() -> bool {
    // The initial namespace maps every id to itself; a child namespace's
    // map is narrower.
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        map.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// lower (with a file), upper, work and merged in a fresh directory.
    fn dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
        let t = tempfile::tempdir().unwrap();
        let d: Vec<PathBuf> = ["lower", "upper", "work", "merged"]
            .iter()
            .map(|n| t.path().join(n))
            .collect();
        for p in &d {
            fs::create_dir(p).unwrap();
        }
        fs::write(d[0].join("f"), "lower").unwrap();
        (t, d)
    }

    #[test]
    fn the_classic_call_mounts_too() {
        if !is_root() {
            eprintln!("skipping: mounting needs root");
            return;
        }
        let (_t, d) = dirs();
        let overlay = Overlay {
            lowers: &d[..1],
            upper: &d[1],
            work: &d[2],
            target: &d[3],
            userxattr: false,
        };
        overlay.mount_classic().unwrap();
        assert!(is_mount_point(&d[3]));
        assert_eq!(fs::read(d[3].join("f")).unwrap(), b"lower");
        // redirect_dir=off: renaming a lower directory is refused, so tools
        // copy instead of leaving a redirect xattr no layer can carry.
        fs::create_dir(d[0].join("sub")).unwrap();
        let err = fs::rename(d[3].join("sub"), d[3].join("moved")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::XDEV.raw_os_error()));
        unmount(&d[3], false).unwrap();
        assert!(!is_mount_point(&d[3]));
    }

    #[test]
    fn the_classic_call_refuses_options_longer_than_a_page() {
        let (_t, d) = dirs();
        let lowers = vec![d[0].join("x".repeat(200)); 30];
        let overlay = Overlay {
            lowers: &lowers,
            upper: &d[1],
            work: &d[2],
            target: &d[3],
            userxattr: false,
        };
        let err = overlay.mount_classic().unwrap_err();
        assert!(
            matches!(err, Error::OptionsTooLong { layers: 30, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("lowerdir+"), "{err}");
    }

    #[test]
    fn the_classic_call_cannot_carry_commas() {
        let (t, d) = dirs();
        let lowers = [t.path().join("a,b")];
        let overlay = Overlay {
            lowers: &lowers,
            upper: &d[1],
            work: &d[2],
            target: &d[3],
            userxattr: false,
        };
        let err = overlay.mount_classic().unwrap_err();
        assert!(matches!(err, Error::UnmountablePath { .. }), "{err}");
    }

    #[test]
    fn mount_errors_name_the_target_and_the_kernels_reason() {
        if !is_root() {
            eprintln!("skipping: mounting needs root");
            return;
        }
        let (t, d) = dirs();
        let lowers = [t.path().join("no-such-layer")];
        let err = Overlay {
            lowers: &lowers,
            upper: &d[1],
            work: &d[2],
            target: &d[3],
            userxattr: false,
        }
        .mount()
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("mounting overlay on {}: ", d[3].display())),
            "{text}"
        );
        assert!(text.contains("ENOENT"), "{text}");
        assert!(
            text.contains("lowerdir+=") && text.contains("no-such-layer"),
            "{text}"
        );

        // Refused at the mount itself, where overlayfs logs to dmesg only.
        let err = Overlay {
            lowers: &d[..1],
            upper: &d[1],
            work: &d[1],
            target: &d[3],
            userxattr: false,
        }
        .mount()
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("EINVAL") && text.contains("dmesg"), "{text}");
    }
}
