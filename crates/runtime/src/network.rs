//! A private network namespace with outbound access, for `RUN`'s default
//! network: a holder process keeps the namespace alive, and `pasta`
//! (preferred) or `slirp4netns` connects it to the host's network from
//! user space, so no bridge, veth or iptables rule is ever made on the host.

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, NetworkTool};

/// The tool whose last setup in this process worked: [`PASTA`] (also
/// before any) or [`SLIRP`].
static LAST_WORKED: AtomicU8 = AtomicU8::new(PASTA);
const PASTA: u8 = 0;
const SLIRP: u8 = 1;

/// How long a helper may take to set the namespace up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A network namespace in use by one run; everything it started is killed
/// on drop.
pub(crate) struct PrivateNet {
    holder: Child,
    helper: Option<Child>,
    /// pasta daemonizes; its pid comes from its pid file.
    daemon: Option<i32>,
    pub(crate) tool: NetworkTool,
    /// The address at which the container reaches the host's loopback.
    pub(crate) host_address: Option<IpAddr>,
}

impl PrivateNet {
    /// The namespace's path, for the container's config.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// Makes a namespace and connects it with the first tool that works.
    /// `Err` lists why each tool failed or was missing.
    ///
    /// The tool that worked last in this process is tried first: where
    /// pasta cannot serve (run as root it drops to `nobody`, who may not
    /// open the namespace), each RUN step would otherwise pay for its
    /// failed start and a second namespace, a third of a short step's time.
    pub(crate) fn setup(work: &Path) -> Result<PrivateNet, Error> {
        let mut reasons = Vec::new();
        let mut tools = [NetworkTool::Pasta, NetworkTool::Slirp4netns];
        if LAST_WORKED.load(Ordering::Relaxed) == SLIRP {
            tools.reverse();
        }
        for tool in tools {
            let Some(program) = find_program(tool.name()) else {
                reasons.push(format!("{} is not installed", tool.name()));
                continue;
            };
            match Self::with(tool, &program, work) {
                Ok(net) => {
                    let worked = if tool == NetworkTool::Slirp4netns {
                        SLIRP
                    } else {
                        PASTA
                    };
                    LAST_WORKED.store(worked, Ordering::Relaxed);
                    return Ok(net);
                }
                Err(e) => reasons.push(e.to_string()),
            }
        }
        Err(Error::Network {
            tool: "pasta/slirp4netns".to_string(),
            message: reasons.join("; "),
        })
    }

    fn with(tool: NetworkTool, program: &Path, work: &Path) -> Result<PrivateNet, Error> {
        let holder = spawn_holder()?;
        let mut net = PrivateNet {
            holder,
            helper: None,
            daemon: None,
            tool,
            host_address: None,
        };
        let pid = net.holder.id().to_string();
        let fail = |message: String| Error::Network {
            tool: tool.name().to_string(),
            message,
        };
        match tool {
            NetworkTool::Pasta => {
                let pid_file = work.join("pasta.pid");
                let out = Command::new(program)
                    .args(["--config-net", "--quiet", "--pid"])
                    .arg(&pid_file)
                    .args(["--netns", &format!("/proc/{pid}/ns/net")])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| fail(format!("running {}: {e}", program.display())))?;
                if !out.status.success() {
                    return Err(fail(format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                net.daemon = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                net.host_address = default_gateway(&net.holder.id());
            }
            NetworkTool::Slirp4netns => {
                let (read, write) =
                    rustix::pipe::pipe().map_err(|e| fail(format!("creating a pipe: {e}")))?;
                let write_fd = write.as_raw_fd();
                let mut cmd = Command::new(program);
                cmd.args(["--configure", "--mtu=65520", "--ready-fd=3", &pid, "tap0"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                // SAFETY: dup2 and prctl are async-signal-safe.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::dup2(write_fd, 3) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let child = cmd
                    .spawn()
                    .map_err(|e| fail(format!("running {}: {e}", program.display())))?;
                drop(write);
                net.helper = Some(child);
                wait_ready(read).map_err(|e| {
                    let mut stderr = String::new();
                    if let Some(mut child) = net.helper.take() {
                        let _ = child.kill();
                        if let Some(mut s) = child.stderr.take() {
                            let _ = s.read_to_string(&mut stderr);
                        }
                        let _ = child.wait();
                    }
                    fail(format!("{e} {}", stderr.trim()))
                })?;
                net.host_address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)));
            }
        }
        Ok(net)
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(child) = &mut self.helper {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A `sleep` in a new network namespace, dying with the thread that made
/// it, so a killed kiln leaves no namespace behind.
fn spawn_holder() -> Result<Child, Error> {
    let mut cmd = Command::new("sleep");
    cmd.arg("infinity")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: unshare and prctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Error::Network {
        tool: "netns".to_string(),
        message: format!("creating a network namespace: {e}"),
    })
}

/// Waits for slirp4netns to write to its ready fd.
fn wait_ready(read: OwnedFd) -> Result<(), String> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut pfd = [libc::pollfd {
        fd: read.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the namespace to be configured".into());
        }
        // SAFETY: pfd is a valid array of one pollfd.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, left.as_millis() as i32) };
        if n > 0 {
            let mut file = fs::File::from(read);
            let mut byte = [0u8; 1];
            return match file.read(&mut byte) {
                Ok(1) => Ok(()),
                _ => Err("exited before the namespace was configured".into()),
            };
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
    }
}

/// The default IPv4 gateway inside the namespace of `pid`, which pasta maps
/// to the host's loopback.
fn default_gateway(pid: &u32) -> Option<IpAddr> {
    let routes = fs::read_to_string(format!("/proc/{pid}/net/route")).ok()?;
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"00000000") {
            return None;
        }
        let gw = u32::from_str_radix(fields.get(2)?, 16).ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(gw.to_le_bytes())))
    })
}

/// `name` on PATH. The one variable a library crate reads: finding a
/// program is what `execvp` does with it, not configuration.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}
