//! What the caller asks for: a [`ContainerSpec`] and its mounts. Portable, so
//! the engine can describe a step on any host; running it (and the OCI
//! `config.json` made from it, in `config`) is Linux's.

use std::path::{Path, PathBuf};

use crate::Rlimit;

/// Which network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only a loopback interface (`RUN --network=none`).
    None,
    /// The host's network namespace (`RUN --network=host`).
    Host,
    /// Its own network namespace with outbound access through `pasta` or `slirp4netns`; when
    /// neither is installed the run falls back to [`Network::Host`] and says so in
    /// [`RunOutcome::warning`](crate::RunOutcome::warning).
    Private,
}

/// An extra mount, applied after the standard ones in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A recursive bind mount of a host file or directory.
    Bind {
        /// The host path.
        source: PathBuf,
        /// The absolute path inside the container.
        target: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (`nosuid,nodev`).
    Tmpfs {
        /// The absolute path inside the container.
        target: PathBuf,
        /// Its size limit in bytes; the kernel's default (half the RAM) when `None`.
        size: Option<u64>,
        /// The mode of its root directory; `1777` when `None`.
        mode: Option<u32>,
    },
}

impl MountSpec {
    /// The absolute path inside the container this mount covers.
    pub fn target(&self) -> &Path {
        match self {
            MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } => target,
        }
    }
}

/// One command to run in a container.
///
/// Mount points the rootfs lacks (`/proc`, `/dev`, `/sys`, `/etc/hosts`, a bind target, the
/// working directory, …) are created for the run and removed afterwards; see
/// [`Runtime::run`](crate::Runtime::run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container id; the engine uses `kiln-<random>`. Letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// An existing directory for `config.json` and the run's other files (`hosts`,
    /// `resolv.conf`, the runtime's log); it is left in place for the caller to remove.
    pub bundle: PathBuf,
    /// The container's root file system, used read-write.
    pub rootfs: PathBuf,
    /// The command and its arguments, already wrapped in the shell for shell form.
    pub args: Vec<String>,
    /// The environment as `KEY=VALUE`; the runtime looks `args[0]` up in its `PATH`.
    pub env: Vec<String>,
    /// The absolute working directory inside the container.
    pub cwd: String,
    /// The user id the command runs as.
    pub uid: u32,
    /// The group id the command runs as.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// The container's host name (it always gets its own UTS namespace).
    pub hostname: String,
    /// Extra mounts, applied in this order after the standard ones.
    pub mounts: Vec<MountSpec>,
    /// The network the container gets.
    pub network: Network,
    /// The content of `/etc/hosts`, bind-mounted read-only. `None`: the host's `/etc/hosts`
    /// with [`Network::Host`], the rootfs's own file otherwise.
    pub hosts: Option<String>,
    /// The content of `/etc/resolv.conf`, bind-mounted read-only. `None`: the host's
    /// `/etc/resolv.conf` with [`Network::Host`] and [`Network::Private`], the rootfs's own
    /// file with [`Network::None`].
    pub resolv_conf: Option<String>,
    /// The size of `/dev/shm` in bytes; 64 MiB (runc's and docker's default) when `None`.
    pub shm_size: Option<u64>,
    /// Resource limits beyond the default (`nofile` at the host's hard limit, at most
    /// 1048576); one for `nofile` replaces it. Asking for more than the host's hard limit
    /// fails where root lacks CAP_SYS_RESOURCE.
    pub rlimits: Vec<Rlimit>,
}

impl ContainerSpec {
    /// A spec running `args` as root in `/` with no network, a default `PATH`, host name
    /// `kiln` and no extra mounts; set the other fields directly.
    pub fn new<I, S>(
        id: impl Into<String>,
        bundle: impl Into<PathBuf>,
        rootfs: impl Into<PathBuf>,
        args: I,
    ) -> ContainerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ContainerSpec {
            id: id.into(),
            bundle: bundle.into(),
            rootfs: rootfs.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: vec![DEFAULT_PATH.to_string()],
            cwd: "/".to_string(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: "kiln".to_string(),
            mounts: Vec::new(),
            network: Network::None,
            hosts: None,
            resolv_conf: None,
            shm_size: None,
            rlimits: Vec::new(),
        }
    }
}

/// The `PATH` docker gives a container whose image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
