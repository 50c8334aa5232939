//! Finding a runtime that works here, and running one container to
//! completion through it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::config::{self, NetNs, PidNs, ResolvedKind, ResolvedMount};
use crate::error::IoContext;
use crate::network::{find_program, PrivateNet};
use crate::stubs::Stubs;
use crate::{
    ContainerSpec, Error, ExitStatus, MountSpec, Network, ProbeFailure, RunOutcome, Stream,
};

/// The id prefix of probe containers, which [`Runtime::cleanup_stale`]
/// treats apart from the ones its caller names.
const PROBE_PREFIX: &str = "kiln-probe-";

/// The prefix of a probe's work directory under the state root, followed
/// by the prober's pid, so one a killed kiln left can be told apart.
const PROBE_DIR: &str = "probe-dir-";

/// How often a run looks at its cancel flag while waiting for output.
const POLL: Duration = Duration::from_millis(50);

/// Which OCI runtime a [`Runtime`] drives; both take the same command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// runc, the reference implementation.
    Runc,
    /// crun, the C one: faster to start.
    Crun,
}

impl RuntimeKind {
    /// The program's usual name.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }
}

/// An OCI runtime that passed its probe.
#[derive(Debug, Clone)]
pub struct Runtime {
    kind: RuntimeKind,
    binary: PathBuf,
    /// The runtime's `--root`: its container state, kept under kiln's own
    /// root so kiln's containers can be listed (and removed) later.
    state: PathBuf,
    /// Containers share kiln's PID namespace and `/proc`: the probe found
    /// that a new `/proc` cannot be mounted here (see [`PidNs::Host`]).
    pidns: PidNs,
}

/// What [`Runtime::detect`] found.
#[derive(Debug)]
pub struct Detection {
    /// The runtime to use.
    pub runtime: Runtime,
    /// The candidates tried before it, and why each did not work.
    pub skipped: Vec<ProbeFailure>,
}

impl Runtime {
    /// Finds a runtime that works on this host: `preference` (`runc`,
    /// `crun` or a path) alone when given, else crun, then runc. Each is
    /// probed by running a real (tiny) container, because a runtime can be
    /// installed and still fail here: crun 1.8 refuses cgroup v1 hybrid
    /// hosts. A probe's verdict is remembered under `state_root` for that
    /// binary (path, size, mtime), so later builds do not pay for it.
    pub fn detect(preference: Option<&str>, state_root: &Path) -> Result<Detection, Error> {
        // A runtime someone named is the only candidate: building with
        // another than the one asked for would hide a broken setup (docker
        // and buildah fail the same way). Otherwise crun first: it starts a
        // container in a fraction of runc's time.
        let candidates: Vec<String> = match preference {
            Some(p) => vec![p.to_string()],
            None => vec!["crun".to_string(), "runc".to_string()],
        };
        fs::create_dir_all(state_root).context(|| format!("creating {}", state_root.display()))?;
        let mut skipped = Vec::new();
        for candidate in candidates {
            match probe_cached(&candidate, state_root) {
                Ok(runtime) => return Ok(Detection { runtime, skipped }),
                Err(reason) => {
                    // Missing defaults are not worth a warning; a missing or
                    // broken runtime someone asked for is.
                    let asked = preference == Some(candidate.as_str());
                    if asked || !reason.ends_with("not found on PATH") {
                        skipped.push(ProbeFailure { candidate, reason });
                    }
                }
            }
        }
        Err(Error::NoRuntime(skipped))
    }

