//! What the caller asks for ([`ContainerSpec`]) and its translation into an OCI `config.json`.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use rustix::process::{getrlimit, Resource};

use crate::{seccomp, Error};

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

/// A resource limit for the container's process (`--ulimit name=soft:hard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rlimit {
    /// Which resource.
    pub kind: RlimitKind,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit; at least `soft`.
    pub hard: u64,
}

/// A resource an [`Rlimit`] limits, named as `docker run --ulimit` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RlimitKind {
    /// `as`: address space.
    As,
    /// `core`: core file size.
    Core,
    /// `cpu`: CPU seconds.
    Cpu,
    /// `data`: data segment size.
    Data,
    /// `fsize`: file size.
    Fsize,
    /// `locks`: file locks.
    Locks,
    /// `memlock`: locked memory.
    Memlock,
    /// `msgqueue`: POSIX message queue bytes.
    Msgqueue,
    /// `nice`: the nice ceiling.
    Nice,
    /// `nofile`: open files.
    Nofile,
    /// `nproc`: processes.
    Nproc,
    /// `rss`: resident set size.
    Rss,
    /// `rtprio`: real-time priority.
    Rtprio,
    /// `rttime`: real-time CPU microseconds.
    Rttime,
    /// `sigpending`: queued signals.
    Sigpending,
    /// `stack`: stack size.
    Stack,
}

const RLIMIT_NAMES: [(&str, RlimitKind); 16] = [
    ("as", RlimitKind::As),
    ("core", RlimitKind::Core),
    ("cpu", RlimitKind::Cpu),
    ("data", RlimitKind::Data),
    ("fsize", RlimitKind::Fsize),
    ("locks", RlimitKind::Locks),
    ("memlock", RlimitKind::Memlock),
    ("msgqueue", RlimitKind::Msgqueue),
    ("nice", RlimitKind::Nice),
    ("nofile", RlimitKind::Nofile),
    ("nproc", RlimitKind::Nproc),
    ("rss", RlimitKind::Rss),
    ("rtprio", RlimitKind::Rtprio),
    ("rttime", RlimitKind::Rttime),
    ("sigpending", RlimitKind::Sigpending),
    ("stack", RlimitKind::Stack),
];

impl std::str::FromStr for Rlimit {
    type Err = String;

    /// Docker's syntax: `NAME=SOFT[:HARD]`, `-1` for unlimited, the hard limit the soft one
    /// when not given.
    fn from_str(s: &str) -> Result<Rlimit, String> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| format!("ulimit {s:?}: expected NAME=SOFT[:HARD]"))?;
        let kind = RLIMIT_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = RLIMIT_NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "ulimit {s:?}: unknown resource {name:?}; one of {}",
                    names.join(", ")
                )
            })?;
        let number = |v: &str| match v {
            "-1" => Ok(u64::MAX),
            v => v
                .parse::<u64>()
                .map_err(|_| format!("ulimit {s:?}: {v:?} is not a number or -1")),
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => (number(values)?, number(values)?),
        };
        if soft > hard {
            return Err(format!(
                "ulimit {s:?}: the soft limit is above the hard limit"
            ));
        }
        Ok(Rlimit { kind, soft, hard })
    }
}

