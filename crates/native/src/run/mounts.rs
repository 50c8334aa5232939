//! `RUN --mount`: turning each parsed [`Mount`] into what the container
//! gets (bind mounts, a tmpfs, environment variables) and the things that
//! must live as long as the step (snapshots of stages mounted from, cache
//! locks, secret files, the ssh agent proxy), as BuildKit's
//! `dispatchRunMounts` and its executor do:
//!
//! * `bind`: a path of the context (read-only unless `rw`; writes to an
//!   `rw` mount go to a copy and are discarded) or of a stage or image
//!   (`from=`), mounted from a throwaway snapshot of its layers;
//! * `cache`: a directory under `KILN_ROOT/cache-mounts` kept across
//!   builds, one per `id` (default: the target), created with `mode`,
//!   `uid` and `gid` and seeded from `from`/`source` when new; `sharing`
//!   `shared` (any number at once), `locked` (one step at a time) or
//!   `private` (a step finding it in use gets another instance);
//! * `tmpfs`: an empty in-memory file system of `size` bytes;
//! * `secret`: a `--secret` as a read-only file (default
//!   `/run/secrets/<id>`) on a tmpfs-backed directory, and/or an
//!   environment variable (`env=`); never part of a layer or the history;
//! * `ssh`: a socket forwarding to the `--ssh` agent, owned by `uid`/`gid`
//!   with `mode`, and `SSH_AUTH_SOCK` pointing at it.

use super::ssh::AgentProxy;
use super::{Layer, StepExecutor};
use crate::imagefs::ImageFs;
use kiln_backend::SecretSource;
use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{Mount, MountType, Sharing};
use kiln_oci::tree::{FileIdentity, TreeFile, TreeRoot};
use kiln_runtime::MountSpec;
use kiln_store::Store;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a `from=` names, once resolved by the stage.
pub(crate) enum MountFrom<'a> {
    /// The build context or a named directory context, with its
    /// `.dockerignore` rules: what they leave out is not in the mount, as
    /// BuildKit's context holds only what was sent.
    Dir(&'a Path, &'a Matcher),
    /// A stage's or an image's file system.
    Fs {
        /// Its layers, to snapshot.
        layers: Vec<Layer>,
        /// Its merged view, to resolve paths inside it.
        fs: ImageFs,
    },
}

/// What a step's mounts need from the build.
pub(crate) struct MountInputs<'a> {
    pub(crate) exec: &'a dyn StepExecutor,
    pub(crate) store: &'a Store,
    /// A directory for this step's temporary files.
    pub(crate) scratch: &'a Path,
    pub(crate) secrets: &'a BTreeMap<String, SecretSource>,
    pub(crate) ssh: &'a BTreeMap<String, PathBuf>,
    /// The step's working directory: relative targets are inside it.
    pub(crate) workdir: &'a str,
    /// The step's user, who owns ssh sockets by default.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// A step's prepared mounts. Dropping it releases locks, removes secret
/// files and unmounts snapshots, so it must outlive the container.
#[derive(Default)]
pub(crate) struct Prepared {
    /// Mounts for the container, in the order written.
    pub(crate) mounts: Vec<MountSpec>,
    /// Variables to add to the step's environment.
    pub(crate) env: Vec<(String, String)>,
    /// Kept only to be dropped when the step ends: snapshots, temporary
    /// directories, cache locks and agent proxies.
    guards: Vec<Box<dyn std::any::Any>>,
}

impl Prepared {
    /// Adds `mount`; `from` is what its `from=` resolved to (the main
    /// context when it has none).
    pub(crate) fn add(
        &mut self,
        inputs: &MountInputs,
        mount: &Mount,
        from: MountFrom,
    ) -> Result<(), String> {
        let target = absolute(inputs.workdir, &mount.target);
        // BuildKit refuses to mount over the root (runc fails obscurely).
        let over_root = matches!(
            mount.kind,
            MountType::Bind | MountType::Cache | MountType::Tmpfs
        );
        if over_root && target == "/" {
            return Err(format!(
                "invalid mount target \"/\": a mount cannot replace the root file system (target={:?}, WORKDIR {:?})",
                mount.target, inputs.workdir
            ));
        }
        match mount.kind {
            MountType::Bind => self.bind(inputs, mount, &target, from),
            MountType::Cache => self.cache(inputs, mount, &target, from),
            MountType::Tmpfs => {
                self.mounts.push(MountSpec::Tmpfs {
                    target: PathBuf::from(target),
                    size: mount.size,
                    mode: None,
                });
                Ok(())
            }
            MountType::Secret => self.secret(inputs, mount),
            MountType::Ssh => self.ssh(inputs, mount),
        }
    }

