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
use super::{Exec, Layer};
use crate::backend::SecretSource;
use crate::imagefs::ImageFs;
use kiln_frontend::dockerignore::Matcher;
use kiln_frontend::instructions::{Mount, MountType, Sharing};
use kiln_runtime::MountSpec;
use kiln_store::Store;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    pub(crate) exec: &'a Exec,
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
                    path
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

    /// A new cache directory, made in full beside `dir` and renamed into
    /// place, so a killed build never leaves a half-seeded cache.
    fn create_cache(
        &mut self,
        inputs: &MountInputs,
        mount: &Mount,
        dir: &Path,
        from: MountFrom,
    ) -> Result<(), String> {
        let parent = dir.parent().unwrap_or(dir);
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
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
            Some(SecretSource::Env(var)) => std::env::var_os(var)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| {
                format!("secret {id}: the environment variable {var} is not set")
            })?,
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
        let dir = self.secret_dir()?;
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
    /// `/dev/shm`, so the secret never reaches a disk.
    fn secret_dir(&mut self) -> Result<PathBuf, String> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("kiln-secret-")
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
        crate::stage::clean_path(path)
    } else {
        crate::stage::clean_path(&format!("{dir}/{path}"))
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

/// Copies `path` (inside the context `root`) to `dest`, leaving out what
/// `ignore` excludes: with `cp -a` when nothing is excluded, else entry by
/// entry (owners, modes, times and links kept; devices, sockets and FIFOs,
/// which a context never carries into a build, skipped).
fn copy_context(root: &Path, path: &Path, ignore: &Matcher, dest: &Path) -> Result<(), String> {
    if ignore.is_empty() {
        return copy_tree(path, dest);
    }
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let rel = path
        .strip_prefix(&root)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default();
    copy_filtered(path, &rel, ignore, dest)
}

fn copy_filtered(src: &Path, rel: &str, ignore: &Matcher, dest: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("copying {} to {}: {e}", src.display(), dest.display());
    let meta = fs::symlink_metadata(src).map_err(fail)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dest).map_err(fail)?;
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(fail)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        names.sort();
        for name in names {
            let child = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let child_src = src.join(&name);
            if ignore.is_excluded(&child) {
                let is_dir = fs::symlink_metadata(&child_src).is_ok_and(|m| m.is_dir());
                // An excluded directory may still hold re-included files.
                if !is_dir || ignore.may_skip_dir(&child) {
                    continue;
                }
            }
            copy_filtered(&child_src, &child, ignore, &dest.join(&name))?;
        }
        fs::set_permissions(dest, meta.permissions()).map_err(fail)?;
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).map_err(fail)?, dest).map_err(fail)?;
    } else if kind.is_file() {
        fs::copy(src, dest).map_err(fail)?;
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

/// Copies a tree with its owners, modes, times, links and xattrs. `cp -a`
/// does all of that and is on every system that has a shell; this path
/// (rw binds of the context, caches seeded from it) is rare enough not to
/// need its own copier.
fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(src)
        .arg(dest)
        .output()
        .map_err(|e| format!("running cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "copying {} to {}: {}",
            src.display(),
            dest.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