impl RlimitKind {
    fn oci(self) -> PosixRlimitType {
        match self {
            RlimitKind::As => PosixRlimitType::RlimitAs,
            RlimitKind::Core => PosixRlimitType::RlimitCore,
            RlimitKind::Cpu => PosixRlimitType::RlimitCpu,
            RlimitKind::Data => PosixRlimitType::RlimitData,
            RlimitKind::Fsize => PosixRlimitType::RlimitFsize,
            RlimitKind::Locks => PosixRlimitType::RlimitLocks,
            RlimitKind::Memlock => PosixRlimitType::RlimitMemlock,
            RlimitKind::Msgqueue => PosixRlimitType::RlimitMsgqueue,
            RlimitKind::Nice => PosixRlimitType::RlimitNice,
            RlimitKind::Nofile => PosixRlimitType::RlimitNofile,
            RlimitKind::Nproc => PosixRlimitType::RlimitNproc,
            RlimitKind::Rss => PosixRlimitType::RlimitRss,
            RlimitKind::Rtprio => PosixRlimitType::RlimitRtprio,
            RlimitKind::Rttime => PosixRlimitType::RlimitRttime,
            RlimitKind::Sigpending => PosixRlimitType::RlimitSigpending,
            RlimitKind::Stack => PosixRlimitType::RlimitStack,
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

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !valid_id(&self.id) {
            return Err(Error::InvalidSpec(format!(
                "container id {:?} must be letters, digits, '-', '_' and '.'",
                self.id
            )));
        }
        if self.args.is_empty() {
            return Err(Error::InvalidSpec("no command to run".to_string()));
        }
        if !self.cwd.starts_with('/') {
            return Err(Error::InvalidSpec(format!(
                "working directory {:?} is not absolute",
                self.cwd
            )));
        }
        for mount in &self.mounts {
            if !mount.target().is_absolute() {
                return Err(Error::InvalidSpec(format!(
                    "mount target {} is not absolute",
                    mount.target().display()
                )));
            }
        }
        Ok(())
    }
}

/// The `PATH` docker gives a container whose image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default masked paths: host information a build has no business reading.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default capability set.
const CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// What docker gives a build container; lowered to the host's hard limit because raising a
/// limit needs CAP_SYS_RESOURCE, which a root without it (or a rootless kiln) lacks.
const NOFILE: u64 = 1 << 20;

/// The top-level directories the standard mounts cover with fresh file systems; mount points
/// below them are made by the runtime inside those, never in the rootfs.
pub(crate) const STANDARD_ROOTS: &[&str] = &["proc", "dev", "sys"];

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a container path lies under one of [`STANDARD_ROOTS`].
pub(crate) fn under_standard_root(path: &Path) -> bool {
    let first = path.components().find_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    });
    first.is_some_and(|name| STANDARD_ROOTS.iter().any(|r| name == *r))
}

/// A mount ready for `config.json`: its destination already resolved inside the rootfs.
pub(crate) struct ResolvedMount {
    pub(crate) destination: PathBuf,
    pub(crate) kind: ResolvedKind,
}

pub(crate) enum ResolvedKind {
    Bind {
        source: PathBuf,
        readonly: bool,
    },
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
    },
}

/// Where the container's network namespace comes from.
pub(crate) enum NetNs {
    /// A new one the runtime creates (loopback only).
    New,
    /// The host's: no network namespace entry at all.
    Host,
    /// An existing one bound to this file.
    Path(PathBuf),
}

/// Where the container's PID namespace comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidNs {
    /// A new one, with a new `/proc` mounted for it.
    New,
    /// kiln's own, with kiln's `/proc` and `/sys` bound in: for a kiln inside a container whose
    /// runtime masks parts of `/proc` and `/sys` (the default of docker, podman and Kubernetes),
    /// where the kernel refuses to mount a new proc or sysfs (it would reveal what the masks
    /// hide). BuildKit's `--oci-worker-no-process-sandbox` does the same.
    Host,
}

/// Builds the OCI spec. `mounts` are the extra mounts followed by `/etc/hosts` and
/// `/etc/resolv.conf`, with destinations already resolved.
pub(crate) fn build(
    spec: &ContainerSpec,
    rootfs: &Path,
    mounts: &[ResolvedMount],
    netns: &NetNs,
    pidns: PidNs,
) -> Result<Spec, Error> {
    let oci = |e: oci_spec::OciSpecError| Error::InvalidSpec(e.to_string());
    let caps: oci_spec::runtime::Capabilities = CAPABILITIES.iter().copied().collect();
    let nofile = {
        let host = getrlimit(Resource::Nofile);
        let hard = host.maximum.map_or(NOFILE, |max| max.min(NOFILE));
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(hard)
            .soft(hard)
            .build()
            .map_err(oci)?
    };
    let mut rlimits = vec![nofile];
    for limit in &spec.rlimits {
        rlimits.retain(|r| r.typ() != limit.kind.oci());
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(limit.kind.oci())
                .soft(limit.soft)
                .hard(limit.hard)
                .build()
                .map_err(oci)?,
        );
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(spec.uid)
                .gid(spec.gid)
                .additional_gids(spec.additional_gids.clone())
                .build()
                .map_err(oci)?,
        )
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(&spec.cwd)
        .capabilities(
            // Inheritable and ambient stay empty, as containerd's default
            // spec under BuildKit leaves them: oci-spec's defaults for
            // unset sets (AUDIT_WRITE, KILL, NET_BIND_SERVICE) put in the
            // ambient set gave a non-root USER those capabilities.
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(oci_spec::runtime::Capabilities::new())
                .ambient(oci_spec::runtime::Capabilities::new())
                .build()
                .map_err(oci)?,
        )
        .rlimits(rlimits)
        .no_new_privileges(false)
        .build()
        .map_err(oci)?;

    let mut all_mounts = standard_mounts(
        matches!(netns, NetNs::Host),
        pidns == PidNs::Host,
        spec.shm_size,
    )
    .map_err(oci)?;
    for mount in mounts {
        all_mounts.push(oci_mount(mount).map_err(oci)?);
    }

    let mut namespaces = Vec::new();
    let pid = (pidns == PidNs::New).then_some(LinuxNamespaceType::Pid);
    for typ in pid.into_iter().chain([
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]) {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(oci)?,
        );
    }
    match netns {
        NetNs::Host => {}
        NetNs::New => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()
                .map_err(oci)?,
        ),
        NetNs::Path(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()
                .map_err(oci)?,
        ),
    }

    let mut linux = LinuxBuilder::default();
    if let Some(host) = seccomp::Host::get() {
        linux = linux.seccomp(seccomp::default_profile(host, CAPABILITIES).map_err(oci)?);
    }
    let linux = linux
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .resources(
            // Deny every device in the cgroup; the runtime allows its default devices (null,
            // zero, full, random, urandom, tty, pts) on top, as runc's own spec does.
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .access("rwm")
                    .build()
                    .map_err(oci)?])
                .build()
                .map_err(oci)?,
        )
        .build()
        .map_err(oci)?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()
                .map_err(oci)?,
        )
        .process(process)
        .hostname(&spec.hostname)
        .mounts(all_mounts)
        .linux(linux)
        .build()
        .map_err(oci)
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

