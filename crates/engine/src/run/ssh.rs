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
        // Wake the acceptor so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