    fn bind(
        &mut self,
        inputs: &MountInputs,
        mount: &Mount,
        target: &str,
        from: MountFrom,
    ) -> Result<(), String> {
        let source = match from {
            MountFrom::Dir(dir, ignore) => {
                let path = inside_dir(dir, &mount.source)?;
                if mount.read_only && !excludes_any(dir, &path, ignore) {
                    let bind = PinnedBind::new(inputs.scratch, dir, &path)?;
                    let source = bind.target.clone();
                    self.guards.push(Box::new(bind));
                    source
                } else {
                    // Writes must not reach the user's files, and ignored
                    // files must not be seen: mount a copy.
                    let copy = self.temp_dir(inputs, "bind-")?;
                    let dest = copy.join("src");
                    copy_context(dir, &path, ignore, &dest)?;
                    dest
                }
            }
            MountFrom::Fs { layers, fs } => {
                let inner = fs
                    .resolve(&absolute("/", &mount.source), true)
                    .map_err(|e| format!("mount source {}: {e}", mount.source))?;
                if fs.lookup(&inner).is_none() && inner != "/" {
                    return Err(format!(
                        "mount source {} does not exist in {}",
                        mount.source,
                        if mount.from.is_empty() {
                            "the context"
                        } else {
                            &mount.from
                        }
                    ));
                }
                let snapshot = inputs.exec.prepare(inputs.store, &layers)?;
                let path = snapshot.rootfs().join(inner.trim_start_matches('/'));
                self.guards.push(Box::new(snapshot));
                path
            }
        };
        self.mounts.push(MountSpec::Bind {
            source,
            target: PathBuf::from(target),
            readonly: mount.read_only,
        });
        Ok(())
    }

    fn cache(
        &mut self,
        inputs: &MountInputs,
        mount: &Mount,
        target: &str,
        from: MountFrom,
    ) -> Result<(), String> {
        let id = if mount.id.is_empty() {
            target
        } else {
            &mount.id
        };
        let base = inputs.exec.cache_mounts_dir();
        fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let key = hex::encode(Sha256::digest(id.as_bytes()));
        let sharing = mount.sharing.unwrap_or(Sharing::Shared);
        // Instance 0 is the cache; `private` steps that find it in use
        // take the next free one.
        let mut instance = 0;
        let (dir, lock) = loop {
            let name = if instance == 0 {
                key.clone()
            } else {
                format!("{key}-{instance}")
            };
            let lock_path = base.join(format!("{name}.lock"));
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
            let flock = match sharing {
                Sharing::Shared => rustix::fs::FlockOperation::LockShared,
                Sharing::Locked => rustix::fs::FlockOperation::LockExclusive,
                Sharing::Private => rustix::fs::FlockOperation::NonBlockingLockExclusive,
            };
            match rustix::fs::flock(&lock, flock) {
                Ok(()) => break (base.join(&name), lock),
                Err(rustix::io::Errno::WOULDBLOCK) => instance += 1,
                Err(e) => return Err(format!("locking {}: {e}", lock_path.display())),
            }
        };
        if !dir.exists() {
            self.create_cache(inputs, mount, &dir, from)?;
        }
        self.guards.push(Box::new(lock));
        self.mounts.push(MountSpec::Bind {
            source: dir,
            target: PathBuf::from(target),
            readonly: mount.read_only,
        });
        Ok(())
    }

