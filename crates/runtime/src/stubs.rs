//! Mount points the rootfs lacks: created before the run and removed after
//! it, so the layer the engine takes from the rootfs afterwards holds only
//! what the command changed (BuildKit removes its mount stubs the same way).

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::config::under_standard_root;
use crate::error::IoContext;
use crate::Error;

/// How many symlinks one resolution may follow, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// What was created in a rootfs, removed (deepest first) on drop.
#[derive(Debug, Default)]
pub(crate) struct Stubs {
    created: Vec<(PathBuf, bool)>,
    /// The directories stubs were made in, with their times before: put
    /// back afterwards, so an untouched directory is no change to diff.
    parents: Vec<(PathBuf, fs::FileTimes)>,
}

impl Stubs {
    /// Resolves the container path `target` inside `rootfs` (symlinks are
    /// followed as if `rootfs` were `/`, so they never lead out of it) and
    /// creates what is missing: parent directories, and the last component
    /// as a file when `file`, else as a directory. Returns the resolved
    /// container path. Paths under `/proc`, `/dev` and `/sys` are left to
    /// the runtime, which mounts fresh file systems there first.
    pub(crate) fn ensure(
        &mut self,
        rootfs: &Path,
        target: &Path,
        file: bool,
    ) -> Result<PathBuf, Error> {
        let resolved = resolve(rootfs, target)?;
        if under_standard_root(&resolved) {
            return Ok(resolved);
        }
        let mut container = PathBuf::from("/");
        let parts: Vec<_> = resolved.components().skip(1).collect();
        for (i, part) in parts.iter().enumerate() {
            container.push(part);
            let host = host_path(rootfs, &container);
            let last = i + 1 == parts.len();
            match fs::symlink_metadata(&host) {
                Ok(meta) if last || meta.is_dir() => {}
                Ok(_) => {
                    return Err(Error::MountPoint {
                        path: target.to_path_buf(),
                        reason: format!("{} is not a directory", container.display()),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(parent) = host.parent() {
                        if !self.created.iter().any(|(p, _)| p == parent) {
                            let md = fs::metadata(parent)
                                .context(|| format!("reading {}", parent.display()))?;
                            let times = fs::FileTimes::new()
                                .set_accessed(md.accessed().unwrap_or(std::time::UNIX_EPOCH))
                                .set_modified(md.modified().unwrap_or(std::time::UNIX_EPOCH));
                            self.parents.push((parent.to_path_buf(), times));
                        }
                    }
                    if last && file {
                        fs::File::create(&host)
                            .context(|| format!("creating mount point {}", host.display()))?;
                    } else {
                        fs::create_dir(&host)
                            .context(|| format!("creating mount point {}", host.display()))?;
                    }
                    self.created.push((host, last && file));
                }
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("reading {}", host.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(resolved)
    }
}

impl Drop for Stubs {
    fn drop(&mut self) {
        // A stub the command wrote into is its output now: remove_dir
        // refuses a non-empty directory, and a file stub is removed only
        // while still empty.
        for (path, file) in self.created.drain(..).rev() {
            if file {
                if fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                    let _ = fs::remove_file(&path);
                }
            } else {
                let _ = fs::remove_dir(&path);
            }
        }
        for (dir, times) in self.parents.drain(..).rev() {
            if let Ok(f) = fs::File::open(&dir) {
                let _ = f.set_times(times);
            }
        }
    }
}

/// The host path of an already resolved container path.
fn host_path(rootfs: &Path, container: &Path) -> PathBuf {
    let mut host = rootfs.to_path_buf();
    host.extend(
        container
            .components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    host
}

/// Resolves every symlink in `target` within `rootfs`, lexically clamping
/// `..` at the root, and returns the absolute container path. A missing
/// component ends the resolution: the rest is taken as written.
pub(crate) fn resolve(rootfs: &Path, target: &Path) -> Result<PathBuf, Error> {
    let mut pending: Vec<PathBuf> = target
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        if missing {
            resolved = candidate;
            continue;
        }
        match fs::symlink_metadata(host_path(rootfs, &candidate)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::MountPoint {
                        path: target.to_path_buf(),
                        reason: "too many levels of symbolic links".to_string(),
                    });
                }
                let link = fs::read_link(host_path(rootfs, &candidate))
                    .context(|| format!("reading link {}", candidate.display()))?;
                if link.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                for c in link.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(PathBuf::from(n)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            Ok(_) => resolved = candidate,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing = true;
                resolved = candidate;
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", candidate.display()),
                    source: e,
                })
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("real/dir")).unwrap();
        symlink("/real", r.join("abs")).unwrap();
        symlink("../../../../real/dir", r.join("real/up")).unwrap();
        symlink("/etc", r.join("escape")).unwrap();
        assert_eq!(
            resolve(r, Path::new("/abs/dir")).unwrap(),
            Path::new("/real/dir")
        );
        assert_eq!(
            resolve(r, Path::new("/real/up/x")).unwrap(),
            Path::new("/real/dir/x")
        );
        assert_eq!(
            resolve(r, Path::new("/../../escape/passwd")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    #[test]
    fn stubs_are_created_and_removed_deepest_first() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir(r.join("etc")).unwrap();
        symlink("/etc", r.join("link")).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::open(r.join("etc"))
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(old))
            .unwrap();
        let before = fs::metadata(r.join("etc")).unwrap().modified().unwrap();
        {
            let mut stubs = Stubs::default();
            let got = stubs.ensure(r, Path::new("/link/a/b/file"), true).unwrap();
            assert_eq!(got, Path::new("/etc/a/b/file"));
            assert!(r.join("etc/a/b/file").is_file());
            stubs.ensure(r, Path::new("/proc/x"), false).unwrap();
            assert!(!r.join("proc").exists());
        }
        assert!(!r.join("etc/a").exists());
        assert!(r.join("etc").is_dir());
        let after = fs::metadata(r.join("etc")).unwrap().modified().unwrap();
        assert_eq!(after, before, "the parent's mtime is put back");
    }

    #[test]
    fn a_stub_the_command_filled_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        {
            let mut stubs = Stubs::default();
            stubs.ensure(r, Path::new("/d/f"), true).unwrap();
            fs::write(r.join("d/f"), "data").unwrap();
        }
        assert_eq!(fs::read_to_string(r.join("d/f")).unwrap(), "data");
    }
}