    /// runc or crun.
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// The runtime's name, for messages.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.state);
        c
    }

    /// Kills and deletes every container of this runtime whose id is
    /// `{prefix}{owner}-{n}` for an `owner` that `is_live` says is gone:
    /// what a killed kiln left. Returns the ids removed.
    pub fn cleanup_stale(&self, prefix: &str, is_live: &dyn Fn(&str) -> bool) -> Vec<String> {
        let stale = stale_ids(&self.state, prefix, is_live);
        for id in &stale {
            self.delete(id);
        }
        stale
    }

    /// [`Runtime::cleanup_stale`] for the runtimes that ever ran under the
    /// state root `state_root` (as given to [`Runtime::detect`]), without
    /// detecting or probing one: it reads the runtimes' state directories,
    /// and runs a runtime (the binary its probe found) only when there is a
    /// stale container to kill. Cheap enough for every kiln command. The
    /// work directories of probes whose process is gone go too.
    pub fn cleanup_stale_under(
        state_root: &Path,
        prefix: &str,
        is_live: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut removed = Vec::new();
        for kind in [RuntimeKind::Runc, RuntimeKind::Crun] {
            let state = state_root.join(kind.name());
            let stale = stale_ids(&state, prefix, is_live);
            if stale.is_empty() {
                continue;
            }
            let Some(binary) =
                probed_binary(state_root, kind).or_else(|| find_program(kind.name()))
            else {
                continue;
            };
            // Only kills and deletes: which PID namespace runs would get
            // does not matter here.
            let runtime = Runtime {
                kind,
                binary,
                state,
                pidns: PidNs::New,
            };
            removed.extend(runtime.cleanup_stale(prefix, is_live));
        }
        // After the containers, which may still run on a probe's rootfs.
        for entry in fs::read_dir(state_root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(PROBE_DIR)
                .and_then(|rest| rest.split_once('-'))
                .map(|(pid, _)| pid);
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        removed
    }

    fn delete(&self, id: &str) {
        let _ = self
            .command()
            .args(["kill", id, "KILL"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self
            .command()
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Runs `spec` to completion, passing each line of its output to
    /// `on_line` as it comes. Returns how the process ended; `Err` when
    /// the runtime could not start it (with the runtime's message), when
    /// `cancel` was set (the container is killed) or on a setup failure.
    /// Whatever the outcome, the container is deleted, the mount stubs
    /// removed and the network helpers stopped.
    pub fn run(
        &self,
        spec: &ContainerSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, Error> {
        let mut tries = 0;
        loop {
            match self.run_once(spec, cancel, on_line) {
                // runc 1.1 copies itself into a sealed memfd for every
                // container; sealing fails with EBUSY now and then when
                // several start at once, before anything ran, so a retry
                // is safe.
                Err(Error::Runtime { message, .. })
                    if tries < 3 && message.contains("sealing memfd") =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20 << tries));
                }
                other => return other,
            }
        }
    }

    fn run_once(
        &self,
        spec: &ContainerSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<RunOutcome, Error> {
        spec.validate()?;
        fs::create_dir_all(&spec.bundle)
            .context(|| format!("creating {}", spec.bundle.display()))?;

        let mut warning = None;
        let mut host_address = None;
        let mut network_tool = None;
        let mut private = None;
        let netns = match spec.network {
            Network::None => NetNs::New,
            Network::Host => NetNs::Host,
            Network::Private => match PrivateNet::setup(&spec.bundle) {
                Ok(net) => {
                    host_address = net.host_address;
                    network_tool = Some(net.tool);
                    let path = net.path();
                    private = Some(net);
                    NetNs::Path(path)
                }
                Err(e) => {
                    warning = Some(format!(
                        "no private network for RUN ({e}); the step used the host's network"
                    ));
                    NetNs::Host
                }
            },
        };

        let hosts = spec
            .hosts
            .clone()
            .unwrap_or_else(|| default_hosts(&spec.hostname));
        let resolv = match &spec.resolv_conf {
            Some(r) => r.clone(),
            None => resolv_conf(!matches!(netns, NetNs::Host)),
        };
        let hosts_file = spec.bundle.join("hosts");
        let resolv_file = spec.bundle.join("resolv.conf");
        fs::write(&hosts_file, hosts).context(|| format!("writing {}", hosts_file.display()))?;
        fs::write(&resolv_file, resolv).context(|| format!("writing {}", resolv_file.display()))?;

        let mut stubs = Stubs::default();
        let mut resolved = Vec::new();
        let extra = spec.mounts.iter().cloned().chain([
            MountSpec::Bind {
                source: hosts_file,
                target: "/etc/hosts".into(),
                readonly: false,
            },
            MountSpec::Bind {
                source: resolv_file,
                target: "/etc/resolv.conf".into(),
                readonly: false,
            },
        ]);
        for mount in extra {
            let (file, kind) = match mount.clone() {
                MountSpec::Bind {
                    source, readonly, ..
                } => (!source.is_dir(), ResolvedKind::Bind { source, readonly }),
                MountSpec::Tmpfs { size, mode, .. } => (false, ResolvedKind::Tmpfs { size, mode }),
            };
            let destination = stubs.ensure(&spec.rootfs, mount.target(), file)?;
            resolved.push(ResolvedMount { destination, kind });
        }

        if self.pidns == PidNs::Host {
            // Said with each step (a build shows a warning once): unlike
            // the host's network, this holds for every RUN of the build.
            let note = "RUN shares kiln's process namespace, /proc and /sys: the runtime of the container kiln runs in masks parts of them, so the kernel refuses new ones (see docs/deploy.md)";
            warning = Some(match warning {
                Some(w) => format!("{w}; {note}"),
                None => note.to_string(),
            });
        }
        let config = config::build(spec, &spec.rootfs, &resolved, &netns, self.pidns)?;
        let config_path = spec.bundle.join("config.json");
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::InvalidSpec(format!("serializing config.json: {e}")))?;
        fs::write(&config_path, json).context(|| format!("writing {}", config_path.display()))?;

        let log = spec.bundle.join("log.json");
        let _ = fs::remove_file(&log);
        let watchdog = Watchdog::start(self, &spec.id);
        let child = self
            .command()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&spec.bundle)
            .arg(&spec.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context(|| format!("running {}", self.binary.display()))?;
        let mut guard = Container {
            runtime: self,
            id: &spec.id,
            child: Some(child),
            _watchdog: watchdog,
        };
        let status = guard.wait(cancel, on_line)?;
        drop(guard);
        drop(stubs);
        drop(private);
        if status != 0 {
            if let Some(message) = runtime_error(&log) {
                return Err(Error::Runtime {
                    runtime: self.name().to_string(),
                    message,
                });
            }
        }
        Ok(RunOutcome {
            status: ExitStatus { code: status },
            warning,
            host_address,
            network_tool,
        })
    }
}

/// A running `runc run`; killed and deleted on drop unless it finished.
struct Container<'a> {
    runtime: &'a Runtime,
    id: &'a str,
    child: Option<Child>,
    /// Dropped after the container is gone, whichever way it went.
    _watchdog: Option<Watchdog>,
}