    /// A new cache directory, made in full in this process's leased
    /// temporary directory (on the same file system) and renamed into
    /// place: a killed build never leaves a half-seeded cache, and the next
    /// kiln command reclaims its staging with the rest of its lease.
    fn create_cache(
        &mut self,
        inputs: &MountInputs,
        mount: &Mount,
        dir: &Path,
        from: MountFrom,
    ) -> Result<(), String> {
        let parent = inputs.store.tmp_dir();
        let tmp = tempfile::Builder::new()
            .prefix("cache-mount-")
            .tempdir_in(parent)
            .map_err(|e| format!("creating a cache directory in {}: {e}", parent.display()))?;
        let fresh = tmp.path().join("dir");
        let seeded = !mount.from.is_empty();
        if seeded {
            match from {
                MountFrom::Dir(src, ignore) => {
                    copy_context(src, &inside_dir(src, &mount.source)?, ignore, &fresh)?
                }
                MountFrom::Fs { fs, .. } => {
                    fs::create_dir(&fresh).map_err(|e| format!("creating the cache: {e}"))?;
                    fs.extract(inputs.store, &absolute("/", &mount.source), &fresh)
                        .map_err(|e| format!("seeding the cache from {}: {e}", mount.from))?;
                }
            }
        } else {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&fresh)
                .map_err(|e| format!("creating the cache: {e}"))?;
        }
        if !seeded || mount.mode.is_some() {
            let mode = mount.mode.unwrap_or(0o755);
            fs::set_permissions(&fresh, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("setting the cache's mode: {e}"))?;
        }
        if !seeded || mount.uid.is_some() || mount.gid.is_some() {
            chown(
                &fresh,
                Some(mount.uid.unwrap_or(0)),
                Some(mount.gid.unwrap_or(0)),
            )
            .map_err(|e| format!("setting the cache's owner: {e}"))?;
        }
        match fs::rename(&fresh, dir) {
            Ok(()) => Ok(()),
            // Another build made it first: use theirs.
            Err(_) if dir.is_dir() => Ok(()),
            Err(e) => Err(format!("creating {}: {e}", dir.display())),
        }
    }

    fn secret(&mut self, inputs: &MountInputs, mount: &Mount) -> Result<(), String> {
        let id = if mount.id.is_empty() {
            mount
                .target
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .ok_or("a secret mount needs id= or target=")?
        } else {
            &mount.id
        };
        let value = match inputs.secrets.get(id) {
            Some(SecretSource::File(path)) => fs::read(path)
                .map_err(|e| format!("secret {id}: reading {}: {e}", path.display()))?,
            Some(SecretSource::Value(bytes)) => bytes.clone(),
            None if mount.required => {
                return Err(format!(
                "secret {id} is required but was not given; pass it with --secret id={id},src=FILE"
            ))
            }
            None => return Ok(()),
        };
        if let Some(var) = &mount.env {
            let text = String::from_utf8(value.clone()).map_err(|_| {
                format!("secret {id} is not UTF-8 text, so env={var} cannot hold it")
            })?;
            self.env.push((var.clone(), text));
            if mount.target.is_empty() {
                return Ok(());
            }
        }
        let target = if mount.target.is_empty() {
            format!("/run/secrets/{id}")
        } else {
            absolute(inputs.workdir, &mount.target)
        };
        let dir = self.secret_dir(inputs.store)?;
        let file = dir.join("secret");
        fs::write(&file, &value).map_err(|e| format!("secret {id}: {e}"))?;
        fs::set_permissions(
            &file,
            fs::Permissions::from_mode(mount.mode.unwrap_or(0o400)),
        )
        .map_err(|e| format!("secret {id}: {e}"))?;
        chown(
            &file,
            Some(mount.uid.unwrap_or(0)),
            Some(mount.gid.unwrap_or(0)),
        )
        .map_err(|e| format!("secret {id}: setting its owner: {e}"))?;
        self.mounts.push(MountSpec::Bind {
            source: file,
            target: PathBuf::from(target),
            readonly: true,
        });
        Ok(())
    }

    /// A private directory for one secret file, on tmpfs when the host has
    /// `/dev/shm`, so the secret never reaches a disk. Its name carries the
    /// store and the lease of this process, so what a killed build leaves
    /// is found and removed by the next kiln command ([`reclaim_secrets`]).
    fn secret_dir(&mut self, store: &Store) -> Result<PathBuf, String> {
        let base = secret_base();
        let dir = tempfile::Builder::new()
            .prefix(&secret_prefix(store.root(), Some(store.lease_id())))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| format!("creating a secret directory in {}: {e}", base.display()))?;
        let path = dir.path().to_path_buf();
        self.guards.push(Box::new(dir));
        Ok(path)
    }

    fn ssh(&mut self, inputs: &MountInputs, mount: &Mount) -> Result<(), String> {
        let id = if mount.id.is_empty() {
            "default"
        } else {
            &mount.id
        };
        let Some(agent) = inputs.ssh.get(id) else {
            if mount.required {
                return Err(format!(
                    "ssh agent {id} is required but was not given; pass it with --ssh {id}=$SSH_AUTH_SOCK"
                ));
            }
            return Ok(());
        };
        let n = self
            .mounts
            .iter()
            .filter(|m| matches!(m, MountSpec::Bind { target, .. } if target.starts_with("/run/buildkit/ssh_agent.")))
            .count();
        let target = if mount.target.is_empty() {
            format!("/run/buildkit/ssh_agent.{n}")
        } else {
            absolute(inputs.workdir, &mount.target)
        };
        let dir = self.temp_dir(inputs, "ssh-")?;
        let socket = dir.join("agent.sock");
        let proxy = AgentProxy::start(
            agent,
            &socket,
            mount.uid.unwrap_or(inputs.uid),
            mount.gid.unwrap_or(inputs.gid),
            mount.mode.unwrap_or(0o600),
        )
        .map_err(|e| format!("ssh agent {id} ({}): {e}", agent.display()))?;
        self.guards.push(Box::new(proxy));
        if !self.env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
            self.env.push(("SSH_AUTH_SOCK".into(), target.clone()));
        }
        self.mounts.push(MountSpec::Bind {
            source: socket,
            target: PathBuf::from(target),
            readonly: false,
        });
        Ok(())
    }

    fn temp_dir(&mut self, inputs: &MountInputs, prefix: &str) -> Result<PathBuf, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(inputs.scratch)
            .map_err(|e| format!("creating a directory in {}: {e}", inputs.scratch.display()))?;
        let path = dir.path().to_path_buf();
        self.guards.push(Box::new(dir));
        Ok(path)
    }
}

