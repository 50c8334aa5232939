//! Resource limits for a container's process, as `docker run --ulimit` names and writes them.

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