/// runc's default mounts. Without a network namespace of its own the container may not mount
/// a new sysfs (the kernel ties sysfs to the mounter's network namespace), so it gets a
/// read-only bind of the host's `/sys`, which already holds the cgroup hierarchy.
///
/// In kiln's PID namespace ([`PidNs::Host`]) `/proc` and `/sys` are recursive binds of kiln's
/// own, whose masks stay in place (runc allows a bind on `/proc` only of a procfs).
fn standard_mounts(
    host_network: bool,
    host_pid: bool,
    shm_size: Option<u64>,
) -> Result<Vec<Mount>, oci_spec::OciSpecError> {
    let shm_size = format!("size={}", shm_size.unwrap_or(64 << 20));
    let proc = if host_pid {
        mount(
            "/proc",
            "bind",
            "/proc",
            &["rbind", "nosuid", "noexec", "nodev"],
        )?
    } else {
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?
    };
    let mut mounts = vec![
        proc,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    if host_network || host_pid {
        mounts.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?);
        mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?);
    }
    Ok(mounts)
}

fn oci_mount(m: &ResolvedMount) -> Result<Mount, oci_spec::OciSpecError> {
    let builder = MountBuilder::default().destination(&m.destination);
    match &m.kind {
        ResolvedKind::Bind { source, readonly } => builder
            .typ("bind")
            .source(source)
            .options(vec![
                "rbind".to_string(),
                if *readonly { "ro" } else { "rw" }.to_string(),
            ])
            .build(),
        ResolvedKind::Tmpfs { size, mode } => {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            if let Some(size) = size {
                options.push(format!("size={size}"));
            }
            options.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
            builder
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pidns: PidNs) -> Spec {
        let spec = ContainerSpec::new("kiln-t", "/b", "/r", ["true"]);
        build(&spec, Path::new("/r"), &[], &NetNs::New, pidns).unwrap()
    }

    fn proc_mount(spec: &Spec) -> Mount {
        let mounts = spec.mounts().as_ref().unwrap();
        let procs: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.destination() == Path::new("/proc"))
            .collect();
        assert_eq!(procs.len(), 1);
        procs[0].clone()
    }

    fn has_pid_namespace(spec: &Spec) -> bool {
        let linux = spec.linux().as_ref().unwrap();
        linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Pid)
    }

    #[test]
    fn a_new_pid_namespace_gets_a_new_proc() {
        let spec = config(PidNs::New);
        assert!(has_pid_namespace(&spec));
        assert_eq!(proc_mount(&spec).typ().as_deref(), Some("proc"));
    }

    #[test]
    fn kilns_pid_namespace_gets_kilns_proc_with_its_masks() {
        let spec = config(PidNs::Host);
        assert!(!has_pid_namespace(&spec));
        let proc = proc_mount(&spec);
        assert_eq!(proc.typ().as_deref(), Some("bind"));
        assert_eq!(proc.source().as_deref(), Some(Path::new("/proc")));
        assert!(proc
            .options()
            .as_ref()
            .unwrap()
            .contains(&"rbind".to_string()));
        // A new sysfs is refused there too: kiln's /sys, read-only.
        let sys = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap()
            .clone();
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
        // The same masks as ever: runc binds /dev/null over them in the
        // bound /proc too.
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
    }
}
