//! A git repository served over `git://` by Debian's `git-daemon` on
//! 127.0.0.1, for git sources of ADD and git build contexts.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs git in `dir` with fixed author and committer dates (so commits are
/// the same from run to run) and panics when it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A served repository, `git://127.0.0.1:PORT/repo.git`; the daemon is
/// killed and the repository removed on drop.
pub struct GitServer {
    _dir: tempfile::TempDir,
    daemon: Child,
    /// The repository's URL.
    pub url: String,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl GitServer {
    /// Makes a repository on branch `main` (`commit` writes its files and
    /// commits them, with [`git`], in the work tree it is given) and serves
    /// a bare clone of it.
    pub fn start(commit: impl FnOnce(&Path)) -> GitServer {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["config", "user.email", "t@example.com"]);
        git(&work, &["config", "user.name", "t"]);
        commit(&work);
        let served = dir.path().join("served");
        std::fs::create_dir(&served).unwrap();
        git(
            &served,
            &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `git daemon` forks `git-daemon` and killing the wrapper leaves the
        // daemon running (holding the test runner's pipes open), so start
        // the daemon itself.
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let daemon = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", served.display()))
            .arg(&served)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git-daemon (from Debian's git package)");
        // Owned at once, so the daemon is killed and reaped on every path.
        let server = GitServer {
            _dir: dir,
            daemon,
            url: format!("git://127.0.0.1:{port}/repo.git"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("git-daemon did not listen on 127.0.0.1:{port} within 5s");
    }
}