/// `path` made absolute against `dir` and cleaned, as BuildKit makes mount
/// targets.
fn absolute(dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        kiln_oci::path::clean_absolute(path)
    } else {
        kiln_oci::path::clean_absolute(&format!("{dir}/{path}"))
    }
}

/// `source` inside the directory `dir`, with symlinks resolved; an error
/// when it does not exist or resolves outside `dir`.
fn inside_dir(dir: &Path, source: &str) -> Result<PathBuf, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let rel = absolute("/", source);
    let wanted = root.join(rel.trim_start_matches('/'));
    let real = wanted
        .canonicalize()
        .map_err(|e| format!("mount source {source}: {}: {e}", wanted.display()))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "mount source {source} resolves to {}, outside the context {}",
            real.display(),
            root.display()
        ));
    }
    Ok(real)
}

/// Whether `ignore` leaves out anything at or below `path` (inside the
/// context `root`), which then cannot be mounted as it is.
fn excludes_any(root: &Path, path: &Path, ignore: &Matcher) -> bool {
    fn walk(dir: &Path, rel: &str, ignore: &Matcher) -> bool {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            ignore.is_excluded(&child)
                || (e.file_type().is_ok_and(|t| t.is_dir()) && walk(&e.path(), &child, ignore))
        })
    }
    if ignore.is_empty() {
        return false;
    }
    let Ok(root) = root.canonicalize() else {
        return true;
    };
    let rel = path
        .strip_prefix(&root)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default();
    ignore.is_excluded(&rel) || walk(path, &rel, ignore)
}

/// A read-only bind mount, at a path of the step's own, of a context path
/// pinned by a descriptor: the runtime resolves its mount source by path
/// when the container starts, and a context path could by then have had a
/// directory on it swapped for a symlink to anywhere on the host; this
/// path only kiln can change. Unmounted, and its mount point removed, when
/// dropped.
struct PinnedBind {
    target: PathBuf,
}

impl PinnedBind {
    fn new(scratch: &Path, root: &Path, path: &Path) -> Result<PinnedBind, String> {
        let pinned = pin(root, path)?;
        let fail = |e: std::io::Error| format!("mounting {}: {e}", path.display());
        let is_dir = File::from(pinned.try_clone().map_err(fail)?)
            .metadata()
            .map_err(fail)?
            .is_dir();
        let target = scratch.join(format!("bind-{}", pinned.as_raw_fd()));
        if is_dir {
            fs::create_dir(&target).map_err(fail)?;
        } else {
            File::create_new(&target).map_err(fail)?;
        }
        rustix::mount::mount_bind_recursive(
            format!("/proc/self/fd/{}", pinned.as_raw_fd()),
            &target,
        )
        .map_err(|e| fail(e.into()))?;
        let bind = PinnedBind { target };
        // Read-only before anything could write through it, and so that
        // removing the step's scratch directory can never delete the
        // user's files through it.
        rustix::mount::mount_remount(
            &bind.target,
            rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
            "",
        )
        .map_err(|e| fail(e.into()))?;
        Ok(bind)
    }
}