/// Deletes a container if kiln dies while it runs. The container's init
/// is runc's child, in a PID namespace of its own, and outlives a SIGKILLed
/// kiln (and its runc); this small shell holds the read end of a pipe whose
/// write end only kiln has, and when that ends without the all-clear line
/// (kiln is gone) it has the runtime kill and delete the container. The
/// next kiln command cleans up too, but a container should not run on in
/// the meantime.
struct Watchdog(Child);

impl Watchdog {
    /// Starts the watchdog of container `id`; `None` when no shell could be
    /// started (the next kiln command's cleanup then is the only one).
    fn start(runtime: &Runtime, id: &str) -> Option<Watchdog> {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"read line || exec "$0" --root "$1" delete --force "$2""#)
            .arg(&runtime.binary)
            .arg(&runtime.state)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(Watchdog)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut all_clear) = self.0.stdin.take() {
            let _ = all_clear.write_all(b"done\n");
        }
        let _ = self.0.wait();
    }
}

impl Container<'_> {
    /// Streams output until the process exits; returns its exit code.
    fn wait(
        &mut self,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<i32, Error> {
        let child = self.child.as_mut().expect("a container is waited for once");
        let (tx, rx) = mpsc::channel();
        let readers = [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                Stream::Stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                Stream::Stderr,
            ),
        ]
        .into_iter()
        .filter_map(|(r, stream)| r.map(|r| (r, stream)))
        .map(|(r, stream)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if buf.last() == Some(&b'\n') {
                                buf.pop();
                            }
                            let line = String::from_utf8_lossy(&buf).into_owned();
                            if tx.send((stream, line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect::<Vec<_>>();
        drop(tx);
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Cancelled);
            }
            match rx.recv_timeout(POLL) {
                Ok((stream, line)) => on_line(stream, &line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        for r in readers {
            let _ = r.join();
        }
        let mut child = self.child.take().expect("a container is waited for once");
        let status = child
            .wait()
            .context(|| format!("waiting for {}", self.runtime.name()))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        // Only a run that did not finish gets here with its child: the
        // container may still be running.
        if let Some(mut child) = self.child.take() {
            self.runtime.delete(self.id);
            let _ = child.kill();
            let _ = child.wait();
            self.runtime.delete(self.id);
        }
    }
}

/// The containers in the runtime state directory `state` (runc and crun keep
/// one directory per container there) named `{prefix}{owner}-{n}` whose
/// owner is not live. A probe's container, `kiln-probe-{pid}-{n}`, is
/// stale once its process is gone.
fn stale_ids(state: &Path, prefix: &str, is_live: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut stale = Vec::new();
    for entry in fs::read_dir(state).into_iter().flatten().flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        let live = if let Some(rest) = id.strip_prefix(PROBE_PREFIX) {
            let pid = rest.split('-').next().unwrap_or(rest);
            Path::new("/proc").join(pid).exists()
        } else if let Some(rest) = id.strip_prefix(prefix) {
            rest.rsplit_once('-')
                .is_some_and(|(owner, _)| is_live(owner))
        } else {
            continue;
        };
        if !live && entry.path().is_dir() {
            stale.push(id);
        }
    }
    stale.sort();
    stale
}

/// The binary whose probe verdict is remembered for `kind` under `state_root`.
fn probed_binary(state_root: &Path, kind: RuntimeKind) -> Option<PathBuf> {
    let memo = fs::read_to_string(state_root.join(format!("probe-{}", kind.name()))).ok()?;
    // The stamp is "PATH SIZE MTIME"; the path may hold spaces.
    let stamp = memo.lines().next()?;
    let mut parts = stamp.rsplitn(3, ' ');
    let (_, _, path) = (parts.next()?, parts.next()?, parts.next()?);
    Some(PathBuf::from(path)).filter(|p| p.is_file())
}

/// The error-level messages of a runtime's JSON log, when it failed
/// before (or instead of) running the process.
fn runtime_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    let messages: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(String::from))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// BuildKit's `/etc/hosts` for build containers.
fn default_hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The host's resolv.conf; in a namespace of its own the host's loopback
/// name servers are unreachable, so they are dropped, and with none left
/// the container gets Google's, as BuildKit and docker do.
fn resolv_conf(private: bool) -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if !private {
        return host;
    }
    let mut servers = 0;
    let mut out = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or_default();
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// A probe's verdict, remembered per binary.
fn probe_cached(candidate: &str, state_root: &Path) -> Result<Runtime, String> {
    let binary = find_program(candidate).ok_or_else(|| format!("{candidate} not found on PATH"))?;
    let meta = fs::metadata(&binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if name.contains("crun") {
        RuntimeKind::Crun
    } else if name.contains("runc") {
        RuntimeKind::Runc
    } else {
        version_kind(&binary)?
    };
    let mut runtime = Runtime {
        kind,
        state: state_root.join(kind.name()),
        binary: binary.clone(),
        pidns: PidNs::New,
    };
    let stamp = format!("{} {} {}", binary.display(), meta.len(), meta.mtime());
    let memo = state_root.join(format!("probe-{}", kind.name()));
    // Whether a new /proc mounts depends on the container kiln runs in,
    // not only on the binary: a store on a volume may outlive it.
    let covers = format!("proc-covers {}", proc_covers());
    if let Ok(text) = fs::read_to_string(&memo) {
        let mut lines = text.splitn(3, '\n');
        if let (Some(seen), Some(env), Some(verdict)) = (lines.next(), lines.next(), lines.next()) {
            if seen == stamp && env == covers {
                return match verdict.strip_prefix("fail ") {
                    Some(reason) => Err(reason.to_string()),
                    None => {
                        if verdict == HOST_PID_VERDICT {
                            runtime.pidns = PidNs::Host;
                        }
                        Ok(runtime)
                    }
                };
            }
        }
    }
    let mut verdict = probe(&runtime, state_root);
    if matches!(&verdict, Err(reason) if proc_refused(reason)) {
        // Inside a container with a masked /proc: kiln's own /proc (and
        // /sys) bound in instead. Only this failure is worth the second try;
        // any other would fail the same way.
        let shared = Runtime {
            pidns: PidNs::Host,
            ..runtime.clone()
        };
        match probe(&shared, state_root) {
            Ok(()) => {
                runtime = shared;
                verdict = Ok(());
            }
            Err(again) => {
                verdict = verdict.map_err(|first| {
                    format!("{first}; and in kiln's PID namespace with its /proc and /sys bound in: {again}")
                })
            }
        }
    }
    let line = match &verdict {
        Ok(()) if runtime.pidns == PidNs::Host => HOST_PID_VERDICT.to_string(),
        Ok(()) => "ok".to_string(),
        Err(reason) => format!("fail {reason}"),
    };
    let _ = fs::write(&memo, format!("{stamp}\n{covers}\n{line}"));
    verdict.map(|()| runtime)
}

/// How many mounts cover parts of this process's `/proc` and `/sys`
/// (a container runtime's masks; `binfmt_misc` on a host): what decides
/// whether the kernel lets a new proc or sysfs be mounted.
fn proc_covers() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|text| {
            text.lines()
                .filter_map(|line| line.split(' ').nth(4))
                .filter(|point| point.starts_with("/proc/") || point.starts_with("/sys/"))
                .count()
        })
        .unwrap_or(0)
}

