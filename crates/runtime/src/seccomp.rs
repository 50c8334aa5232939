//! The seccomp filter of every RUN container: Docker's default profile, as BuildKit applies it
//! (moby/profiles `default.json`, resolved against the container's capabilities and this
//! host's architecture and kernel the way moby's `setupSeccomp` does). Without it a build step
//! could make every system call the kernel offers an unprivileged root: `unshare(CLONE_NEWUSER)`
//! among them, the usual first step of a container escape.
//!
//! The profile is written out here rather than read from a JSON file at run time so that a
//! kiln binary carries it whole; its rules are the upstream ones, listed below in the same
//! order.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use oci_spec::OciSpecError;

/// One rule of the profile: the system calls it names, what happens to them, and when it
/// applies.
struct Rule {
    names: &'static [&'static str],
    /// `None` allows the calls; `Some(errno)` fails them with that error.
    errno: Option<u32>,
    /// `(argument index, value, second value, operator)`: all must hold.
    args: &'static [(u32, u64, u64, LinuxSeccompOperator)],
    /// The rule applies only on these architectures (Go's names), when not empty.
    arches: &'static [&'static str],
    /// ... and not on these.
    not_arches: &'static [&'static str],
    /// ... only when the container has one of these capabilities, when not empty.
    caps: &'static [Capability],
    /// ... and only when it has none of these.
    not_caps: &'static [Capability],
    /// ... only on kernels at least this new (`(major, minor)`).
    min_kernel: Option<(u32, u32)>,
}

const RULE: Rule = Rule {
    names: &[],
    errno: None,
    args: &[],
    arches: &[],
    not_arches: &[],
    caps: &[],
    not_caps: &[],
    min_kernel: None,
};

use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpGt as GT, ScmpCmpLt as LT, ScmpCmpMaskedEq};

/// The namespace flags of clone(2) (`CLONE_NEWNS | CLONE_NEWUTS | … | CLONE_NEWUSER |
/// CLONE_NEWCGROUP`): without CAP_SYS_ADMIN a clone asking for any of them is refused.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// ENOSYS: clone3 is answered "not implemented" so that C libraries fall back to clone, whose
/// flags the filter can see (clone3 passes them in memory).
const ENOSYS: u32 = 38;