impl Drop for PinnedBind {
    fn drop(&mut self) {
        if rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::DETACH).is_ok() {
            let _ = fs::remove_dir(&self.target).or_else(|_| fs::remove_file(&self.target));
        }
    }
}

/// `path` (inside the context `root`, symlinks resolved) opened without
/// following a symlink on the way from the root, so it stays what
/// [`inside_dir`] found.
fn pin(root: &Path, path: &Path) -> Result<OwnedFd, String> {
    let (tree, rel) = context_tree(root, path)?;
    let fd = tree
        .open_path(&rel)
        .map_err(|e| format!("mount source {}: {e}", path.display()))?;
    let kind = rustix::fs::fstat(&fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode))
        .map_err(|e| format!("mount source {}: {e}", path.display()))?;
    if !matches!(
        kind,
        rustix::fs::FileType::Directory | rustix::fs::FileType::RegularFile
    ) {
        return Err(changed(path));
    }
    Ok(fd)
}

/// The error for a context path found resolved (no symlink on it) that
/// is a symlink when read: it was swapped since.
fn changed(path: &Path) -> String {
    format!(
        "{} changed during the build: it is now a symbolic link; nothing may change a build's sources while it runs",
        path.display()
    )
}

/// The context `root` opened as a tree, and `path`'s place in it.
fn context_tree(root: &Path, path: &Path) -> Result<(Arc<TreeRoot>, PathBuf), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let rel = path
        .strip_prefix(&root)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let tree = TreeRoot::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    Ok((Arc::new(tree), rel))
}

/// Copies `path` (inside the context `root`) to `dest`, leaving out what
/// `ignore` excludes (owners, modes, times, links and files' xattrs kept;
/// devices, sockets and FIFOs, which a context never carries into a build,
/// skipped). The context is read beneath its root without following
/// symlinks, and a file only if it is still the one listed: the copy is
/// what the step sees, and a file swapped for a symlink to a host file
/// must not be in it.
fn copy_context(root: &Path, path: &Path, ignore: &Matcher, dest: &Path) -> Result<(), String> {
    let (tree, rel) = context_tree(root, path)?;
    if tree.symlink_metadata(&rel).is_ok_and(|m| m.is_symlink()) {
        return Err(changed(path));
    }
    copy_filtered(&tree, &rel, ignore, dest)
}

fn copy_filtered(
    tree: &Arc<TreeRoot>,
    rel: &Path,
    ignore: &Matcher,
    dest: &Path,
) -> Result<(), String> {
    let src = tree.path().join(rel);
    let fail = |e: std::io::Error| format!("copying {} to {}: {e}", src.display(), dest.display());
    let meta = tree.symlink_metadata(rel).map_err(fail)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dest).map_err(fail)?;
        let mut names = tree.read_dir(rel).map_err(fail)?;
        names.sort();
        for name in names {
            let child = rel.join(&name);
            if ignore.is_excluded(&child.to_string_lossy()) {
                let is_dir = tree.symlink_metadata(&child).is_ok_and(|m| m.is_dir());
                // An excluded directory may still hold re-included files.
                if !is_dir || ignore.may_skip_dir(&child.to_string_lossy()) {
                    continue;
                }
            }
            copy_filtered(tree, &child, ignore, &dest.join(&name))?;
        }
        fs::set_permissions(dest, meta.permissions()).map_err(fail)?;
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(tree.read_link(rel).map_err(fail)?, dest).map_err(fail)?;
    } else if kind.is_file() {
        let file = TreeFile {
            root: Arc::clone(tree),
            path: rel.to_path_buf(),
            identity: FileIdentity::of(&meta),
        };
        let mut from = file.open().map_err(|e| e.to_string())?;
        let mut to = File::create(dest).map_err(fail)?;
        std::io::copy(&mut from, &mut to).map_err(fail)?;
        file.verify(&from).map_err(|e| e.to_string())?;
        fs::set_permissions(dest, meta.permissions()).map_err(fail)?;
        copy_xattrs(&from, &to).map_err(fail)?;
    } else {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::lchown(dest, Some(meta.uid()), Some(meta.gid())).map_err(fail)?;
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dest,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("setting the times of {}: {e}", dest.display()))
}