/// A probe memo's verdict for a runtime that works with [`PidNs::Host`] only.
const HOST_PID_VERDICT: &str = "ok host-pid";

/// Whether a runtime's error says the kernel refused to mount `/proc`: runc's
/// `error mounting "proc" to rootfs at "/proc": … operation not permitted`,
/// crun's `mount `proc` to `…proc`: Operation not permitted`.
fn proc_refused(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    (reason.contains("\"proc\" to rootfs") || reason.contains("mount `proc` to `"))
        && (reason.contains("operation not permitted") || reason.contains("permission denied"))
}

/// runc or crun, from `--version`, for a binary named neither.
fn version_kind(binary: &Path) -> Result<RuntimeKind, String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.starts_with("crun") {
        Ok(RuntimeKind::Crun)
    } else if text.starts_with("runc") {
        Ok(RuntimeKind::Runc)
    } else {
        Err(format!("{} is neither runc nor crun", binary.display()))
    }
}

/// Runs the host's `true` in a container whose rootfs holds only the
/// host's program directories, bound read-only.
fn probe(runtime: &Runtime, state_root: &Path) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PROBE_DIR}{}-", std::process::id()))
        .tempdir_in(state_root)
        .map_err(|e| format!("creating a probe directory: {e}"))?;
    let rootfs = dir.path().join("rootfs");
    fs::create_dir(&rootfs).map_err(|e| e.to_string())?;
    // Numbered within the process: the builds of `kiln pipeline` run at
    // once in one process, and each may probe.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut spec = ContainerSpec::new(
        format!(
            "{PROBE_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        dir.path().join("bundle"),
        &rootfs,
        ["true"],
    );
    for top in ["usr", "bin", "sbin", "lib", "lib64"] {
        let host = Path::new("/").join(top);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&host).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(target, rootfs.join(top)).map_err(|e| e.to_string())?;
            }
            Ok(m) if m.is_dir() => spec.mounts.push(MountSpec::Bind {
                source: host.clone(),
                target: host,
                readonly: true,
            }),
            _ => {}
        }
    }
    let never = AtomicBool::new(false);
    let mut output = Vec::new();
    match runtime.run(&spec, &never, &mut |_, line| output.push(line.to_string())) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "a test container exited with code {}{}",
            o.status.code,
            if output.is_empty() {
                String::new()
            } else {
                format!(": {}", output.join(" "))
            }
        )),
        Err(Error::Runtime { message, .. }) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::proc_refused;

    #[test]
    fn only_a_refused_proc_mount_counts_as_one() {
        // runc 1.1's and crun 1.8's words for it.
        assert!(proc_refused(
            "runc create failed: unable to start container process: error during container init: \
             error mounting \"proc\" to rootfs at \"/proc\": mount proc:/proc (via /proc/self/fd/7), \
             flags: 0xe: operation not permitted"
        ));
        assert!(proc_refused(
            "mount `proc` to `proc`: Operation not permitted"
        ));
        assert!(proc_refused(
            "mount `proc` to `/proc`: Operation not permitted"
        ));
        // Another mount refused, or proc failing otherwise, is not it.
        assert!(!proc_refused(
            "error mounting \"sysfs\" to rootfs at \"/sys\": operation not permitted"
        ));
        assert!(!proc_refused(
            "error mounting \"proc\" to rootfs at \"/proc\": no such device"
        ));
    }
}