const RULES: &[Rule] = &[
    Rule {
        names: ALWAYS_ALLOWED,
        ..RULE
    },
    // Before 4.8 ptrace could be used to bypass seccomp.
    Rule {
        names: &["process_vm_readv", "process_vm_writev", "ptrace"],
        min_kernel: Some((4, 8)),
        ..RULE
    },
    // Every address family but AF_ALG (38) and AF_VSOCK (40).
    Rule {
        names: &["socket"],
        args: &[(0, 38, 0, LT)],
        ..RULE
    },
    Rule {
        names: &["socket"],
        args: &[(0, 39, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["socket"],
        args: &[(0, 40, 0, GT)],
        ..RULE
    },
    // personality(2) only for the execution domains programs ask for: PER_LINUX,
    // PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the query 0xffffffff.
    Rule {
        names: &["personality"],
        args: &[(0, 0, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["personality"],
        args: &[(0, 8, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["personality"],
        args: &[(0, 0x20000, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["personality"],
        args: &[(0, 0x20008, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["personality"],
        args: &[(0, 0xffff_ffff, 0, EQ)],
        ..RULE
    },
    Rule {
        names: &["sync_file_range2", "swapcontext"],
        arches: &["ppc64le"],
        ..RULE
    },
    Rule {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        arches: &["arm", "arm64"],
        ..RULE
    },
    Rule {
        names: &["arch_prctl"],
        arches: &["amd64", "x32"],
        ..RULE
    },
    Rule {
        names: &["modify_ldt"],
        arches: &["amd64", "x32", "x86"],
        ..RULE
    },
    Rule {
        names: &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        arches: &["s390", "s390x"],
        ..RULE
    },
    Rule {
        names: &["riscv_flush_icache"],
        arches: &["riscv64"],
        ..RULE
    },
    Rule {
        names: &["open_by_handle_at"],
        caps: &[Capability::DacReadSearch],
        ..RULE
    },
    Rule {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        caps: &[Capability::SysAdmin],
        ..RULE
    },
    Rule {
        names: &["clone"],
        args: &[(0, CLONE_NAMESPACES, 0, ScmpCmpMaskedEq)],
        not_arches: &["s390", "s390x"],
        not_caps: &[Capability::SysAdmin],
        ..RULE
    },
    // s390 passes clone's flags second.
    Rule {
        names: &["clone"],
        args: &[(1, CLONE_NAMESPACES, 0, ScmpCmpMaskedEq)],
        arches: &["s390", "s390x"],
        not_caps: &[Capability::SysAdmin],
        ..RULE
    },
    Rule {
        names: &["clone3"],
        errno: Some(ENOSYS),
        not_caps: &[Capability::SysAdmin],
        ..RULE
    },
    Rule {
        names: &["reboot"],
        caps: &[Capability::SysBoot],
        ..RULE
    },
    Rule {
        names: &["chroot"],
        caps: &[Capability::SysChroot],
        ..RULE
    },
    Rule {
        names: &["delete_module", "init_module", "finit_module"],
        caps: &[Capability::SysModule],
        ..RULE
    },
    Rule {
        names: &["acct"],
        caps: &[Capability::SysPacct],
        ..RULE
    },
    Rule {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        caps: &[Capability::SysPtrace],
        ..RULE
    },
    Rule {
        names: &["iopl", "ioperm"],
        caps: &[Capability::SysRawio],
        ..RULE
    },
    Rule {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        caps: &[Capability::SysTime],
        ..RULE
    },
    Rule {
        names: &["vhangup"],
        caps: &[Capability::SysTtyConfig],
        ..RULE
    },
    Rule {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        caps: &[Capability::SysNice],
        ..RULE
    },
    Rule {
        names: &["syslog"],
        caps: &[Capability::Syslog],
        ..RULE
    },
    Rule {
        names: &["bpf"],
        caps: &[Capability::Bpf],
        ..RULE
    },
    Rule {
        names: &["perf_event_open"],
        caps: &[Capability::Perfmon],
        ..RULE
    },
];

/// What the profile allows whatever the container's capabilities, architecture and kernel.
const ALWAYS_ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The host the filter is for: Go's name of its architecture and its kernel version.
pub(crate) struct Host {
    pub arch: &'static str,
    pub kernel: (u32, u32),
}

impl Host {
    /// [`Host::detect`], read once per process rather than for every RUN.
    pub(crate) fn get() -> Option<&'static Host> {
        static HOST: std::sync::OnceLock<Option<Host>> = std::sync::OnceLock::new();
        HOST.get_or_init(Host::detect).as_ref()
    }

    /// This host, or `None` when its kernel has no seccomp (as containerd's `IsEnabled`
    /// decides: `/proc/self/status` lacks a `Seccomp:` line) or kiln does not know its
    /// architecture's filter name; runs then go without a filter, as BuildKit's do.
    fn detect() -> Option<Host> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        if !status.lines().any(|l| l.starts_with("Seccomp:")) {
            return None;
        }
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "x86",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            _ => return None,
        };
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Some(Host {
            arch,
            kernel: kernel_version(&release),
        })
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64`; `(0, 0)` when unreadable.
fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The architectures the filter covers: the host's and those its CPU also runs (32-bit x86
/// programs on amd64, for instance), as the profile's `archMap` lists them.
fn architectures(arch: &str) -> Vec<Arch> {
    match arch {
        "amd64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "x86" => vec![Arch::ScmpArchX86],
        "arm64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "ppc64le" => vec![Arch::ScmpArchPpc64le],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => Vec::new(),
    }
}

impl Rule {
    fn applies(&self, host: &Host, caps: &[Capability]) -> bool {
        (self.arches.is_empty() || self.arches.contains(&host.arch))
            && !self.not_arches.contains(&host.arch)
            && (self.caps.is_empty() || self.caps.iter().any(|c| caps.contains(c)))
            && !self.not_caps.iter().any(|c| caps.contains(c))
            && self.min_kernel.is_none_or(|min| host.kernel >= min)
    }

    fn syscall(&self) -> Result<LinuxSyscall, OciSpecError> {
        let mut b = LinuxSyscallBuilder::default()
            .names(self.names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        b = match self.errno {
            None => b.action(LinuxSeccompAction::ScmpActAllow),
            Some(errno) => b.action(LinuxSeccompAction::ScmpActErrno).errno_ret(errno),
        };
        if !self.args.is_empty() {
            let args = self
                .args
                .iter()
                .map(|&(index, value, value_two, op)| {
                    LinuxSeccompArgBuilder::default()
                        .index(index as usize)
                        .value(value)
                        .value_two(value_two)
                        .op(op)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.args(args);
        }
        b.build()
    }
}

/// The profile for a container with `caps` (its bounding set) on `host`: every call not
/// allowed fails with EPERM.
pub(crate) fn default_profile(
    host: &Host,
    caps: &[Capability],
) -> Result<LinuxSeccomp, OciSpecError> {
    let syscalls = RULES
        .iter()
        .filter(|r| r.applies(host, caps))
        .map(Rule::syscall)
        .collect::<Result<Vec<_>, _>>()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(1u32)
        .architectures(architectures(host.arch))
        .syscalls(syscalls)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CAPS: &[Capability] = &[Capability::Chown, Capability::SysChroot];

    fn profile(arch: &'static str, kernel: (u32, u32), caps: &[Capability]) -> LinuxSeccomp {
        default_profile(&Host { arch, kernel }, caps).unwrap()
    }

    /// Each rule the profile kept, as (names, action, errno, args).
    fn rules(p: &LinuxSeccomp) -> Vec<(Vec<String>, LinuxSeccompAction, Option<u32>, usize)> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s.names().clone(),
                    s.action(),
                    s.errno_ret(),
                    s.args().as_ref().map_or(0, Vec::len),
                )
            })
            .collect()
    }

    fn allowed_unconditionally(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p).iter().any(|(names, action, _, args)| {
            names.iter().any(|n| n == name)
                && *action == LinuxSeccompAction::ScmpActAllow
                && *args == 0
        })
    }

    #[test]
    fn without_cap_sys_admin_namespaces_stay_shut() {
        let p = profile("amd64", (6, 1), DOCKER_CAPS);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        for call in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "bpf",
            "keyctl",
            "add_key",
            "io_uring_setup",
        ] {
            assert!(!allowed_unconditionally(&p, call), "{call}");
        }
        // clone only without namespace flags; clone3 "not implemented" so libc falls back.
        let clone = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| s.names() == &["clone"])
            .unwrap();
        let arg = &clone.args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.value_two(), arg.op()),
            (
                0,
                CLONE_NAMESPACES,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
        assert!(rules(&p).contains(&(
            vec!["clone3".to_string()],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            0
        )));
        // What a build needs.
        for call in [
            "execve",
            "openat",
            "chroot",
            "arch_prctl",
            "ptrace",
            "setxattr",
            "statx",
            "mknodat",
        ] {
            assert!(allowed_unconditionally(&p, call), "{call}");
        }
        assert_eq!(
            p.architectures().as_ref().unwrap(),
            &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
    }

    #[test]
    fn rules_follow_capabilities_architecture_and_kernel() {
        let admin = profile("amd64", (6, 1), &[Capability::SysAdmin]);
        assert!(allowed_unconditionally(&admin, "unshare"));
        assert!(!rules(&admin).iter().any(|(n, ..)| n == &["clone3"]));
        assert!(!allowed_unconditionally(&admin, "chroot"));

        let arm = profile("arm64", (6, 1), DOCKER_CAPS);
        assert!(allowed_unconditionally(&arm, "set_tls"));
        assert!(!allowed_unconditionally(&arm, "arch_prctl"));
        assert_eq!(
            arm.architectures().as_ref().unwrap(),
            &[Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );

        // Before 4.8 ptrace could step around the filter.
        assert!(!allowed_unconditionally(
            &profile("amd64", (4, 4), DOCKER_CAPS),
            "ptrace"
        ));

        // s390 passes clone's flags as the second argument.
        let s390 = profile("s390x", (6, 1), DOCKER_CAPS);
        let clone = s390
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| s.names() == &["clone"])
            .unwrap();
        assert_eq!(clone.args().as_ref().unwrap()[0].index(), 1);
    }

    #[test]
    fn sockets_of_every_family_but_alg_and_vsock() {
        let p = profile("amd64", (6, 1), DOCKER_CAPS);
        let socket: Vec<_> = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.names() == &["socket"])
            .map(|s| {
                let a = &s.args().as_ref().unwrap()[0];
                (a.value(), a.op())
            })
            .collect();
        assert_eq!(
            socket,
            [
                (38, LinuxSeccompOperator::ScmpCmpLt),
                (39, LinuxSeccompOperator::ScmpCmpEq),
                (40, LinuxSeccompOperator::ScmpCmpGt)
            ]
        );
    }

    #[test]
    fn kernel_versions_are_read_from_releases() {
        assert_eq!(kernel_version("6.1.0-18-amd64\n"), (6, 1));
        assert_eq!(kernel_version("4.19.0"), (4, 19));
        assert_eq!(kernel_version(""), (0, 0));
    }
}
