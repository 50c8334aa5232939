//! A [`ContainerSpec`]'s translation into an OCI `config.json`, with docker's
//! defaults (capabilities, masked paths, seccomp, rlimits).

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use rustix::process::{getrlimit, Resource};

use crate::{seccomp, ContainerSpec, Error, RlimitKind};

impl ContainerSpec {
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