/// Copies the extended attributes of the open file `from` to `to`; a file
/// system without them has none to copy.
fn copy_xattrs(from: &File, to: &File) -> std::io::Result<()> {
    use rustix::io::Errno;
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(from, &mut names[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(Errno::RANGE) => {
            names.resize(rustix::fs::flistxattr_query(from)?, 0);
            rustix::fs::flistxattr(from, &mut names[..])?
        }
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; rustix::fs::fgetxattr_query(from, name)?];
        let got = rustix::fs::fgetxattr(from, name, &mut value[..])?;
        rustix::fs::fsetxattr(to, name, &value[..got], rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}

/// Where secret files are written: tmpfs when the host has `/dev/shm`.
fn secret_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `kiln-secret-<store>-<lease>-`: the store is a digest of its root, as
/// `/dev/shm` is shared by every store on the host.
fn secret_prefix(root: &Path, lease: Option<&str>) -> String {
    use std::os::unix::ffi::OsStrExt;
    let store = &kiln_oci::Digest::of(root.as_os_str().as_bytes()).hex()[..12];
    match lease {
        Some(lease) => format!("kiln-secret-{store}-{lease}-"),
        None => format!("kiln-secret-{store}-"),
    }
}

/// Removes the secret directories that processes of the store at `root`
/// left when they were killed (their lease is dead); returns how many.
pub(crate) fn reclaim_secrets(root: &Path) -> usize {
    let prefix = secret_prefix(root, None);
    let mut removed = 0;
    for entry in fs::read_dir(secret_base()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        // The lease id is what comes before the tempfile suffix.
        let Some((lease, _)) = rest.rsplit_once('-') else {
            continue;
        };
        if !Store::lease_is_live(root, lease) && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &[u8] = b"HOST-DIR-MARKER-55a0c1";

    /// A context with `dir/f`, a host directory beside it whose `f` holds
    /// the marker, and a scratch directory.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let (ctx, host, scratch) = (
            top.path().join("ctx"),
            top.path().join("host"),
            top.path().join("scratch"),
        );
        for d in [ctx.join("dir"), host.clone(), scratch.clone()] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(ctx.join("dir/f"), b"context").unwrap();
        fs::write(host.join("f"), MARKER).unwrap();
        (top, ctx, host, scratch)
    }

    fn swap_dir_for_link(top: &Path, ctx: &Path, host: &Path) {
        fs::rename(ctx.join("dir"), top.join("dir.moved")).unwrap();
        std::os::unix::fs::symlink(host, ctx.join("dir")).unwrap();
    }

    // The race of issue #16 on a bind mount's source, made deterministic:
    // the source is resolved, then a directory on it is swapped for a
    // symlink to a host directory before the mount is made.
    #[test]
    fn a_bind_source_swapped_after_it_was_resolved_is_refused() {
        let (top, ctx, host, scratch) = setup();
        let path = inside_dir(&ctx, "dir").unwrap();
        swap_dir_for_link(top.path(), &ctx, &host);
        let err = PinnedBind::new(&scratch, &ctx, &path)
            .err()
            .expect("mounted a source that is now a symlink");
        assert!(err.contains("changed during the build"), "{err}");
    }

    #[test]
    fn a_pinned_bind_keeps_its_directory_when_the_context_changes() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let (top, ctx, host, scratch) = setup();
        let path = inside_dir(&ctx, "dir").unwrap();
        let bind = PinnedBind::new(&scratch, &ctx, &path).unwrap();
        swap_dir_for_link(top.path(), &ctx, &host);
        assert_eq!(fs::read(bind.target.join("f")).unwrap(), b"context");
        assert!(fs::write(bind.target.join("new"), b"x").is_err());
        let target = bind.target.clone();
        drop(bind);
        assert!(!target.exists());
    }

    #[test]
    fn a_context_copy_follows_no_swapped_directory() {
        let (top, ctx, host, scratch) = setup();
        let path = inside_dir(&ctx, "dir").unwrap();
        swap_dir_for_link(top.path(), &ctx, &host);
        let dest = scratch.join("copy");
        let err = copy_context(&ctx, &path, &Matcher::default(), &dest).unwrap_err();
        assert!(err.contains("changed during the build"), "{err}");
        assert!(fs::symlink_metadata(&dest).is_err());
    }
}
