//! The socket a `RUN --mount=type=ssh` sees: a new Unix socket owned by
//! the step's user, each connection forwarded to the `--ssh` agent. The
//! agent's own socket is not mounted: it belongs to the user running kiln,
//! with permissions a container user other than root could not pass, and
//! BuildKit forwards for the same reason.

use std::io;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running forwarder; dropping it stops accepting and removes the socket.
pub(crate) struct AgentProxy {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    /// The listening socket, shut down on drop to wake the acceptor even
    /// when the socket's path is already gone with its directory.
    listener: UnixListener,
    acceptor: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens on `socket` (owned by `uid`:`gid`, permissions `mode`) and
    /// forwards every connection to the agent at `agent`.
    pub(crate) fn start(
        agent: &Path,
        socket: &Path,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> io::Result<AgentProxy> {
        // Fail now, with the agent's path, rather than inside the step.
        UnixStream::connect(agent)?;
        let listener = UnixListener::bind(socket)?;
        chown(socket, Some(uid), Some(gid))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (agent, flag) = (agent.to_path_buf(), stop.clone());
        let own = listener.try_clone()?;
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = UnixStream::connect(&agent) else {
                    continue;
                };
                forward(client, upstream);
            }
        });
        Ok(AgentProxy {
            socket: socket.to_path_buf(),
            stop,
            listener: own,
            acceptor: Some(acceptor),
        })
    }
}

/// Copies both ways between `a` and `b` on two threads; each direction
/// ends at end of file and shuts the other side's writing half.
fn forward(a: UnixStream, b: UnixStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    pipe(a, b2);
    pipe(b, a2);
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag: shutting the listening
        // socket down makes its accept return.
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn connections_to_the_socket_reach_the_agent_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // A stand-in agent: answers each request with it reversed. The
        // proxy's own check that the agent is there connects and closes.
        let server = std::thread::spawn(move || {
            let mut answered = 0;
            while answered < 2 {
                let (mut conn, _) = agent.accept().unwrap();
                let mut buf = [0u8; 5];
                if conn.read_exact(&mut buf).is_err() {
                    continue;
                }
                buf.reverse();
                conn.write_all(&buf).unwrap();
                answered += 1;
            }
            agent
        });
        let socket = dir.path().join("proxy.sock");
        let proxy = AgentProxy::start(&agent_path, &socket, 1234, 5678, 0o600).unwrap();
        let meta = std::fs::metadata(&socket).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (1234, 5678, 0o600)
        );
        for request in [b"hello", b"agent"] {
            let mut c = UnixStream::connect(&socket).unwrap();
            c.write_all(request).unwrap();
            let mut reply = Vec::new();
            c.read_to_end(&mut reply).unwrap();
            let mut want = request.to_vec();
            want.reverse();
            assert_eq!(reply, want);
        }
        let _agent = server.join().unwrap();
        drop(proxy);
        assert!(!socket.exists(), "the socket goes with the proxy");
        // A proxy whose socket went first (with its directory) still stops.
        let gone = dir.path().join("gone.sock");
        let proxy = AgentProxy::start(&agent_path, &gone, 0, 0, 0o600).unwrap();
        std::fs::remove_file(&gone).unwrap();
        drop(proxy);
        // An agent that is not there fails at once, naming nothing half made.
        let err = AgentProxy::start(&dir.path().join("none"), &socket, 0, 0, 0o600).err();
        assert!(err.is_some());
        assert!(!socket.exists());
    }
}
