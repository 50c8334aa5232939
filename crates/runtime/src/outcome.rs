//! What a run gives back: how the process ended and what the caller should
//! know about its network.

use std::net::IpAddr;

/// Which of a container's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code as BuildKit shows it: a process killed by signal N
    /// reports `128 + N`, as the runtime returns it.
    pub code: i32,
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// The result of a container run whose process started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// How the process ended.
    pub status: ExitStatus,
    /// Something the caller should tell the user, e.g. that a private
    /// network could not be set up and the host's was used instead.
    pub warning: Option<String>,
    /// Where the container reached the host's loopback, for a private
    /// network (pasta's gateway, or slirp4netns' `10.0.2.2`).
    pub host_address: Option<IpAddr>,
    /// The helper that connected a private network.
    pub network_tool: Option<NetworkTool>,
}

impl RunOutcome {
    /// The address at which the container could reach a server listening
    /// on the host's `127.0.0.1`, when it had a private network.
    pub fn host_address(&self) -> Option<IpAddr> {
        self.host_address
    }
}

/// The user-space network helper connecting a private namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkTool {
    /// `pasta` (Debian package `passt`): the namespace gets a copy of the
    /// host's addresses and routes; the default gateway's address reaches
    /// the host's loopback.
    Pasta,
    /// `slirp4netns`: the namespace is `10.0.2.100/24`, the host's
    /// loopback is `10.0.2.2` and DNS is `10.0.2.3`.
    Slirp4netns,
}

impl NetworkTool {
    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            NetworkTool::Pasta => "pasta",
            NetworkTool::Slirp4netns => "slirp4netns",
        }
    }
}
